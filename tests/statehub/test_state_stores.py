"""Where the hub keeps its durable stores (canon/ADR-046): files on a dev hub, the PostgreSQL state
schema on a fleet hub on PostgreSQL, where two replicas share them; a rooms file moves in once."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import httpx
import pytest

from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.tokens import mint
from statehub.settings import Settings
from statehub.state_stores import MOVED_SUFFIX, ROOM_STORE_FILE, open_room_store, state_location
from sync._durable_pg import PgState
from sync.room_store import RoomStore
from sync.seed import seed_doc
from tests.hubserver import HubServer

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def home_settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"STATEHUB_HOME": str(tmp_path / "home")})


def test_a_dev_hub_keeps_its_stores_in_files(home_settings: Settings) -> None:
    assert state_location(home_settings, "sessions.sqlite3") == home_settings.data_dir / "sessions.sqlite3"
    with open_room_store(home_settings) as store:
        assert store.where == str(home_settings.data_dir / ROOM_STORE_FILE)


@pytest.mark.postgres
def test_a_rooms_file_moves_into_the_state_schema_once(
    home_settings: Settings, postgres_database: str
) -> None:
    """Drafts left in rooms.sqlite3 when a hub moves to PostgreSQL are copied, not lost; a lineage the
    schema already holds is kept; the file is renamed, never deleted, and not read again."""
    settings = home_settings.with_overrides(state_url=postgres_database)
    path = settings.data_dir / ROOM_STORE_FILE
    with RoomStore(path) as old:
        old.begin("a/statehub.toml", "a\n", seed_doc("a\n"))
        old.credit("a/statehub.toml", "Ada", None)
        old.begin("b/statehub.toml", "old b\n", seed_doc("old b\n"))
        draft = old.load("a/statehub.toml")
    with RoomStore(PgState(postgres_database)) as other_replica:
        other_replica.begin("b/statehub.toml", "new b\n", seed_doc("new b\n"))
    with open_room_store(settings) as store:
        assert store.docs() == ["a/statehub.toml", "b/statehub.toml"]
        assert store.load("a/statehub.toml") == draft and store.editors("a/statehub.toml") == [("Ada", None)]
        loaded = store.load("b/statehub.toml")
        assert loaded is not None and loaded.seed_text == "new b\n"
    assert not path.exists()
    moved = path.with_name(path.name + MOVED_SUFFIX)
    with RoomStore(moved) as kept:  # the old file, whole
        assert kept.docs() == ["a/statehub.toml", "b/statehub.toml"]
    with open_room_store(settings) as store:
        store.forget("a/statehub.toml")
    with open_room_store(settings) as store:  # the renamed file is not read again
        assert store.docs() == ["b/statehub.toml"]


@pytest.mark.postgres
def test_two_fleet_replicas_on_one_postgresql_share_browser_sessions(
    tmp_path: Path, postgres_database: str
) -> None:
    """Two ``statehub serve --profile fleet`` processes on one PostgreSQL (cache and state): a
    session begun on one reads on the other, and a sign-out on the other ends it on both."""
    homes = [tmp_path / "one", tmp_path / "two"]
    init_root_key(homes[0] / "data" / "token-root.key")
    (homes[1] / "data").mkdir(parents=True)
    shutil.copy(homes[0] / "data" / "token-root.key", homes[1] / "data" / "token-root.key")
    root = load_root_key(homes[0] / "data" / "token-root.key")
    env = {"STATEHUB_PROFILE": "fleet", "STATEHUB_DATABASE_URL": postgres_database}
    with HubServer(homes[0], env=env) as one, HubServer(homes[1], env=env) as two:
        token = mint(root, "ada", "read").to_base64()
        answer = httpx.post(f"{one.url}/auth/session", json={"token": token}, timeout=30)
        assert answer.status_code == 201, answer.text
        cookie = answer.headers["set-cookie"].split(";")[0]
        for replica in (one, two):
            read = httpx.get(f"{replica.url}/repos", headers={"Cookie": cookie}, timeout=30)
            assert read.status_code == 200, read.text
        csrf = answer.json()["csrf_token"]
        ended = httpx.delete(
            f"{two.url}/auth/session",
            headers={"Cookie": cookie, "X-StateHub-CSRF": csrf, "Origin": two.url},
            timeout=30,
        )
        assert ended.status_code in (200, 204), ended.text
        for replica in (one, two):
            read = httpx.get(f"{replica.url}/repos", headers={"Cookie": cookie}, timeout=30)
            assert read.status_code == 401, read.text
    assert not (homes[0] / "data" / "sessions.sqlite3").exists()
