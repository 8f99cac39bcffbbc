"""Read commands import nothing heavy, and the lazy command table agrees with the commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING

import click
import pytest

from statehub.cli import COMMANDS, load_command, main
from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from statehub.settings import Settings

HEAVY = (
    "litestar",  # the web stack
    "uvicorn",
    "pycrdt",  # the CRDT
    "biscuit_auth",  # the token library
    "sqlalchemy",  # the cache's SQL toolkit: reads use sqlite3 when the cache is current
    "psycopg",  # the PostgreSQL driver: loaded by a PostgreSQL cache or state store only (ADR-046)
    "sqlmodel",
    "pydantic",
    "git",  # gitpython
    "rich",  # read commands print plain tables
    "tomlkit",  # writing TOML
    "markdown_it",
    "httpx",
    "watchfiles",
    # our own modules a read has no use for (a dotted name is matched whole; issue 13's 150 ms)
    "sync.buffer",  # the write buffer: show/next name the lease bounds only (sync.lease_bounds)
    "workplans.models",  # the model dataclasses: reads need the enums only (workplans.enums)
    "workplans.fleet_models",
    "difflib",  # workplans.lines' line-ending keeper, used when writing
)

READS = (
    ("--help",),
    ("tasks",),
    ("tasks", "--ready", "--json"),
    ("workplans", "--json"),
    ("canon",),
    ("repos", "list", "--json"),
    ("show", "OPS-WP-0001-T02", "--json"),
    ("show", "OPS-WP-0001"),
    ("show", "ADR-001", "--json"),
    ("next", "--json"),
)

_PROBE = """
import json, sys
from statehub.cli import main
try:
    main(sys.argv[1:], prog_name="statehub")
except SystemExit as done:
    code = done.code or 0
wanted = set(json.loads(sys.stdin.readline()))
heavy = sorted({m for m in sys.modules if m in wanted} | ({m.split(".")[0] for m in sys.modules} & wanted))
sys.stderr.write("\\nLOADED " + json.dumps([code, heavy]) + "\\n")
"""


def test_the_lazy_table_gives_each_command_its_own_help() -> None:
    for name, (target, short) in COMMANDS.items():
        command = load_command(target)
        assert command.name == name
        assert command.get_short_help_str(80) == short, f"COMMANDS[{name!r}] help is not the command's own"


def test_help_lists_every_command_without_loading_it() -> None:
    ctx = click.Context(main)
    assert set(main.list_commands(ctx)) == set(COMMANDS)


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_read_commands_load_nothing_heavy(
    settings: Settings, make_repo: Callable[[str], GitRepo], args: tuple[str, ...]
) -> None:
    if settings.database_url.startswith("postgres"):
        pytest.skip("a PostgreSQL cache is read through the hub (SQLAlchemy) by design")
    repo = make_repo("ops")
    repo.write(
        "workplans/OPS-WP-0001.md",
        workplan_text(
            "OPS-WP-0001",
            [
                {"id": "T01", "title": "a", "status": "done"},
                {"id": "T02", "title": "b", "depends_on": ["T01"]},
            ],
        ),
    )
    repo.write(
        "canon/ADR-001.md", '+++\nid = "ADR-001"\ntitle = "x"\nkind = "adr"\nstatus = "accepted"\n+++\n'
    )
    repo.commit()
    env = {**os.environ, "STATEHUB_HOME": str(settings.config_dir.parent)}
    subprocess.run(
        [sys.executable, "-m", "statehub", "repos", "add", str(repo.root)],
        env=env,
        check=True,
        capture_output=True,
    )
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        env=env,
        input=json.dumps(HEAVY) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    line = done.stderr.rsplit("LOADED ", 1)[-1]
    code, heavy = json.loads(line)
    assert code == 0, done.stdout + done.stderr
    assert heavy == [], f"statehub {' '.join(args)} imported {heavy}"


def test_the_stat_walk_knows_the_single_files_the_parsers_name() -> None:
    from statehub.cache import scan
    from workplans import FLEET_PATH, MANIFEST_PATH

    assert scan._SINGLE_FILES == {MANIFEST_PATH: "manifest", FLEET_PATH: "fleet"}


def test_rebuild_does_not_load_gitpython(settings: Settings, make_repo: Callable[[str], GitRepo]) -> None:
    """Indexing notes each repo's HEAD from the files under .git (statehub.gitfiles), so a rebuild
    never pays gitpython's import (canon/ADR-033, the rebuild refinement)."""
    repo = make_repo("ops")
    repo.write("workplans/OPS-WP-0001.md", workplan_text("OPS-WP-0001", [{"id": "T01", "title": "a"}]))
    repo.commit()
    env = {**os.environ, "STATEHUB_HOME": str(settings.config_dir.parent)}
    subprocess.run(
        [sys.executable, "-m", "statehub", "repos", "add", str(repo.root)],
        env=env,
        check=True,
        capture_output=True,
    )
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, "rebuild", "--json"],
        env=env,
        input=json.dumps(["git", "litestar", "pycrdt", "tomlkit"]) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    code, heavy = json.loads(done.stderr.rsplit("LOADED ", 1)[-1])
    assert code == 0, done.stdout + done.stderr
    assert heavy == [], f"statehub rebuild imported {heavy}"
    assert json.loads(done.stdout)["data"]["tasks"] == 1
