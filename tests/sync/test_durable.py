"""The durable stores carry a schema version read on open and migrate in order; never dropped."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest

from sync._durable import migrate, schema_version
from sync._events_file import EVENTS_FILE_STEPS, EVENTS_PG_STEPS
from sync.buffer import EventState, WriteBuffer
from sync.errors import StoreTooNew
from sync.relay_queue import RelayQueue, RelayState
from sync.room_store import RoomStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

# The layout of buffer.sqlite3 as State Hub wrote it before the file carried a version: the write
# buffer's DDL and the relay's, each run with executescript on every open, user_version left at 0.
OLD_BUFFER_DDL = """
CREATE TABLE IF NOT EXISTS event (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    repo TEXT NOT NULL,
    workplan TEXT,
    task TEXT,
    payload TEXT NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'applied', 'rejected')),
    reason TEXT,
    accepted_at TEXT NOT NULL,
    applied_at TEXT,
    commit_sha TEXT
);
CREATE INDEX IF NOT EXISTS event_state_repo ON event (state, repo, seq);
CREATE INDEX IF NOT EXISTS event_repo ON event (repo, seq);
CREATE INDEX IF NOT EXISTS event_task_add ON event (workplan, task) WHERE kind = 'task.add';
CREATE TABLE IF NOT EXISTS writeback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo TEXT NOT NULL,
    head TEXT,
    keys TEXT NOT NULL,
    files TEXT NOT NULL,
    started_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS writeback_repo ON writeback (repo, id);
CREATE TABLE IF NOT EXISTS buffer_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO buffer_meta (key, value) VALUES ('schema_version', '1');
"""
OLD_RELAY_DDL = """
CREATE TABLE IF NOT EXISTS relay (
    key TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'sent', 'confirmed', 'parked')),
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT,
    queued_at TEXT NOT NULL,
    sent_at TEXT,
    confirmed_at TEXT
);
CREATE INDEX IF NOT EXISTS relay_state_seq ON relay (state, seq);
CREATE TABLE IF NOT EXISTS relay_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS relay_decision (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    event TEXT,
    at TEXT NOT NULL
)
"""
OLD_ROOMS_DDL = """
CREATE TABLE IF NOT EXISTS lineage (
    doc TEXT PRIMARY KEY,
    seed_text TEXT NOT NULL,
    file_text TEXT NOT NULL,
    file_state BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS updates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc TEXT NOT NULL,
    update_blob BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS updates_doc ON updates (doc, id);
CREATE TABLE IF NOT EXISTS editors (
    doc TEXT NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    email TEXT,
    PRIMARY KEY (doc, name)
);
"""


def _old_events_file(path: Path) -> None:
    event = {"key": "OLD1", "kind": "progress.note", "note": "kept", "repo": "r1"}
    with sqlite3.connect(path) as db:
        db.executescript(OLD_BUFFER_DDL)
        db.executescript(OLD_RELAY_DDL)
        db.execute(
            "INSERT INTO event (key, kind, repo, workplan, payload, event, accepted_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                "OLD1",
                "progress.note",
                "r1",
                "CUST-WP-0054",
                json.dumps(event),
                json.dumps(event),
                "2026-01-01T00:00:00Z",
            ),
        )
        db.execute(
            "INSERT INTO relay (key, seq, state, queued_at) "
            "VALUES ('OLD1', 1, 'parked', '2026-01-01T00:00:00Z')"
        )
        db.execute("INSERT INTO relay_meta (key, value) VALUES ('enqueued_seq', '1')")
    db.close()


def test_an_events_file_of_the_previous_layout_migrates_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite3"
    _old_events_file(path)
    buffer = WriteBuffer(path)
    queue = RelayQueue(path)
    try:
        record = buffer.get("OLD1")
        assert record is not None and record.state is EventState.PENDING
        assert record.event["note"] == "kept"
        item = queue.get("OLD1")
        assert item is not None and item.state is RelayState.PARKED
    finally:
        queue.close()
        buffer.close()
    with sqlite3.connect(path) as db:
        assert schema_version(db) == len(EVENTS_FILE_STEPS)
        assert db.execute("SELECT count(*) FROM lease").fetchone()[0] == 0  # version 2: leases (ADR-032)
    db.close()


def test_a_room_store_of_the_previous_layout_keeps_its_edits(tmp_path: Path) -> None:
    path = tmp_path / "rooms.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_ROOMS_DDL)
        db.execute("PRAGMA user_version=1")
        db.execute("INSERT INTO lineage VALUES ('d', 'seed', 'file', x'00')")
        db.execute("INSERT INTO updates (doc, update_blob) VALUES ('d', x'01')")
    db.close()
    store = RoomStore(path)
    try:
        pending = store.load("d")
        assert pending is not None and (pending.seed_text, pending.updates) == ("seed", [b"\x01"])
    finally:
        store.close()


def test_a_newer_events_file_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "buffer.sqlite3"
    _old_events_file(path)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=7")
    db.close()
    with pytest.raises(
        StoreTooNew, match=rf"events file version 7, this one knows up to {len(EVENTS_FILE_STEPS)}"
    ):
        WriteBuffer(path)
    with sqlite3.connect(path) as db:
        assert schema_version(db) == 7
        assert db.execute("SELECT count(*) FROM event").fetchone()[0] == 1
    db.close()


STEPS = (
    "CREATE TABLE t (a INTEGER);\nINSERT INTO t VALUES (1);",
    "ALTER TABLE t ADD COLUMN b TEXT DEFAULT 'x';",
    "UPDATE t SET b = 'y' WHERE a = 1; -- a data step; a ';' in a comment or text is fine\n"
    "INSERT INTO t VALUES (2, 'z;');",
)


def _open(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_steps_run_in_order_once_each(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    db = _open(path)
    assert migrate(db, path, STEPS[:1], "test store") == 1
    assert migrate(db, path, STEPS, "test store") == 3
    assert migrate(db, path, STEPS, "test store") == 3
    assert db.execute("SELECT a, b FROM t ORDER BY a").fetchall() == [(1, "y"), (2, "z;")]
    assert schema_version(db) == 3
    db.close()


def test_a_failing_step_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    db = _open(path)
    migrate(db, path, STEPS[:1], "test store")
    with pytest.raises(sqlite3.OperationalError):
        migrate(db, path, (*STEPS, "ALTER TABLE missing ADD COLUMN c;"), "test store")
    assert schema_version(db) == 1
    assert [row[1] for row in db.execute("PRAGMA table_info(t)")] == ["a"]
    db.close()


def test_a_newer_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    db = _open(path)
    migrate(db, path, STEPS, "test store")
    with pytest.raises(StoreTooNew, match="test store version 3, this one knows up to 2"):
        migrate(db, path, STEPS[:2], "test store")
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 2
    db.close()


@pytest.mark.parametrize(("name", "opens"), [("buffer.sqlite3", WriteBuffer), ("rooms.sqlite3", RoomStore)])
def test_a_newer_store_is_refused_before_anything_is_set_on_it(
    tmp_path: Path, name: str, opens: Callable[[Path], Any]
) -> None:
    """Not even the journal mode changes: the version is read first (a newer State Hub may
    have chosen another mode, and an older one must not decide for it)."""
    path = tmp_path / name
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE future (x)")
    db.execute("PRAGMA user_version = 99")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    db.close()
    with pytest.raises(StoreTooNew, match="version 99"):
        opens(path)
    db = sqlite3.connect(path, isolation_level=None)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert (schema_version(db), db.execute("SELECT count(*) FROM future").fetchone()[0]) == (99, 0)
    db.close()


@pytest.mark.parametrize(("name", "opens"), [("buffer.sqlite3", WriteBuffer), ("rooms.sqlite3", RoomStore)])
def test_a_store_is_in_wal_mode_once_open(tmp_path: Path, name: str, opens: Callable[[Path], Any]) -> None:
    store = opens(tmp_path / name)
    store.close()
    db = sqlite3.connect(tmp_path / name, isolation_level=None)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


SHIPPED = {
    "buffer.sqlite3": (
        "3a82459661934b5ae19328cb5fa072c33e107ba57f89616d162669fd17b38869",
        "6b376d45e33d26bf9864187acb7bda3f74c846933e7a7b47bb23e3ab42dbafde",
        "71346f3ee515e28491e7dd34f0e5bc17fc453300ac9b2435aaf96295f5004cd1",
    ),
    "buffer in the state schema": (
        "b4f650d0162bb8773e9e45b8979c5be4391b619ad2bf23bc2637213549ee4b93",
        "50fbe34f2de2dfe32bd024def7d7c938479d75e53e3fd282992fcb555aac48a1",
    ),
}
"""The sha256 of each shipped step of the buffer's layouts: a data dir or a state schema already at
version n ran exactly these (canon/ADR-049). Append a step; never edit one."""


@pytest.mark.parametrize(
    ("layout", "steps"),
    [("buffer.sqlite3", EVENTS_FILE_STEPS), ("buffer in the state schema", EVENTS_PG_STEPS)],
)
def test_shipped_steps_of_the_buffer_never_change(layout: str, steps: tuple[str, ...]) -> None:
    shipped = SHIPPED[layout]
    assert [hashlib.sha256(step.encode()).hexdigest() for step in steps[: len(shipped)]] == list(shipped)
