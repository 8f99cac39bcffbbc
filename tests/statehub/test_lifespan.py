"""The app's lifespan: every resource closes when the app stops, and when a later one fails to open.

Resources open in order (the hub's cache, the rooms and their store, the file
watcher, the event desk and its write buffer, the applier thread, the relay)
and close newest first through one ``AsyncExitStack``. The failures here are
real ones: a durable store written by a newer State Hub (a downgrade) is
refused (StoreTooNew). "Closed" is read from outside: an SQLite file in WAL
mode loses its ``-wal`` file when its last connection closes, a thread ends, a
task is done.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import TYPE_CHECKING

import pytest

from statehub.app import create_app
from statehub.collab import ROOM_STORE_FILE
from statehub.events.service import buffer_path
from statehub.settings import Settings
from sync.errors import StoreTooNew

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A hub home of its own, SQLite cache, watching files (so the watcher's task runs too)."""
    return Settings.from_env({"STATEHUB_HOME": str(tmp_path / "hub-home")}).with_overrides(watch=True)


def _wal_files(settings: Settings) -> list[str]:
    """The ``-wal`` files of the hub's SQLite files: one exists while a connection to its file is open."""
    found = [*settings.data_dir.glob("*-wal"), *settings.cache_dir.glob("*-wal")]
    return sorted(path.name for path in found)


def _from_a_newer_hub(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    db.close()


def _hub_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("statehub-")}


async def _run(settings: Settings) -> tuple[set[str], list[str]]:
    """Start the app and stop it; the hub's threads and WAL files while it ran."""
    app = create_app(settings)
    async with app.lifespan():
        return _hub_threads(), _wal_files(settings)


def _left_running() -> set[asyncio.Task[object]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


def test_stopping_the_app_closes_every_resource(settings: Settings) -> None:
    async def scenario() -> None:
        threads, wal = await _run(settings)
        assert "statehub-applier" in threads
        assert {"cache.sqlite3-wal", "buffer.sqlite3-wal", f"{ROOM_STORE_FILE}-wal"} <= set(wal)
        assert _left_running() == set()

    asyncio.run(scenario())
    assert _hub_threads() == set()
    assert _wal_files(settings) == []


def _room_store(settings: Settings) -> Path:
    return settings.data_dir / ROOM_STORE_FILE


@pytest.mark.parametrize(
    "newer",
    [
        pytest.param(buffer_path, id="write-buffer, after the cache, the rooms and the watcher"),
        pytest.param(_room_store, id="room-store, after the cache"),
    ],
)
def test_a_resource_that_fails_to_open_closes_those_opened_before_it(
    settings: Settings, newer: Callable[[Settings], Path]
) -> None:
    async def scenario() -> None:
        await _run(settings)  # every file exists, as on a hub that ran before
        store = newer(settings)
        _from_a_newer_hub(store)
        app = create_app(settings)
        refused: list[Path] = []
        try:
            async with app.lifespan():
                pytest.fail("the app started over a store from a newer State Hub")
        except* StoreTooNew as group:  # Litestar's lifespan runs in a task group: it may wrap the error
            refused = [error.path for error in group.exceptions if isinstance(error, StoreTooNew)]
        assert refused == [store]
        # Closed, newest first: no task of the rooms or the watcher is left, no SQLite file held open.
        assert _left_running() == set()
        assert _wal_files(settings) == []

    asyncio.run(scenario())
    assert _hub_threads() == set()
