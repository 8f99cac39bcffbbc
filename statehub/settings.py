"""Where the hub keeps things, from platformdirs, each overridable.

``STATEHUB_HOME=DIR`` puts config, data and cache under one directory, which is
how tests and isolated runs keep away from a person's real hub.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from statehub.repofiles import FileLimits

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "AUTH_MODES",
    "DEFAULT_FORGE_TIMEOUT_S",
    "DEFAULT_MAX_BODY_BYTES",
    "FLEET_SWEEP_INTERVAL_S",
    "PROFILES",
    "Settings",
    "default_actor",
    "sqlite_path",
    "sqlite_url",
]

APP_NAME = "statehub"
PROFILES = ("dev", "fleet")
AUTH_MODES = ("required", "open")
FLEET_SWEEP_INTERVAL_S = 900.0

DEFAULT_FORGE_TIMEOUT_S = 30.0
"""Seconds a write-back's fetch or push may take by default: the repo's applier lock is held
meanwhile, so a forge that hangs must not hold every write to the repo for the sweep's 300 s."""
"""The fleet profile sweeps every registered repo every 15 minutes unless told otherwise."""
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
"""16 MiB: a relay batch of 1000 events of a few KB each fits many times over."""


@dataclass(frozen=True, slots=True)
class Settings:
    config_dir: Path
    data_dir: Path
    cache_dir: Path
    database_url: str
    profile: str = "dev"
    state_url: str | None = None
    """The PostgreSQL database whose schema ``statehub_state`` holds the durable stores ported to it
    (rooms, sessions; canon/ADR-046), or None: SQLite files in the data dir. ``STATEHUB_STATE_URL``;
    by default the cache's database when the profile is fleet and the cache is on PostgreSQL."""
    host: str = "127.0.0.1"
    port: int = 8750
    watch: bool = True
    upstream: str | None = None
    """The hub this one relays its accepted events to (ADR-018); None: no relay."""
    upstream_token: str | None = None
    upstream_token_file: Path | None = None
    """Read again before every relay attempt, so replacing it resumes a paused relay."""
    relay_backoff_cap: float = 60.0
    relay_batch: int = 1000
    auth: str | None = None
    """'required', 'open', or None for the profile's default (statehub.auth.policy)."""
    token_public_key: str | None = None
    """The root public key tokens are verified with (``ed25519/<hex>``)."""
    token_root_key_file: Path | None = None
    """The root private key file; None means ``<data dir>/token-root.key``."""
    file_limits: FileLimits = field(default_factory=FileLimits)
    """Bytes per kind of repo file and tasks per workplan (ADR-022; ``STATEHUB_MAX_*``)."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names answered besides 127.0.0.1, localhost, [::1] and ``host`` (ADR-022); ``*``: any."""
    allowed_origins: tuple[str, ...] = ()
    """Origins (``https://editor.example``) besides the hub's own that may change state (ADR-022)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """The largest request body the hub reads; a bigger one is refused with 413 (ADR-022)."""
    stream_keep: int = 100_000
    """Messages the change log keeps at most (``STATEHUB_STREAM_KEEP``, canon/ADR-038)."""
    stream_keep_days: float = 7.0
    """Days the change log keeps a message at most (``STATEHUB_STREAM_KEEP_DAYS``)."""
    stream_keepalive_s: float = 15.0
    """Seconds of silence after which ``GET /events/stream`` sends a keepalive comment
    (``STATEHUB_STREAM_KEEPALIVE``)."""
    stream_queue: int = 1000
    """Messages waiting for one subscriber at most; one more and it is dropped (``STATEHUB_STREAM_QUEUE``)."""
    stream_subscribers: int = 1000
    """Stream subscribers at once at most; one more is refused with 503 (``STATEHUB_STREAM_SUBSCRIBERS``)."""
    stream_per_actor: int = 100
    """Streams one token's actor may hold open at once; one more is refused with 503
    (``STATEHUB_STREAM_PER_ACTOR``): a token holder cannot take every slot of ``stream_subscribers``."""
    stream_poll_s: float = 0.5
    """Seconds between two looks for messages another process (a CLI command) appended."""
    sweep_interval_s: float | None = None
    """Seconds between scheduled sweeps of every registered repo (``STATEHUB_SWEEP_INTERVAL``, each
    wait jittered by up to 10%); 0: no schedule; None: the profile's default (:attr:`sweep_every`)."""
    forge_sync: bool | None = None
    """Whether write-back meets the other replicas at the forge: per repo whose branch has a remote,
    fetch and integrate before applying, push after committing (``STATEHUB_FORGE_SYNC``,
    ``statehub.events.forge``, canon/ADR-053); None: the profile's default (:attr:`syncs_with_forge`)."""
    forge_timeout_s: float = DEFAULT_FORGE_TIMEOUT_S
    """Seconds a write-back's fetch or push may take before it is stopped (``STATEHUB_FORGE_TIMEOUT``)."""
    leader_retry_s: float = 2.0
    """Seconds between a replica's tries for the leader's advisory lock, and between the leader's
    checks that it still holds it (``STATEHUB_LEADER_RETRY``, 0.1 to 60; canon/ADR-052). Only a hub
    whose state is on PostgreSQL elects a leader; on files the one process always leads."""
    pg_dead_peer_s: float = 60.0
    """Seconds after which a PostgreSQL connection of the state stores whose other end stopped
    answering (a host that lost power) is given up, by the server too, which then frees the
    session's advisory locks: a room's save lock, the applier's (``STATEHUB_PG_DEAD_PEER``, 10 to
    3600; TCP keepalives and ``tcp_user_timeout``, canon/ADR-051)."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses of proxies whose ``X-Forwarded-Proto`` / ``-For`` the hub believes (ADR-040): a
    session cookie is ``Secure`` when the request came over TLS, to the hub or to such a proxy.
    Empty: forwarded headers are ignored."""

    @property
    def sweep_every(self) -> float | None:
        """Seconds between scheduled sweeps, None when off: the setting, else every 15 minutes on
        the fleet profile and never on the dev profile (a laptop's hub sweeps when asked)."""
        if self.sweep_interval_s is None:
            return FLEET_SWEEP_INTERVAL_S if self.profile == "fleet" else None
        return self.sweep_interval_s or None

    @property
    def syncs_with_forge(self) -> bool:
        """Whether write-back fetches before and pushes after applying: the setting, else on for
        the fleet profile (replicas on several hosts meet at the forge) and off for dev (a laptop's
        hub pushes when a person or a sweep says so)."""
        if self.forge_sync is None:
            return self.profile == "fleet"
        return self.forge_sync

    @property
    def hub_file(self) -> Path:
        """The list of registered repos: the truth the cache is rebuilt from."""
        return self.config_dir / "hub.toml"

    @property
    def root_key_file(self) -> Path:
        """Where ``statehub token init`` writes the root private key (mode 0600)."""
        return self.token_root_key_file or self.data_dir / "token-root.key"

    @property
    def revocation_file(self) -> Path:
        """Revoked token ids, one a line; the hub reloads it when it changes."""
        return self.config_dir / "revoked-tokens.txt"

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
            import platformdirs

            config = Path(platformdirs.user_config_dir(APP_NAME))
            data = Path(platformdirs.user_data_dir(APP_NAME))
            cache = Path(platformdirs.user_cache_dir(APP_NAME))
        config = Path(env.get("STATEHUB_CONFIG_DIR", config))
        data = Path(env.get("STATEHUB_DATA_DIR", data))
        cache = Path(env.get("STATEHUB_CACHE_DIR", cache))
        url = env.get("STATEHUB_DATABASE_URL") or sqlite_url(cache / "cache.sqlite3")
        password_file = env.get("STATEHUB_DATABASE_PASSWORD_FILE")
        if password_file:
            url = _with_password(url, Path(password_file))
        profile = env.get("STATEHUB_PROFILE", "dev")
        if profile not in PROFILES:
            raise ValueError(f"STATEHUB_PROFILE={profile!r}: valid profiles are {', '.join(PROFILES)}")
        state_url = _state_url(env, profile, url, Path(password_file) if password_file else None)
        auth = env.get("STATEHUB_AUTH") or None
        if auth is not None and auth not in AUTH_MODES:
            raise ValueError(f"STATEHUB_AUTH={auth!r}: valid values are {', '.join(AUTH_MODES)}")
        root_key_file = env.get("STATEHUB_TOKEN_ROOT_KEY_FILE")
        return cls(
            config_dir=config,
            data_dir=data,
            cache_dir=cache,
            database_url=url,
            profile=profile,
            state_url=state_url,
            host=env.get("STATEHUB_HOST", "127.0.0.1"),
            port=_port(env.get("STATEHUB_PORT", "8750")),
            watch=env.get("STATEHUB_WATCH", "1") not in ("0", "false", "no"),
            **_relay_settings(env),
            auth=auth,
            token_public_key=env.get("STATEHUB_TOKEN_PUBLIC_KEY") or None,
            token_root_key_file=Path(root_key_file).expanduser() if root_key_file else None,
            file_limits=FileLimits.from_env(env),
            **_web_settings(env),
            **_stream_settings(env),
            sweep_interval_s=_sweep_interval(env),
            **_forge_settings(env),
            leader_retry_s=_leader_retry(env),
            pg_dead_peer_s=_dead_peer(env),
        )

    @property
    def upstream_token_path(self) -> Path:
        """``STATEHUB_UPSTREAM_TOKEN_FILE``, else ``<config dir>/upstream.token``."""
        return self.upstream_token_file or self.config_dir / "upstream.token"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def ensure_dirs(self) -> None:
        """Create the config, data and cache dirs the hub lacks, each 0700 (the owner's alone: they
        hold tokens, event payloads and unsaved edits). Existing dirs keep the mode they have."""
        for directory in (self.config_dir, self.data_dir, self.cache_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def _relay_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """``STATEHUB_UPSTREAM`` (URL), ``STATEHUB_UPSTREAM_TOKEN`` or ``STATEHUB_UPSTREAM_TOKEN_FILE``,
    ``STATEHUB_RELAY_BACKOFF_CAP`` (seconds, default 60), ``STATEHUB_RELAY_BATCH`` (events a request)."""
    upstream = env.get("STATEHUB_UPSTREAM") or None
    if upstream is not None and not upstream.startswith(("http://", "https://")):
        raise ValueError(
            f"STATEHUB_UPSTREAM={upstream!r}: give the upstream hub's URL, like https://hub.example:8750"
        )
    cap = env.get("STATEHUB_RELAY_BACKOFF_CAP", "60")
    try:
        backoff_cap = float(cap)
    except ValueError:
        raise ValueError(f"STATEHUB_RELAY_BACKOFF_CAP={cap!r}: give a number of seconds") from None
    if backoff_cap <= 0:
        raise ValueError(f"STATEHUB_RELAY_BACKOFF_CAP={cap!r}: must be more than 0 seconds")
    batch = env.get("STATEHUB_RELAY_BATCH", "1000")
    if not batch.isdigit() or not 1 <= int(batch) <= 5000:
        raise ValueError(f"STATEHUB_RELAY_BATCH={batch!r}: give a whole number from 1 to 5000")
    token_file = env.get("STATEHUB_UPSTREAM_TOKEN_FILE")
    return {
        "upstream": upstream,
        "upstream_token": env.get("STATEHUB_UPSTREAM_TOKEN") or None,
        "upstream_token_file": Path(token_file) if token_file else None,
        "relay_backoff_cap": backoff_cap,
        "relay_batch": int(batch),
    }


def _web_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """``STATEHUB_ALLOWED_HOSTS`` and ``STATEHUB_ALLOWED_ORIGINS`` (separated by commas or spaces),
    ``STATEHUB_MAX_BODY_BYTES`` (bytes, default 16 MiB), ADR-022; ``STATEHUB_TRUSTED_PROXIES``
    (addresses or networks, ADR-040)."""
    hosts = tuple(_words(env.get("STATEHUB_ALLOWED_HOSTS", "")))
    for name in hosts:
        if name != "*" and ("/" in name or not name.strip("[].:")):
            raise ValueError(
                f"STATEHUB_ALLOWED_HOSTS: {name!r} is not a host name; give names like hub.example"
            )
    origins = tuple(_words(env.get("STATEHUB_ALLOWED_ORIGINS", "")))
    for origin in origins:
        if not origin.startswith(("http://", "https://")) or origin.rstrip("/").count("/") != 2:
            raise ValueError(
                f"STATEHUB_ALLOWED_ORIGINS: {origin!r} is not an origin; give scheme and host, "
                "like https://editor.example or http://localhost:5173"
            )
    size = env.get("STATEHUB_MAX_BODY_BYTES", str(DEFAULT_MAX_BODY_BYTES))
    if not size.isdigit() or not 1024 <= int(size) <= 2**31:
        raise ValueError(f"STATEHUB_MAX_BODY_BYTES={size!r}: give a number of bytes from 1024 to 2147483648")
    proxies = tuple(_words(env.get("STATEHUB_TRUSTED_PROXIES", "")))
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ValueError(
                f"STATEHUB_TRUSTED_PROXIES: {proxy!r} is not an address; give the proxy's IP, like 127.0.0.1"
            ) from None
    return {
        "allowed_hosts": hosts,
        "allowed_origins": origins,
        "max_body_bytes": int(size),
        "trusted_proxies": proxies,
    }


def _stream_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """``STATEHUB_STREAM_KEEP`` (messages, default 100000), ``STATEHUB_STREAM_KEEP_DAYS`` (default 7),
    ``STATEHUB_STREAM_KEEPALIVE`` (seconds, default 15), ``STATEHUB_STREAM_QUEUE`` (messages a
    subscriber may fall behind, default 1000), ``STATEHUB_STREAM_SUBSCRIBERS`` (default 1000),
    ``STATEHUB_STREAM_PER_ACTOR`` (streams one token's actor may hold, default 100),
    ``STATEHUB_STREAM_POLL`` (seconds, default 0.5). canon/ADR-038."""

    def number(name: str, default: str, low: float, high: float, *, whole: bool = False) -> float:
        text = env.get(name, default)
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            kind = "a whole number" if whole else "a number"
            raise ValueError(f"{name}={text!r}: give {kind} from {low:g} to {high:g}")
        return value

    return {
        "stream_keep": int(number("STATEHUB_STREAM_KEEP", "100000", 100, 100_000_000, whole=True)),
        "stream_keep_days": number("STATEHUB_STREAM_KEEP_DAYS", "7", 0.001, 3650),
        "stream_keepalive_s": number("STATEHUB_STREAM_KEEPALIVE", "15", 0.05, 3600),
        "stream_queue": int(number("STATEHUB_STREAM_QUEUE", "1000", 1, 1_000_000, whole=True)),
        "stream_subscribers": int(number("STATEHUB_STREAM_SUBSCRIBERS", "1000", 1, 100_000, whole=True)),
        "stream_per_actor": int(number("STATEHUB_STREAM_PER_ACTOR", "100", 1, 100_000, whole=True)),
        "stream_poll_s": number("STATEHUB_STREAM_POLL", "0.5", 0.01, 60),
    }


def _seconds(text: str, low: float, high: float) -> float | None:
    """``text`` as a number of seconds from ``low`` to ``high``; None when it is not one (the caller
    names the setting and its range)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if low <= value <= high else None


def _sweep_interval(env: Mapping[str, str]) -> float | None:
    """``STATEHUB_SWEEP_INTERVAL``: seconds between scheduled sweeps, from 1 to 604800 (a week), or
    0 (or off) for none; unset: the profile's default (Settings.sweep_every)."""
    text = env.get("STATEHUB_SWEEP_INTERVAL", "").strip()
    if not text:
        return None
    if text.lower() in ("off", "0"):
        return 0.0
    value = _seconds(text, 1, 604_800)
    if value is None:
        raise ValueError(
            f"STATEHUB_SWEEP_INTERVAL={text!r}: give seconds from 1 to 604800 (900: every 15 minutes), "
            "or 0 for no scheduled sweeps"
        )
    return value


def _forge_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """``STATEHUB_FORGE_SYNC`` (on/off; unset: the profile's default) and ``STATEHUB_FORGE_TIMEOUT``
    (seconds, 1 to 3600)."""
    given = env.get("STATEHUB_FORGE_SYNC", "").strip()
    text = given.lower()
    choices = {
        "1": True,
        "on": True,
        "true": True,
        "yes": True,
        "0": False,
        "off": False,
        "false": False,
        "no": False,
    }
    if text and text not in choices:
        raise ValueError(f"STATEHUB_FORGE_SYNC={given!r}: give on or off (unset: on for the fleet profile)")
    timeout_text = env.get("STATEHUB_FORGE_TIMEOUT", "").strip()
    timeout = _seconds(timeout_text, 1, 3600) if timeout_text else DEFAULT_FORGE_TIMEOUT_S
    if timeout is None:
        raise ValueError(f"STATEHUB_FORGE_TIMEOUT={timeout_text!r}: give seconds from 1 to 3600 (default 30)")
    return {"forge_sync": choices[text] if text else None, "forge_timeout_s": timeout}


def _leader_retry(env: Mapping[str, str]) -> float:
    """``STATEHUB_LEADER_RETRY``: seconds from 0.1 to 60 (default 2) between tries for the leader's lock."""
    text = env.get("STATEHUB_LEADER_RETRY", "").strip() or "2"
    value = _seconds(text, 0.1, 60)
    if value is None:
        raise ValueError(
            f"STATEHUB_LEADER_RETRY={text!r}: give seconds from 0.1 to 60 between tries for the "
            "leader's lock (default 2)"
        )
    return value


def _dead_peer(env: Mapping[str, str]) -> float:
    """``STATEHUB_PG_DEAD_PEER``: seconds from 10 to 3600 (default 60) before a silent peer of a
    state connection is given up."""
    text = env.get("STATEHUB_PG_DEAD_PEER", "").strip() or "60"
    value = _seconds(text, 10, 3600)
    if value is None:
        raise ValueError(
            f"STATEHUB_PG_DEAD_PEER={text!r}: give seconds from 10 to 3600 after which a PostgreSQL "
            "connection whose other end stopped answering is given up (default 60)"
        )
    return value


def _words(value: str) -> list[str]:
    return [word for word in value.replace(",", " ").split() if word]


def default_actor() -> str:
    """The actor a CLI command acts as: ``STATEHUB_ACTOR``, else the login name."""
    actor = os.environ.get("STATEHUB_ACTOR")
    if actor:
        return actor
    try:
        return os.getlogin()
    except OSError:
        import getpass

        return getpass.getuser()


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file at ``path``, whatever characters it holds.

    Escaped as SQLAlchemy's ``URL.create("sqlite", database=...)`` renders it (a test
    holds the two equal), never by pasting the path into a string: a ``?``, ``#`` or
    ``%`` in a directory name would otherwise cut the path short or change it, and
    the cache would be written somewhere else (ADR-022). Built without importing
    SQLAlchemy, so a read command does not load it (canon/ADR-033).
    """
    return "sqlite:///" + quote(str(path), safe=" +/")


def sqlite_path(url: str) -> Path | None:
    """The file of a plain SQLite URL (``sqlite:///<escaped path>``, what :func:`sqlite_url`
    builds); None for any other URL (PostgreSQL, memory, URI file names, query options)."""
    head = "sqlite:///"
    if not url.startswith(head) or "?" in url or url == head or url.startswith(head + ":memory:"):
        return None
    return Path(unquote(url[len(head) :]))


def _port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"STATEHUB_PORT={value!r} must be a port number from 1 to 65535")
    return int(value)


def _state_url(
    env: Mapping[str, str], profile: str, cache_url: str, password_file: Path | None
) -> str | None:
    """``STATEHUB_STATE_URL``: a PostgreSQL URL, or ``files`` (SQLite files in the data dir); unset,
    the cache's database on a fleet hub whose cache is on PostgreSQL, else files (canon/ADR-046).
    STATEHUB_DATABASE_PASSWORD_FILE gives the password of a URL set here too."""
    given = env.get("STATEHUB_STATE_URL", "").strip()
    if not given:
        return cache_url if profile == "fleet" and cache_url.startswith(_POSTGRES) else None
    if given == "files":
        return None
    if not given.startswith(_POSTGRES):
        raise ValueError(
            f"STATEHUB_STATE_URL={_without_password(given)!r}: give a postgresql:// URL (the durable state's "
            "database) or 'files' (SQLite files in the data dir)"
        )
    return _with_password(given, password_file) if password_file is not None else given


_POSTGRES = ("postgresql://", "postgresql+", "postgres://")


def _without_password(url: str) -> str:
    """``url`` for an error message: all from after ``://`` (or the start) to its last ``@`` (user
    and password, however mistyped) replaced by ``***``."""
    if "@" not in url:
        return url
    scheme, sep, _ = url.partition("://")
    return f"{scheme + sep if sep else ''}***@{url.rpartition('@')[2]}"


def _with_password(url: str, path: Path) -> str:
    """STATEHUB_DATABASE_PASSWORD_FILE: the password from a file (a container secret), not the URL."""
    from sqlalchemy.engine import make_url

    try:
        password = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ValueError(
            f"STATEHUB_DATABASE_PASSWORD_FILE={path}: cannot read it ({error.strerror})"
        ) from None
    return make_url(url).set(password=password).render_as_string(hide_password=False)
