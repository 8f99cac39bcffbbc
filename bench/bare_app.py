"""The bare endpoint bench/query.py compares the hub with: Litestar + sqlite3, the same SQL, nothing else.

.venv/bin/python bench/bare_app.py CACHE_FILE PORT
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from typing import Any

import uvicorn
from litestar import Litestar, get

_local = threading.local()
DATABASE = sys.argv[1] if len(sys.argv) > 1 else ""

COLUMNS = "ref, workplan_id, task_id, repo, path, title, status, owner, depends_on, ready"
ORDER = "ORDER BY workplan_id, position"


def _db() -> sqlite3.Connection:
    db: sqlite3.Connection | None = getattr(_local, "db", None)
    if db is None:
        db = sqlite3.connect(DATABASE, check_same_thread=False)
        _local.db = db
    return db


def _item(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "ref": row[0],
        "workplan": row[1],
        "id": row[2],
        "repo": row[3],
        "path": row[4],
        "title": row[5],
        "status": row[6],
        "owner": row[7],
        "depends_on": json.loads(row[8]),
        "ready": bool(row[9]),
    }


@get("/tasks", sync_to_thread=False)
def tasks(
    status: str | None = None, owner: str | None = None, ready: bool | None = None, limit: int = 100
) -> dict[str, Any]:
    where, params = ["conflicted = 0"], []
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if owner is not None:
        where.append("owner = ?")
        params.append(owner)
    if ready is not None:
        where.append("ready = ?")
        params.append(int(ready))
    clause = " AND ".join(where)
    db = _db()
    total = db.execute(f"SELECT count(*) FROM task WHERE {clause}", params).fetchone()[0]  # noqa: S608 - constant column names and ? placeholders
    rows = db.execute(
        f"SELECT {COLUMNS} FROM task WHERE {clause} {ORDER} LIMIT ?",  # noqa: S608 - constant column names and ? placeholders
        [*params, limit],
    ).fetchall()
    return {"items": [_item(r) for r in rows], "total": total}


app = Litestar(route_handlers=[tasks])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
