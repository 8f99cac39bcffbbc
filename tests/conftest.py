"""Shared fixtures: an isolated hub home, real git repos, a hub and an API client over them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from litestar.testing import TestClient

from statehub.app import create_app
from statehub.hub import Hub
from statehub.settings import Settings
from tests.gitfixtures import GitRepo

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytest_plugins = ["tests.backends"]
"""``--backends``: every test using ``settings`` runs on SQLite and on PostgreSQL (tests/backends.py)."""

BROWSER_DIR = Path(__file__).resolve().parent / "browser"
POSTGRES_PARAMS = frozenset({"postgres", "postgresql"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the slow tiers (registered in pyproject.toml; ``make test-fast`` leaves them out).

    - ``browser``: everything under tests/browser (Playwright driving chromium);
    - ``postgres``: the ``[postgres]`` runs of backend-parametrised tests, and any test
      that asks for the PostgreSQL admin connection;
    - ``node``: tests that ask for the ``node_modules`` fixture (npm yjs + y-websocket under node).
    """
    for item in items:
        if BROWSER_DIR in item.path.parents:
            item.add_marker(pytest.mark.browser)
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        if "postgres_admin" in fixtures or any(
            isinstance(value, str) and value in POSTGRES_PARAMS for value in params
        ):
            item.add_marker(pytest.mark.postgres)
        if "node_modules" in fixtures:
            item.add_marker(pytest.mark.node)


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
def state_in_cache_database(cache_backend: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The durable stores (write buffer, leases, relay queue, rooms, sessions) in the state schema of
    the ``[postgres]`` test's cache database, as a fleet hub keeps them (canon/ADR-046, ADR-049);
    files on ``[sqlite]``. Use with ``pytest.mark.usefixtures`` (before ``settings`` is built)."""
    monkeypatch.setenv("STATEHUB_STATE_URL", cache_backend or "files")


@pytest.fixture
def served_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings for a hub served by a child process (tests/hubserver.py): not run per backend.

    The child reads only STATEHUB_HOME and runs the embedded SQLite cache, so a
    ``[postgres]`` run of a server test would repeat the ``[sqlite]`` one.
    """
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
    with Hub(settings) as opened:
        yield opened


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:  # type: ignore[type-arg]
    with TestClient(create_app(settings)) as test_client:
        yield test_client
