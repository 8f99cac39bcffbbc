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

pytest_plugins = ["tests.backends"]
"""``--backends``: every test using ``settings`` runs on SQLite and on PostgreSQL (tests/backends.py)."""


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache_backend: str | None) -> Settings:
    """Settings under a temp STATEHUB_HOME, so no test touches a person's real hub.

    Parametrised over the cache backends: the CLI run in-process sees the same
    database through STATEHUB_DATABASE_URL.
    """
    home = tmp_path / "hub-home"
    monkeypatch.setenv("STATEHUB_HOME", str(home))
    if cache_backend is None:
        monkeypatch.delenv("STATEHUB_DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("STATEHUB_DATABASE_URL", cache_backend)
    for name in (
        "STATEHUB_PROFILE",
        "STATEHUB_AUTH",
        "STATEHUB_TOKEN_PUBLIC_KEY",
        "STATEHUB_TOKEN_ROOT_KEY_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    # Litestar's TestClient sends Host: testserver.local; the hub answers configured names only.
    monkeypatch.setenv("STATEHUB_ALLOWED_HOSTS", "testserver.local")
    return Settings.from_env().with_overrides(watch=False)


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[[str], GitRepo]:
    def make(name: str) -> GitRepo:
        return GitRepo(tmp_path / "repos" / name)

    return make


@pytest.fixture
def hub(settings: Settings) -> Iterator[Hub]:
    with Hub(settings) as opened:
        yield opened


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(settings)) as test_client:
        yield test_client
