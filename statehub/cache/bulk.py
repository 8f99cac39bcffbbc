"""Insert many cache rows at once, at the speed of the database driver.

SQLAlchemy's ``executemany`` runs per-row bind processing (JSON encoding,
parameter dicts) in Python; for the tens of thousands of rows of a rebuild that
costs as much as parsing the files. On SQLite we hand the driver ready tuples
with JSON columns encoded once, which is what ``bench/rebuild.py``'s floor does.
Other databases take the portable path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import JSON, Connection, Table

__all__ = ["insert_rows"]


@cache
def _plan(table: Table, columns: tuple[str, ...]) -> tuple[str, tuple[bool, ...]]:
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    is_json = tuple(isinstance(table.c[c].type, JSON) for c in columns)
    return f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', is_json


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` inside the caller's transaction."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(table.insert(), list(rows))
        return
    columns = tuple(rows[0])
    statement, is_json = _plan(table, columns)
    dumps = json.dumps
    if any(is_json):
        params = [
            tuple(
                dumps(row[c]) if j else row[c]
                for c, j in zip(columns, is_json, strict=True)
            )
            for row in rows
        ]
    else:
        params = [tuple(row[c] for c in columns) for row in rows]
    conn.exec_driver_sql(statement, params)
