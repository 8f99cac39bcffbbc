"""Bound what a request may carry before a handler sees it: body size, NUL bytes, odd characters.

Every client sends bigger and stranger input than expected (ADR-022). Rules,
on every HTTP request:

- **Body size.** A body over ``max_body_bytes`` (``STATEHUB_MAX_BODY_BYTES``,
  default 16 MiB) is refused with 413 naming the limit: at once when
  Content-Length says so, and while reading when the body is chunked (no
  Content-Length), so no body bigger than the limit is ever held in memory.
- **No control characters in the URL.** A path or query value holding a NUL
  byte or another control character (U+0000-U+001F, U+007F) is 400: no slug,
  id, path or filter of the hub holds one, and PostgreSQL text and git cannot.
- **No NUL or lone surrogate in a JSON body.** A JSON string with ``\\u0000``
  or an unpaired ``\\ud800``-``\\udfff`` escape is 400: neither can be written
  to a file, a commit, SQLite or PostgreSQL.
- **No JSON nested too deep to decode** (400, ``TOO_DEEP``): Python's JSON
  decoders give up with a RecursionError near 1,000 levels; the check here
  and the app's handler for RecursionError (statehub.app) answer 400, where
  it used to be a 500 on every route with a typed body.

A body bigger than ``_THREAD_ABOVE`` bytes is checked in a worker thread, so
a 16 MiB body never holds the event loop (ADR-022: nothing blocks it).

Refusals are JSON ``{"error", "status_code"}`` like every hub error.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPRequestEvent, Receive, ReceiveMessage, Scope, Send

from statehub.api.crosssite import refuse

__all__ = ["MAX_QUERY_INT", "TOO_DEEP", "inputbounds_middleware"]

MAX_QUERY_INT = 2**31 - 1
"""The largest whole number a query parameter (offset, wave) may hold: it fits every
database's integer, so ``2**64`` is a 400 from validation and never an overflow (ADR-022)."""

TOO_DEEP = (
    "the JSON body nests arrays or objects too deep to read (about 1,000 levels); no hub request "
    "nests more than a few"
)

_THREAD_ABOVE = 64 * 1024
"""Bodies bigger than this are checked off the event loop."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ODD_CHAR = re.compile("[\x00\ud800-\udfff]")
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89abcdefABCDEF])")


def _size(limit: int) -> str:
    mib = limit / (1024 * 1024)
    return f"{limit} bytes ({mib:g} MiB)" if mib >= 1 else f"{limit} bytes"


def too_large(limit: int) -> str:
    return (
        f"the request body is larger than this hub accepts: the limit is {_size(limit)} "
        "(STATEHUB_MAX_BODY_BYTES); send less a request, e.g. fewer events per batch"
    )


def _url_problem(scope: Scope) -> str | None:
    path: str = scope.get("path", "")
    if _CONTROL.search(path):
        return "the URL path holds a NUL byte or another control character; no hub name holds one"
    query: bytes = scope.get("query_string", b"")
    if query:
        pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True, errors="replace")
        for key, value in pairs:
            if _CONTROL.search(key) or _CONTROL.search(value):
                return f"the query parameter {key!r} holds a NUL byte or another control character"
    return None


def _odd_string(value: Any) -> bool:
    """Whether any string (key or value) in a parsed JSON value holds NUL or an unpaired surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _ODD_CHAR.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _body_problem(body: bytes) -> str | None:
    if not _SUSPECT_ESCAPE.search(body):
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None  # the handler says what is wrong with it
    except RecursionError:
        return TOO_DEEP
    if _odd_string(parsed):
        return (
            "a string in the body holds a NUL character (\\u0000) or an unpaired surrogate "
            "(\\ud800-\\udfff); neither can be stored"
        )
    return None


def inputbounds_middleware(max_body_bytes: int) -> Any:
    """The Litestar middleware factory enforcing the rules above with ``max_body_bytes``."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in (ScopeType.HTTP, ScopeType.WEBSOCKET):
                await app(scope, receive, send)
                return
            problem = _url_problem(scope)
            if problem is not None:
                await refuse(scope, receive, send, 400, problem)
                return
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            length = headers.get("content-length")
            if length is None and "transfer-encoding" not in headers:
                await app(scope, receive, send)
                return
            if length is not None:
                if not length.strip().isdigit():
                    await refuse(scope, receive, send, 400, f"Content-Length {length!r} is not a number")
                    return
                if int(length) > max_body_bytes:
                    await refuse(scope, receive, send, 413, too_large(max_body_bytes))
                    return
            chunks: list[bytes] = []
            total = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunk: bytes = message.get("body", b"")
                total += len(chunk)
                if total > max_body_bytes:
                    await refuse(scope, receive, send, 413, too_large(max_body_bytes))
                    return
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            if len(body) > _THREAD_ABOVE:
                problem = await asyncio.to_thread(_body_problem, body)
            else:
                problem = _body_problem(body)
            if problem is not None:
                await refuse(scope, receive, send, 400, problem)
                return
            await app(scope, _replay(body, receive), send)

        return middleware

    return factory


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the buffered body once, then whatever the client sends next."""
    sent = False

    async def replay() -> ReceiveMessage:
        nonlocal sent
        if not sent:
            sent = True
            first: HTTPRequestEvent = {"type": "http.request", "body": body, "more_body": False}
            return first
        return await receive()

    return replay
