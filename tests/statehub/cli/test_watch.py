"""``statehub watch`` against a real server process: it tails the change stream, filters, finds this
home's server by itself, picks up where it left off after the hub restarts, and says clearly why
it cannot follow (no server, a refused token, a bad address)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from tests.gitfixtures import GitRepo, workplan_text
from tests.statehub.hubprocess import HubProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
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


class _Hostile:
    """A real HTTP server on 127.0.0.1 that answers every GET with ``body`` as an event stream."""

    def __init__(self, body: Callable[[Any], None]) -> None:
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up: what a bounded client does
                    body(self.wfile)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> _Hostile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _run_watch(url: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("STATEHUB_URL", "STATEHUB_TOKEN")}
    return subprocess.run(
        [sys.executable, "-m", "statehub", "watch", "--url", url, "--max", "1", *args],
        env=environ | {"STATEHUB_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_hostile_server_cannot_write_escapes_or_fake_lines_on_the_terminal(tmp_path: Path) -> None:
    """Review of issue 14: the human line kept newlines from the data, so a server could print a
    line that looked like another message."""
    data = {"repo": "x\u001b]0;pwned\u0007\nFAKE 99 task.changed", "ref": "\u001b[2J", "at": "\u009b31m"}

    def send(out: Any) -> None:
        out.write(b"id: 7\nevent: task.changed\x1b[31m\ndata: " + json.dumps(data).encode() + b"\n\n")

    with _Hostile(send) as hostile:
        shown = _run_watch(hostile.url, home=tmp_path)
        as_json = _run_watch(hostile.url, "--json", home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("\n") == 1  # one message, one line
    assert not any(c in shown.stdout for c in "\x1b\x07\x9b")
    assert "\\x1b]0;pwned" in shown.stdout
    assert as_json.returncode == 0, as_json.stderr
    line = as_json.stdout
    assert line.count("\n") == 1 and "\x1b" not in line
    assert json.loads(line)["data"] == data


@pytest.mark.parametrize(
    ("send", "said"),
    [
        (lambda out: out.write(b"id: 1\nevent: task.changed\ndata: {not json\n\n"), "not JSON"),
        # 17 MiB on one line: the client holds no more than its bound, then stops
        (
            lambda out: [out.write(b"data: " if i == 0 else b"a" * (1 << 20)) for i in range(18)],
            "longer than",
        ),
        # endless data lines that never end a message
        (lambda out: [out.write(b"data: " + b"b" * 65_000 + b"\n") for _ in range(300)], "longer than"),
    ],
    ids=["bad-json", "giant-line", "endless-message"],
)
def test_a_server_sending_what_no_hub_sends_ends_watch_with_a_clear_error(
    tmp_path: Path, send: Callable[[Any], None], said: str
) -> None:
    """Review of issue 14: bad JSON was a traceback, a giant line was held whole (1.1 GB RSS for a
    400 MB line) and the command reconnected for ever."""
    with _Hostile(send) as hostile:
        done = _run_watch(hostile.url, home=tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert said in done.stderr
    assert "not a State Hub change stream" in done.stderr
