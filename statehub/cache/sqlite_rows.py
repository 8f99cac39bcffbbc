"""Cache rows as SQLite's driver takes them: the INSERT statement and a tuple per row, JSON encoded.

``statehub.cache.bulk`` inserts every SQLite bulk load through :func:`encode`, and a
rebuild's worker encodes the rows it gathered before it hands them over
(``statehub.cache.gathering``), so the rebuilding process only executes them
(canon/ADR-043). No SQLAlchemy here: the worker forks before it is loaded, so the
JSON columns are named in :data:`JSON_COLUMNS`, which a test holds equal to
``statehub.cache.schema``.
"""

from __future__ import annotations

import json
from functools import cache
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["JSON_COLUMNS", "Batch", "encode"]

JSON_COLUMNS: dict[str, frozenset[str]] = {
    "repo": frozenset({"prefixes"}),
    "workplan": frozenset({"related", "extra"}),
    "task": frozenset({"depends_on", "extra"}),
    "canon": frozenset({"supersedes", "extra"}),
    "fleet_machine": frozenset({"extra"}),
    "fleet_workload": frozenset({"gate", "extra"}),
    "fleet_lane": frozenset({"via", "extra"}),
}
"""Each cache table's JSON columns (a table not named has none)."""

_dumps = json.JSONEncoder().encode


class Batch(NamedTuple):
    """One table's rows ready for ``executemany``."""

    table: str
    statement: str
    params: list[tuple[Any, ...]]


@cache
def _plan(table: str, columns: tuple[str, ...]) -> tuple[str, tuple[int, ...]]:
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    json_at = tuple(i for i, c in enumerate(columns) if c in JSON_COLUMNS.get(table, ()))
    return f'INSERT INTO "{table}" ({names}) VALUES ({marks})', json_at  # noqa: S608 - names from our schema


def encode(table: str, rows: Sequence[dict[str, Any]]) -> Batch:
    """``rows`` (dicts with the same keys, at least one) of ``table`` as an INSERT naming those
    columns and one tuple per row: a JSON column as its text (an empty list or dict as ``[]`` or
    ``{}``, None as SQL NULL, read back as None)."""
    columns = tuple(rows[0])
    statement, json_at = _plan(table, columns)
    get = itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
    if not json_at:
        return Batch(table, statement, [get(row) for row in rows])
    params = []
    for row in rows:
        values = list(get(row))
        for i in json_at:
            value = values[i]
            if value is None:
                continue  # a nullable JSON column: SQL NULL, read back as None
            values[i] = _dumps(value) if value else ("{}" if isinstance(value, dict) else "[]")
        params.append(tuple(values))
    return Batch(table, statement, params)
