"""The floor bench/replicas.py compares hub replicas with: N processes of a bare Litestar app on one
PostgreSQL database, speaking the hub's two routes and nothing else.

* ``POST /events``: a JSON list of events (each with a ``key``) inserted in one transaction (a key
  already stored answers ``duplicate``), then one ``pg_notify`` with the accepted keys, committed
  with it; the answer is the hub's shape, ``{"results": [{"key", "result"}]}``, status 202.
* ``GET /events/stream``: SSE frames of every key any process notified, from one ``LISTEN``
  connection per process fanned out to that process's subscribers (asyncio queues).

No buffer file, no git, no cache, no tokens, no change log: what any set of replicas on one
PostgreSQL must at least pay to take a batch durably and tell every replica's subscribers.

    .venv/bin/python bench/bare_replica_app.py DATABASE_URL PORT

The bench creates the table (``bare_event``) before it starts the processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import queue
import sys
from typing import TYPE_CHECKING, Any

import psycopg
import uvicorn
from litestar import Litestar, get, post
from litestar.response import Stream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

DATABASE = (sys.argv[1] if len(sys.argv) > 1 else "").replace("+psycopg", "", 1)
CHANNEL = "bare_event"
SUBSCRIBERS: set[asyncio.Queue[bytes]] = set()
IDS = itertools.count(1)
_POOL: queue.Queue[psycopg.Connection[Any]] = queue.Queue()


@contextlib.contextmanager
def _db() -> Iterator[psycopg.Connection[Any]]:
    """A connection of this process's pool: one per request at once, reused by whichever worker
    thread runs the next request (opening one costs more than a batch's INSERT)."""
    try:
        db = _POOL.get_nowait()
    except queue.Empty:
        db = psycopg.connect(DATABASE)
    try:
        yield db
    finally:
        _POOL.put(db)


@post("/events", status_code=202, sync_to_thread=True)
def events(data: list[dict[str, Any]]) -> dict[str, Any]:
    with _db() as db, db.transaction():
        stored = {
            row[0]
            for row in db.execute(
                "INSERT INTO bare_event (key, body) SELECT * FROM unnest(%s::text[], %s::jsonb[]) "
                "ON CONFLICT DO NOTHING RETURNING key",
                ([e["key"] for e in data], [json.dumps(e) for e in data]),
            ).fetchall()
        }
        if stored:
            db.execute("SELECT pg_notify(%s, %s)", (CHANNEL, " ".join(sorted(stored))))
    return {
        "results": [
            {"key": e["key"], "result": "accepted" if e["key"] in stored else "duplicate"} for e in data
        ]
    }


@get("/events/stream")
async def stream() -> Stream:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    SUBSCRIBERS.add(queue)

    async def frames() -> AsyncIterator[bytes]:
        try:
            yield b": bare\n\n"
            while True:
                yield await queue.get()
        finally:
            SUBSCRIBERS.discard(queue)

    return Stream(frames(), media_type="text/event-stream")


async def _listen() -> None:
    async with await psycopg.AsyncConnection.connect(DATABASE, autocommit=True) as conn:
        await conn.execute(f"LISTEN {CHANNEL}")
        async for notice in conn.notifies():
            for key in notice.payload.split():
                ident = next(IDS)
                frame = f'id: {ident}\nevent: bench\ndata: {{"key":"{key}"}}\n\n'.encode()
                for queue in SUBSCRIBERS:
                    queue.put_nowait(frame)


@contextlib.asynccontextmanager
async def lifespan(_app: Litestar) -> AsyncIterator[None]:
    listener = asyncio.create_task(_listen())
    try:
        yield
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


app = Litestar([events, stream], lifespan=[lifespan])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
