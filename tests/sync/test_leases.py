"""The lease store's reads (sync.leases.LeaseStore.reading): each on a connection of its own, so
reads never queue behind each other, and at most IDLE_READERS kept open between reads (on
PostgreSQL at most IDLE_READERS at once, each on a kept connection). On the buffer file and on the
PostgreSQL state schema (``state_backend``, canon/ADR-049)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sync.leases import IDLE_READERS, Lease, LeaseStore

if TYPE_CHECKING:
    from tests.backends import StateAt


def _open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def test_reads_at_once_each_get_a_connection_and_only_a_few_stay_open(state_backend: StateAt) -> None:
    store = LeaseStore(state_backend("buffer.sqlite3"))
    try:
        now = time.time()
        with store.transaction() as tx:
            tx.hold(
                Lease(
                    "A-WP-0001-T01", "a", "A-WP-0001", "T01", "agt-a", "K1", None, 60, now, now + 60, "held"
                )
            )
        with store.reading() as tx:
            assert tx.excluded_refs(time.time()) == {"A-WP-0001-T01"}
        before = _open_fds()
        seen: list[set[str]] = []
        on_file = isinstance(store.location, Path)
        together = threading.Barrier(20 if on_file else IDLE_READERS)
        at_once = 0
        most = threading.Lock()

        def read() -> None:
            nonlocal at_once
            with store.reading() as tx:
                with most:
                    at_once += 1
                    busiest.append(at_once)
                if on_file or len(busiest) <= IDLE_READERS:
                    together.wait(timeout=30)  # all 20 read at once: 20 connections (PostgreSQL: 8)
                seen.append(tx.live_refs(time.time()))
                with most:
                    at_once -= 1

        busiest: list[int] = []

        for _ in range(3):
            threads = [threading.Thread(target=read) for _ in range(20)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert seen == [{"A-WP-0001-T01"}] * 60
        assert max(busiest) == (20 if on_file else IDLE_READERS)
        # of the 20 connections opened for each round, no more than IDLE_READERS stay open
        # (a connection holds the file and its -wal and -shm; on PostgreSQL, a socket)
        assert _open_fds() <= before + 4 * IDLE_READERS  # all 60 left open: some 180
    finally:
        store.close()


def _lease(ref: str, actor: str, now: float, length: float) -> Lease:
    return Lease(
        ref, "a", ref[:9], ref[10:], actor, f"K-{ref}-{now}", None, length, now, now + length, "held"
    )


def test_remembered_exclusions_follow_every_commit_and_the_first_lease_end(state_backend: StateAt) -> None:
    """LeaseStore.excluded_refs is remembered, yet a commit through another connection (this
    process's writer, another store on the file as a CLI has) and a lease running out show at
    once, as a fresh read shows them. (On PostgreSQL the set is read each time.)"""
    path = state_backend("buffer.sqlite3")
    store, other = LeaseStore(path), LeaseStore(path)
    try:
        now = time.time()
        assert store.excluded_refs(now) == frozenset()
        with store.transaction() as tx:
            tx.hold(_lease("A-WP-0001-T01", "agt-a", now, 60))
        assert store.excluded_refs(now) == {"A-WP-0001-T01"}
        if isinstance(path, Path):
            assert store.excluded_refs(now) is store.excluded_refs(now)  # unchanged: remembered
        with other.transaction() as tx:  # another process's store on the same file
            tx.hold(_lease("A-WP-0001-T02", "agt-b", now, 5))
        assert store.excluded_refs(now) == {"A-WP-0001-T01", "A-WP-0001-T02"}
        # T02's lease runs out at now + 5: from then on it is no longer left out, with no commit
        assert store.excluded_refs(now + 4.9) == {"A-WP-0001-T01", "A-WP-0001-T02"}
        assert store.excluded_refs(now + 5) == {"A-WP-0001-T01"}
        # a clock set back reads again (T02 is live again at now)
        assert store.excluded_refs(now) == {"A-WP-0001-T01", "A-WP-0001-T02"}
        with other.transaction() as tx:
            tx.release("A-WP-0001-T01", "R1", "agt-a", now)
        assert store.excluded_refs(now) == {"A-WP-0001-T02"}
        with store.reading() as tx:
            assert store.excluded_refs(now) == tx.excluded_refs(now)
    finally:
        store.close()
        other.close()
