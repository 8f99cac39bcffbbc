"""The lease store's reads (sync.leases.LeaseStore.reading): each on a connection of its own, so
reads never queue behind each other, and at most IDLE_READERS kept open between reads."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sync.leases import IDLE_READERS, Lease, LeaseStore


def _open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def test_reads_at_once_each_get_a_connection_and_only_a_few_stay_open(tmp_path: Path) -> None:
    store = LeaseStore(tmp_path / "buffer.sqlite3")
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
        together = threading.Barrier(20)

        def read() -> None:
            with store.reading() as tx:
                together.wait(timeout=30)  # all 20 read at once: 20 connections
                seen.append(tx.live_refs(time.time()))

        for _ in range(3):
            threads = [threading.Thread(target=read) for _ in range(20)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert seen == [{"A-WP-0001-T01"}] * 60
        # of the 20 connections opened for each round, no more than IDLE_READERS stay open
        # (a connection holds the file and its -wal and -shm)
        assert _open_fds() <= before + 4 * IDLE_READERS  # all 60 left open: some 180
    finally:
        store.close()
