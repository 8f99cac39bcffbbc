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

Across replicas (canon/ADR-051): on PostgreSQL an append takes the
transaction lock ``serialize("doc:<name>")``, so one document's updates
commit in the order of their ids (a reader that has seen id ``n`` has seen
every earlier one of that document), and sends ``NOTIFY``
:data:`ROOM_CHANNEL` in the same statement; the other replicas read
:meth:`RoomStore.updates_after`. A compaction removes only the updates the
compacting room has applied (``through``); a lineage begins only where none
is (:meth:`RoomStore.open_lineage`), and is forgotten only when no other
replica holds the room open (:meth:`RoomStore.forget`, an advisory lock each
holder keeps shared: :mod:`sync.room_bus`). On SQLite one process owns the
file and all of that is what a transaction already does.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from pycrdt import Doc, merge_updates

from sync._state_db import open_state_db
from sync.seed import doc_text, seed_doc

if TYPE_CHECKING:
    from types import TracebackType

    from sync._state_db import StateLocation

log = logging.getLogger(__name__)

__all__ = ["PRESENCE_SECONDS", "ROOM_CHANNEL", "PendingEdits", "RoomPresence", "RoomStore", "lock_name"]

PRESENCE_SECONDS = 30
"""Seconds a replica's ``room_presence`` row counts without a renewal (a dead replica's members
leave the listings after it, as its members' awareness states do: y-protocols' ``outdatedTimeout``)."""

ROOM_CHANNEL = "statehub_room"
"""The ``NOTIFY`` channel of the rooms on PostgreSQL (canon/ADR-051): a payload is a JSON object,
``{"k": "u", "r": replica, "d": doc}`` when a document's update was stored."""


def lock_name(kind: str, doc: str) -> str:
    """The name of a room's advisory lock (``serialize`` and :mod:`sync.room_bus` key it the same):
    ``doc`` orders appends, ``save`` one save or file merge at a time, ``open`` who holds the room."""
    return f"rooms:{kind}:{doc}"


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
    """
    CREATE TABLE room_note (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        body text NOT NULL,
        at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE room_presence (
        doc text NOT NULL,
        replica text NOT NULL,
        people text NOT NULL,
        open boolean NOT NULL,
        unsaved boolean NOT NULL,
        heard_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (doc, replica)
    );
    """,
)
"""The same layout in the PostgreSQL state schema, its tables named for the store they belong to
(the schema holds every store's); its own ordered steps, recorded as store ``rooms``. Step 2 (canon/ADR-051
addendum): ``room_note``, a bus message too large for one ``NOTIFY`` (sent by its id), and
``room_presence``, who each replica has in each room it holds (renewed; a row not renewed for
:data:`PRESENCE_SECONDS` is a dead replica's)."""

_TABLES = {
    "sqlite": {"lineage": "lineage", "updates": "updates", "editors": "editors"},
    "postgresql": {"lineage": "room_lineage", "updates": "room_update", "editors": "room_editor"},
}


@functools.lru_cache(maxsize=64)
def _named(dialect: str, sql: str) -> str:
    """``sql`` with the store's table names (``{lineage}``, ``{updates}``, ``{editors}``) filled in."""
    return sql.format_map(_TABLES[dialect])


def _names(people: str) -> tuple[str, ...] | None:
    """A ``room_presence`` row's ``people`` (a JSON list of names), or None when it is not that."""
    try:
        names = json.loads(people)
    except (ValueError, TypeError):
        return None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        return None
    return tuple(names)


@dataclass(frozen=True, slots=True)
class RoomPresence:
    """What one replica says of one room it holds: who is in it (names), whether anyone is connected,
    whether its text differs from the file."""

    people: tuple[str, ...]
    open: bool
    unsaved: bool


@dataclass(frozen=True, slots=True)
class PendingEdits:
    """What a room needs to come back exactly as it was: its seed and every update since."""

    seed_text: str
    file_text: str
    file_state: bytes
    updates: list[bytes]
    through: int = 0
    """The id of the last update in ``updates`` (0: none): a room has applied everything up to it."""


class RoomStore:
    """Pending room edits at ``where`` (a SQLite file, or a PostgreSQL state schema), created on
    first use; safe to share between threads.

    Open with ``with RoomStore(path) as store:``; StoreTooNew when the store was
    written by a newer State Hub.
    """

    def __init__(self, where: StateLocation) -> None:
        self._lock = threading.Lock()
        self._unreadable: set[tuple[str, str, str]] = set()
        """``room_presence`` rows already warned about (a row is read every second)."""
        # The version read first (StoreTooNew leaves the store as it is), then migrated.
        self._db = open_state_db(
            where,
            store="rooms",
            sqlite_steps=_STEPS,
            postgres_steps=_PG_STEPS,
            what="room store, with unsaved editor changes",
        )
        self.where = self._db.where
        self.location = where
        self.dialect = self._db.dialect
        self.replica = secrets.token_hex(8)
        """This process's name on :data:`ROOM_CHANNEL`: its own notifications are not news to it."""
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
            rows = self._db.execute(
                self._sql("SELECT id, update_blob FROM {updates} WHERE doc = ? ORDER BY id"), (doc,)
            ).fetchall()
            through = int(rows[-1][0]) if rows else 0
            return PendingEdits(row[0], row[1], bytes(row[2]), [bytes(r[1]) for r in rows], through)

    def open_lineage(self, doc: str, seed_text: str, seed: bytes) -> PendingEdits:
        """``doc``'s lineage: the one stored (another replica may have begun it a moment ago), else a
        new one from ``seed`` (what :meth:`begin` does), decided under ``serialize("doc:<name>")``."""
        with self._lock, self._db.transaction():
            self._db.serialize(f"doc:{doc}")  # the key of lock_name("doc", doc)
            found = self._db.execute(self._sql("SELECT 1 FROM {lineage} WHERE doc = ?"), (doc,)).fetchone()
            if found is None:
                self._begin(doc, seed_text, seed)
        pending = self.load(doc)
        assert pending is not None  # nothing forgets a lineage another holds open
        return pending

    def lineage(self, doc: str) -> tuple[str, bytes] | None:
        """The file's text and state as the lineage last recorded them (another replica may have
        saved or merged since this room read the file); None when there is no lineage."""
        with self._lock:
            row = self._db.execute(
                self._sql("SELECT file_text, file_state FROM {lineage} WHERE doc = ?"), (doc,)
            ).fetchone()
            return None if row is None else (row[0], bytes(row[1]))

    def updates_after(self, doc: str, after: int) -> list[tuple[int, bytes]]:
        """``doc``'s updates with an id over ``after``, in order: what a room has not applied yet."""
        with self._lock:
            rows = self._db.execute(
                self._sql("SELECT id, update_blob FROM {updates} WHERE doc = ? AND id > ? ORDER BY id"),
                (doc, after),
            )
            return [(int(r[0]), bytes(r[1])) for r in rows]

    def begin(self, doc: str, seed_text: str, seed: bytes) -> None:
        """Start a new lineage for ``doc`` from its seed update, forgetting any earlier one."""
        with self._lock, self._db.transaction():
            self._db.serialize(f"doc:{doc}")  # the key of lock_name("doc", doc)
            self._begin(doc, seed_text, seed)

    def _begin(self, doc: str, seed_text: str, seed: bytes) -> None:
        self._db.execute(self._sql("DELETE FROM {updates} WHERE doc = ?"), (doc,))
        self._db.execute(
            self._sql(
                "INSERT INTO {lineage} (doc, seed_text, file_text, file_state) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (doc) DO UPDATE SET seed_text = excluded.seed_text, "
                "file_text = excluded.file_text, file_state = excluded.file_state"
            ),
            (doc, seed_text, seed_text, seed),
        )

    def append(self, doc: str, update: bytes) -> int:
        """Commit one update and answer its id; returns only once it is stored (the room broadcasts
        after). On PostgreSQL one statement takes ``serialize("doc:<name>")`` (ids of one document
        commit in order), inserts, and notifies :data:`ROOM_CHANNEL`: one round trip."""
        with self._lock:
            return self._insert(doc, update)

    def _insert(self, doc: str, update: bytes) -> int:
        if self.dialect == "sqlite":
            row = self._db.execute(
                "INSERT INTO updates (doc, update_blob) VALUES (?, ?) RETURNING id", (doc, update)
            ).fetchone()
            return int(row[0])
        note = json.dumps({"k": "u", "r": self.replica, "d": doc}, separators=(",", ":"))
        row = self._db.execute(
            "WITH held AS (SELECT pg_advisory_xact_lock(hashtextextended(?, 0))), "
            "added AS (INSERT INTO room_update (doc, update_blob) SELECT ?, ? FROM held RETURNING id) "
            "SELECT id, pg_notify(?, ?) FROM added",
            (lock_name("doc", doc), doc, update, ROOM_CHANNEL, note),
        ).fetchone()
        return int(row[0])

    def file_written(
        self, doc: str, file_text: str, file_state: bytes, live_state: bytes, *, through: int | None = None
    ) -> int:
        """After a save or an out-of-band merge: remember the file and compact the log; answer the id
        of the update that replaces it.

        ``file_state`` is the document whose text is ``file_text`` (later
        out-of-band changes fork from it); ``live_state`` is the whole live
        document, unsaved edits included. It replaces the updates with an id up
        to ``through`` (None: all of them), which the room applied; a later one
        (another replica's, stored meanwhile) stays.
        """
        with self._lock, self._db.transaction():
            self._db.execute(
                self._sql("UPDATE {lineage} SET file_text = ?, file_state = ? WHERE doc = ?"),
                (file_text, file_state, doc),
            )
            return self._replace_log(doc, live_state, through)

    def compact(self, doc: str) -> None:
        """Merge a lineage's updates into one (what a save does to the log)."""
        edits = self.load(doc)
        if edits is None or len(edits.updates) < 2:
            return
        merged = merge_updates(*edits.updates)
        with self._lock, self._db.transaction():
            self._replace_log(doc, merged, edits.through)

    def _replace_log(self, doc: str, update: bytes, through: int | None) -> int:
        if through is None:
            self._db.execute(self._sql("DELETE FROM {updates} WHERE doc = ?"), (doc,))
        else:
            self._db.execute(self._sql("DELETE FROM {updates} WHERE doc = ? AND id <= ?"), (doc, through))
        return self._insert(doc, update)

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

    def forget(self, doc: str) -> bool:
        """Drop a lineage whose room closed with nothing unsaved; False (nothing dropped) while another
        replica holds the room open (its shared ``open`` lock, :mod:`sync.room_bus`; never on SQLite)."""
        with self._lock, self._db.transaction():
            if self.dialect == "postgresql":
                alone = self._db.execute(
                    "SELECT pg_try_advisory_xact_lock(hashtextextended(?, 0))", (lock_name("open", doc),)
                ).fetchone()[0]
                if not alone:
                    return False
            for table in ("{editors}", "{updates}", "{lineage}"):
                self._db.execute(self._sql(f"DELETE FROM {table} WHERE doc = ?"), (doc,))  # noqa: S608 - constant names
        return True

    # who is in the rooms of every replica (PostgreSQL only: on SQLite one process holds them) -----

    def post_presence(self, replica: str, rooms: dict[str, RoomPresence], gone: list[str]) -> None:
        """Record (and renew) what ``replica`` says of the rooms it holds; drop its rows of ``gone``."""
        with self._lock, self._db.transaction():
            for doc, said in sorted(rooms.items()):
                self._db.execute(
                    "INSERT INTO room_presence (doc, replica, people, open, unsaved) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (doc, replica) DO UPDATE SET people = excluded.people, "
                    "open = excluded.open, unsaved = excluded.unsaved, heard_at = now()",
                    (doc, replica, json.dumps(list(said.people)), said.open, said.unsaved),
                )
            for doc in gone:
                self._db.execute("DELETE FROM room_presence WHERE doc = ? AND replica = ?", (doc, replica))

    def drop_presence(self, replica: str) -> None:
        """``replica`` closes: its rows go at once (a dead one's expire)."""
        with self._lock:
            self._db.execute("DELETE FROM room_presence WHERE replica = ?", (replica,))

    def presence(self) -> dict[str, dict[str, RoomPresence]]:
        """Every live replica's rows (renewed within :data:`PRESENCE_SECONDS`): doc -> replica -> its say."""
        with self._lock:
            rows = self._db.execute(
                "SELECT doc, replica, people, open, unsaved FROM room_presence "
                "WHERE heard_at > now() - make_interval(secs => ?) ORDER BY doc, replica",
                (PRESENCE_SECONDS,),
            ).fetchall()
        found: dict[str, dict[str, RoomPresence]] = {}
        for doc, replica, people, is_open, unsaved in rows:
            names = _names(people)
            if names is None:  # not what a replica writes: skipped, so every listing still answers
                if (doc, replica, people) not in self._unreadable:
                    self._unreadable.add((doc, replica, people))
                    log.warning(
                        "room_presence row (%r, %r): people is not a JSON list of names; skipped",
                        doc,
                        replica,
                    )
                continue
            found.setdefault(doc, {})[replica] = RoomPresence(names, bool(is_open), bool(unsaved))
        return found

    def sweep_presence(self) -> list[str]:
        """Delete the rows of replicas gone silent for :data:`PRESENCE_SECONDS`; answer their docs (one
        replica gets each: it tells the stream) and drop notes older than that."""
        with self._lock, self._db.transaction():
            rows = self._db.execute(
                "DELETE FROM room_presence WHERE heard_at <= now() - make_interval(secs => ?) RETURNING doc",
                (PRESENCE_SECONDS,),
            ).fetchall()
            self._db.execute(
                "DELETE FROM room_note WHERE at < now() - make_interval(secs => ?)", (PRESENCE_SECONDS,)
            )
        return sorted({r[0] for r in rows})

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
