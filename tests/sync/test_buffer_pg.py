"""The write buffer, its leases and the applier lock on a real PostgreSQL (canon/ADR-049): several
connections (replicas) at once store each event once, decide each claim once, apply one at a
time; a reopened buffer keeps what a killed process stored; a dropped connection is a clear error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from typing import TYPE_CHECKING

import pytest

from sync._durable_pg import PgState
from sync.applier_lock import AdvisoryRepoLocks
from sync.buffer import EventState, Outcome, Submission, Writeback, WriteBuffer
from sync.buffer_move import move_buffer_file
from sync.errors import ApplierLockLost, StoreUnreachable
from sync.leases import Lease, LeaseStore, LeaseTransaction
from sync.relay_queue import RelayQueue, RelayState

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.postgres


def sub(key: str, note: str = "n") -> Submission:
    payload = {"key": key, "kind": "progress.note", "note": note}
    return Submission(key, "progress.note", "r1", payload, payload | {"repo": "r1"}, "A-WP-0001", "T01")


def _together(workers: list[threading.Thread]) -> None:
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not any(w.is_alive() for w in workers)


def test_replicas_appending_the_same_keys_at_once_store_each_event_once(postgres_database: str) -> None:
    """Two buffers (two replicas' connections), four threads each, send the same 40 keys in
    batches at once: every key is stored once, accepted by exactly one sender, a duplicate for
    every other, and ``seq`` follows the order the batches committed in."""
    state = PgState(postgres_database)
    replicas = [WriteBuffer(state), WriteBuffer(state)]
    keys = [f"k{i:02d}" for i in range(40)]
    outcomes: list[tuple[str, Outcome]] = []
    start = threading.Barrier(8)

    def send(buffer: WriteBuffer, offset: int) -> None:
        start.wait(timeout=30)
        for first in range(0, len(keys), 8):
            batch = [sub(k) for k in (keys[first + offset :] + keys[first : first + offset])[:8]]
            outcomes.extend(zip((s.key for s in batch), buffer.append(batch), strict=True))

    try:
        _together([threading.Thread(target=send, args=(replicas[i % 2], i)) for i in range(8)])
        accepted = sorted(k for k, o in outcomes if o is Outcome.ACCEPTED)
        assert accepted == keys  # each key accepted once, by one of the eight senders
        assert {o for _k, o in outcomes} == {Outcome.ACCEPTED, Outcome.DUPLICATE}
        stored, total = replicas[0].list_events(limit=100)
        assert total == 40 and sorted(e.key for e in stored) == keys
        assert [e.seq for e in stored] == sorted(e.seq for e in stored)
        with pytest.raises(Exception, match="already used for a different event"):
            replicas[1].append([sub("new"), sub("k00", note="changed")])
        assert replicas[0].get("new") is None  # a conflict stores nothing of its batch
    finally:
        for buffer in replicas:
            buffer.close()


def _claim(ref: str, actor: str) -> object:
    """A claim's decision as ``statehub.claims`` makes it: held by another live lease, refused;
    else the lease and its ``task.claim`` event, in the same transaction."""

    def decide(tx: LeaseTransaction) -> str:
        now = time.time()
        held = tx.lease(ref)
        time.sleep(0.05)  # a decision takes a while: another replica's would read the same lease meanwhile
        if held is not None and held.live(now) and held.actor != actor:
            raise LookupError(f"held by {held.actor}")
        key = f"claim-{actor}"
        tx.hold(Lease(ref, "r1", "A-WP-0001", "T01", actor, key, None, 60, now, now + 60, "held"))
        payload = {"key": key, "kind": "task.claim", "actor": actor}
        tx.insert([Submission(key, "task.claim", "r1", payload, payload, "A-WP-0001", "T01")])
        return actor

    return decide


def test_racing_claims_of_one_task_from_two_replicas_have_one_winner(postgres_database: str) -> None:
    state = PgState(postgres_database)
    replicas = [LeaseStore(state), LeaseStore(state)]
    won: list[str] = []
    refused: list[str] = []
    start = threading.Barrier(12)

    def claim(store: LeaseStore, actor: str) -> None:
        start.wait(timeout=30)
        try:
            won.append(store.run(_claim("A-WP-0001-T01", actor)))  # type: ignore[arg-type]
        except LookupError:
            refused.append(actor)

    try:
        _together([threading.Thread(target=claim, args=(replicas[i % 2], f"agt-{i}")) for i in range(12)])
        assert len(won) == 1 and len(refused) == 11
        with replicas[1].reading() as tx:
            lease = tx.lease("A-WP-0001-T01")
            assert lease is not None and lease.actor == won[0] and lease.state == "held"
            assert tx.pending_change("A-WP-0001", "T01") is not None
        buffer = WriteBuffer(state)
        claims, total = buffer.list_events(kind="task.claim")
        assert total == 1 and claims[0].key == f"claim-{won[0]}"  # the winner's event alone
        buffer.close()
    finally:
        for store in replicas:
            store.close()


KILLED_AFTER_APPENDING = """
import os, signal, sys
from sync._durable_pg import PgState
from sync.buffer import Submission, WriteBuffer

buffer = WriteBuffer(PgState(sys.argv[1]))
for batch in range(5):
    subs = []
    for i in range(20):
        key = f"e{batch:02d}-{i:02d}"
        payload = {"key": key, "kind": "progress.note", "note": key}
        subs.append(Submission(key, "progress.note", "r1", payload, payload, "A-WP-0001", None))
    buffer.append(subs)
print("appended", flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no close, no clean exit: a replica dying
"""


def test_a_buffer_reopened_after_its_process_was_killed_keeps_every_pending_event(
    postgres_database: str,
) -> None:
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_AFTER_APPENDING), postgres_database],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -9 and child.stdout == "appended\n", child.stderr
    buffer = WriteBuffer(PgState(postgres_database))
    try:
        pending = buffer.pending()
        assert [e.key for e in pending] == [f"e{b:02d}-{i:02d}" for b in range(5) for i in range(20)]
        assert {e.state for e in pending} == {EventState.PENDING}
        assert buffer.pending_repos() == ["r1"]
    finally:
        buffer.close()


def test_a_connection_dropped_mid_statement_is_store_unreachable_and_stores_nothing(
    postgres_database: str,
) -> None:
    """An append waits on the buffer's write lock (another replica is writing) when the server
    ends its connection: StoreUnreachable (503), nothing stored, and the next append reconnects."""
    state = PgState(postgres_database)
    buffer = WriteBuffer(state)
    errors: list[BaseException] = []
    try:
        buffer.append([sub("before")])
        with state.connect() as other:
            other.execute("BEGIN")
            other.execute("SELECT pg_advisory_xact_lock(hashtextextended('buffer:write', 0))")

            def append() -> None:
                try:
                    buffer.append([sub("during")])
                except BaseException as error:  # noqa: BLE001 - looked at below
                    errors.append(error)

            worker = threading.Thread(target=append)
            worker.start()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # until the append waits on the lock
                waiting = other.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                ).fetchall()
                if waiting:
                    break
                time.sleep(0.02)
            assert waiting, "the append never waited on the write lock"
            other.execute("SELECT pg_terminate_backend(%s)", (waiting[0][0],))
            worker.join(timeout=30)
            other.execute("ROLLBACK")
        assert len(errors) == 1 and isinstance(errors[0], StoreUnreachable), errors
        assert "does not answer" in str(errors[0])
        assert buffer.get("during") is None  # nothing stored
        assert buffer.append([sub("after")]) == [Outcome.ACCEPTED]  # reconnected
        assert [e.key for e in buffer.pending()] == ["before", "after"]
    finally:
        buffer.close()


def test_one_applier_of_a_repo_at_a_time_across_replicas_and_its_death_frees_the_lock(
    postgres_database: str,
) -> None:
    state = PgState(postgres_database)
    first, second = AdvisoryRepoLocks(state), AdvisoryRepoLocks(state)
    try:
        assert first.acquire("r1", timeout=1)
        started = time.monotonic()
        assert not second.acquire("r1", timeout=0.3)  # another replica applies r1: hand over
        assert time.monotonic() - started >= 0.3
        assert second.acquire("r2", timeout=0)  # ... but not another repo (canon/ADR-054)
        assert first.acquire("r3", timeout=0)  # nor does the holder of r1 wait for its own others
        second.release("r2")
        first.release("r3")
        # a second thread of the holder's own process waits too (a session lock is re-entrant)
        assert not first.acquire("r1", timeout=0.2)
        first.release("r1")
        assert second.acquire("r1", timeout=1)
        second.release("r1")

        assert first.acquire("r1", timeout=1)
        first.check("r1")
        with state.connect() as admin:  # the holder's process dies: the server ends its session
            admin.execute(  # this test's database only: other databases' holders are other hubs' and tests'
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        assert second.acquire("r1", timeout=5)
        with pytest.raises(ApplierLockLost, match="'r1' was lost"):
            first.check("r1")  # the holder finds out before it writes
        second.check("r1")
        second.release("r1")
        first.release("r1")  # its session is gone, and the lock with it: nothing to undo
        assert first.acquire("r1", timeout=1)  # it connects again
        first.release("r1")
        with pytest.raises(ApplierLockLost, match="not held"):
            first.check("r1")
    finally:
        first.close()
        second.close()


def test_a_buffer_file_moves_into_the_state_schema_once_and_loses_nothing(
    postgres_database: str, tmp_path: Path
) -> None:
    """A hub switched to PostgreSQL brings its buffer file's events (applied and pending), relay
    states and decisions, write-backs and leases; what its relay had not queued yet is queued; a key
    another replica's buffer holds keeps that event; the file is renamed, never read again."""
    state = PgState(postgres_database)
    other_replica = WriteBuffer(state)
    other_replica.append([sub("theirs"), sub("clash", note="the schema's")])
    other_replica.close()
    RelayQueue(state).close()  # the schema's relay is set up: "theirs" and "clash" came before it

    path = tmp_path / "buffer.sqlite3"
    old = WriteBuffer(path)
    old.append([sub("before-relay")])
    relay = RelayQueue(path)
    old.append([sub("applied"), sub("parked"), sub("clash", note="the file's"), sub("queued")])
    relay.enqueue_new()
    relay.record(sent=["queued"], parked={"parked": "the upstream refused it"})
    relay.retry("parked", "alice")
    relay.record(parked={"parked": "refused again"})
    old.append([sub("not-yet-queued")])
    old.finish({"applied": "c0ffee"}, {})
    writeback = old.begin_writeback(Writeback("r1", "abc", ["queued"], []))
    named = Writeback("r1", "abc", ["queued"], [], checkout="0" * 32, place="host-a:/w/r1/.git")
    old.begin_writeback(named)
    leases = LeaseStore(path)
    now = time.time()
    with leases.transaction() as tx:
        tx.hold(
            Lease(
                "A-WP-0001-T01", "r1", "A-WP-0001", "T01", "agt-a", "queued", None, 60, now, now + 60, "held"
            )
        )
    for store in (leases, relay, old):
        store.close()

    moved = move_buffer_file(path, state)
    assert moved is not None and (moved.events, moved.pending, moved.leases) == (5, 4, 1)
    assert moved.kept == ["clash"] and moved.renamed_to == tmp_path / "buffer.sqlite3.moved-to-postgresql"
    assert not path.exists() and moved.renamed_to.is_file()
    assert move_buffer_file(path, state) is None  # once

    buffer, queue, lease_store = WriteBuffer(state), RelayQueue(state), LeaseStore(state)
    try:
        events = {e.key: e for e in buffer.list_events(limit=100)[0]}
        assert list(events) == [
            "theirs", "clash", "before-relay", "applied", "parked", "queued", "not-yet-queued",
        ]  # fmt: skip
        assert events["clash"].event["note"] == "the schema's"
        applied = events["applied"]
        assert (applied.state, applied.commit) == (EventState.APPLIED, "c0ffee")
        assert [
            w.id for w in buffer.writebacks("r1", "")
        ] != [] and writeback  # the unfinished write-back came too
        came = [(w.checkout, w.place) for w in buffer.writebacks("r1", "0" * 32)]
        assert came == [("", ""), ("0" * 32, "host-a:/w/r1/.git")]  # each keeps its checkout
        assert queue.enqueue_new() == 0  # nothing is queued twice, nothing from before a relay
        states = {k: queue.get(k) for k in events}
        assert {k: s.state for k, s in states.items() if s is not None} == {
            "applied": RelayState.QUEUED,
            "parked": RelayState.PARKED,
            "queued": RelayState.SENT,
            "not-yet-queued": RelayState.QUEUED,
        }
        assert [d.decision for d in queue.status().decisions] == ["retry"]
        with lease_store.reading() as tx:
            held = tx.lease("A-WP-0001-T01")
            assert held is not None and held.actor == "agt-a" and held.live(time.time())
    finally:
        for store in (buffer, queue, lease_store):
            store.close()


def end_store_sessions(state: PgState) -> int:
    """End every durable store's session in this test's own database, as a server restart does
    (``pg_terminate_backend`` of the sessions named ``statehub``, never another database's), and
    wait until they are gone: the server is "back" and the stores' connections are dead."""
    with state.connect() as admin:
        query = (
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'statehub' AND pid <> pg_backend_pid()"
        )
        ended = [row[0] for row in admin.execute(query).fetchall()]
        for pid in ended:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)"
        deadline = time.monotonic() + 10
        while admin.execute(gone, (ended,)).fetchone() != (0,) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert admin.execute(gone, (ended,)).fetchone() == (0,), "the sessions did not end"
    return len(ended)


def test_every_store_on_postgresql_answers_its_first_use_after_a_restart(postgres_database: str) -> None:
    """Found by the fleet review (issue 16): after PostgreSQL restarted, each store's first use
    raised StoreUnreachable (503) although the server was back. Each store now finds its dead
    connection (the server's goodbye is on its socket) and connects again before running anything:
    a write transaction, a lone read and the lease readers all answer at once."""
    from sync.room_store import RoomStore

    state = PgState(postgres_database)
    buffer, queue, leases, rooms = WriteBuffer(state), RelayQueue(state), LeaseStore(state), RoomStore(state)
    try:
        assert buffer.append([sub("before")]) == [Outcome.ACCEPTED]
        queue.enqueue_new()
        with leases.reading() as tx:
            assert tx.lease("A-WP-0001-T01") is None
        rooms.open_lineage("doc-1", "seed", b"\x00")
        for round_ in range(2):  # twice: the new connections recover as well as the first ones
            assert end_store_sessions(state) >= 4
            assert buffer.append([sub(f"after-{round_}")]) == [Outcome.ACCEPTED]  # a write transaction
            assert buffer.get("before") is not None  # a lone read
            assert end_store_sessions(state) >= 1
            assert buffer.get("before") is not None  # a lone read first
            assert queue.enqueue_new() >= 1  # after-N (and the last round's claim)
            assert queue.get(f"after-{round_}") is not None
            with leases.reading() as tx:
                assert tx.lease("A-WP-0001-T09") is None
            assert leases.run(_claim(f"A-WP-0001-T0{round_ + 1}", f"agt-{round_}")) == f"agt-{round_}"
            assert rooms.lineage("doc-1") is not None
            assert rooms.append("doc-1", b"\x01") > 0
        assert [e.key for e in buffer.pending()][:3] == ["before", "after-0", "claim-agt-0"]
    finally:
        for store in (buffer, queue, leases, rooms):
            store.close()
