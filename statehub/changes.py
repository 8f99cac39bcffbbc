"""The change log: every change the hub sees, numbered, kept durably (canon/ADR-038, ADR-050).

What ``GET /events/stream`` sends and replays. Each change is one message:
an ``id`` (rising, never reused: SQLite ``AUTOINCREMENT``, or a PostgreSQL
identity column, so ids keep rising across restarts), a ``type``
(:data:`TYPES`), the repo, workplan and owners it concerns (what the stream's
filters look at), and JSON ``data``. docs/architecture.md "Change stream"
gives every type's data.

Where it lives (``statehub.state_stores.state_location``): ``changes.sqlite3``
in the data dir, or the table ``change`` of the PostgreSQL state schema
(canon/ADR-046) where every replica of a fleet hub appends and reads. There a
sequence hands out ids before commit, so an append takes the advisory lock
``serialize("append")`` first: ids commit in the order they were given, and a
reader of ``id > last`` never sees id ``n + 1`` before ``n``. The append's
transaction ends with ``NOTIFY`` :data:`CHANNEL` (payload: its last id), which
:meth:`ChangeLog.listen` hears in every process, so another replica's
subscribers get the message at once rather than at their next poll.

Where changes come from: the cache's rows are compared before and after every
change of them, inside the same transaction (:class:`RowSnapshot`), whoever
changed the files; the write buffer reports event states, the lease store
claims, a save its commit, a sweep each repo's start and end, the relay its state, a replica
each change of its leadership (``hub.leader``, canon/ADR-052). Every process that changes the
cache (the server, a CLI command, another replica) appends to the same log, after its cache
transaction committed, so a message never announces what a
query cannot see yet. The server's stream reads new rows from the log
(:meth:`ChangeLog.after`): at once for its own appends, at once on a notification
(PostgreSQL) and within ``stream_poll_s`` in any case for another process's.

Bounded (``STATEHUB_STREAM_KEEP``, ``STATEHUB_STREAM_KEEP_DAYS``): older
messages are pruned; ``pruned_through`` remembers the last id dropped, so a
client asking to replay from before it learns it missed some (a ``reset``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, or_, select, text

from statehub.cache.fleet_schema import FLEET_LANES, FLEET_MACHINES, FLEET_WORKLOADS
from statehub.cache.schema import DEPENDENCIES, REPOS
from sync._state_db import open_state_db
from sync.errors import StoreUnreachable

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
    from pathlib import Path

    from statehub.cache import IndexReport
    from sync._pg_listen import PgListener
    from sync._state_db import StateLocation
    from sync.leader import LeaderStatus

__all__ = [
    "CAUSES",
    "CHANGES_FILE",
    "CHANNEL",
    "TYPES",
    "Change",
    "ChangeLog",
    "RowSnapshot",
    "Stored",
    "Tracker",
    "changes_path",
    "leader_change",
]

log = logging.getLogger(__name__)

TYPES = (
    "task.changed",
    "workplan.changed",
    "canon.changed",
    "repo.indexed",
    "event.accepted",
    "event.applied",
    "event.waiting",
    "event.rejected",
    "claim.won",
    "claim.renewed",
    "claim.released",
    "claim.expired",
    "relay.state",
    "sweep.started",
    "sweep.finished",
    "room.saved",
    "room.changed",
    "fleet.changed",
    "hub.leader",
)
"""Every message type the log holds (and ``reset``, ``dropped``, which only the stream sends)."""

CAUSES = ("file-edit", "event", "sweep", "rebuild", "save", "repo-added", "repo-removed")
"""Why the cache changed (``cause`` of task, workplan, canon, fleet changes and ``repo.indexed``):
a file changed on disk (an editor, ``git pull``; also what a refresh request finds), an event was
written back, a sweep pulled or pushed, the cache was rebuilt, a room saved, a repo was registered
or removed."""

CHANGES_FILE = "changes.sqlite3"
"""The log's file in the data dir (never the cache dir: a rebuild keeps it)."""
CHANNEL = "statehub_change"
"""The PostgreSQL ``NOTIFY`` channel an append announces its last id on (canon/ADR-050)."""

_STEPS = (
    """
    CREATE TABLE change (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        type TEXT NOT NULL,
        repo TEXT,
        workplan TEXT,
        owners TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX ix_change_at ON change (at);
    CREATE TABLE change_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    """,
)
"""The SQLite file's layout (``user_version``), unchanged since canon/ADR-038."""
_PG_STEPS = (
    """
    CREATE TABLE change (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at double precision NOT NULL,
        type text NOT NULL,
        repo text,
        workplan text,
        owners text NOT NULL,
        data text NOT NULL
    );
    CREATE INDEX ix_change_at ON change (at);
    CREATE TABLE change_meta (key text PRIMARY KEY, value bigint NOT NULL);
    """,
    """
    ALTER TABLE change ADD COLUMN batch uuid, ADD COLUMN pos integer;
    CREATE UNIQUE INDEX ux_change_batch ON change (batch, pos);
    """,
)
"""The same tables in the PostgreSQL state schema (store ``changes``); step 2 keys each appended
row by its append (``batch``, a random uuid) and its place in it (``pos``), so an append sent
again after its session died stores nothing twice (canon/ADR-050 addendum). Rows stored before it
have neither (NULLs are distinct: the index lets them be)."""
_INSERT = "INSERT INTO change (at, type, repo, workplan, owners, data) VALUES"
_PG_INSERT = "INSERT INTO change (at, type, repo, workplan, owners, data, batch, pos) VALUES"
_PG_ON_CONFLICT = "ON CONFLICT (batch, pos) DO NOTHING RETURNING id"
_TRIES = 5
"""Tries of one PostgreSQL append whose session dies (the first and 4 more)."""
_RETRY_WITHIN_S = 2.0
"""How long the tries of one PostgreSQL append may take at most (seconds), their pauses doubling
from :data:`_RETRY_PAUSE_S`."""
_RETRY_PAUSE_S = 0.05
_INSERT_ROWS = 500
"""Rows per INSERT statement (6 parameters each: far under either engine's bound)."""

_PRUNE_EVERY = 500
"""Appends between two prunes (a prune is one indexed DELETE)."""


def leader_change(status: LeaderStatus) -> Change:
    """``hub.leader``: this replica became (``leader`` true) or stopped being (false) the one that
    runs the run-once work (canon/ADR-052); hub-wide (no repo), so every subscriber may see it."""
    data = {"replica": status.replica, "leader": status.leader, "terms": status.terms, "since": status.since}
    return Change("hub.leader", data)


def changes_path(data_dir: Path) -> Path:
    """The log's file: in the data dir beside the write buffer (never the cache dir: a rebuild keeps it)."""
    return data_dir / CHANGES_FILE


@dataclass(frozen=True, slots=True)
class Change:
    """One message before it is numbered: its type, what the filters look at, its data."""

    type: str
    data: dict[str, Any]
    repo: str | None = None
    workplan: str | None = None
    owners: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Stored:
    """One message of the log: ``id``, ``at`` (seconds since the epoch) and its :class:`Change` fields."""

    id: int
    at: float
    type: str
    repo: str | None
    workplan: str | None
    owners: tuple[str, ...]
    data: str
    """The data as JSON text, ``at`` (ISO 8601 UTC) and ``repo`` included."""


DELIVER_WAIT_S = 0.1
"""How long :meth:`ChangeLog.let_deliver` waits for the fan-out at most (seconds): a stuck event
loop must not stop the write-back."""


class ChangeLog:
    """The log at ``where`` (a SQLite file or the PostgreSQL state schema), opened once per
    process; safe to share between threads.

    ``keep`` messages at most and none older than ``keep_s`` seconds. Listeners
    (``on_append``) are called, from the appending thread, after each commit, with the
    messages it stored, in id order (one transaction holds the write lock, or on PostgreSQL the
    ``append`` advisory lock, so no other process's ids fall between them).

    Raises what opening its store raises: :class:`~sync.errors.StoreTooNew`,
    :class:`~sync.errors.StoreUnreachable` (PostgreSQL).
    """

    def __init__(self, where: StateLocation, *, keep: int = 100_000, keep_s: float = 7 * 86_400) -> None:
        self.keep = keep
        self.keep_s = keep_s
        self.on_append: list[Callable[[list[Stored]], None]] = []
        self.delivered = threading.Event()
        """Clear while a fan-out (``statehub.stream.Broadcaster``) still sends what this process
        appended, or while a request whose change is to be streamed is being accepted
        (:meth:`foreground`); set otherwise (always, with no fan-out). See :meth:`let_deliver`."""
        self.delivered.set()
        self._gate = threading.Lock()
        self._sending = False
        self._foreground = 0
        self._lock = threading.Lock()
        self._where = where
        self._db = open_state_db(
            where,
            store="changes",
            sqlite_steps=_STEPS,
            postgres_steps=_PG_STEPS,
            what="change log",
            synchronous="NORMAL",  # a message lost to a power cut is a missed notification, not lost state
        )
        self.where = self._db.where
        """The file, or the schema and database (no password): what a message names."""
        self._appends = 0
        self.lost = 0
        """Changes this process could not store (logged; ``statehub_change_log_lost_total``)."""

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def listen(self, on_notify: Callable[[int | None], None]) -> PgListener | None:
        """Hear other processes' appends as they commit: ``on_notify(last id)`` (from a thread of
        its own) per append anywhere on this PostgreSQL log, this process's too, and
        ``on_notify(None)`` after each (re)connect, when some may have been missed. None on a
        SQLite file, which has no such signal (its readers poll). ``close()`` the answer to stop."""
        if self._db.dialect != "postgresql":
            return None
        from sync._durable_pg import PgState
        from sync._pg_listen import PgListener

        assert isinstance(self._where, PgState)

        def heard(payload: str | None) -> None:
            on_notify(int(payload) if payload is not None and payload.isdigit() else None)

        return PgListener(self._where, CHANNEL, heard).start()

    def append(self, changes: Sequence[Change]) -> None:
        """Number and store ``changes`` in order, in one transaction; then tell the listeners.

        A failure to store (a full disk, PostgreSQL unreachable for :data:`_RETRY_WITHIN_S`) is
        logged, counted (:attr:`lost`) and the changes are lost: the cache and the files are
        already changed, and a subscriber that misses them reloads when it sees the ids jump
        (docs/architecture.md "Change stream"). On PostgreSQL an append whose session ends
        anywhere in its transaction, its COMMIT included (a restart, ``pg_terminate_backend``),
        is sent again on a new connection: each row carries the append's key and its place in it,
        and a row already stored (the COMMIT went through, its answer did not) is not stored
        twice (canon/ADR-050 addendum)."""
        if not changes:
            return
        now = time.time()
        stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        rows = [
            (
                now,
                c.type,
                c.repo,
                c.workplan,
                json.dumps(c.owners),
                json.dumps({"at": stamp, "repo": c.repo, **c.data}, separators=(",", ":"), default=str),
            )
            for c in changes
        ]
        ids = self._store(rows, now, uuid.uuid4())
        if ids is None:
            with self._lock:
                self.lost += len(rows)
            return
        stored = [
            Stored(ids[i], row[0], row[1], row[2], row[3], changes[i].owners, row[5])
            for i, row in enumerate(rows)
        ]
        for listener in self.on_append:
            listener(stored)

    def _store(self, rows: list[tuple[Any, ...]], now: float, batch: uuid.UUID) -> list[int] | None:
        """Store ``rows`` as the append ``batch``; their ids in order, or None (logged) when lost.

        SQLite: one try (its COMMIT is local: it committed or it raised, nothing in between).
        PostgreSQL: up to :data:`_TRIES` tries within :data:`_RETRY_WITHIN_S` while the session
        is lost (:class:`StoreUnreachable`), each on a new connection (the store reconnects)."""
        give_up = time.monotonic() + _RETRY_WITHIN_S
        pause = _RETRY_PAUSE_S
        for attempt in range(1, _TRIES + 1):
            try:
                with self._lock, self._db.transaction():
                    return self._insert(rows, now, batch)
            except StoreUnreachable as error:
                last = attempt == _TRIES or time.monotonic() + pause > give_up
                if self._db.dialect != "postgresql" or last:
                    log.error(  # the cause is in the message; its trace says nothing more
                        "storing %d change(s) in %s failed after %d tries (the database stayed "
                        "unreachable: %s); they are not streamed",
                        len(rows),
                        self.where,
                        attempt,
                        error,
                    )
                    return None
                log.warning(
                    "storing %d change(s) in %s: the session ended (%s); storing them again",
                    len(rows),
                    self.where,
                    error,
                )
                time.sleep(pause)
                pause *= 2
            except Exception:
                log.exception(
                    "storing %d change(s) in %s failed; they are not streamed", len(rows), self.where
                )
                return None
        return None  # not reached: the last try returns or gives up

    def _insert(self, rows: list[tuple[Any, ...]], now: float, batch: uuid.UUID) -> list[int]:
        """Insert ``rows`` in the open transaction (under ``_lock``); their ids, in order.

        On PostgreSQL each row carries ``batch`` and its place in it; rows of the batch already
        stored by an earlier try are kept (``ON CONFLICT DO NOTHING``), and their ids read back."""
        ids: list[int] = []
        postgres = self._db.dialect == "postgresql"
        self._db.serialize("append")  # PostgreSQL: ids commit in the order they are given
        for start in range(0, len(rows), _INSERT_ROWS):
            part = rows[start : start + _INSERT_ROWS]
            if postgres:
                values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(part))
                sql = f"{_PG_INSERT} {values} {_PG_ON_CONFLICT}"
                params = [v for i, row in enumerate(part, start) for v in (*row, batch, i)]
            else:
                values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(part))
                sql = f"{_INSERT} {values} RETURNING id"
                params = [value for row in part for value in row]
            found = self._db.execute(sql, params)
            ids += sorted(int(r[0]) for r in found.fetchall())  # given in VALUES order
        if postgres and len(ids) != len(rows):  # an earlier try committed (all of it: one transaction)
            found = self._db.execute("SELECT id FROM change WHERE batch = ? ORDER BY pos", (batch,))
            ids = [int(r[0]) for r in found.fetchall()]
        self._appends += len(rows)
        if self._appends >= _PRUNE_EVERY:
            self._appends = 0
            self._prune(now)
        if postgres:  # delivered with the commit, to every listener
            self._db.execute("SELECT pg_notify(?, ?)", (CHANNEL, str(ids[-1])))
        return ids

    def sending(self, busy: bool) -> None:
        """The fan-out says whether it still sends what this process appended (any thread)."""
        with self._gate:
            self._sending = busy
            self._open_gate()

    @contextlib.contextmanager
    def foreground(self) -> Iterator[None]:
        """Hold :attr:`delivered` clear while the block runs: a request accepting a change that
        subscribers wait for (``POST /events``) keeps the write-back and re-indexes paused at their
        next :meth:`let_deliver` from the moment it arrives, not only once its change is appended
        (its own intake and append need the GIL too). The fan-out of what it appended keeps the
        flag clear after the block until sent (:meth:`sending`)."""
        with self._gate:
            self._foreground += 1
            self._open_gate()
        try:
            yield
        finally:
            with self._gate:
                self._foreground -= 1
                self._open_gate()

    def _open_gate(self) -> None:
        if self._sending or self._foreground:
            self.delivered.clear()
        else:
            self.delivered.set()

    def let_deliver(self, limit_s: float = DELIVER_WAIT_S) -> None:
        """Wait (at most ``limit_s`` seconds) until the fan-out has sent what was appended.

        Long Python work in another thread (the write-back, a re-index) holds the GIL the event
        loop needs for each of its subscribers' sends, and a fan-out to 200 sockets that would take
        15 ms takes hundreds of ms beside it (issue 14, canon/ADR-038 "Delivery before
        write-back"). Such work calls this between its steps: the wait releases the GIL."""
        self.delivered.wait(limit_s)

    def _prune(self, now: float) -> None:
        """Drop messages beyond ``keep`` or older than ``keep_s``, noting the last id dropped."""
        newest = self._db.execute("SELECT max(id) FROM change").fetchone()[0] or 0
        cut = self._db.execute(
            "SELECT max(id) FROM change WHERE id <= ? OR at < ?", (newest - self.keep, now - self.keep_s)
        ).fetchone()[0]
        if cut is None:
            return
        self._db.execute("DELETE FROM change WHERE id <= ?", (cut,))
        self._db.execute(
            "INSERT INTO change_meta (key, value) VALUES ('pruned_through', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = CASE WHEN excluded.value > change_meta.value "
            "THEN excluded.value ELSE change_meta.value END",
            (cut,),
        )

    def prune(self) -> None:
        """Prune now (the server does it at start, so a log left for weeks shrinks before it is read)."""
        with self._lock, self._db.transaction():
            self._db.serialize("append")
            self._prune(time.time())

    def bounds(self) -> tuple[int, int]:
        """(the last id pruned, 0 when none; the newest id ever given, 0 when none).

        On PostgreSQL "given" means committed: the newest id stored, or pruned when none is left
        (the sequence itself runs ahead of commits, and a live stream starts after this id)."""
        with self._lock:
            pruned = self._db.execute("SELECT value FROM change_meta WHERE key = 'pruned_through'").fetchone()
            if self._db.dialect == "sqlite":
                newest = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'change'").fetchone()
            else:
                newest = self._db.execute("SELECT max(id) FROM change").fetchone()
        last_pruned = int(pruned[0]) if pruned else 0
        return (
            last_pruned,
            max(last_pruned, int(newest[0])) if newest and newest[0] is not None else last_pruned,
        )

    def after(self, last: int, limit: int = 1000) -> list[Stored]:
        """Messages with an id above ``last``, oldest first, at most ``limit``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, at, type, repo, workplan, owners, data FROM change "
                "WHERE id > ? ORDER BY id LIMIT ?",
                (last, limit),
            ).fetchall()
        return [Stored(r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])), r[6]) for r in rows]


# -- the cache's rows before and after a change -----------------------------------------------------------

_TASK_FIELDS = (
    "ref",
    "workplan_id",
    "title",
    "status",
    "owner",
    "depends_on",
    "ready",
    "conflicted",
    "cyclic",
)
_WORKPLAN_FIELDS = ("id", "title", "status", "owner", "task_count", "conflicted", "related")
_CANON_FIELDS = ("id", "title", "kind", "status", "date", "supersedes", "conflicted")
_HIDDEN = ("body", "extra")
"""Compared but not sent (they can be large): a change of them is named in ``also``."""
_OPEN_FIELDS = {"task": _TASK_FIELDS, "workplan": _WORKPLAN_FIELDS, "canon": _CANON_FIELDS}


@dataclass(slots=True)
class RowSnapshot:
    """The task, workplan and canon rows (and file errors) of some repos at one moment.

    ``repos`` None: every repo. Besides the repos' own rows it holds the tasks of other
    repos that depend on a task of theirs (by the repos' declared prefixes): a change of
    status can make those ready or not (ADR-004), and a subscriber must hear of it.
    """

    repos: set[str] | None
    rows: dict[tuple[str, str, str, str], tuple[Any, ...]] = field(default_factory=dict)
    """(table, repo, path, task id or "") -> the row's fields as stored (``_as_dict`` names them)."""
    errors: dict[str, set[tuple[str, int | None, str, str]]] = field(default_factory=dict)
    """repo -> file errors (path, line, message, origin)."""
    commits: dict[str, str | None] = field(default_factory=dict)
    fleet: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    """(machine | workload | lane, repo, path, name) -> the fleet registry row (``registry/fleet.toml``)."""
    prefixes: set[str] = field(default_factory=set)
    """The prefixes whose dependents (tasks of other repos) it holds: the snapshot after a change
    reads the dependents of these too, so a repo removed (or a prefix given up) does not make
    another repo's task look removed, nor one added make it look added."""

    @classmethod
    def take(
        cls, conn: Connection, repos: Collection[str] | None, prefixes: Iterable[str] = ()
    ) -> RowSnapshot:
        """Read the rows now, inside the caller's transaction; the dependents are those of the repos'
        stored prefixes and of ``prefixes`` (what a repo declares but the cache does not hold yet).

        One plain SQL statement a table through the driver's own cursor: rows stay the driver's
        tuples (no SQLAlchemy row processing, no result types), JSON columns as the driver gives
        them (text on SQLite: compared as stored, decoded only for a row that changed), bodies and
        ``extra`` as stored (compared, never sent). A rebuild snapshots every row twice, so this
        keeps to the cost of fetching them (about 40 ms a snapshot of the 74-repo corpus)."""
        snap = cls(None if repos is None else set(repos))
        if snap.repos is not None and not snap.repos:
            return snap
        within = snap.repos
        scope: tuple[str, ...] = tuple(sorted(within)) if within is not None else ()
        for kind, columns in _snapshot_sql(conn).items():
            fetched = _fetch(conn, f"SELECT {columns} FROM {kind}", scope)  # noqa: S608 - constant names
            if kind == "task":
                snap.rows.update({("task", r[0], r[1], r[2]): r[3:] for r in fetched})
            else:
                snap.rows.update({(kind, r[0], r[1], ""): r[2:] for r in fetched})
        if within is not None:
            snap._dependents(conn, within, prefixes)
        for what, table in _FLEET_TABLES.items():
            query = select(table)
            if within is not None:
                query = query.where(table.c.repo.in_(sorted(within)))
            for fleet_row in conn.execute(query).mappings():
                values = {k: v for k, v in fleet_row.items() if k not in ("repo", "path", "name", "position")}
                snap.fleet[(what, fleet_row["repo"], fleet_row["path"], fleet_row["name"])] = values
        errors = "SELECT repo, path, line, message, origin FROM file_error"
        for error in _fetch(conn, errors, scope):
            snap.errors.setdefault(error[0], set()).add((error[1], error[2], error[3], error[4]))
        return snap

    def absorb(self, other: RowSnapshot) -> None:
        """Add ``other``'s repos and rows; a row held already keeps its earlier values."""
        assert self.repos is not None and other.repos is not None
        self.repos |= other.repos
        self.prefixes |= other.prefixes
        for key, values in other.rows.items():
            self.rows.setdefault(key, values)
        for repo, errors in other.errors.items():
            self.errors.setdefault(repo, errors)
        for fleet_key, fleet_values in other.fleet.items():
            self.fleet.setdefault(fleet_key, fleet_values)

    def _keep(self, kind: str, row: Sequence[Any]) -> None:
        """``row``: repo, path, (task id,) the open fields, then the hidden ones."""
        if kind == "task":
            self.rows[("task", row[0], row[1], row[2])] = tuple(row[3:])
        else:
            self.rows[(kind, row[0], row[1], "")] = tuple(row[2:])

    def _dependents(self, conn: Connection, repos: set[str], also: Iterable[str]) -> None:
        """Tasks of other repos depending on a ref under one of ``repos``' prefixes or ``also``."""
        self.prefixes.update(also)
        self.prefixes.update(
            p
            for row in conn.execute(select(REPOS.c.prefixes).where(REPOS.c.slug.in_(sorted(repos))))
            for p in row[0] or ()
        )
        prefixes = sorted(self.prefixes)
        if not prefixes:
            return
        # A range per prefix (``P-`` up to ``P.``, the next character), not LIKE: the index on
        # depends_on answers a range, and LIKE (case-insensitive) would scan every edge.
        edges = (
            select(DEPENDENCIES.c.repo, DEPENDENCIES.c.path, DEPENDENCIES.c.task_id)
            .where(
                and_(
                    DEPENDENCIES.c.repo.not_in(sorted(repos)),
                    or_(
                        *(
                            and_(DEPENDENCIES.c.depends_on >= f"{p}-", DEPENDENCIES.c.depends_on < f"{p}.")
                            for p in prefixes
                        )
                    ),
                )
            )
            .distinct()
        )
        keys = conn.execute(edges).all()
        for start in range(0, len(keys), 300):
            chunk = keys[start : start + 300]
            where = " OR ".join(
                f"(repo = :r{i} AND path = :p{i} AND task_id = :t{i})" for i in range(len(chunk))
            )
            values = {f"{n}{i}": k[j] for i, k in enumerate(chunk) for j, n in enumerate("rpt")}
            columns = _snapshot_sql(conn)["task"]
            for row in conn.execute(text(f"SELECT {columns} FROM task WHERE {where}"), values):  # noqa: S608 - constant columns, bound values
                self._keep("task", row)

    def changes(self, after: RowSnapshot, cause: str, reports: Sequence[IndexReport] = ()) -> list[Change]:
        """What changed from this snapshot to ``after``: task, workplan and canon changes in
        (repo, path) order, then one ``repo.indexed`` per repo of ``reports`` that read, removed
        or re-judged a file.

        Rows are compared as the tuples read; only rows that differ become dicts."""
        found: list[Change] = []
        old_rows, new_rows = self.rows, after.rows
        if old_rows != new_rows:
            differ = [k for k, v in old_rows.items() if new_rows.get(k) != v]
            differ.extend(k for k in new_rows.keys() - old_rows.keys())
            if self.repos is not None:  # another repo's task is never added or removed by this change:
                # one read on one side only (a prefix neither snapshot knew of) is left out, not
                # announced as added or removed
                differ = [k for k in differ if k[1] in self.repos or (k in old_rows and k in new_rows)]
            for key in sorted(differ, key=_order):
                old, new = _as_dict(key[0], old_rows.get(key)), _as_dict(key[0], new_rows.get(key))
                if old != new:  # not only the same JSON, spaced another way
                    found.append(_row_change(key, old, new, cause))
        found.extend(_fleet_changes(self.fleet, after.fleet, cause))
        counts: dict[str, dict[str, int]] | None = None
        for report in reports:
            old_errors = self.errors.get(report.repo, set())
            new_errors = after.errors.get(report.repo, set())
            if not (report.parsed or report.removed or old_errors != new_errors):
                continue
            if counts is None:
                counts = after.counts()
            found.append(_indexed(report, after, counts, old_errors, new_errors, cause))
        return found

    def counts(self) -> dict[str, dict[str, int]]:
        """repo -> its row counts ("workplans", "tasks", "canon"), for the repos with rows."""
        found: dict[str, dict[str, int]] = {}
        names = {"task": "tasks", "workplan": "workplans", "canon": "canon"}
        for kind, repo, _path, _task in self.rows:
            per = found.get(repo)
            if per is None:
                per = found[repo] = {"workplans": 0, "tasks": 0, "canon": 0}
            per[names[kind]] += 1
        return found


_FLEET_TABLES = {"machine": FLEET_MACHINES, "workload": FLEET_WORKLOADS, "lane": FLEET_LANES}
_MAX_LISTED = 200
"""The most entries one message lists (fleet entries, file errors); ``more`` says how many were left out."""


class Tracker:
    """The ``before_change`` hook of ``statehub.cache.indexer.index_repo``: reads a repo's rows the
    first time the indexer is about to change them, so a refresh that changes nothing reads
    nothing, and a reconcile reads only the repos it changes. ``before`` is what was read."""

    def __init__(self, declared: Callable[[str], Iterable[str]] | None = None) -> None:
        self.before = RowSnapshot(set())
        self.declared = declared
        """slug -> the prefixes its manifest declares now (a repo being added, or declaring a new
        prefix, has dependents its stored prefixes do not find)."""

    def __call__(self, conn: Connection, slug: str) -> None:
        assert self.before.repos is not None
        if slug not in self.before.repos:
            declared = self.declared(slug) if self.declared is not None else ()
            self.before.absorb(RowSnapshot.take(conn, {slug}, declared))


def _fleet_changes(
    old: dict[tuple[str, str, str, str], dict[str, Any]],
    new: dict[tuple[str, str, str, str], dict[str, Any]],
    cause: str,
) -> list[Change]:
    """One ``fleet.changed`` per fleet registry file whose entries changed."""
    by_file: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        what, repo, path, name = key
        change = "added" if before is None else "removed" if after is None else "changed"
        names = sorted((before or {}).keys() | (after or {}).keys())
        fields = {
            n: {"old": (before or {}).get(n), "new": (after or {}).get(n)}
            for n in names
            if (before or {}).get(n) != (after or {}).get(n)
        }
        by_file.setdefault((repo, path), []).append(
            {"what": what, "name": name, "change": change, "fields": fields}
        )
    return [
        Change(
            "fleet.changed",
            {
                "path": path,
                "entries": entries[:_MAX_LISTED],
                "more": max(0, len(entries) - _MAX_LISTED),
                "cause": cause,
            },
            repo=repo,
        )
        for (repo, path), entries in by_file.items()
    ]


_SNAPSHOT_SQL = {
    "task": f"repo, path, task_id, {', '.join(_TASK_FIELDS)}, extra",
    "workplan": f"repo, path, {', '.join(_WORKPLAN_FIELDS)}, body, extra",
    "canon": f"repo, path, {', '.join(_CANON_FIELDS)}, body, extra",
}
_JSON_FIELDS = frozenset({"depends_on", "related", "supersedes"})


def _as_text(columns: str) -> str:
    """``columns`` with each JSON column read as its text (``depends_on::text AS depends_on``)."""
    return ", ".join(
        f"{c}::text AS {c}" if c in _JSON_FIELDS or c == "extra" else c for c in columns.split(", ")
    )


_SNAPSHOT_SQL_POSTGRES = {kind: _as_text(columns) for kind, columns in _SNAPSHOT_SQL.items()}
"""JSON columns read as the text stored (a ``json`` value keeps it as written), compared as text
and decoded only for a row whose text differs, as on SQLite (psycopg would decode every one: ~0.2 s
of a 74-repo rebuild's two snapshots). Two encoders may space one value differently (COPY's and
SQLAlchemy's), so a row whose text differs is a change only if its decoded values do."""


def _snapshot_sql(conn: Connection) -> dict[str, str]:
    return _SNAPSHOT_SQL_POSTGRES if conn.dialect.name == "postgresql" else _SNAPSHOT_SQL


_FLAGS = frozenset({"ready", "conflicted", "cyclic"})


def _as_dict(kind: str, values: tuple[Any, ...] | None) -> dict[str, Any] | None:
    """A snapshot row's values by name, JSON decoded and flags as booleans (for a changed row)."""
    if values is None:
        return None
    names = _OPEN_FIELDS[kind]
    found: dict[str, Any] = {}
    for name, value in zip(names, values, strict=False):
        if name in _JSON_FIELDS and isinstance(value, str):
            value = json.loads(value)
        elif name in _FLAGS and value is not None:
            value = bool(value)
        found[name] = value
    hidden = _HIDDEN if kind != "task" else ("extra",)
    found.update(zip(hidden, values[len(names) :], strict=False))
    if isinstance(found.get("extra"), str):
        found["extra"] = json.loads(found["extra"])  # compared by value, as the JSON fields are
    return found


def _order(key: tuple[str, str, str, str]) -> tuple[str, str, int, str]:
    kind, repo, path, task = key
    return (repo, path, {"workplan": 0, "task": 1, "canon": 2}[kind], task)


def _fetch(conn: Connection, sql: str, repos: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """``sql``'s rows (of ``repos`` when any) as the driver's tuples, through its own cursor in the
    caller's transaction."""
    if repos:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        sql += f" WHERE repo IN ({', '.join([mark] * len(repos))})"
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, repos)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _row_change(
    key: tuple[str, str, str, str], old: dict[str, Any] | None, new: dict[str, Any] | None, cause: str
) -> Change:
    kind, repo, path, task_id = key
    now = new if new is not None else old
    assert now is not None
    change = "added" if old is None else "removed" if new is None else "changed"
    fields: dict[str, dict[str, Any]] = {}
    also: list[str] = []
    for name in _OPEN_FIELDS[kind]:
        before = None if old is None else old[name]
        after = None if new is None else new[name]
        if before != after:
            fields[name] = {"old": before, "new": after}
    for name in _HIDDEN:
        if (old or {}).get(name) != (new or {}).get(name):
            also.append(name)
    owners = tuple(sorted({o for o in ((old or {}).get("owner"), (new or {}).get("owner")) if o}))
    data: dict[str, Any] = {"path": path, "change": change, "fields": fields, "also": also, "cause": cause}
    if kind == "task":
        workplan = now["workplan_id"]
        data = {"ref": now["ref"], "workplan": workplan, "task": task_id, **data}
    elif kind == "workplan":
        workplan = now["id"]
        data = {"workplan": workplan, **data}
    else:
        workplan = None
        data = {"id": now["id"], **data}
    return Change(f"{kind}.changed", data, repo=repo, workplan=workplan, owners=owners)


def _indexed(
    report: IndexReport,
    after: RowSnapshot,
    row_counts: dict[str, dict[str, int]],
    old_errors: set[tuple[str, int | None, str, str]],
    new_errors: set[tuple[str, int | None, str, str]],
    cause: str,
) -> Change:
    repo = report.repo
    counts = {
        **row_counts.get(repo, {"workplans": 0, "tasks": 0, "canon": 0}),
        "file_errors": len(new_errors),
    }

    def listed(errors: set[tuple[str, int | None, str, str]]) -> list[dict[str, Any]]:
        return [
            {"path": p, "line": line, "message": m, "origin": o}
            for p, line, m, o in sorted(errors, key=lambda e: (e[0], e[1] or 0, e[2]))[:_MAX_LISTED]
        ]

    data = {
        "commit": after.commits.get(repo),
        "counts": counts,
        "files": {"read": report.parsed, "removed": report.removed},
        "new_errors": listed(new_errors - old_errors),
        "fixed_errors": listed(old_errors - new_errors),
        "cause": cause,
    }
    return Change("repo.indexed", data, repo=repo)
