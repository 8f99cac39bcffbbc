"""Settings: platformdirs by default, STATEHUB_HOME for isolation, each directory overridable."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest

from statehub.settings import Settings


def test_defaults_come_from_platformdirs() -> None:
    settings = Settings.from_env({})
    assert settings.config_dir == Path(platformdirs.user_config_dir("statehub"))
    assert settings.data_dir == Path(platformdirs.user_data_dir("statehub"))
    assert settings.cache_dir == Path(platformdirs.user_cache_dir("statehub"))
    assert settings.database_url == f"sqlite:///{settings.cache_dir / 'cache.sqlite3'}"
    assert (settings.profile, settings.host, settings.port, settings.watch) == (
        "dev",
        "127.0.0.1",
        8750,
        True,
    )


def test_statehub_home_puts_everything_under_one_directory(tmp_path: Path) -> None:
    settings = Settings.from_env({"STATEHUB_HOME": str(tmp_path)})
    assert (settings.config_dir, settings.data_dir, settings.cache_dir) == (
        tmp_path / "config",
        tmp_path / "data",
        tmp_path / "cache",
    )
    assert settings.hub_file == tmp_path / "config" / "hub.toml"
    assert settings.database_url == f"sqlite:///{tmp_path / 'cache' / 'cache.sqlite3'}"


def test_each_directory_and_the_database_can_be_overridden(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "STATEHUB_HOME": str(tmp_path / "home"),
            "STATEHUB_CONFIG_DIR": str(tmp_path / "etc"),
            "STATEHUB_DATA_DIR": str(tmp_path / "var"),
            "STATEHUB_CACHE_DIR": str(tmp_path / "tmp"),
            "STATEHUB_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/statehub",
            "STATEHUB_PROFILE": "fleet",
            "STATEHUB_HOST": "0.0.0.0",
            "STATEHUB_PORT": "9000",
            "STATEHUB_WATCH": "0",
        }
    )
    assert (settings.config_dir, settings.data_dir, settings.cache_dir) == (
        tmp_path / "etc",
        tmp_path / "var",
        tmp_path / "tmp",
    )
    assert settings.database_url == "postgresql+psycopg://postgres@127.0.0.1:5432/statehub"
    assert (settings.profile, settings.host, settings.port, settings.watch) == (
        "fleet",
        "0.0.0.0",
        9000,
        False,
    )


def test_overrides_return_new_settings(tmp_path: Path) -> None:
    settings = Settings.from_env({"STATEHUB_HOME": str(tmp_path)})
    changed = settings.with_overrides(port=8999, watch=False)
    assert (changed.port, changed.watch, settings.port) == (8999, False, 8750)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STATEHUB_PROFILE": "laptop"}, "STATEHUB_PROFILE='laptop': valid profiles are dev, fleet"),
        ({"STATEHUB_PORT": "http"}, "STATEHUB_PORT='http' must be a port number"),
        ({"STATEHUB_LEADER_RETRY": "0"}, "STATEHUB_LEADER_RETRY='0': give seconds from 0.1 to 60"),
        ({"STATEHUB_LEADER_RETRY": "soon"}, "STATEHUB_LEADER_RETRY='soon': give seconds"),
        ({"STATEHUB_PG_DEAD_PEER": "5"}, "STATEHUB_PG_DEAD_PEER='5': give seconds from 10 to 3600"),
        ({"STATEHUB_PG_DEAD_PEER": "a minute"}, "STATEHUB_PG_DEAD_PEER='a minute': give seconds"),
        ({"STATEHUB_PG_DEAD_PEER": "7200"}, "STATEHUB_PG_DEAD_PEER='7200': give seconds"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_the_leader_retry_defaults_to_two_seconds(tmp_path: Path) -> None:
    assert Settings.from_env({"STATEHUB_HOME": str(tmp_path)}).leader_retry_s == 2.0
    given = Settings.from_env({"STATEHUB_HOME": str(tmp_path), "STATEHUB_LEADER_RETRY": "0.5"})
    assert given.leader_retry_s == 0.5


def test_the_dead_peer_window_defaults_to_a_minute(tmp_path: Path) -> None:
    assert Settings.from_env({"STATEHUB_HOME": str(tmp_path)}).pg_dead_peer_s == 60.0
    given = Settings.from_env({"STATEHUB_HOME": str(tmp_path), "STATEHUB_PG_DEAD_PEER": "30"})
    assert given.pg_dead_peer_s == 30.0


def test_ensure_dirs_creates_them(tmp_path: Path) -> None:
    settings = Settings.from_env({"STATEHUB_HOME": str(tmp_path / "h")})
    settings.ensure_dirs()
    assert all(d.is_dir() for d in (settings.config_dir, settings.data_dir, settings.cache_dir))


def test_the_durable_state_follows_a_fleet_hubs_postgresql_cache_unless_told(tmp_path: Path) -> None:
    """canon/ADR-046: the state schema lives in the cache's database on a fleet hub on PostgreSQL;
    a dev hub, or a SQLite cache, keeps its files; STATEHUB_STATE_URL says otherwise."""
    pg = "postgresql+psycopg://statehub@db.example:5432/statehub"
    home = {"STATEHUB_HOME": str(tmp_path)}
    fleet = {**home, "STATEHUB_PROFILE": "fleet"}
    assert Settings.from_env({**fleet, "STATEHUB_DATABASE_URL": pg}).state_url == pg
    assert Settings.from_env({**fleet}).state_url is None  # the SQLite cache
    assert Settings.from_env({**home, "STATEHUB_DATABASE_URL": pg}).state_url is None  # the dev profile
    files = {**fleet, "STATEHUB_DATABASE_URL": pg, "STATEHUB_STATE_URL": "files"}
    assert Settings.from_env(files).state_url is None
    other = "postgresql://statehub@state.example/state"
    assert Settings.from_env({**home, "STATEHUB_STATE_URL": other}).state_url == other
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    with_password = {**home, "STATEHUB_STATE_URL": other, "STATEHUB_DATABASE_PASSWORD_FILE": str(secret)}
    assert Settings.from_env(with_password).state_url == "postgresql://statehub:s3cret@state.example/state"
    with pytest.raises(ValueError, match="STATEHUB_STATE_URL='sqlite:///x': give a postgresql:// URL"):
        Settings.from_env({**home, "STATEHUB_STATE_URL": "sqlite:///x"})


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        (
            "postgres+psycopg://statehub:s3cret@db.example:5432/state",
            "postgres+psycopg://***@db.example:5432/state",
        ),
        ("mysql://root:s3cret@db.example/state", "mysql://***@db.example/state"),
        ("postgresql//statehub:s3cret@db.example/state", "'***@db.example/state'"),
    ],
)
def test_a_refused_state_url_never_shows_its_password(tmp_path: Path, given: str, shown: str) -> None:
    """review16a: a mistyped STATEHUB_STATE_URL is refused naming what was given, its password hidden."""
    with pytest.raises(ValueError, match="give a postgresql:// URL") as refused:
        Settings.from_env({"STATEHUB_HOME": str(tmp_path), "STATEHUB_STATE_URL": given})
    assert "s3cret" not in str(refused.value)
    assert shown in str(refused.value)


@pytest.mark.parametrize(
    ("profile", "given", "expected"),
    [
        ("dev", "", False),
        ("fleet", "", True),
        ("dev", "on", True),
        ("fleet", "off", False),
        ("fleet", "0", False),
    ],
)
def test_forge_sync_follows_the_profile_unless_told(
    tmp_path: Path, profile: str, given: str, expected: bool
) -> None:
    env = {"STATEHUB_HOME": str(tmp_path), "STATEHUB_PROFILE": profile}
    if given:
        env["STATEHUB_FORGE_SYNC"] = given
    settings = Settings.from_env(env)
    assert settings.syncs_with_forge is expected
    assert settings.forge_timeout_s == 30.0
    assert Settings.from_env(env | {"STATEHUB_FORGE_TIMEOUT": "2.5"}).forge_timeout_s == 2.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STATEHUB_FORGE_SYNC", "sometimes"),
        ("STATEHUB_FORGE_TIMEOUT", "0"),
        ("STATEHUB_FORGE_TIMEOUT", "soon"),
    ],
)
def test_bad_forge_settings_are_named(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({"STATEHUB_HOME": str(tmp_path), name: value})
