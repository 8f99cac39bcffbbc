"""``GET /`` and ``GET /static/...``: the web UI (ADR-041), built assets only.

The page and its assets are served without a token (``OPEN``): they are the UI's
code and hold no hub data, and a browser cannot add ``Authorization`` to a page
load. On a hub with tokens the page asks ``GET /auth/session`` and shows the
sign-in form until a session cookie stands for a token (ADR-040); every
answer it then shows comes from the API, limited to what that token allows.

The front end's sources are in ``web/``; ``make web`` rebuilds them into
``statehub/web/static/``, which is committed and shipped as package data, so
running a hub needs no Node. The build writes a gzip copy beside every text
asset (``app.js.gz``); a browser that accepts gzip gets it with
``Content-Encoding: gzip``. Chunks (``static/chunks/``, content-hashed names)
may be cached for good; everything else is revalidated on each load.
"""

from __future__ import annotations

import functools
from pathlib import Path, PurePosixPath
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.params import FromPath

from statehub.auth import OPEN
from statehub.errors import NotFound

__all__ = ["ROUTES", "STATIC_DIR", "WebController"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"

_TYPES = {  # Litestar adds "; charset=utf-8" to text types itself (naming it here sent it twice)
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
_FOREVER = "public, max-age=31536000, immutable"
_PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""The page's Content-Security-Policy: scripts only from the hub, so markup that slipped into rendered
Markdown still could not run one (DOMPurify is the first line, ADR-041). Styles may be inline:
CodeMirror and the presence chips set them. Images only from the hub: a repo's Markdown cannot make
every reader's browser fetch a URL of its choosing. Connections (fetch, the event stream, the
editor's WebSocket) only to the hub: CSP Level 3's 'self' covers ws:/wss: to the same host, so a
script that got in still could not open a socket elsewhere."""
_REVALIDATE = "no-cache"


@functools.lru_cache(maxsize=256)  # bounded: a client may ask for any number of names
def _asset(name: str, gzip: bool) -> bytes | None:
    """The bytes of ``static/<name>`` (its ``.gz`` copy with ``gzip``); None when there is none.

    ``name`` is a relative path of plain parts (no ``..``, no dot files); the files do not change
    while a hub runs (they are package data), so each is read once."""
    parts = PurePosixPath(name).parts
    if not parts or any(p in ("", ".", "..") or p.startswith(".") or "\\" in p for p in parts):
        return None
    path = STATIC_DIR.joinpath(*parts)
    if gzip:
        path = path.with_name(path.name + ".gz")
    try:
        if not path.resolve().is_relative_to(STATIC_DIR) or not path.is_file():
            return None
        return path.read_bytes()
    except OSError:
        return None


def _accepts_gzip(request: Request[Any, Any, Any]) -> bool:
    accepted = request.headers.get("accept-encoding", "")
    return any(part.split(";")[0].strip() == "gzip" for part in accepted.split(","))


class WebController(Controller):
    """The page and its assets."""

    path = "/"
    include_in_schema = False

    @get("/", opt=OPEN, sync_to_thread=False)
    def index(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        if _asset("index.html", False) is None:
            return Response(
                b"The web UI is not built: run 'make web' (needs npm) in the State Hub source tree.",
                media_type="text/plain",
                status_code=503,
            )
        return _send(request, "index.html")

    @get("/static/{name:path}", opt=OPEN, sync_to_thread=False)
    def static(self, request: Request[Any, Any, Any], name: FromPath[str]) -> Response[bytes]:
        """One built asset; 404 for anything else."""
        return _send(request, name.lstrip("/"))


def _send(request: Request[Any, Any, Any], name: str) -> Response[bytes]:
    plain = _asset(name, False)
    if plain is None or PurePosixPath(name).suffix not in _TYPES:
        raise NotFound(f"no web asset {name!r}")
    headers = {
        "Cache-Control": _FOREVER if name.startswith("chunks/") else _REVALIDATE,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    packed = _asset(name, True) if _accepts_gzip(request) else None
    if packed is not None:
        headers["Content-Encoding"] = "gzip"
    if name == "index.html":
        headers["Content-Security-Policy"] = _PAGE_POLICY
    media = _TYPES[PurePosixPath(name).suffix]
    return Response(packed if packed is not None else plain, media_type=media, headers=headers)


ROUTES: list[Any] = [WebController]
