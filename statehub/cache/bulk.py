"""Insert many cache rows at once, at the speed of the database driver.

A rebuild inserts tens of thousands of rows. SQLAlchemy's ``executemany`` runs
per-row bind processing (JSON encoding, parameter dicts) in Python, which costs
as much as parsing the files. So on SQLite we hand the driver ready tuples with
JSON columns encoded once (``statehub.cache.sqlite_rows``, what ``bench/rebuild.py``'s floor does), and on
PostgreSQL, where one round trip per row is the cost, rows stream through
``COPY ... FROM STDIN`` inside the caller's transaction.
"""

from __future__ import annotations

from functools import cache
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import JSON, Column, Connection, Table

from statehub.cache.sqlite_rows import encode

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["insert_rows"]

_encode = msgspec.json.encode


def _copy_json(value: Any) -> str:
    """A JSON column's text for COPY: msgspec's encoder, several times the standard library's speed
    (the value read back is the same; only the spacing differs, which ``changes`` allows for)."""
    return _encode(value).decode()


_COPY_MIN_ROWS = 50
"""Below this, a plain executemany is as fast on PostgreSQL and simpler to reason about."""


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` inside the caller's transaction."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        _sqlite(conn, table, rows)
    elif conn.dialect.name == "postgresql" and len(rows) >= _COPY_MIN_ROWS:
        _postgres_copy(conn, table, rows)
    else:
        conn.execute(table.insert(), list(rows))


def _sqlite(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    if _leaves_out_defaults(table, tuple(rows[0])):
        conn.execute(table.insert(), list(rows))  # let SQLAlchemy fill in the column defaults
        return
    batch = encode(table.name, rows)
    conn.exec_driver_sql(batch.statement, batch.params)


@cache
def _leaves_out_defaults(table: Table, columns: tuple[str, ...]) -> bool:
    return any(c.default is not None and c.name not in columns for c in table.columns)


def _postgres_copy(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    columns, fill = _copy_plan(table, tuple(rows[0]))
    names = ", ".join(conn.dialect.identifier_preparer.quote(c.name) for c in columns)
    quoted = conn.dialect.identifier_preparer.format_table(table)
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(f"COPY {quoted} ({names}) FROM STDIN") as copy:
        write = copy.write_row
        json_at = [i for i, c in enumerate(columns) if isinstance(c.type, JSON)]
        if len(columns) > 1 and all(c.name in rows[0] for c in columns):
            get = itemgetter(*(c.name for c in columns))  # every value given: no per-cell call
            for row in rows:
                values = list(get(row))
                for i in json_at:
                    if values[i] is not None:
                        values[i] = _copy_json(values[i])
                write(values)
            return
        for row in rows:
            write([f(row) for f in fill])


@cache
def _copy_plan(
    table: Table, keys: tuple[str, ...]
) -> tuple[list[Column[Any]], tuple[Callable[[dict[str, Any]], Any], ...]]:
    """The columns COPY names for rows with ``keys``, and per column what gives its value."""
    sample = dict.fromkeys(keys)
    columns = [c for c in table.columns if not _generated(c, sample)]
    return columns, tuple(_filler(c) for c in columns)


def _filler(column: Column[Any]) -> Callable[[dict[str, Any]], Any]:
    name = column.name
    if isinstance(column.type, JSON):
        default = column.default.arg if column.default is not None and column.default.is_scalar else None  # type: ignore[attr-defined]

        def json_value(row: dict[str, Any]) -> Any:
            value = row.get(name, default)
            return None if value is None else _copy_json(value)

        return json_value
    if column.default is not None and column.default.is_scalar:
        scalar = column.default.arg  # type: ignore[attr-defined]
        return lambda row: row.get(name, scalar)
    return lambda row: row.get(name)


def _generated(column: Column[Any], sample: dict[str, Any]) -> bool:
    """An autoincrement key the rows leave out is filled in by the server."""
    return bool(column.primary_key and column.autoincrement in (True, "auto") and column.name not in sample)
