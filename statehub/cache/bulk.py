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
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Connection, Table

__all__ = ["insert_rows"]

_dumps = json.JSONEncoder().encode


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
    get = itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
    json_at = [i for i, j in enumerate(is_json) if j]
    if not json_at:
        conn.exec_driver_sql(statement, [get(row) for row in rows])
        return
    params = []
    for row in rows:
        values = list(get(row))
        for i in json_at:
            value = values[i]
            if value is None:
                continue  # a nullable JSON column: SQL NULL, read back as None
            values[i] = _dumps(value) if value else ("{}" if isinstance(value, dict) else "[]")
        params.append(tuple(values))
    conn.exec_driver_sql(statement, params)
