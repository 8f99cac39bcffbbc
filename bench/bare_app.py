"""The bare endpoint bench/query.py compares the hub with: Litestar, one driver, the same SQL, nothing else.

.venv/bin/python bench/bare_app.py DATABASE PORT

DATABASE is a SQLite cache file (read with sqlite3) or a PostgreSQL URL (read with
psycopg 3: one autocommit connection per thread, the count and the page as two
statements, no pool, no ORM). Either way the answer is the hub's ``/tasks`` page.
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
POSTGRES = DATABASE.startswith(("postgresql", "postgres"))

COLUMNS = "ref, workplan_id, task_id, repo, path, title, status, owner, depends_on, ready"
ORDER = "ORDER BY workplan_id, position"
MARK = "%s" if POSTGRES else "?"
FALSE = "false" if POSTGRES else "0"


def _db() -> Any:
    db = getattr(_local, "db", None)
    if db is None:
        if POSTGRES:
            import psycopg

            # libpq takes postgresql:// URLs; SQLAlchemy's driver suffix is not part of them.
            db = psycopg.connect(DATABASE.replace("+psycopg", "", 1), autocommit=True)
        else:
            db = sqlite3.connect(DATABASE, check_same_thread=False)
        _local.db = db
    return db


def _item(row: tuple[Any, ...]) -> dict[str, Any]:
    depends_on = row[8]
    return {
        "ref": row[0],
        "workplan": row[1],
        "id": row[2],
        "repo": row[3],
        "path": row[4],
        "title": row[5],
        "status": row[6],
        "owner": row[7],
        # psycopg decodes a json column itself; sqlite3 hands back its text.
        "depends_on": depends_on if POSTGRES else json.loads(depends_on),
        "ready": bool(row[9]),
    }


@get("/tasks", sync_to_thread=False)
def tasks(
    status: str | None = None, owner: str | None = None, ready: bool | None = None, limit: int = 100
) -> dict[str, Any]:
    where = [f"conflicted = {FALSE}"]
    params: list[Any] = []
    if status is not None:
        where.append(f"status = {MARK}")
        params.append(status)
    if owner is not None:
        where.append(f"owner = {MARK}")
        params.append(owner)
    if ready is not None:
        where.append(f"ready = {MARK}")
        params.append(ready if POSTGRES else int(ready))
    clause = " AND ".join(where)
    db = _db()
    total = db.execute(f"SELECT count(*) FROM task WHERE {clause}", params).fetchone()[0]  # noqa: S608 - constant column names and placeholders
    rows = db.execute(
        f"SELECT {COLUMNS} FROM task WHERE {clause} {ORDER} LIMIT {MARK}",  # noqa: S608 - constant column names and placeholders
        [*params, limit],
    ).fetchall()
    return {"items": [_item(r) for r in rows], "total": total}


app = Litestar(route_handlers=[tasks])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
