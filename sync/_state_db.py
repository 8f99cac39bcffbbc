"""One durable store's connection, SQLite file or PostgreSQL schema, behind one small surface.

A store written against :class:`StateDb` runs unchanged on both backends
(canon/ADR-046): its SQL is the portable subset both speak (``?``
placeholders, ``INSERT ... ON CONFLICT``, no ``INSERT OR ...``), its layout
is two ordered lists of migration steps, one per dialect, and its
transactions are :meth:`StateDb.transaction` blocks. Where the two engines
give a guarantee differently, the store says so through :meth:`StateDb.serialize`:
a no-op on SQLite (``BEGIN IMMEDIATE`` already holds the file's one write
lock), a transaction-scoped advisory lock on PostgreSQL (replicas queue on
it).

:func:`open_state_db` picks the backend from where the store lives: a
:class:`~pathlib.Path` is a SQLite file (:func:`sync._durable.open_store`),
a :class:`~sync._durable_pg.PgState` is the state schema of a PostgreSQL
database (:mod:`sync._durable_pg`, which alone imports psycopg, and only
when a store opens there).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

from sync._durable import open_store

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from contextlib import AbstractContextManager

    from sync._durable_pg import PgState

__all__ = ["Rows", "SqliteStateDb", "StateDb", "StateLocation", "open_state_db"]

StateLocation: TypeAlias = "Path | PgState"
"""Where a durable store lives: a SQLite file, or the state schema of a PostgreSQL database."""


class Rows(Protocol):
    """What ``execute`` answers on both backends (a DB-API cursor)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class StateDb(Protocol):
    """A store's connection: one per store and process, used under the store's own lock."""

    dialect: Literal["sqlite", "postgresql"]
    where: str
    """What to name in an error: the file's path, or the schema and database."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def serialize(self, name: str) -> None: ...

    def close(self) -> None: ...


class SqliteStateDb:
    """A store's SQLite file (WAL, autocommit; :func:`sync._durable.open_store` migrated it)."""

    dialect: Literal["sqlite", "postgresql"] = "sqlite"

    def __init__(self, path: Path, steps: Sequence[str], what: str, *, synchronous: str) -> None:
        self.path = path
        self.where = str(path)
        self._db = open_store(path, steps, what, synchronous=synchronous)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        return self._db.execute(sql, tuple(params))

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE``: the write lock up front, so two processes queue instead of failing."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def serialize(self, name: str) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already made this transaction the file's only writer."""

    def close(self) -> None:
        self._db.close()


def open_state_db(
    where: StateLocation,
    *,
    store: str,
    sqlite_steps: Sequence[str],
    postgres_steps: Sequence[str],
    what: str,
    synchronous: str = "NORMAL",
) -> StateDb:
    """The connection of the store named ``store`` at ``where``, migrated to its newest layout.

    ``what`` names the store (and what it holds) in the error a newer layout raises
    (:class:`~sync.errors.StoreTooNew`); ``synchronous`` is the SQLite file's setting, and on
    PostgreSQL ``NORMAL`` is ``synchronous_commit=off``, ``FULL`` waits for the flush
    (:mod:`sync._durable_pg`).
    """
    if isinstance(where, Path):
        return SqliteStateDb(where, sqlite_steps, what, synchronous=synchronous)
    from sync._durable_pg import PgStateDb

    return PgStateDb(where, store, postgres_steps, what, wait_for_flush=synchronous == "FULL")
