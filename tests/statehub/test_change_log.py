"""The change log on a SQLite file and on the PostgreSQL state schema (canon/ADR-038, ADR-050).

On both (``state_backend``): numbering, reading after an id, pruning and its bounds, a batch
larger than one INSERT. On PostgreSQL, what several replicas need: two logs (two connections,
as two processes have) appending from several threads at once commit their ids in order, so a
reader polling beside them never sees id ``n + 1`` before ``n``; a listener hears other
connections' appends, reconnects when the server drops it, and wakes a broadcaster at once,
long before its poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from typing import TYPE_CHECKING

import psycopg
import pytest

from statehub.changes import CHANGES_FILE, Change, ChangeLog, Stored
from statehub.stream import Broadcaster, StreamFilter
from sync._durable_pg import PgState
from sync.errors import StoreUnreachable
from tests.backends import AT_COMMIT, end_at_commit, hold_commits

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.backends import StateAt

WAIT = 30.0
"""Seconds a test waits for what it expects; far below the broadcaster's poll in these tests (60 s)."""


def _stored(log: ChangeLog) -> list[list[Stored]]:
    """What ``log``'s listeners are told, one list per append."""
    told: list[list[Stored]] = []
    log.on_append.append(told.append)
    return told


def test_the_log_numbers_prunes_and_says_where_it_starts(state_backend: StateAt) -> None:
    log = ChangeLog(state_backend(CHANGES_FILE), keep=100)
    try:
        assert log.bounds() == (0, 0)
        told = _stored(log)
        log.append(
            [Change("relay.state", {"n": 0}), Change("task.changed", {"ref": "A-1"}, "demo", "W", ("ada",))]
        )
        assert [[s.id for s in batch] for batch in told] == [[1, 2]]
        first = log.after(0)
        assert [(s.id, s.type, s.repo, s.workplan, s.owners) for s in first] == [
            (1, "relay.state", None, None, ()),
            (2, "task.changed", "demo", "W", ("ada",)),
        ]
        assert first == told[0]  # what the listeners were handed is what a reader reads
        assert log.after(1) == first[1:] and log.after(2) == []
        for _ in range(7):
            log.append([Change("relay.state", {"n": i}) for i in range(100)])
        pruned, newest = log.bounds()
        assert newest == 702
        assert pruned >= 400  # pruned at the 500th append, down to the last 100
        assert log.after(0, 1)[0].id == pruned + 1
        log.prune()
        assert log.bounds() == (602, 702)
        assert [s.id for s in log.after(0)] == list(range(603, 703))
    finally:
        log.close()
    reopened = ChangeLog(state_backend(CHANGES_FILE), keep=100)
    try:
        reopened.append([Change("relay.state", {})])
        assert reopened.bounds() == (602, 703)  # never reused, even after pruning and reopening
    finally:
        reopened.close()


def test_messages_older_than_the_days_kept_are_pruned_and_the_newest_id_stays(state_backend: StateAt) -> None:
    log = ChangeLog(state_backend(CHANGES_FILE), keep=100, keep_s=0.05)
    try:
        log.append([Change("relay.state", {"n": n}) for n in range(3)])
        time.sleep(0.1)
        log.prune()
        assert log.after(0) == []
        assert log.bounds() == (3, 3)  # nothing left, and the stream still knows where it stands
        log.append([Change("relay.state", {})])
        assert [s.id for s in log.after(0)] == [4]
    finally:
        log.close()


def test_a_batch_larger_than_one_insert_keeps_its_order(state_backend: StateAt) -> None:
    log = ChangeLog(state_backend(CHANGES_FILE))
    try:
        told = _stored(log)
        log.append([Change("relay.state", {"n": n}) for n in range(1234)])
        ids = [s.id for s in told[0]]
        assert ids == list(range(1, 1235))
        read = log.after(0, 2000)
        assert [s.id for s in read] == ids
        assert [s.data.split('"n":')[1].rstrip("}") for s in read] == [str(n) for n in range(1234)]
    finally:
        log.close()


def test_a_log_file_from_before_keeps_its_messages_and_ids(tmp_path: Path) -> None:
    """A data dir written before the log moved behind the state-store surface opens unchanged."""
    path = tmp_path / CHANGES_FILE
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE change (id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, "
            "type TEXT NOT NULL, repo TEXT, workplan TEXT, owners TEXT NOT NULL, data TEXT NOT NULL);"
            "CREATE INDEX ix_change_at ON change (at);"
            "CREATE TABLE change_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
            "PRAGMA user_version = 1;"
        )
        for n in range(1, 6):
            db.execute(
                "INSERT INTO change (at, type, repo, workplan, owners, data) "
                "VALUES (?, 'relay.state', NULL, NULL, '[]', ?)",
                (time.time(), f'{{"n":{n}}}'),
            )
        db.execute("DELETE FROM change WHERE id <= 2")
        db.execute("INSERT INTO change_meta VALUES ('pruned_through', 2)")
    db.close()
    log = ChangeLog(path)
    try:
        assert log.bounds() == (2, 5)
        assert [s.id for s in log.after(0)] == [3, 4, 5]
        log.append([Change("relay.state", {})])
        assert log.bounds() == (2, 6)
    finally:
        log.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    db.close()


# -- PostgreSQL: several connections, as replicas have ------------------------------------------------------


@pytest.mark.postgres
def test_two_logs_appending_at_once_commit_in_id_order_and_a_reader_misses_nothing(
    postgres_database: str,
) -> None:
    """Two logs (two connections: two replicas), two threads each appending batches of 1-3 at
    once, and a reader polling ``after(last)`` beside them as the broadcaster does. Without the
    append lock a sequence gives id ``n + 1`` to a transaction that may commit before ``n``'s,
    and a reader that saw ``n + 1`` would never read ``n``."""
    state = PgState(postgres_database)
    logs = [ChangeLog(state), ChangeLog(state)]
    reader_log = ChangeLog(state)
    told: list[list[Stored]] = []
    told_lock = threading.Lock()

    def keep(stored: list[Stored]) -> None:
        with told_lock:
            told.append(stored)

    for log in logs:
        log.on_append.append(keep)
    done = threading.Event()
    seen: list[int] = []
    problems: list[str] = []

    def read() -> None:
        last = 0
        while True:
            finished = done.is_set()
            for message in reader_log.after(last, 50):
                if message.id <= last:
                    problems.append(f"read {message.id} after {last}")
                last = message.id
                seen.append(message.id)
            if finished and not reader_log.after(last, 1):
                return

    def write(log: ChangeLog, worker: int) -> None:
        for n in range(60):
            log.append(
                [Change("relay.state", {"w": worker, "n": n, "k": k}) for k in range(1 + (n + worker) % 3)]
            )

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=write, args=(logs[w % 2], w)) for w in range(4)]
    try:
        reader.start()
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join(120)
        done.set()
        reader.join(120)
        assert not reader.is_alive() and not any(t.is_alive() for t in writers)
        everything = [s.id for s in reader_log.after(0, 10_000)]
        assert len(everything) == sum(1 + (n + w) % 3 for w in range(4) for n in range(60))
        assert everything == sorted(set(everything))
        assert problems == []
        assert seen == everything  # never an id skipped: none committed after a higher one was read
        for batch in told:  # each append's ids are consecutive: nothing of another's between them
            assert [s.id for s in batch] == list(range(batch[0].id, batch[0].id + len(batch)))
        assert sorted(s.id for batch in told for s in batch) == everything
    finally:
        for log in (*logs, reader_log):
            log.close()


def _terminate(postgres_database: str, pid: int) -> None:
    with psycopg.connect(PgState(postgres_database).url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.mark.postgres
def test_a_listener_hears_other_appends_and_listens_again_after_the_server_drops_it(
    postgres_database: str,
) -> None:
    state = PgState(postgres_database)
    here, there = ChangeLog(state), ChangeLog(state)
    heard: queue.Queue[int | None] = queue.Queue()
    listener = here.listen(heard.put)
    assert listener is not None
    try:
        assert heard.get(timeout=WAIT) is None  # listening: look once, whatever came before
        there.append([Change("relay.state", {"n": 1}), Change("relay.state", {"n": 2})])
        assert heard.get(timeout=WAIT) == 2  # one notification per append: its last id
        here.append([Change("relay.state", {"n": 3})])
        assert heard.get(timeout=WAIT) == 3  # its own too (the broadcaster lets those go)
        assert listener.backend_pid is not None
        _terminate(postgres_database, listener.backend_pid)
        assert heard.get(timeout=WAIT) is None  # connected again: look, something may be missed
        assert listener.connects == 2
        there.append([Change("relay.state", {"n": 4})])
        assert heard.get(timeout=WAIT) == 4
    finally:
        listener.close()
        here.close()
        there.close()
    assert not listener.listening.is_set()


def test_a_sqlite_log_has_no_listener(tmp_path: Path) -> None:
    log = ChangeLog(tmp_path / CHANGES_FILE)
    try:
        assert log.listen(lambda _newest: None) is None
    finally:
        log.close()


@pytest.mark.postgres
def test_another_connections_append_reaches_subscribers_at_once_not_at_the_poll(
    postgres_database: str,
) -> None:
    """The broadcaster's poll is 60 s; what another replica appends reaches its subscriber within
    seconds, interleaved with this process's own appends in id order, each once. After the
    listener is dropped by the server and comes back, appends still arrive."""
    state = PgState(postgres_database)
    here, there = ChangeLog(state), ChangeLog(state)

    async def run() -> None:
        stream = Broadcaster(here, queue=100, poll_s=60, capacity=10, metrics=None)
        await stream.start()
        try:
            reader = stream.subscribe(StreamFilter())
            got: list[int] = []

            async def take(count: int) -> None:
                while len(got) < count:
                    frame = await asyncio.wait_for(reader.queue.get(), WAIT)
                    got.append(int(frame.split(b"\n")[0].removeprefix(b"id: ")))

            await asyncio.to_thread(there.append, [Change("relay.state", {"n": 1})])
            await take(1)
            await asyncio.to_thread(here.append, [Change("relay.state", {"n": 2})])
            await asyncio.to_thread(
                there.append, [Change("relay.state", {"n": 3}), Change("relay.state", {"n": 4})]
            )
            await asyncio.to_thread(here.append, [Change("relay.state", {"n": 5})])
            await take(5)
            listener = stream._listener
            assert listener is not None and listener.backend_pid is not None
            await asyncio.to_thread(_terminate, postgres_database, listener.backend_pid)
            while listener.connects < 2:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(there.append, [Change("relay.state", {"n": 6})])
            await take(6)
            assert got == [s.id for s in here.after(0)] == sorted(set(got))
            assert stream.notices >= 2
            # The gate of canon/ADR-044: a notification shuts it (the write-back waits while another
            # replica's messages go out) until the round that reads them is done, then opens it.
            assert await asyncio.to_thread(here.delivered.wait, WAIT)
            await asyncio.to_thread(stream.notified, stream.last + 1000)
            assert not here.delivered.is_set()
            assert await asyncio.to_thread(here.delivered.wait, WAIT)
            await asyncio.to_thread(stream.notified, stream.last)  # its own append: let go
            assert here.delivered.is_set()
        finally:
            await stream.stop()

    try:
        asyncio.run(run())
    finally:
        here.close()
        there.close()


@pytest.mark.postgres
def test_an_append_whose_session_is_ended_before_it_commits_is_stored_once(postgres_database: str) -> None:
    """The server ends the log's session in the middle of an append's transaction, before its
    COMMIT (``pg_terminate_backend``, a fail-over): nothing of it was committed, so it is stored
    again on a new connection, once, and the listeners hear it. Before, it was logged as "not
    streamed" and lost: with sessions terminated every 0.7 s under load, 66 of 1500 applied events
    never had their ``event.applied`` in the change log, and no id jump told a subscriber."""
    state = PgState(postgres_database)
    log = ChangeLog(state)
    try:
        log.append([Change("relay.state", {"n": 0})])  # the store's connection is open
        told = _stored(log)
        serialize = log._db.serialize
        ended: list[int] = []

        def end_the_session(name: str) -> None:
            serialize(name)
            if not ended:
                with psycopg.connect(state.url, autocommit=True) as admin:
                    row = admin.execute(
                        "SELECT pid, pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND state = 'idle in transaction'"
                    ).fetchone()
                assert row is not None and row[1], "no session inside the append's transaction"
                ended.append(int(row[0]))

        log._db.serialize = end_the_session  # type: ignore[method-assign]
        log.append([Change("task.changed", {"ref": "A-1"}, "demo", "W"), Change("relay.state", {"n": 1})])
        assert ended, "the session was not ended: the test proved nothing"
        stored = log.after(1)
        assert [(s.type, s.data) for s in stored] == [
            ("task.changed", stored[0].data),
            ("relay.state", stored[1].data),
        ]
        assert '"ref":"A-1"' in stored[0].data and '"n":1' in stored[1].data
        assert told == [stored]
    finally:
        log.close()


@pytest.mark.postgres
def test_an_append_whose_session_is_ended_at_its_commit_is_stored_once_in_order(
    postgres_database: str,
) -> None:
    """The server ends the log's session at the append's COMMIT itself: a deferred trigger (fired
    by the COMMIT) waits for an advisory lock this test holds, the test terminates the session
    waiting there (in this test's database only), then lets go. The append is sent again on a new
    connection and stored once, in order, the listeners told once, and its NOTIFY sent. Before,
    a session lost at the COMMIT was logged and its changes dropped, with no id jump to show it."""
    state = PgState(postgres_database)
    log = ChangeLog(state)
    holder = psycopg.connect(state.url, autocommit=True)
    try:
        log.append([Change("relay.state", {"n": 0})])  # the table exists, the connection is open
        hold_commits(holder, "change")
        holder.execute("LISTEN statehub_change")
        told = _stored(log)
        batch = [Change("task.changed", {"ref": f"A-{i}"}, "demo", "W") for i in range(3)]
        appending = threading.Thread(target=log.append, args=(batch,))
        appending.start()
        assert end_at_commit(holder), "no session waited at the COMMIT: the test proved nothing"
        holder.execute("SELECT pg_advisory_unlock(%s)", (AT_COMMIT,))
        appending.join(WAIT)
        assert not appending.is_alive()
        stored = log.after(1)
        assert [s.data.split('"ref":"')[1][:3] for s in stored] == ["A-0", "A-1", "A-2"]
        assert [s.id for s in stored] == sorted(s.id for s in stored)
        assert told == [stored]
        assert log.lost == 0
        heard = [n.payload for n in holder.notifies(timeout=1, stop_after=1)]
        assert heard == [str(stored[-1].id)]
    finally:
        holder.close()
        log.close()


@pytest.mark.postgres
def test_an_append_whose_commit_answer_is_lost_is_not_stored_twice(postgres_database: str) -> None:
    """The COMMIT went through but its answer never came (the session ended right after it: here
    the test ends the log's session once its first transaction committed, and the store raises as
    it does for a lost answer). The append is sent again with the same key: nothing is stored
    twice, and the listeners are told the ids the first try stored."""
    state = PgState(postgres_database)
    log = ChangeLog(state)
    try:
        log.append([Change("relay.state", {"n": 0})])
        told = _stored(log)
        transaction = log._db.transaction
        ended: list[int] = []

        @contextlib.contextmanager
        def answer_lost() -> Iterator[None]:
            with transaction():
                yield
            if not ended:  # committed: now the session ends before its answer is read
                with psycopg.connect(state.url, autocommit=True) as admin:
                    row = admin.execute(
                        "SELECT pid, pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle' "
                        "AND query LIKE 'COMMIT%'"
                    ).fetchone()
                assert row is not None and row[1]
                ended.append(int(row[0]))
                raise StoreUnreachable(log.where, "the connection was lost at COMMIT")

        log._db.transaction = answer_lost  # type: ignore[method-assign]
        log.append([Change("relay.state", {"n": 1}), Change("relay.state", {"n": 2})])
        assert ended, "the session was not ended: the test proved nothing"
        stored = log.after(1)
        assert [s.data.split('"n":')[1][0] for s in stored] == ["1", "2"]
        assert told == [stored]
        assert log.lost == 0
    finally:
        log.close()


@pytest.mark.postgres
def test_an_append_whose_session_dies_at_every_try_is_logged_and_counted(
    postgres_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every try's session is ended at its COMMIT: the append gives up after its bounded tries
    (5, within 2 s), says so in one error naming the tries and the cause, counts the changes in
    ``lost`` (``statehub_change_log_lost_total``), tells no listener and stores nothing; the log
    works again at once when the database does."""
    state = PgState(postgres_database)
    log = ChangeLog(state)
    holder = psycopg.connect(state.url, autocommit=True)
    try:
        log.append([Change("relay.state", {"n": 0})])
        hold_commits(holder, "change")
        told = _stored(log)
        appending = threading.Thread(target=log.append, args=([Change("relay.state", {"n": 1})] * 2,))
        started = time.monotonic()
        appending.start()
        ended = 0
        while appending.is_alive() and end_at_commit(holder, within_s=3.0):
            ended += 1
        appending.join(WAIT)
        assert not appending.is_alive()
        assert 2 <= ended <= 5
        assert time.monotonic() - started < 2.0 + 1.0  # bounded: 2 s of tries, and the last one's end
        assert log.lost == 2 and told == [] and log.after(1) == []
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert len(errors) == 1
        assert f"storing 2 change(s) in {log.where} failed after {ended} tries" in errors[0]
        assert "not streamed" in errors[0]
        holder.execute("SELECT pg_advisory_unlock(%s)", (AT_COMMIT,))
        log.append([Change("relay.state", {"n": 2})])
        assert [s.data.split('"n":')[1][0] for s in log.after(1)] == ["2"] and log.lost == 2
    finally:
        holder.close()
        log.close()
