"""docs/architecture.md is the contract: what it lists exists, and what exists is listed.

The page says how it is read (its last section, "How the contract test reads
this page"): table rows of ``## HTTP contract`` holding a code span
``METHOD /path``, table rows of ``## CLI contract`` holding a code span
``statehub <command> ...``, code spans of ``## Not yet built`` (which must not
exist yet), and the rows of ``## Exit codes``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import click
import pytest
from litestar.routes import ASGIRoute, HTTPRoute, WebSocketRoute

import statehub.errors
from statehub.app import create_app
from statehub.cli import main
from statehub.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "WS")
IGNORED_METHODS = frozenset({"OPTIONS", "HEAD"})
IGNORED_PREFIXES = ("/schema", "/static")
"""The framework's OpenAPI viewers and the web UI's built assets: served, not part of the contract."""

_SPAN = re.compile(r"`([^`]+)`")
_ROUTE = re.compile(rf"^((?:{'|'.join(METHODS)})(?:\s*,\s*(?:{'|'.join(METHODS)}))*)\s+(/\S*)$")
_COMMAND_WORD = re.compile(r"^[a-z][a-z0-9-]*$")
_PARAM = re.compile(r"\{([^{}:]+)(?::([^{}]+))?\}")

Route = tuple[str, str]
"""(method, path) with path parameters written ``{name}`` or, as served, ``{name:type}``."""


# reading the page ---------------------------------------------------------------------------------


def _sections(text: str) -> dict[str, list[str]]:
    """Lines under each ``## `` heading, by heading text."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


def _row_spans(lines: list[str]) -> Iterator[str]:
    """Code spans in table rows (lines starting with ``|``); ``\\|`` is a pipe inside a cell."""
    for line in lines:
        if line.lstrip().startswith("|"):
            for span in _SPAN.findall(line):
                yield span.replace("\\|", "|").strip()


def _routes_in(lines: list[str]) -> set[Route]:
    found: set[Route] = set()
    for span in _row_spans(lines):
        match = _ROUTE.match(span)
        if match is None:
            continue
        path = match.group(2).split("?", 1)[0]
        for method in match.group(1).split(","):
            found.add((method.strip(), path))
    return found


def _commands_in(lines: list[str]) -> set[str]:
    found: set[str] = set()
    for span in _row_spans(lines):
        words = span.split()
        if len(words) < 2 or words[0] != "statehub":
            continue
        name = []
        for word in words[1:]:
            if not _COMMAND_WORD.match(word):
                break
            name.append(word)
        if name:
            found.add(" ".join(name))
    return found


@pytest.fixture(scope="module")
def page() -> dict[str, list[str]]:
    sections = _sections(ARCHITECTURE.read_text(encoding="utf-8"))
    for heading in ("HTTP contract", "CLI contract", "Exit codes", "Not yet built"):
        assert heading in sections, f"docs/architecture.md has no '## {heading}' section"
    return sections


# what the code serves -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served_routes(tmp_path_factory: pytest.TempPathFactory) -> set[Route]:
    home = tmp_path_factory.mktemp("hub")
    settings = Settings.from_env({"STATEHUB_HOME": str(home), "STATEHUB_WATCH": "0"})
    app = create_app(settings)  # the route table exists without starting the lifespan
    found: set[Route] = set()
    for route in app.routes:
        if route.path.startswith(IGNORED_PREFIXES):
            continue
        if isinstance(route, WebSocketRoute):
            found.add(("WS", route.path))
        elif isinstance(route, HTTPRoute):
            found.update((method, route.path) for method in route.methods if method not in IGNORED_METHODS)
        elif isinstance(route, ASGIRoute):  # a mounted ASGI app (/mcp) speaks its protocol over POST
            found.add(("POST", route.path))
    return found


def _subcommands(command: click.Command) -> dict[str, click.Command]:
    """A group's subcommands, the lazily loaded ones too (``statehub.cli.LazyGroup``)."""
    if not isinstance(command, click.Group):
        return {}
    ctx = click.Context(command)
    found = {name: command.get_command(ctx, name) for name in command.list_commands(ctx)}
    return {name: sub for name, sub in found.items() if sub is not None}


def _walk(command: click.Command, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], bool]]:
    """Every command path below ``statehub``, and whether it is a leaf (has no subcommands)."""
    subcommands = _subcommands(command)
    if prefix:
        yield prefix, not subcommands
    for name, sub in sorted(subcommands.items()):
        yield from _walk(sub, (*prefix, name))


@pytest.fixture(scope="module")
def served_commands() -> dict[str, bool]:
    return {" ".join(path): leaf for path, leaf in _walk(main)}


# matching -----------------------------------------------------------------------------------------


def _served_pattern(path: str) -> re.Pattern[str]:
    """A served path as a regex over documented ones: ``{x:path}`` takes the rest, ``{x:str}`` one segment."""
    out, end = [], 0
    for match in _PARAM.finditer(path):
        out.append(re.escape(path[end : match.start()]))
        out.append(".+" if match.group(2) == "path" else "[^/]+")
        end = match.end()
    out.append(re.escape(path[end:]))
    return re.compile("^" + "".join(out) + "$")


def _matches(documented: Route, served: Route) -> bool:
    return documented[0] == served[0] and _served_pattern(served[1]).match(documented[1]) is not None


def _same(documented: Route, served: Route) -> bool:
    """The same route, not merely a path a served route takes too (``/events/stream``, ``/events/{key}``)."""
    return documented[0] == served[0] and _PARAM.sub("{}", documented[1]) == _PARAM.sub("{}", served[1])


def _documents(documented: Route, served: Route) -> bool:
    """``documented`` names ``served`` itself: the same route, or, for a served ``{x:path}``, a path
    it takes (``/sync/{doc}/save`` for ``/sync/{doc:path}``). A documented ``/state/health`` does not
    document a served ``/state/{x}``: that one is a route of its own."""
    if _same(documented, served):
        return True
    has_path = any(m.group(2) == "path" for m in _PARAM.finditer(served[1]))
    return has_path and _matches(documented, served)


def _show(routes: set[Route]) -> str:
    return ", ".join(f"{method} {path}" for method, path in sorted(routes, key=lambda r: (r[1], r[0])))


# the tests ----------------------------------------------------------------------------------------


def test_every_documented_route_is_served(page: dict[str, list[str]], served_routes: set[Route]) -> None:
    documented = _routes_in(page["HTTP contract"])
    assert documented, "found no `METHOD /path` rows under '## HTTP contract'"
    missing = {d for d in documented if not any(_matches(d, s) for s in served_routes)}
    assert not missing, f"docs/architecture.md documents routes the app does not serve: {_show(missing)}"


def test_every_served_route_is_documented(page: dict[str, list[str]], served_routes: set[Route]) -> None:
    documented = _routes_in(page["HTTP contract"])
    undocumented = {s for s in served_routes if not any(_documents(d, s) for d in documented)}
    assert not undocumented, (
        f"the app serves routes docs/architecture.md does not document: {_show(undocumented)}; "
        "add a row to '## HTTP contract'"
    )


def test_every_documented_command_exists(
    page: dict[str, list[str]], served_commands: dict[str, bool]
) -> None:
    documented = _commands_in(page["CLI contract"])
    assert documented, "found no `statehub ...` rows under '## CLI contract'"
    missing = sorted(documented - set(served_commands))
    assert not missing, f"docs/architecture.md documents commands that do not exist: {missing}"


def test_every_command_is_documented(page: dict[str, list[str]], served_commands: dict[str, bool]) -> None:
    documented = _commands_in(page["CLI contract"])
    undocumented = sorted(name for name, leaf in served_commands.items() if leaf and name not in documented)
    assert not undocumented, (
        f"commands docs/architecture.md does not document: {undocumented}; add a row to '## CLI contract'"
    )


def test_not_yet_built_is_not_built(
    page: dict[str, list[str]], served_routes: set[Route], served_commands: dict[str, bool]
) -> None:
    lines = page["Not yet built"]
    built = {d for d in _routes_in(lines) if any(_same(d, s) for s in served_routes)}
    commands = sorted(_commands_in(lines) & set(served_commands))
    assert not built and not commands, (
        f"listed under '## Not yet built' but served now: {_show(built)} {commands}; "
        "move them into the contract tables"
    )


def test_every_exit_code_is_listed(page: dict[str, list[str]]) -> None:
    listed = {int(span) for span in _row_spans(page["Exit codes"]) if span.isdigit()}
    codes = {
        error.exit_code
        for error in vars(statehub.errors).values()
        if isinstance(error, type) and issubclass(error, statehub.errors.HubError)
    }
    outcomes = {  # exit codes of a command's outcome, not of an error (NEEDS_A_PERSON)
        value for name, value in vars(statehub.errors).items() if name.isupper() and isinstance(value, int)
    }
    assert outcomes, "statehub/errors.py names no outcome exit code (NEEDS_A_PERSON)"
    codes |= outcomes
    assert codes - listed == set(), f"exit codes missing from '## Exit codes': {sorted(codes - listed)}"


def test_the_parser_reads_the_documented_forms() -> None:
    lines = [
        "| `GET, POST /repos` | admin | x |",
        "| `WS /sync/{doc}` | edit | `statehub` mention |",
        "| `statehub fleet drain-plan MACHINE [--repo]` | x |",
        "| `statehub serve [--profile dev\\|fleet]` | x |",
        "`GET /outside-a-table`",
    ]
    assert _routes_in(lines) == {("GET", "/repos"), ("POST", "/repos"), ("WS", "/sync/{doc}")}
    assert _commands_in(lines) == {"fleet drain-plan", "serve"}
    assert _matches(("POST", "/sync/{doc}/save"), ("POST", "/sync/{doc:path}"))
    assert not _matches(("GET", "/tasks/{ref}/x"), ("GET", "/tasks/{ref:str}"))
    assert _same(("GET", "/tasks/{ref}"), ("GET", "/tasks/{ref:str}"))
    assert not _same(("GET", "/events/stream"), ("GET", "/events/{key:str}"))
    assert _documents(("GET", "/tasks/{ref}"), ("GET", "/tasks/{ref:str}"))
    assert _documents(("POST", "/sync/{doc}/save"), ("POST", "/sync/{doc:path}"))
    assert not _documents(("GET", "/state/health"), ("GET", "/state/{x:str}"))  # a route of its own
