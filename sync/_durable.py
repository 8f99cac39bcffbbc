"""The durable stores' shared base: a schema version read on open, ordered migrations, WAL.

The write buffer (with its relay tables) and the rooms' store hold what was
acknowledged and nothing else holds: unlike the cache they can never be
dropped and rebuilt. Each carries its layout's version in ``PRAGMA
user_version`` and an ordered list of migration steps: step ``n`` takes the
file from version ``n - 1`` to ``n``. :func:`open_store` (how both stores
open their file) reads the version before it sets anything on the file, and
:func:`migrate` runs the steps it lacks, all in one ``BEGIN IMMEDIATE`` transaction
(two processes opening at once queue; a failed step leaves the file as it
was). A file written by a newer State Hub is refused (:class:`StoreTooNew`),
never dropped. Add a step at the end, never edit one that has shipped.

:class:`DurableStore` is the write buffer's file (or, on a fleet hub, its tables in
the PostgreSQL state schema, canon/ADR-049): WAL with ``synchronous=FULL``,
so a commit that returned is on disk and an answer given after it (a 202, a
relay state) survives a crash or a power cut. One connection per process,
shared by threads behind a lock; ``BEGIN IMMEDIATE`` takes the write lock up
front so two processes (a hub and a CLI command) queue instead of failing
half-way through a transaction.

A write that finds the disk full (``SQLITE_FULL``) is rolled back whole and
raised as :class:`~sync.errors.StoreFull`; until a write goes through again, or
the file system has at least :data:`ROOM_AGAIN` bytes more free than when it
failed, :meth:`DurableStore.space_problem` says so (the hub's health turns
``degraded``). Nothing needs restarting: the next write that fits succeeds.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sync.errors import StoreFull, StoreTooNew

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from sync._durable_pg import PgStateDb
    from sync._state_db import Rows, StateLocation

__all__ = ["ROOM_AGAIN", "BufferDb", "DurableStore", "migrate", "open_store", "schema_version"]


class BufferDb(Protocol):
    """What the buffer's SQL runs on: the file's ``sqlite3.Connection`` itself, or a
    :class:`~sync._durable_pg.PgStateDb` (``?`` placeholders on both)."""

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Rows: ...

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> object: ...


ROOM_AGAIN = 1024 * 1024
"""Bytes the file system must have freed since a write found it full before the store counts as
writable again without a successful write (what health reads)."""


def _free_bytes(path: Path) -> int:
    try:
        info = os.statvfs(path)
    except OSError:
        return 0
    return info.f_bavail * info.f_frsize


def _is_full(error: sqlite3.Error) -> bool:
    return getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, path: Path, steps: Sequence[str], what: str) -> int:
    """Bring the store at ``path`` (open as ``db``, in autocommit mode) to ``len(steps)``; return it.

    ``steps[n - 1]`` is the SQL that takes version ``n - 1`` to ``n``; ``what``
    names the store (and what it holds) in the error a newer file raises.
    """
    newest = len(steps)
    db.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(db)
        if version > newest:
            raise StoreTooNew(path, what, version, newest)
        for number in range(version + 1, newest + 1):
            for statement in _statements(steps[number - 1]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return newest


def open_store(path: Path, steps: Sequence[str], what: str, *, synchronous: str) -> sqlite3.Connection:
    """A connection to the store at ``path`` (created on first use), as both stores open theirs.

    The version is read before anything is set on the file: one a newer State Hub wrote is
    refused (:class:`StoreTooNew`) exactly as it is, its journal mode included. The file is the
    owner's alone (mode 0600, set before SQLite opens it so its WAL and shm files take the same
    mode; a directory it creates is 0700): stores hold event payloads, leases and unsaved edits.
    Then WAL with
    ``synchronous`` (``FULL`` or ``NORMAL``), a 30 s busy timeout (two processes opening at
    once queue), and the steps it lacks (:func:`migrate`). Autocommit mode, shareable between
    threads behind the caller's lock; nothing is left open when this raises.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    try:
        db.execute("PRAGMA busy_timeout=30000")
        version = schema_version(db)
        if version > len(steps):
            raise StoreTooNew(path, what, version, len(steps))
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        migrate(db, path, steps, what)
    except BaseException:
        db.close()
        raise
    return db


def _statements(script: str) -> Iterator[str]:
    """The statements of ``script`` one by one (``executescript`` would commit half-way)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if pending.strip():
        yield pending


class DurableStore:
    """The write buffer's store (its events, relay queue and leases): a SQLite file or the state schema.

    At a :class:`~pathlib.Path` it is the file as described above; at a
    :class:`~sync._durable_pg.PgState` it is the tables of the store ``store`` in the PostgreSQL
    state schema (canon/ADR-049), on a connection of its own that waits for the server's WAL flush
    (what ``synchronous=FULL`` is to the file). Either way one writer at a time: ``BEGIN
    IMMEDIATE`` on the file, the advisory lock ``serialize("write")`` taken first in every write
    transaction on PostgreSQL, so every store on one buffer (in any process or replica) commits in
    the order its writes began, and an event's ``seq`` is never committed after a later one's.
    """

    def __init__(
        self,
        where: StateLocation,
        steps: Sequence[str],
        what: str,
        *,
        store: str,
        postgres_steps: Sequence[str],
    ) -> None:
        self.location = where
        self.what = what
        self._full: tuple[str, int] | None = None
        """(the problem, free bytes when it was met) while the disk was full at the last write."""
        self._lock = threading.RLock()
        self._pg: PgStateDb | None = None
        self.path: Path | None = None
        self._db: BufferDb
        if isinstance(where, Path):
            self.dialect: Literal["sqlite", "postgresql"] = "sqlite"
            self.path = where
            self.where = str(where)
            self._db = open_store(where, steps, what, synchronous="FULL")
        else:
            from sync._durable_pg import PgStateDb

            self.dialect = "postgresql"
            self._pg = PgStateDb(where, store, postgres_steps, what, wait_for_flush=True)
            self.where = self._pg.where
            self._db = self._pg

    def close(self) -> None:
        with self._lock:
            if self._pg is not None:
                self._pg.close()
            else:
                assert isinstance(self._db, sqlite3.Connection)
                self._db.close()

    def space_problem(self) -> str | None:
        """Why writes fail now (the disk under the file is full), or None; see the module docstring.
        Always None on PostgreSQL (the server's disk is its DBA's to watch)."""
        full = self._full
        if full is None or self.path is None:
            return None
        if _free_bytes(self.path.parent) >= full[1] + ROOM_AGAIN:
            self._full = None
            return None
        return full[0]

    @contextmanager
    def _transaction(self) -> Iterator[BufferDb]:
        """One write transaction, the store's only writer; rolled back whole on any error,
        StoreFull when the file's disk is full."""
        if self._pg is not None:
            with self._lock, self._pg.transaction():
                self._pg.serialize("write")
                yield self._pg
            return
        db = self._db
        assert isinstance(db, sqlite3.Connection)
        with self._lock:
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as error:
                if not _is_full(error):
                    raise
                assert self.path is not None
                full = StoreFull(self.path, self.what)
                self._full = (str(full), _free_bytes(self.path.parent))
                raise full from None
            self._full = None
