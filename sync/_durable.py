"""The durable stores' shared base: a schema version read on open, ordered migrations, WAL.

The write buffer (with its relay tables) and the rooms' store hold what was
acknowledged and nothing else holds: unlike the cache they can never be
dropped and rebuilt. Each carries its layout's version in ``PRAGMA
user_version`` and an ordered list of migration steps: step ``n`` takes the
file from version ``n - 1`` to ``n``. :func:`migrate` reads the version on
open and runs the steps it lacks, all in one ``BEGIN IMMEDIATE`` transaction
(two processes opening at once queue; a failed step leaves the file as it
was). A file written by a newer State Hub is refused (:class:`StoreTooNew`),
never dropped. Add a step at the end, never edit one that has shipped.

:class:`DurableFile` is the write buffer's file: WAL with ``synchronous=FULL``,
so a commit that returned is on disk and an answer given after it (a 202, a
relay state) survives a crash or a power cut. One connection per process,
shared by threads behind a lock; ``BEGIN IMMEDIATE`` takes the write lock up
front so two processes (a hub and a CLI command) queue instead of failing
half-way through a transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sync.errors import StoreTooNew

__all__ = ["DurableFile", "migrate", "schema_version"]


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


class DurableFile:
    def __init__(self, path: Path, steps: Sequence[str], what: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=30000")
        try:
            with self._lock:
                migrate(self._db, path, steps, what)
        except BaseException:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
