"""The hub's own files are the owner's alone: a fresh home's dirs are 0700 and every durable
store (write buffer, relay queue, leases, change log, rooms, sessions) with its WAL is 0600."""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

from litestar.testing import TestClient

from statehub.app import create_app

if TYPE_CHECKING:
    from pathlib import Path

    from statehub.settings import Settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_fresh_home_keeps_its_stores_private(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/state/health").status_code == 200
        stores = sorted(settings.data_dir.rglob("*.sqlite3*"))
        names = {path.name.split(".sqlite3")[0] for path in stores}
        assert {"buffer", "changes", "rooms"} <= names, names
        for directory in (settings.config_dir, settings.data_dir, settings.cache_dir):
            assert _mode(directory) == 0o700, directory
        for path in stores:
            assert _mode(path) & 0o077 == 0, (path, oct(_mode(path)))


def test_a_store_with_loose_modes_is_tightened_on_open(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, mode=0o755)
    loose = settings.data_dir / "changes.sqlite3"
    loose.touch(mode=0o644)
    loose.chmod(0o644)
    with TestClient(create_app(settings)) as client:
        assert client.get("/state/health").status_code == 200
        assert _mode(loose) == 0o600
        assert _mode(settings.data_dir) == 0o755  # a dir the person made keeps its mode
