"""``/schema`` renders the API in real Chromium with every request kept on the hub (no CDN)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.browser.chromium import OUTPUT
from tests.hubserver import HubServer

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with HubServer(tmp_path_factory.mktemp("schema") / "home") as running:
        yield running


def test_the_schema_page_renders_every_operation_offline(browser: Any, server: HubServer) -> None:
    elsewhere: list[str] = []

    def keep_local(route: Any) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1" or route.request.url.startswith("data:"):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page = browser.new_page()
    page.route("**/*", keep_local)
    page.goto(f"{server.url}/schema")
    page.wait_for_selector(".opblock", timeout=15000)
    shown = page.locator(".opblock").count()
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "schema.png"))
    page.close()
    operations = sum(
        1
        for methods in httpx.get(f"{server.url}/schema/openapi.json").json()["paths"].values()
        for method in methods
        if method in {"get", "put", "post", "delete", "patch"}
    )
    assert elsewhere == []
    assert shown == operations
