"""The durable store of unsaved room edits: one SQLite file, written before anything is broadcast.

Each open room has one *lineage*: the text it was seeded from (see
:mod:`sync.seed`) plus every Yjs update applied since. An update is committed
here before the room sends it to any other client, so a crash or a restart
never loses an edit that somebody else already saw. A save compacts the log to
one merged update; a room closed with nothing unsaved is forgotten, and the
next opening seeds a fresh lineage from the file.

We do not use pycrdt-store's ``SQLiteYStore``: its history squash (with
``document_ttl``) drops history, and it writes after the room has broadcast.
The file is WAL-journalled with ``synchronous=NORMAL``: durable across a
process crash, at well under a millisecond a commit.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from pycrdt import Doc, merge_updates

from sync._durable import open_store
from sync.seed import doc_text, seed_doc

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

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


@dataclass(frozen=True, slots=True)
class PendingEdits:
    """What a room needs to come back exactly as it was: its seed and every update since."""

    seed_text: str
    file_text: str
    file_state: bytes
    updates: list[bytes]


class RoomStore:
    """Pending room edits in ``path`` (created on first use); safe to share between threads.

    Open with ``with RoomStore(path) as store:``; StoreTooNew when the file was
    written by a newer State Hub.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        # sync._durable: the version read first (StoreTooNew leaves the file as it is), then migrated.
        self._db = open_store(path, _STEPS, "room store, with unsaved editor changes", synchronous="NORMAL")

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
                "SELECT seed_text, file_text, file_state FROM lineage WHERE doc = ?", (doc,)
            ).fetchone()
            if row is None:
                return None
            blobs = self._db.execute("SELECT update_blob FROM updates WHERE doc = ? ORDER BY id", (doc,))
            return PendingEdits(row[0], row[1], bytes(row[2]), [bytes(b[0]) for b in blobs])

    def begin(self, doc: str, seed_text: str, seed: bytes) -> None:
        """Start a new lineage for ``doc`` from its seed update, forgetting any earlier one."""
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM updates WHERE doc = ?", (doc,))
            self._db.execute(
                "INSERT OR REPLACE INTO lineage (doc, seed_text, file_text, file_state) VALUES (?, ?, ?, ?)",
                (doc, seed_text, seed_text, seed),
            )

    def append(self, doc: str, update: bytes) -> None:
        """Commit one update; returns only once it is on disk (the room broadcasts after)."""
        with self._lock:
            self._db.execute("INSERT INTO updates (doc, update_blob) VALUES (?, ?)", (doc, update))

    def file_written(self, doc: str, file_text: str, file_state: bytes, live_state: bytes) -> None:
        """After a save or an out-of-band merge: remember the file and compact the log to one update.

        ``file_state`` is the document whose text is ``file_text`` (later
        out-of-band changes fork from it); ``live_state`` is the whole live
        document, unsaved edits included, which replaces the log.
        """
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "UPDATE lineage SET file_text = ?, file_state = ? WHERE doc = ?", (file_text, file_state, doc)
            )
            self._db.execute("DELETE FROM updates WHERE doc = ?", (doc,))
            self._db.execute("INSERT INTO updates (doc, update_blob) VALUES (?, ?)", (doc, live_state))

    def compact(self, doc: str) -> None:
        """Merge a lineage's updates into one (what a save does to the log)."""
        edits = self.load(doc)
        if edits is None or len(edits.updates) < 2:
            return
        merged = merge_updates(*edits.updates)
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM updates WHERE doc = ?", (doc,))
            self._db.execute("INSERT INTO updates (doc, update_blob) VALUES (?, ?)", (doc, merged))

    def credit(self, doc: str, name: str, email: str | None) -> None:
        """Remember that ``name`` edited ``doc`` since its last save (kept across restarts)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO editors (doc, position, name, email) "
                "VALUES (?, (SELECT count(*) FROM editors WHERE doc = ?), ?, ?)",
                (doc, doc, name, email),
            )

    def editors(self, doc: str) -> list[tuple[str, str | None]]:
        with self._lock:
            rows = self._db.execute("SELECT name, email FROM editors WHERE doc = ? ORDER BY position", (doc,))
            return [(r[0], r[1]) for r in rows]

    def clear_editors(self, doc: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM editors WHERE doc = ?", (doc,))

    def forget(self, doc: str) -> None:
        """Drop a lineage whose room closed with nothing unsaved."""
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM editors WHERE doc = ?", (doc,))
            self._db.execute("DELETE FROM updates WHERE doc = ?", (doc,))
            self._db.execute("DELETE FROM lineage WHERE doc = ?", (doc,))

    def docs(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT doc FROM lineage ORDER BY doc")]

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
            return int(self._db.execute("SELECT count(*) FROM updates WHERE doc = ?", (doc,)).fetchone()[0])
