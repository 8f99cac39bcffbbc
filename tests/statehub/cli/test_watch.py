"""``statehub watch`` against a real server process: it tails the change stream, filters, finds this
home's server by itself, picks up where it left off after the hub restarts, and says clearly why
it cannot follow (no server, a refused token, a bad address)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from tests.gitfixtures import GitRepo, workplan_text
from tests.statehub.hubprocess import HubProcess

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PLAN = "WATCH-WP-0001"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[HubProcess, GitRepo]]:
    repo = GitRepo(tmp_path / "repos" / "watched")
    tasks = [{"id": f"T{n:02d}", "title": f"step {n}", "status": "todo"} for n in (1, 2)]
    repo.write(f"workplans/{PLAN}.md", workplan_text(PLAN, tasks))
    repo.commit("plan")
    hub = HubProcess(tmp_path / "home", tmp_path / "hub.log")
    hub.start(STATEHUB_WATCH="1")
    assert hub.call("POST", "/repos", json={"path": str(repo.root)}).status_code == 201
    try:
        yield hub, repo
    finally:
        hub.stop()


def _watch(hub: HubProcess, *args: str, **env: str) -> subprocess.Popen[str]:
    environ = (
        {k: v for k, v in os.environ.items() if k != "STATEHUB_URL"} | {"STATEHUB_HOME": str(hub.home)} | env
    )
    return subprocess.Popen(
        [sys.executable, "-m", "statehub", "watch", *args],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines(process: subprocess.Popen[str], timeout: float = 60) -> list[dict[str, Any]]:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()]


def _newest_id(hub: HubProcess) -> int:
    """The id of the newest message the hub's log holds now (0 when none)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "statehub",
            "watch",
            "--json",
            "--since",
            "0",
            "--types",
            "repo.",
            "--max",
            "1",
        ],
        env=os.environ | {"STATEHUB_HOME": str(hub.home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(json.loads(done.stdout.splitlines()[0])["id"])


def _flip(repo: GitRepo, status: str) -> None:
    text = repo.read(f"workplans/{PLAN}.md")
    start = text.index('id = "T01"')
    line_end = text.index("\n", text.index("status", start))
    repo.write(
        f"workplans/{PLAN}.md",
        text[:start] + text[start:line_end].rsplit("=", 1)[0] + f'= "{status}"' + text[line_end:],
    )


def test_watch_follows_a_hand_edit_found_from_this_homes_server(served: tuple[HubProcess, GitRepo]) -> None:
    hub, repo = served
    since = _newest_id(hub)
    watching = _watch(hub, "--json", "--types", "task.", "--since", str(since), "--max", "1")
    _flip(repo, "done")
    [line] = _lines(watching)
    assert line["schema_version"] == 1
    assert line["event"] == "task.changed"
    assert line["id"] > since
    data = line["data"]
    assert data["ref"] == f"{PLAN}-T01"
    assert data["cause"] == "file-edit"
    assert data["fields"]["status"] == {"old": "todo", "new": "done"}


def test_people_see_one_line_per_change(served: tuple[HubProcess, GitRepo]) -> None:
    hub, repo = served
    since = _newest_id(hub)
    watching = _watch(hub, "--types", "task.", "--since", str(since), "--max", "1")
    _flip(repo, "blocked")
    out, err = watching.communicate(timeout=60)
    assert watching.returncode == 0, err
    [line] = out.splitlines()
    assert f"{PLAN}-T01 changed: status todo -> blocked (file-edit)" in line
    assert "task.changed" in line and "watched" in line


def test_filters_reach_the_hub(served: tuple[HubProcess, GitRepo]) -> None:
    hub, _ = served
    since = _newest_id(hub)
    note = {"key": "W1", "kind": "progress.note", "workplan": PLAN, "task": "T02", "actor": "ada"}
    answer = hub.call("POST", "/events", json=note | {"note": "looked", "at": "2026-12-01T10:00:00Z"})
    assert answer.status_code == 202, answer.text
    watching = _watch(hub, "--json", "--types", "event.applied", "--since", str(since), "--max", "1")
    [line] = _lines(watching)
    assert line["event"] == "event.applied"
    assert line["data"]["kind"] == "progress.note"
    assert line["data"]["actor"] == "ada"


def test_watch_goes_on_after_the_hub_restarts_and_misses_nothing(served: tuple[HubProcess, GitRepo]) -> None:
    hub, repo = served
    since = _newest_id(hub)
    watching = _watch(hub, "--json", "--types", "task.", "--since", str(since), "--max", "2")
    _flip(repo, "done")
    assert watching.stdout is not None
    first = json.loads(watching.stdout.readline())  # watch is connected and has seen the first change
    hub.stop()
    _flip(repo, "todo")  # changed while no hub runs: the next start's reconcile finds it
    hub.start(STATEHUB_WATCH="1")
    lines = [first, *_lines(watching, timeout=120)]
    assert [line["data"]["fields"]["status"]["new"] for line in lines] == ["done", "todo"]
    assert lines[0]["id"] < lines[1]["id"]


def test_no_server_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "statehub", "watch"],
        env={k: v for k, v in os.environ.items() if k != "STATEHUB_URL"} | {"STATEHUB_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 12
    assert "no State Hub server runs on this home" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("url", "code", "said"),
    [
        ("ftp://127.0.0.1:1", 2, "give the hub's address"),
        ("http://127.0.0.1:1", 12, "cannot reach the hub at http://127.0.0.1:1"),
    ],
)
def test_a_bad_or_dead_address_is_a_clear_error(tmp_path: Path, url: str, code: int, said: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "statehub", "watch", "--url", url],
        env=os.environ | {"STATEHUB_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == code, done.stderr
    assert said in done.stderr
    assert "Traceback" not in done.stderr


def test_a_refused_stream_says_why(served: tuple[HubProcess, GitRepo]) -> None:
    hub, _ = served
    done = subprocess.run(
        [sys.executable, "-m", "statehub", "watch", "--url", hub.url, "--types", "nonsense"],
        env=os.environ | {"STATEHUB_HOME": str(hub.home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "the hub refused the stream" in done.stderr
    assert "Traceback" not in done.stderr
