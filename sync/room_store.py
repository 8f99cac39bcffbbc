"""The durable store of unsaved room edits, written before anything is broadcast.

Each open room has one *lineage*: the text it was seeded from (see
:mod:`sync.seed`) plus every Yjs update applied since. An update is committed
here before the room sends it to any other client, so a crash or a restart
never loses an edit that somebody else already saw. A save compacts the log to
one merged update; a room closed with nothing unsaved is forgotten, and the
next opening seeds a fresh lineage from the file.

We do not use pycrdt-store's ``SQLiteYStore``: its history squash (with
``document_ttl``) drops history, and it writes after the room has broadcast.
The store is a SQLite file (WAL-journalled with ``synchronous=NORMAL``:
durable across a process crash, at well under a millisecond a commit) or, on a
fleet hub whose state is on PostgreSQL, the tables ``room_lineage``,
``room_update`` and ``room_editor`` of the state schema (canon/ADR-046); the
same class, the same SQL (:mod:`sync._state_db`).
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from pycrdt import Doc, merge_updates

from sync._state_db import open_state_db
from sync.seed import doc_text, seed_doc

if TYPE_CHECKING:
    from types import TracebackType

    from sync._state_db import StateLocation

__all__ = ["PendingEdits", "RoomStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lineage (
    doc TEXT PRIMARY KEY,
    seed_text TEXT NOT NULL,      -- the text the room was seeded from (fixes the seed's client id)
    file_text TEXT NOT NULL,      -- the file's text when the room last read or wrote it
    file_state BLOB NOT NULL      -- the document as it was then (out-of-band changes fork from it)
);
CREATE TABLE IF NOT EXISTS updates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc TEXT NOT NULL,
    update_blob BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS updates_doc ON updates (doc, id);
CREATE TABLE IF NOT EXISTS editors (      -- who edited since the last save: the co-authors of the next one
    doc TEXT NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    email TEXT,
    PRIMARY KEY (doc, name)
);
"""
_STEPS = (_SCHEMA,)
"""``_STEPS[n - 1]`` takes the file from version ``n - 1`` to ``n``: append, never edit a shipped step."""

_PG_STEPS = (
    """
    CREATE TABLE room_lineage (
        doc text PRIMARY KEY,
        seed_text text NOT NULL,
        file_text text NOT NULL,
        file_state bytea NOT NULL
    );
    CREATE TABLE room_update (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        doc text NOT NULL,
        update_blob bytea NOT NULL
    );
    CREATE INDEX room_update_doc ON room_update (doc, id);
    CREATE TABLE room_editor (
        doc text NOT NULL,
        position integer NOT NULL,
        name text NOT NULL,
        email text,
        PRIMARY KEY (doc, name)
    );
    """,
)
"""The same layout in the PostgreSQL state schema, its tables named for the store they belong to
(the schema holds every store's); its own ordered steps, recorded as store ``rooms``."""

_TABLES = {
    "sqlite": {"lineage": "lineage", "updates": "updates", "editors": "editors"},
    "postgresql": {"lineage": "room_lineage", "updates": "room_update", "editors": "room_editor"},
}


@functools.lru_cache(maxsize=64)
def _named(dialect: str, sql: str) -> str:
    """``sql`` with the store's table names (``{lineage}``, ``{updates}``, ``{editors}``) filled in."""
    return sql.format_map(_TABLES[dialect])


@dataclass(frozen=True, slots=True)
class PendingEdits:
    """What a room needs to come back exactly as it was: its seed and every update since."""

    seed_text: str
    file_text: str
    file_state: bytes
    updates: list[bytes]


class RoomStore:
    """Pending room edits at ``where`` (a SQLite file, or a PostgreSQL state schema), created on
    first use; safe to share between threads.

    Open with ``with RoomStore(path) as store:``; StoreTooNew when the store was
    written by a newer State Hub.
    """

    def __init__(self, where: StateLocation) -> None:
        self._lock = threading.Lock()
        # The version read first (StoreTooNew leaves the store as it is), then migrated.
        self._db = open_state_db(
            where,
            store="rooms",
            sqlite_steps=_STEPS,
            postgres_steps=_PG_STEPS,
            what="room store, with unsaved editor changes",
        )
        self.where = self._db.where
        self._sql = functools.partial(_named, self._db.dialect)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def load(self, doc: str) -> PendingEdits | None:
        with self._lock:
            row = self._db.execute(
                self._sql("SELECT seed_text, file_text, file_state FROM {lineage} WHERE doc = ?"), (doc,)
            ).fetchone()
            if row is None:
                return None
            blobs = self._db.execute(
                self._sql("SELECT update_blob FROM {updates} WHERE doc = ? ORDER BY id"), (doc,)
            )
            return PendingEdits(row[0], row[1], bytes(row[2]), [bytes(b[0]) for b in blobs])

    def begin(self, doc: str, seed_text: str, seed: bytes) -> None:
        """Start a new lineage for ``doc`` from its seed update, forgetting any earlier one."""
        with self._lock, self._db.transaction():
            self._db.execute(self._sql("DELETE FROM {updates} WHERE doc = ?"), (doc,))
            self._db.execute(
                self._sql(
                    "INSERT INTO {lineage} (doc, seed_text, file_text, file_state) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (doc) DO UPDATE SET seed_text = excluded.seed_text, "
                    "file_text = excluded.file_text, file_state = excluded.file_state"
                ),
                (doc, seed_text, seed_text, seed),
            )

    def append(self, doc: str, update: bytes) -> None:
        """Commit one update; returns only once it is on disk (the room broadcasts after)."""
        with self._lock:
            self._db.execute(
                self._sql("INSERT INTO {updates} (doc, update_blob) VALUES (?, ?)"), (doc, update)
            )

    def file_written(self, doc: str, file_text: str, file_state: bytes, live_state: bytes) -> None:
        """After a save or an out-of-band merge: remember the file and compact the log to one update.

        ``file_state`` is the document whose text is ``file_text`` (later
        out-of-band changes fork from it); ``live_state`` is the whole live
        document, unsaved edits included, which replaces the log.
        """
        with self._lock, self._db.transaction():
            self._db.execute(
                self._sql("UPDATE {lineage} SET file_text = ?, file_state = ? WHERE doc = ?"),
                (file_text, file_state, doc),
            )
            self._replace_log(doc, live_state)

    def compact(self, doc: str) -> None:
        """Merge a lineage's updates into one (what a save does to the log)."""
        edits = self.load(doc)
        if edits is None or len(edits.updates) < 2:
            return
        merged = merge_updates(*edits.updates)
        with self._lock, self._db.transaction():
            self._replace_log(doc, merged)

    def _replace_log(self, doc: str, update: bytes) -> None:
        self._db.execute(self._sql("DELETE FROM {updates} WHERE doc = ?"), (doc,))
        self._db.execute(self._sql("INSERT INTO {updates} (doc, update_blob) VALUES (?, ?)"), (doc, update))

    def credit(self, doc: str, name: str, email: str | None) -> None:
        """Remember that ``name`` edited ``doc`` since its last save (kept across restarts)."""
        with self._lock:
            self._db.execute(
                self._sql(
                    "INSERT INTO {editors} (doc, position, name, email) "
                    "VALUES (?, (SELECT count(*) FROM {editors} WHERE doc = ?), ?, ?) ON CONFLICT DO NOTHING"
                ),
                (doc, doc, name, email),
            )

    def editors(self, doc: str) -> list[tuple[str, str | None]]:
        with self._lock:
            rows = self._db.execute(
                self._sql("SELECT name, email FROM {editors} WHERE doc = ? ORDER BY position"), (doc,)
            )
            return [(r[0], r[1]) for r in rows]

    def clear_editors(self, doc: str) -> None:
        with self._lock:
            self._db.execute(self._sql("DELETE FROM {editors} WHERE doc = ?"), (doc,))

    def forget(self, doc: str) -> None:
        """Drop a lineage whose room closed with nothing unsaved."""
        with self._lock, self._db.transaction():
            for table in ("{editors}", "{updates}", "{lineage}"):
                self._db.execute(self._sql(f"DELETE FROM {table} WHERE doc = ?"), (doc,))  # noqa: S608 - constant names

    def docs(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute(self._sql("SELECT doc FROM {lineage} ORDER BY doc"))]

    def adopt(self, doc: str, pending: PendingEdits, editors: list[tuple[str, str | None]]) -> None:
        """Take over ``doc``'s lineage exactly as another store held it (a file moving to PostgreSQL)."""
        with self._lock, self._db.transaction():
            for table in ("{editors}", "{updates}", "{lineage}"):
                self._db.execute(self._sql(f"DELETE FROM {table} WHERE doc = ?"), (doc,))  # noqa: S608 - constant names
            self._db.execute(
                self._sql(
                    "INSERT INTO {lineage} (doc, seed_text, file_text, file_state) VALUES (?, ?, ?, ?)"
                ),
                (doc, pending.seed_text, pending.file_text, pending.file_state),
            )
            for update in pending.updates:
                self._db.execute(
                    self._sql("INSERT INTO {updates} (doc, update_blob) VALUES (?, ?)"), (doc, update)
                )
            for position, (name, email) in enumerate(editors):
                self._db.execute(
                    self._sql("INSERT INTO {editors} (doc, position, name, email) VALUES (?, ?, ?, ?)"),
                    (doc, position, name, email),
                )

    def drafts(self) -> list[str]:
        """Documents whose stored edits make a text other than their file's: unsaved work, open or not.

        ``GET /sync`` lists these, so a draft left in a closed room (or by a
        crashed hub) is not forgotten. Replays each lineage; call it off the event loop.
        """
        found = []
        for doc in self.docs():
            pending = self.load(doc)
            if pending is None:
                continue
            replay: Doc[Any] = Doc()
            replay.apply_update(seed_doc(pending.seed_text))
            for update in pending.updates:
                replay.apply_update(update)
            if doc_text(replay) != pending.file_text:
                found.append(doc)
        return found

    def update_count(self, doc: str) -> int:
        with self._lock:
            return int(
                self._db.execute(
                    self._sql("SELECT count(*) FROM {updates} WHERE doc = ?"), (doc,)
                ).fetchone()[0]
            )
