"""Fixtures for room tests: a registered demo repo and a real hub server over it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from statehub.hub import Hub
from tests.hubserver import HubServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from statehub.settings import Settings
    from tests.gitfixtures import GitRepo

__all__ = ["MANIFEST", "demo", "room", "server"]

MANIFEST = '[repo]\nslug = "demo"\ntitle = "Demo"\nprefixes = ["DEMO"]\n'


@pytest.fixture
def demo(make_repo: Callable[[str], GitRepo], served_settings: Settings) -> GitRepo:
    repo = make_repo("demo")
    repo.write("statehub.toml", MANIFEST)
    repo.commit("start")
    with Hub(served_settings) as hub:
        hub.register(repo.root)
    return repo


@pytest.fixture
def server(demo: GitRepo, served_settings: Settings) -> Iterator[HubServer]:
    assert served_settings.config_dir.parent.name == "hub-home"
    with HubServer(served_settings.config_dir.parent) as running:
        yield running


def room(server: HubServer, user: str | None = None, doc: str = "demo/statehub.toml") -> str:
    return f"{server.ws_url}/sync/{doc}" + (f"?user={user}" if user else "")
