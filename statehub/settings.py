"""Where the hub keeps things, from platformdirs, each overridable.

``STATEHUB_HOME=DIR`` puts config, data and cache under one directory, which is
how tests and isolated runs keep away from a person's real hub.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import platformdirs

__all__ = ["PROFILES", "Settings"]

APP_NAME = "statehub"
PROFILES = ("dev", "fleet")


@dataclass(frozen=True, slots=True)
class Settings:
    config_dir: Path
    data_dir: Path
    cache_dir: Path
    database_url: str
    profile: str = "dev"
    host: str = "127.0.0.1"
    port: int = 8750
    watch: bool = True

    @property
    def hub_file(self) -> Path:
        """The list of registered repos: the truth the cache is rebuilt from."""
        return self.config_dir / "hub.toml"

    @property
    def default_cache_file(self) -> Path:
        return self.cache_dir / "cache.sqlite3"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = env.get("STATEHUB_HOME")
        if home:
            base = Path(home).expanduser().resolve()
            config, data, cache = base / "config", base / "data", base / "cache"
        else:
            config = Path(platformdirs.user_config_dir(APP_NAME))
            data = Path(platformdirs.user_data_dir(APP_NAME))
            cache = Path(platformdirs.user_cache_dir(APP_NAME))
        config = Path(env.get("STATEHUB_CONFIG_DIR", config))
        data = Path(env.get("STATEHUB_DATA_DIR", data))
        cache = Path(env.get("STATEHUB_CACHE_DIR", cache))
        url = env.get("STATEHUB_DATABASE_URL") or f"sqlite:///{cache / 'cache.sqlite3'}"
        profile = env.get("STATEHUB_PROFILE", "dev")
        if profile not in PROFILES:
            raise ValueError(f"STATEHUB_PROFILE={profile!r}: valid profiles are {', '.join(PROFILES)}")
        return cls(
            config_dir=config,
            data_dir=data,
            cache_dir=cache,
            database_url=url,
            profile=profile,
            host=env.get("STATEHUB_HOST", "127.0.0.1"),
            port=_port(env.get("STATEHUB_PORT", "8750")),
            watch=env.get("STATEHUB_WATCH", "1") not in ("0", "false", "no"),
        )

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def ensure_dirs(self) -> None:
        for directory in (self.config_dir, self.data_dir, self.cache_dir):
            directory.mkdir(parents=True, exist_ok=True)


def _port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"STATEHUB_PORT={value!r} must be a port number from 1 to 65535")
    return int(value)
