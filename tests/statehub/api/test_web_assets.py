"""``GET /`` and ``/static/...`` (statehub.api.web): the built page, gzip when accepted, nothing else."""

from __future__ import annotations

import gzip
from typing import TYPE_CHECKING, Any

from statehub.api.web import STATIC_DIR

if TYPE_CHECKING:
    from litestar.testing import TestClient

    Client = TestClient[Any]


def test_the_page_is_sent_with_its_content_security_policy(client: Client) -> None:
    answer = client.get("/")
    assert answer.status_code == 200 and "/static/app.js" in answer.text
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "img-src 'self' data:" in policy
    assert "frame-ancestors 'none'" in policy
    assert "connect-src 'self';" in policy  # the editor's socket is same-origin (tests/browser/test_editor)


def test_assets_go_gzipped_to_who_accepts_it_and_plain_to_the_rest(client: Client) -> None:
    plain = (STATIC_DIR / "app.js").read_bytes()
    packed = client.get("/static/app.js", headers={"Accept-Encoding": "gzip, br"})
    assert packed.headers["content-encoding"] == "gzip"  # the client decodes it
    assert packed.content == plain
    assert packed.headers["vary"] == "Accept-Encoding" and packed.headers["cache-control"] == "no-cache"
    raw = client.get("/static/app.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers and raw.content == plain
    chunk = next((STATIC_DIR / "chunks").glob("editor-*.js")).name
    cached = client.get(f"/static/chunks/{chunk}")
    assert cached.status_code == 200 and "immutable" in cached.headers["cache-control"]
    assert len(gzip.compress(plain)) < len(plain) / 2


def test_nothing_outside_the_built_assets_is_served(client: Client) -> None:
    for name in ("../api/web.py", "..%2Fapi%2Fweb.py", "app.js.gz", ".hidden", "nope.js"):
        assert client.get(f"/static/{name}").status_code == 404, name


def test_text_assets_name_their_charset_once(client: Client) -> None:
    """Review: every text asset said ``text/html; charset=utf-8; charset=utf-8``."""
    for name, media in (
        ("/", "text/html"),
        ("/static/app.js", "text/javascript"),
        ("/static/style.css", "text/css"),
    ):
        assert client.get(name).headers["content-type"] == f"{media}; charset=utf-8", name
