"""List queries compiled once per filter combination and run at the driver's speed.

Building a SQLAlchemy select, computing its cache key and processing each
result row cost more than the query itself for a 100-row page (bench/query.py
measured 1.6 ms against 0.4 ms for bare sqlite3). The statements are still
written in SQLAlchemy, so they stay portable; we compile each shape once per
dialect, then hand the driver the SQL string and its parameters directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

import msgspec
from sqlalchemy import ColumnElement, Connection, Select, bindparam, func

__all__ = [
    "PreparedPage",
    "StructColumns",
    "decode_json",
    "decode_list",
    "fetch_all",
    "member_of",
    "prepare_page",
    "struct_columns",
]

S = TypeVar("S", bound=msgspec.Struct)
E = TypeVar("E", bound=Enum)


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    positions: tuple[str, ...] | None
    """Parameter names in order for positional drivers (sqlite3); None for named (psycopg)."""

    def params(self, values: dict[str, Any]) -> Any:
        if self.positions is None:
            return values
        return tuple(values[name] for name in self.positions)


@dataclass(frozen=True, slots=True)
class PreparedPage:
    """A count and a page statement for one combination of filters."""

    count: Select[Any]
    page: Select[Any]

    def run(
        self, conn: Connection, values: dict[str, Any], limit: int, offset: int
    ) -> tuple[Sequence[Any], int]:
        count = _compile(conn, self.count)
        page = _compile(conn, self.page)
        paged = values | {"limit": limit, "offset": offset}
        if conn.dialect.name == "postgresql" and _autocommit(conn):
            return _run_on_driver(conn, count, values, page, paged)
        total = conn.exec_driver_sql(count.sql, count.params(values)).scalar_one()
        rows = conn.exec_driver_sql(page.sql, page.params(paged)).fetchall()
        return rows, int(total)


def _autocommit(conn: Connection) -> bool:
    """Whether ``conn``'s driver connection runs each statement on its own (``Hub.reads`` on
    PostgreSQL, ADR-047): then a statement run past SQLAlchemy leaves it nothing to track."""
    driver = conn.connection.driver_connection
    return bool(getattr(driver, "autocommit", False))


def _run_on_driver(
    conn: Connection, count: _Compiled, values: dict[str, Any], page: _Compiled, paged: dict[str, Any]
) -> tuple[Sequence[Any], int]:
    """The count and the page on psycopg's own cursor, rows as its tuples: SQLAlchemy's execution
    path (an execution context, a cursor result, a row object each) cost about as much CPU per
    statement as psycopg's own, a third of a list request's beyond the bare endpoint's
    (bench/query.py, ADR-047). A driver error goes through SQLAlchemy's own handling, as it would
    from ``exec_driver_sql``: raised as SQLAlchemy's error (``OperationalError``, a 503) and a lost
    connection invalidating the pool."""
    driver = conn.connection.driver_connection
    assert driver is not None
    statement, params = count.sql, values
    try:
        with driver.cursor() as cursor:
            cursor.execute(count.sql, values)
            found = cursor.fetchone()
            statement, params = page.sql, paged
            cursor.execute(page.sql, paged)
            rows = cursor.fetchall()
    except conn.dialect.loaded_dbapi.Error as error:
        # SQLAlchemy's own translation of a driver error, as exec_driver_sql applies it
        conn._handle_dbapi_exception(error, statement, params, None, None)
    assert found is not None  # a count always has its row
    return rows, int(found[0])


_COMPILED: dict[tuple[str, int], _Compiled] = {}
_KEEP: list[Select[Any]] = []


def _compile(conn: Connection, statement: Select[Any]) -> _Compiled:
    key = (conn.dialect.name, id(statement))
    found = _COMPILED.get(key)
    if found is None:
        compiled = statement.compile(dialect=conn.dialect)
        positions = tuple(compiled.positiontup or ()) if compiled.positional else None
        found = _Compiled(str(compiled), positions)
        _COMPILED[key] = found
        _KEEP.append(statement)  # ids stay valid: the statement lives as long as the cache entry
    return found


def fetch_all(conn: Connection, statement: Select[Any], values: dict[str, Any]) -> Sequence[Any]:
    """The rows of ``statement`` (a module-level constant, or one kept by ``functools.cache``: it is
    compiled once per dialect and remembered by identity) with its named bindparams set from
    ``values``, at the driver's speed (tuples, no SQLAlchemy row processing: convert them yourself)."""
    compiled = _compile(conn, statement)
    return conn.exec_driver_sql(compiled.sql, compiled.params(values)).fetchall()


def prepare_page(build: Callable[[], Select[Any]]) -> PreparedPage:
    """``build`` returns the ordered select with named bindparams for its filters."""
    query = build()
    count = query.with_only_columns(func.count(), maintain_column_froms=True).order_by(None)
    page = query.limit(bindparam("limit")).offset(bindparam("offset"))
    return PreparedPage(count, page)


_decode_list = msgspec.json.Decoder(list[str]).decode


def decode_json(value: Any) -> Any:
    """JSON columns come back as text from sqlite3 and already decoded from psycopg."""
    return msgspec.json.decode(value) if isinstance(value, str) else value


def decode_list(value: Any) -> list[str]:
    """A JSON list-of-strings column (``depends_on``, ``related``, ``supersedes``, ``prefixes``)."""
    if isinstance(value, str):
        return _decode_list(value)
    found: list[str] = value
    return found


Convert = Callable[[Any], Any]
"""Turns a column's value as the driver returns it into the field's value (decode JSON, int -> bool)."""


def member_of(enum: type[E]) -> Callable[[str], E]:
    """The converter of a column holding an enum's values (a dict lookup, cheaper than ``enum(value)``)."""
    return {member.value: member for member in enum}.__getitem__


@dataclass(frozen=True, slots=True)
class StructColumns(Generic[S]):
    """How a Struct is read from a cache row: the columns of its fields, named by field, in field order.

    Build it with :func:`struct_columns`, select ``*columns`` first (other
    columns may follow), and :meth:`read` each row. Which column feeds which
    field is settled once, by name, when the module is imported; a row is then
    read at the driver's speed (bench/query.py: reading each field by name off
    a SQLAlchemy row cost more than the query itself for a 100-row page).
    """

    struct: type[S]
    columns: tuple[ColumnElement[Any], ...]
    """One per field of ``struct``, in the Struct's field order, each labelled with its field name."""
    convert: tuple[tuple[int, Convert], ...]
    """(field index, converter) for the fields whose stored value is not the field's value."""

    def read(self, row: Sequence[Any]) -> S:
        """The Struct of a row selected as ``select(*columns, ...)``."""
        values = list(row[: len(self.columns)])
        for index, convert in self.convert:
            values[index] = convert(values[index])
        return self.struct(*values)


def struct_columns(
    struct: type[S], **fields: ColumnElement[Any] | tuple[ColumnElement[Any], Convert]
) -> StructColumns[S]:
    """``fields``: every field of ``struct`` by name, as a column or ``(column, convert)``.

    Raises TypeError at import when a field has no column or a column names no field,
    so a renamed column or field cannot silently shift values into the wrong field.
    """
    names = struct.__struct_fields__
    if set(fields) != set(names):
        missing, unknown = sorted(set(names) - set(fields)), sorted(set(fields) - set(names))
        raise TypeError(f"{struct.__name__}: no column for {missing}, no field for {unknown}")
    columns: list[ColumnElement[Any]] = []
    convert: list[tuple[int, Convert]] = []
    for index, name in enumerate(names):
        given = fields[name]
        column, change = given if isinstance(given, tuple) else (given, None)
        columns.append(column.label(name))
        if change is not None:
            convert.append((index, change))
    return StructColumns(struct, tuple(columns), tuple(convert))
