"""The floor bench/stream.py compares the hub's change stream with: a bare Litestar SSE fan-out.

``POST /publish`` (a JSON body) puts one SSE frame into every subscriber's asyncio queue;
``GET /stream`` sends a subscriber its frames. No log, no filters, no tokens, no cache: what
any Litestar server must at least pay to fan one message out to N clients over loopback.

    .venv/bin/python bench/bare_stream_app.py PORT
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from typing import TYPE_CHECKING, Any

import uvicorn
from litestar import Litestar, get, post
from litestar.response import Stream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

SUBSCRIBERS: set[asyncio.Queue[bytes]] = set()
IDS = itertools.count(1)


@post("/publish", status_code=202)
async def publish(data: dict[str, Any]) -> dict[str, int]:
    import json

    ident = next(IDS)
    frame = f"id: {ident}\nevent: bench\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
    for queue in SUBSCRIBERS:
        queue.put_nowait(frame)
    return {"id": ident}


@get("/stream")
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


app = Litestar([publish, stream])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
