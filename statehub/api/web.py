"""``GET /``: the web UI (dashboard and collaborative manifest editor), built assets only.

The page and its assets are served without a token (``OPEN``): they are the UI's
code and hold no hub data, and a browser cannot add ``Authorization`` to a page
load. On a hub with tokens the page asks ``GET /auth/session`` and shows the
sign-in form until a session cookie stands for a token (ADR-040); every
answer it then shows comes from the API, limited to what that token allows.

The front end's sources are in ``web/``; ``make web`` rebuilds them into
``statehub/web/static/``, which is committed and shipped as package data, so
running a hub needs no Node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Controller, Response, get
from litestar.static_files import create_static_files_router

from statehub.auth import OPEN

__all__ = ["ROUTES", "STATIC_DIR", "WebController"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


class WebController(Controller):
    """The page; its assets are served by the static files router beside it (``ROUTES``)."""

    path = "/"
    include_in_schema = False

    @get("/", opt=OPEN, sync_to_thread=False)
    def index(self) -> Response[bytes]:
        page = STATIC_DIR / "index.html"
        if not page.is_file():
            return Response(
                b"The web UI is not built: run 'make web' (needs npm) in the State Hub source tree.",
                media_type="text/plain",
                status_code=503,
            )
        return Response(page.read_bytes(), media_type="text/html; charset=utf-8")


ROUTES: list[Any] = [
    WebController,
    create_static_files_router(path="/static", directories=[STATIC_DIR], include_in_schema=False, opt=OPEN),
]
