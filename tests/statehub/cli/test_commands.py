"""Every command through click's runner: output for people, --json for scripts, one-line errors."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import click
import httpx
import pytest

from statehub.cli import main
from tests.clijson import cli_data
from tests.gitfixtures import GitRepo, lose_cache, workplan_text

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from statehub.settings import Settings
    from tests.statehub.cli.conftest import Run


@pytest.fixture
def repo(make_repo: Callable[[str], GitRepo]) -> GitRepo:
    made = make_repo("ops")
    made.write(
        "workplans/OPS-WP-0001.md",
        workplan_text(
            "OPS-WP-0001",
            [
                {"id": "T01", "title": "Provision", "status": "done", "owner": "codex"},
                {"id": "T02", "title": "Tunnels", "status": "todo", "owner": "codex", "depends_on": ["T01"]},
                {"id": "T03", "title": "Backups", "status": "blocked", "depends_on": ["T02"]},
            ],
            owner="ops-lead",
        ),
    )
    made.write("workplans/broken.md", "# no front matter\n")
    made.write(
        "canon/ADR-001.md", '+++\nid = "ADR-001"\ntitle = "Files"\nkind = "adr"\nstatus = "accepted"\n+++\n'
    )
    made.commit()
    return made


def _one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    return lines[0]


def test_every_command_has_an_example() -> None:
    def walk(command: click.Command, name: str) -> list[str]:
        missing = [] if "Example:" in (command.help or "") else [name]
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for sub_name in command.list_commands(ctx):
                sub = command.get_command(ctx, sub_name)
                assert sub is not None, sub_name
                missing += walk(sub, f"{name} {sub_name}")
        return missing

    assert walk(main, "statehub") == []


def test_the_example_check_sees_an_undocumented_command() -> None:
    @click.command()
    def bare() -> None:
        """No example here."""

    assert "Example:" not in (bare.help or "")


def test_repos_add_list_refresh_remove(run: Run, repo: GitRepo) -> None:
    added = run("repos", "add", str(repo.root))
    assert added.exit_code == 0
    assert "registered ops: 3 files, 3 parsed, 0 removed, 1 file error" in added.output
    assert "workplans/broken.md:1: a workplan must open with TOML front matter" in added.output

    listed = cli_data(run("repos", "list", "--json").output)
    assert [(r["slug"], r["workplan_count"], r["error_count"]) for r in listed] == [("ops", 1, 1)]
    assert "ops" in run("repos", "list").output

    repo.write("workplans/broken.md", workplan_text("OPS-WP-0002", []))
    refreshed = run("repos", "refresh", "ops")
    assert refreshed.exit_code == 0
    assert "ops: 3 files, 1 parsed, 0 removed" in refreshed.output
    assert cli_data(run("repos", "refresh", "--json").output)[0]["counts"]["workplans"] == 2

    assert run("repos", "remove", "ops").output.strip() == "removed ops"
    assert cli_data(run("repos", "list", "--json").output) == []


def test_repos_add_json(run: Run, repo: GitRepo) -> None:
    result = run("repos", "add", "--json", str(repo.root))
    assert cli_data(result.output)[0]["counts"] == {"workplans": 1, "tasks": 3, "canon": 1}


def test_tasks_workplans_canon(run: Run, repo: GitRepo) -> None:
    run("repos", "add", str(repo.root))
    ready = cli_data(run("tasks", "--ready", "--json").output)
    assert [t["ref"] for t in ready["items"]] == ["OPS-WP-0001-T02"]
    assert ready["total"] == 1
    owned = cli_data(run("tasks", "--owner", "codex", "--status", "todo", "--json").output)
    assert [t["ref"] for t in owned["items"]] == ["OPS-WP-0001-T02"]
    page = cli_data(run("tasks", "--limit", "1", "--offset", "1", "--json").output)
    assert ([t["ref"] for t in page["items"]], page["total"]) == (["OPS-WP-0001-T02"], 3)
    table = run("tasks", "--repo", "ops", "--workplan", "OPS-WP-0001", "--limit", "2").output
    assert "OPS-WP-0001-T01" in table
    assert "showing 2 of 3" in table

    plans = cli_data(run("workplans", "--status", "active", "--json").output)
    assert [w["id"] for w in plans["items"]] == ["OPS-WP-0001"]
    assert "OPS-WP-0001" in run("workplans", "--owner", "ops-lead", "--repo", "ops").output

    canon = cli_data(run("canon", "--kind", "adr", "--status", "accepted", "--json").output)
    assert [d["id"] for d in canon["items"]] == ["ADR-001"]
    assert "ADR-001" in run("canon", "--repo", "ops").output


def test_rebuild_prints_counts_and_errors(run: Run, repo: GitRepo, settings: Settings) -> None:
    run("repos", "add", str(repo.root))
    lose_cache(settings.database_url, settings.default_cache_file)
    summary = cli_data(run("rebuild", "--json").output)
    assert (summary["repos"], summary["workplans"], summary["tasks"], summary["canon"]) == (1, 1, 3, 1)
    assert [e["path"] for e in summary["errors"]] == ["workplans/broken.md"]
    text = run("rebuild").output
    assert "1 repos: 1 workplans, 3 tasks, 1 canon documents, 1 file errors" in text
    assert "ops/workplans/broken.md:1:" in text


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ("tasks", "--status", "finished"),
            2,
            "invalid status 'finished': valid values are todo, in-progress",
        ),
        (("workplans", "--status", "open"), 2, "invalid status 'open'"),
        (("canon", "--kind", "law"), 2, "invalid kind 'law'"),
        (("tasks", "--limit", "0"), 2, "invalid limit 0: use 1 to 1000"),
        (("repos", "remove", "nope"), 4, "no repo registered as 'nope'"),
        (("repos", "refresh", "nope"), 4, "no repo registered as 'nope'"),
        # a --repo naming no registered repo is 404 on the API: here too, not an empty list
        (("tasks", "--repo", "nope"), 4, "no repo registered as 'nope'"),
        (("workplans", "--repo", "nope"), 4, "no repo registered as 'nope'"),
        (("canon", "--repo", "nope"), 4, "no repo registered as 'nope'"),
        (("events", "--repo", "nope"), 4, "no repo registered as 'nope'"),
        (("sweep", "nope"), 4, "no repo registered as 'nope'"),  # before any progress bar
    ],
)
def test_errors_exit_non_zero_with_one_clear_line(
    run: Run, args: tuple[str, ...], code: int, message: str
) -> None:
    result = run(*args)
    assert result.exit_code == code
    assert message in _one_error_line(result.output)


def test_adding_a_non_git_path_is_one_clear_line(run: Run, tmp_path: Path) -> None:
    result = run("repos", "add", str(tmp_path))
    assert result.exit_code == 2
    assert "is not inside a git work tree" in _one_error_line(result.output)


def test_a_bad_setting_is_one_clear_line(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATEHUB_PROFILE", "laptop")
    for args in (("tasks",), ("serve",)):
        result = run(*args)
        assert result.exit_code == 3  # the setup code: the hub is configured so it cannot run
        assert "valid profiles are dev, fleet" in _one_error_line(result.output)


def test_serve_answers_on_loopback(settings_home: Path, repo: GitRepo) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "STATEHUB_HOME": str(settings_home), "STATEHUB_WATCH": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "statehub", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/state/health", timeout=1).json()
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.1)
        assert health["status"] == "ok"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert f"on http://127.0.0.1:{port}/" in output and "State Hub (dev" in output


def test_an_unreadable_hub_toml_is_one_clear_line(run: Run, settings_home: Path) -> None:
    (settings_home / "config").mkdir(parents=True, exist_ok=True)
    (settings_home / "config" / "hub.toml").write_text("[[repos]\n", encoding="utf-8")
    result = run("repos", "list")
    assert result.exit_code == 3
    assert "cannot read the list of registered repos" in _one_error_line(result.output)


def test_a_hub_toml_entry_without_a_path_is_one_clear_line(run: Run, settings_home: Path) -> None:
    (settings_home / "config").mkdir(parents=True, exist_ok=True)
    (settings_home / "config" / "hub.toml").write_text('[[repos]]\nslug = "x"\n', encoding="utf-8")
    result = run("tasks")
    assert result.exit_code == 3
    assert 'each with slug = "..." and path = "..."' in _one_error_line(result.output)


def test_a_slug_listed_twice_in_hub_toml_is_one_clear_line(
    run: Run, settings_home: Path, repo: GitRepo
) -> None:
    """A hand-edited hub.toml that lists a slug twice (registration never writes one) is refused
    like any other broken hub.toml: a rebuild would insert the repo's rows twice and fail on the
    cache's unique keys (a traceback, and no cache)."""
    assert run("repos", "add", str(repo.root)).exit_code == 0
    hub_toml = settings_home / "config" / "hub.toml"
    hub_toml.write_text(
        hub_toml.read_text(encoding="utf-8") + f'[[repos]]\nslug = "ops"\npath = "{repo.root}"\n',
        encoding="utf-8",
    )
    result = run("rebuild")
    assert result.exit_code == 3
    assert "slug 'ops' is listed twice" in _one_error_line(result.output)


def _serve_failing(settings_home: Path) -> subprocess.CompletedProcess[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "STATEHUB_HOME": str(settings_home), "STATEHUB_WATCH": "0"}
    return subprocess.run(
        [sys.executable, "-m", "statehub", "serve", "--port", str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_says_an_unreadable_hub_toml_in_one_line(settings_home: Path) -> None:
    """What fails while the server opens is said as every command says it: one line, exit 3,
    not uvicorn's page of traceback."""
    (settings_home / "config").mkdir(parents=True, exist_ok=True)
    (settings_home / "config" / "hub.toml").write_text("[[repos]\n", encoding="utf-8")
    result = _serve_failing(settings_home)
    assert result.returncode == 3
    assert "cannot read the list of registered repos" in _one_error_line(result.stderr)


def test_serve_says_a_store_from_a_newer_state_hub_in_one_line(settings_home: Path) -> None:
    data = settings_home / "data"
    data.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(data / "rooms.sqlite3")) as db:
        db.execute("PRAGMA user_version = 99")
    result = _serve_failing(settings_home)
    assert result.returncode == 3
    assert "was written by a newer State Hub" in _one_error_line(result.stderr)
    with contextlib.closing(sqlite3.connect(data / "rooms.sqlite3")) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 99  # refused, left as it was
