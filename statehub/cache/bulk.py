"""Write many rows at once: COPY on PostgreSQL, executemany on SQLite.

A rebuild inserts tens of thousands of rows. SQLite's executemany is already
close to its floor; on PostgreSQL one round trip per row is not, so rows are
streamed with ``COPY ... FROM STDIN`` inside the caller's transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, Column, Connection, Table

__all__ = ["insert_rows"]

_COPY_MIN_ROWS = 50
"""Below this, a plain executemany is as fast and simpler to reason about."""


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts keyed by column name) into ``table`` within ``conn``'s transaction."""
    if not rows:
        return
    if conn.dialect.name != "postgresql" or len(rows) < _COPY_MIN_ROWS:
        conn.execute(table.insert(), list(rows))
        return
    columns = [c for c in table.columns if not _generated(c, rows[0])]
    names = ", ".join(conn.dialect.identifier_preparer.quote(c.name) for c in columns)
    quoted = conn.dialect.identifier_preparer.format_table(table)
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(f"COPY {quoted} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(tuple(_value(c, row) for c in columns))


def _generated(column: Column[Any], sample: dict[str, Any]) -> bool:
    """An autoincrement key the rows leave out is filled in by the server."""
    return bool(column.primary_key and column.autoincrement in (True, "auto") and column.name not in sample)


def _value(column: Column[Any], row: dict[str, Any]) -> Any:
    if column.name in row:
        value = row[column.name]
    elif column.default is not None and column.default.is_scalar:
        value = column.default.arg  # type: ignore[attr-defined]
    else:
        value = None
    if isinstance(column.type, JSON) and value is not None:
        return json.dumps(value)
    return value
