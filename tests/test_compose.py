"""The deployment files in compose/: parsed (no container engine here), and every
statehub command, option and STATEHUB_* setting they use must exist."""

from __future__ import annotations

import configparser
import ipaddress
import json
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

import statehub.settings
from statehub.cli import main
from statehub.errors import SetupError
from statehub.settings import Settings

COMPOSE = Path(__file__).resolve().parent.parent / "compose"
SETTINGS_SOURCE = Path(statehub.settings.__file__).read_text(encoding="utf-8")


def check_statehub_argv(argv: list[str]) -> None:
    """Resolve ``statehub ARGS...`` through the click tree and parse its options, without running it."""
    command: click.Command = main
    args = list(argv)
    path = ["statehub"]
    while isinstance(command, click.Group):
        assert args, f"{' '.join(path)} needs a subcommand"
        name = args.pop(0)
        sub = command.get_command(click.Context(command), name)  # the lazy group loads it (ADR-033)
        assert sub is not None, f"'{' '.join(path)} {name}' is not a command"
        command, path = sub, [*path, name]
    command.make_context(" ".join(path), args)  # raises on unknown options, bad choices, missing args


def _yaml(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((COMPOSE / name).read_text(encoding="utf-8"))
    return loaded


def _dockerfile() -> str:
    return (COMPOSE / "Dockerfile").read_text(encoding="utf-8")


def _exec_form(dockerfile: str, instruction: str) -> list[str]:
    match = re.search(rf"^{instruction}\s+(\[.*\])\s*$", dockerfile, re.MULTILINE)
    assert match, f"Dockerfile has no exec-form {instruction}"
    value: list[str] = json.loads(match.group(1))
    return value


def _unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(_unit_text())
    return parser


def _unit_text() -> str:
    return (COMPOSE / "statehub.service").read_text(encoding="utf-8")


def _setting_names(text: str) -> set[str]:
    return set(re.findall(r"\bSTATEHUB_[A-Z_]+\b", text))


def test_dockerfile_is_multi_stage_and_runs_unprivileged() -> None:
    dockerfile = _dockerfile()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", dockerfile, re.MULTILINE)
    assert stages == ["build", "runtime"]
    assert re.search(r"^COPY --from=build ", dockerfile, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users
    assert users[-1] not in ("root", "0")
    assert _exec_form(dockerfile, "ENTRYPOINT") == ["statehub"]
    check_statehub_argv(_exec_form(dockerfile, "CMD"))
    assert "/state/health" in dockerfile


def test_dockerfile_installs_from_the_lock_with_the_makefiles_uv() -> None:
    dockerfile = _dockerfile()
    makefile = (COMPOSE.parent / "Makefile").read_text(encoding="utf-8")
    pinned = re.search(r"^UV_VERSION := (\S+)$", makefile, re.MULTILINE)
    assert pinned
    assert f"pip install 'uv=={pinned.group(1)}'" in dockerfile
    assert "COPY pyproject.toml uv.lock" in dockerfile
    installs = re.findall(r"^RUN (.*)$", dockerfile.split("AS runtime")[0], re.MULTILINE)
    syncs = [line for line in installs if line.startswith("uv sync")]
    assert syncs, "the build stage installs nothing with uv sync"
    assert all("--locked" in line and "--no-default-groups" in line for line in syncs)
    assert not any("pip install ." in line for line in installs)


@pytest.mark.parametrize("name", ["dev.yaml", "fleet.yaml"])
def test_compose_commands_exist(name: str) -> None:
    for service in _yaml(name)["services"].values():
        if "command" in service and service.get("build"):
            command = service["command"]
            check_statehub_argv(command if isinstance(command, list) else shlex.split(command))


def test_dev_compose_is_one_hub_with_sqlite_on_a_volume() -> None:
    dev = _yaml("dev.yaml")
    assert list(dev["services"]) == ["hub"]
    hub = dev["services"]["hub"]
    assert "STATEHUB_DATABASE_URL" not in hub["environment"]  # the SQLite file under STATEHUB_HOME
    home = hub["environment"]["STATEHUB_HOME"]
    assert any(v.split(":")[1] == home and v.split(":")[0] in dev["volumes"] for v in hub["volumes"])
    assert hub["environment"]["STATEHUB_AUTH"] == "open"
    assert all(p.startswith("127.0.0.1:") for p in hub["ports"])  # open only behind the host's loopback
    assert "--profile" in hub["command"]
    assert hub["command"][hub["command"].index("--profile") + 1] == "dev"


REPLICAS = ("hub-a", "hub-b")


def test_fleet_compose_has_postgres_health_checks_volumes_and_the_root_key_secret() -> None:
    fleet = _yaml("fleet.yaml")
    postgres = fleet["services"]["postgres"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(v.split(":")[0] in fleet["volumes"] for v in postgres["volumes"])
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    for name in REPLICAS:
        hub = fleet["services"][name]
        assert hub["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "/state/health" in " ".join(hub["healthcheck"]["test"])
        assert any(v.split(":")[0] in fleet["volumes"] for v in hub["volumes"])
        env = hub["environment"]
        assert env["STATEHUB_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@postgres:" in env["STATEHUB_DATABASE_URL"]
        assert env["STATEHUB_TOKEN_ROOT_KEY_FILE"] == "/run/secrets/statehub_root_key"
        assert "statehub_root_key" in hub["secrets"]
        assert env["STATEHUB_DATABASE_PASSWORD_FILE"] == "/run/secrets/postgres_password"
        assert hub["command"][hub["command"].index("--profile") + 1] == "fleet"
        assert "STATEHUB_AUTH" not in env
    assert fleet["secrets"]["statehub_root_key"]["file"]


def test_fleet_compose_is_two_replicas_of_one_hub_on_one_postgresql_behind_the_proxy() -> None:
    fleet = _yaml("fleet.yaml")
    services = fleet["services"]
    assert set(services) == {"postgres", *REPLICAS, "proxy"}
    a, b = (services[name] for name in REPLICAS)
    # the same hub twice: one image, one command, the same settings, the same home on one volume
    for key in ("image", "build", "command", "environment", "volumes", "secrets", "healthcheck"):
        assert a[key] == b[key], key
    env = a["environment"]
    # read as the hub reads them, less what compose fills in (the secret file, ${...} from the shell)
    settings = Settings.from_env({**env, "STATEHUB_DATABASE_PASSWORD_FILE": "", "STATEHUB_ALLOWED_HOSTS": ""})
    assert settings.state_url == settings.database_url  # the state and the leader's lock: the one database
    assert settings.leader_retry_s > 0
    home = env["STATEHUB_HOME"]
    assert [v for v in a["volumes"] if v.split(":")[1] == home]
    # only the proxy is published; the replicas are reached through it
    assert "ports" not in a and "ports" not in b
    proxy = services["proxy"]
    assert "build" not in proxy and proxy["image"].split(":")[0] in ("nginx", "caddy")
    assert set(proxy["depends_on"]) == set(REPLICAS)
    assert proxy["ports"]
    mounted = {v.split(":")[0]: v.split(":")[1] for v in proxy["volumes"]}
    assert mounted["./nginx.conf"] == "/etc/nginx/conf.d/default.conf"
    assert (COMPOSE / "nginx.conf").is_file()
    # the proxy's forwarded headers are believed from its fixed address, and only from it
    address = proxy["networks"]["hubnet"]["ipv4_address"]
    assert settings.trusted_proxies == (address,)
    subnet = fleet["networks"]["hubnet"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    # the replicas start together, on the database alone (the cache's setup lock, canon/ADR-054)
    assert b["depends_on"] == {"postgres": {"condition": "service_healthy"}}


Block = list[tuple[str, list[str], "Block | None"]]


def _nginx(text: str) -> Block:
    """nginx's config as (directive, args, block or None), nested; comments dropped, quotes kept off."""
    tokens = re.findall(r'"[^"]*"|[{};]|[^\s{};"]+', re.sub(r"#[^\n]*", "", text))
    stack: list[Block] = [[]]
    words: list[str] = []
    for token in tokens:
        if token == "{":
            child: Block = []
            stack[-1].append((words[0], words[1:], child))
            stack.append(child)
            words = []
        elif token == "}":
            assert not words, f"unterminated directive {words}"
            stack.pop()
        elif token == ";":
            stack[-1].append((words[0], words[1:], None))
            words = []
        else:
            words.append(token.strip('"'))
    assert len(stack) == 1 and not words, "unbalanced braces"
    return stack[0]


def _find(block: Block, name: str, *args: str) -> Block:
    found = [
        child for directive, given, child in block if directive == name and given[: len(args)] == list(args)
    ]
    assert len(found) == 1 and found[0] is not None, f"one {name} {' '.join(args)} block expected"
    return found[0]


def _values(block: Block, name: str) -> list[list[str]]:
    return [given for directive, given, child in block if directive == name and child is None]


def test_the_proxy_balances_both_replicas_and_streams_sse_and_websockets_unbuffered() -> None:
    config = _nginx((COMPOSE / "nginx.conf").read_text(encoding="utf-8"))
    upstream = _find(config, "upstream", "statehub")
    assert sorted(args[0] for args in _values(upstream, "server")) == ["hub-a:8750", "hub-b:8750"]
    upgrade = _find(config, "map", "$http_upgrade", "$connection_upgrade")
    assert _values(upgrade, "default") == [["upgrade"]]
    server = _find(config, "server")
    assert _values(server, "listen") == [["8750"]]
    assert _values(server, "proxy_http_version") == [["1.1"]]
    size = _values(server, "client_max_body_size")[0][0]
    assert size.endswith("m") and int(size[:-1]) * 1024 * 1024 >= statehub.settings.DEFAULT_MAX_BODY_BYTES
    locations = {args[0]: child for directive, args, child in server if directive == "location" and child}
    assert set(locations) >= {"/", "/events/stream", "/mcp", "/sync/"}
    rooms = _find(config, "upstream", "statehub_rooms")
    assert sorted(args[0] for args in _values(rooms, "server")) == ["hub-a:8750", "hub-b:8750"]
    assert _values(rooms, "hash") == [["$uri", "consistent"]]  # one document's clients meet in one room
    pinned = {"/sync/": "http://statehub_rooms"}
    for path, location in locations.items():
        upstream_of = pinned.get(path, "http://statehub")
        assert _values(location, "proxy_pass") == [[upstream_of]], path
        # nginx drops the server's proxy_set_header in a location that sets its own: each sets all
        headers = {args[0]: args[1] for args in _values(location, "proxy_set_header")}
        assert headers["Host"] == "$http_host", path
        assert headers["X-Forwarded-Proto"] == "$scheme", path
        assert headers["X-Forwarded-For"] == "$proxy_add_x_forwarded_for", path
    for path in ("/events/stream", "/mcp"):
        assert _values(locations[path], "proxy_buffering") == [["off"]], path
    sync = {args[0]: args[1] for args in _values(locations["/sync/"], "proxy_set_header")}
    assert sync["Upgrade"] == "$http_upgrade"
    assert sync["Connection"] == "$connection_upgrade"
    # the proxy must not send a POST again to the other replica once one received it
    assert all("non_idempotent" not in args for args in _values(server, "proxy_next_upstream"))


def test_the_proxy_sends_sweeps_requests_to_either_replica() -> None:
    """A sweep is a record in the state schema (canon/ADR-052, addendum of 2026-12-01): either replica
    answers ``GET /sweeps/{id}``, so ``/sweeps`` is balanced like the rest. (review16b had found
    POST /sweeps, then its ``Location``, 404 every other time while sweeps lived in one replica's
    memory; the proxy pinned ``/sweeps`` to one replica until the records moved.)"""
    config = _nginx((COMPOSE / "nginx.conf").read_text(encoding="utf-8"))
    server = _find(config, "server")
    locations = [given[0] for directive, given, _child in server if directive == "location"]
    assert "/" in locations and not [path for path in locations if path.startswith("/sweeps")]
    upstreams = [given[0] for directive, given, _child in config if directive == "upstream"]
    assert sorted(upstreams) == ["statehub", "statehub_rooms"]
    assert _values(_find(server, "location", "/"), "proxy_pass") == [["http://statehub"]]


def test_the_nginx_reader_catches_mistakes() -> None:
    with pytest.raises(AssertionError, match="unbalanced"):
        _nginx("server { listen 80;")
    with pytest.raises(AssertionError, match="one location /sync/ block"):
        _find(_nginx("server { location / { proxy_pass x; } }")[0][2] or [], "location", "/sync/")


def test_systemd_unit_runs_the_fleet_profile_unprivileged() -> None:
    unit = _unit()
    service = unit["Service"]
    assert service["User"] not in ("root", "0")
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/statehub")
    check_statehub_argv(argv[1:])
    assert argv[argv.index("--profile") + 1] == "fleet"
    assert "LoadCredential" in service
    assert "STATEHUB_TOKEN_ROOT_KEY_FILE=%d/" in _unit_text()
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert service["RestartPreventExitStatus"] == str(SetupError.exit_code)  # a setup error: no loop


@pytest.mark.parametrize("name", ["Dockerfile", "dev.yaml", "fleet.yaml", "statehub.service"])
def test_every_setting_named_exists(name: str) -> None:
    used = _setting_names((COMPOSE / name).read_text(encoding="utf-8"))
    unknown = {n for n in used if f'"{n}"' not in SETTINGS_SOURCE} - {"STATEHUB_REPOS"}
    assert unknown == set(), f"{name} sets {sorted(unknown)}, which Settings.from_env does not read"


def test_statehub_commands_in_comments_exist() -> None:
    """The how-to lines in the files' comments are commands people will paste."""
    for name in ("dev.yaml", "fleet.yaml", "statehub.service"):
        for line in (COMPOSE / name).read_text(encoding="utf-8").splitlines():
            match = re.search(r"(?:^|\s)statehub ((?:repos|token|serve|rebuild)\b[^#]*)", line)
            if line.lstrip().startswith("#") and match:
                check_statehub_argv(shlex.split(match.group(1)))


def test_the_checker_catches_mistakes() -> None:
    with pytest.raises(AssertionError, match="is not a command"):
        check_statehub_argv(["srve"])
    with pytest.raises(click.UsageError):
        check_statehub_argv(["serve", "--profiel", "fleet"])
    with pytest.raises(click.BadParameter):
        check_statehub_argv(["serve", "--profile", "prod"])
    with pytest.raises(click.UsageError):
        check_statehub_argv(["token", "mint", "--actor", "x"])
