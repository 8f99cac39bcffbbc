"""Shared fixtures: an isolated hub home, real git repos, a hub and an API client over them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from statehub.app import create_app
from statehub.hub import Hub
from statehub.settings import Settings
from tests.gitfixtures import GitRepo


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings under a temp STATEHUB_HOME, so no test touches a person's real hub."""
    home = tmp_path / "hub-home"
    monkeypatch.setenv("STATEHUB_HOME", str(home))
    monkeypatch.delenv("STATEHUB_DATABASE_URL", raising=False)
    return Settings.from_env().with_overrides(watch=False)


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[[str], GitRepo]:
    def make(name: str) -> GitRepo:
        return GitRepo(tmp_path / "repos" / name)

    return make


@pytest.fixture
def hub(settings: Settings) -> Iterator[Hub]:
    opened = Hub(settings)
    yield opened
    opened.close()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(settings)) as test_client:
        yield test_client
