"""``make dev-hub``: a hub on a laptop with real data at once.

Registers this checkout (so its own ``canon/`` is indexed), every path in
``DEV_HUB_REPOS`` (colon- or space-separated), and the example workspace from
``examples/workspace`` in the checkout. The examples are copied to the data dir
and given a git history on the first run only; after that they are the
newcomer's to edit, and the hub follows the edits.

    make dev-hub
    DEV_HUB_REPOS=~/src/a:~/src/b STATEHUB_PORT=8751 make dev-hub
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from statehub.cache.indexer import IndexReport
from statehub.errors import HubError
from statehub.gitrepo import run_git
from statehub.hub import Hub
from statehub.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["CHECKOUT", "EXAMPLES", "DevHub", "main", "prepare_examples", "repo_paths", "set_up"]

CHECKOUT = Path(__file__).resolve().parent.parent
"""The source checkout ``make dev-hub`` runs from (the package is installed editable)."""
EXAMPLES = CHECKOUT / "examples" / "workspace"


@dataclass
class DevHub:
    reports: list[IndexReport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """One line per path that could not be registered, saying why."""


def repo_paths(value: str | None) -> list[Path]:
    """``DEV_HUB_REPOS``: paths separated by ':' or whitespace; '~' is expanded."""
    if not value:
        return []
    return [Path(part).expanduser() for part in re.split(r"[:\s]+", value.strip()) if part]


def prepare_examples(settings: Settings, source: Path = EXAMPLES) -> list[Path]:
    """Copy the example repos into the data dir and commit them, on the first run only."""
    workspace = settings.data_dir / "examples"
    if not source.is_dir():
        return []
    repos = sorted(p for p in source.iterdir() if p.is_dir())
    for example in repos:
        target = workspace / example.name
        if target.exists():
            continue
        shutil.copytree(example, target)
        _git(target, "init", "-q", "-b", "main")
        _git(target, "add", "-A")
        _git(
            target,
            "-c",
            "user.name=State Hub",
            "-c",
            "user.email=dev-hub@statehub.invalid",
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "Example workspace for the dev hub",
        )
    return [workspace / example.name for example in repos]


def _git(cwd: Path, *args: str) -> None:
    run_git(cwd, *args)


def set_up(
    hub: Hub,
    extra: list[Path],
    *,
    checkout: Path | None = CHECKOUT,
    examples: Path = EXAMPLES,
    say: Callable[[str], None] = print,
) -> DevHub:
    """Register the checkout, the extra paths and the examples; a bad path is reported, not fatal."""
    result = DevHub()
    paths = ([checkout] if checkout is not None else []) + extra + prepare_examples(hub.settings, examples)
    for path in paths:
        try:
            report = hub.register(path)
        except HubError as error:
            result.skipped.append(f"skipped {path}: {error.message}")
            say(result.skipped[-1])
            continue
        result.reports.append(report)
        problems = f", {len(report.errors)} file errors" if report.errors else ""
        say(f"registered {report.repo} ({path}){problems}")
    return result


def main(environ: Mapping[str, str] | None = None) -> None:
    """Set up and serve, as ``statehub serve`` serves; an error is one line and its exit code."""
    from statehub.cli._context import HubCommandError

    try:
        _main(os.environ if environ is None else environ)
    except HubCommandError as error:
        error.show()
        sys.exit(error.exit_code)


def _main(env: Mapping[str, str]) -> None:
    from statehub.app import create_app
    from statehub.cli._context import HubCommandError, setup_error
    from statehub.cli.serve import run_server

    try:
        settings = Settings.from_env(env)
    except ValueError as error:
        raise setup_error(error) from None
    try:
        with Hub(settings) as hub:
            set_up(hub, repo_paths(env.get("DEV_HUB_REPOS")))
        app = create_app(settings)
    except HubError as error:
        raise HubCommandError(error) from None
    url = f"http://{settings.host}:{settings.port}/"
    print(f"State Hub (dev) on {url}  (try {url}tasks?ready=true)")
    run_server(app, settings)


if __name__ == "__main__":
    main()
