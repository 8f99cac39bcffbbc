"""The bare claim server bench/claims.py compares the hub with: Litestar + sqlite3, the same decision
(one ``BEGIN IMMEDIATE`` transaction on a WAL file with ``synchronous=FULL``: read the task's lease,
write it), nothing else: no cache, no event, no git, no authorisation.

.venv/bin/python bench/bare_claims_app.py DB_FILE PORT
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from typing import Any

import uvicorn
from litestar import Litestar, Response, get, post

_local = threading.local()
DATABASE = sys.argv[1] if len(sys.argv) > 1 else ""


def _db() -> sqlite3.Connection:
    db: sqlite3.Connection | None = getattr(_local, "db", None)
    if db is None:
        db = sqlite3.connect(DATABASE, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        _local.db = db
    return db


@post("/tasks/{ref:str}/claim", sync_to_thread=True)
def claim(ref: str, data: dict[str, Any]) -> Response[dict[str, Any]]:
    db = _db()
    db.execute("BEGIN IMMEDIATE")
    try:
        held = db.execute("SELECT actor FROM lease WHERE ref = ?", (ref,)).fetchone()
        if held is not None:
            db.execute("COMMIT")
            return Response({"error": f"held by {held[0]}"}, status_code=409)
        expires = time.time() + float(data.get("lease_s", 900))
        db.execute(
            "INSERT INTO lease (ref, actor, expires_at) VALUES (?, ?, ?)", (ref, data["actor"], expires)
        )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return Response({"ref": ref, "actor": data["actor"], "lease_expires_at": expires}, status_code=200)


@get("/tasks", sync_to_thread=True)
def claimable(limit: int = 100) -> dict[str, Any]:
    db = _db()
    rows = db.execute(
        "SELECT ref FROM task WHERE ref NOT IN (SELECT ref FROM lease) ORDER BY ref LIMIT ?", (limit,)
    ).fetchall()
    total = db.execute("SELECT count(*) FROM task WHERE ref NOT IN (SELECT ref FROM lease)").fetchone()[0]
    return {"items": [{"ref": r[0]} for r in rows], "total": total}


app = Litestar(route_handlers=[claim, claimable])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
