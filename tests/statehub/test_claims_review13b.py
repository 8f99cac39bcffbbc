"""Second review of issue 13 (claims, MCP, CLI), each finding against real processes: a hub
server (``statehub serve``) over real git repos, the official MCP SDK's client, the CLI run as a
process.

- A claim accepted while a person had the workplan open waited for their commit, then wrote
  in-progress over the ``done`` they committed; its lease stayed held.
- A release wrote its status over a task a person had marked done meanwhile.
- The claim, heartbeat and release bodies ignored fields they do not take (a mistyped ``notes``
  lost the note, answered 200).
- ``statehub mcp --config --url`` gave no actor: on an open hub every agent acted as the server's
  login, and a second agent's claim of a held task "renewed" it instead of losing.
- ``statehub next --claim --json`` with nothing claimable printed two JSON documents; a usage
  error with ``--json`` printed none.
- ``statehub mcp`` over stdio said ``watching: false`` in every freshness.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from tests.gitfixtures import GitRepo, workplan_text
from tests.hubserver import HubServer

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

PLAN = "PEOPLE-WP-0001"
PATH = f"workplans/{PLAN}.md"
T01, T02, T03 = (f"{PLAN}-T0{n}" for n in range(1, 4))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in (
        "STATEHUB_DATABASE_URL",
        "STATEHUB_PROFILE",
        "STATEHUB_AUTH",
        "STATEHUB_TOKEN_PUBLIC_KEY",
        "STATEHUB_TOKEN_ROOT_KEY_FILE",
        "STATEHUB_ACTOR",
    ):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("STATEHUB_HOME", str(home))
    return home


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "repos" / "people")
    repo.write("statehub.toml", '[repo]\nslug = "people"\nprefixes = ["PEOPLE"]\n')
    tasks = [
        {"id": "T01", "title": "Sweep the deck", "status": "todo", "owner": "custodian"},
        {"id": "T02", "title": "Coil the ropes", "status": "todo"},
        {"id": "T03", "title": "Hoist the flag", "status": "todo"},
    ]
    repo.write(PATH, workplan_text(PLAN, tasks, body="\n# Plan\n\n## Progress\n\n"))
    repo.commit("plans")
    return repo


@pytest.fixture
def server(home: Path, repo: GitRepo) -> Iterator[HubServer]:
    hub = HubServer(home, watch=True).start()
    try:
        answer = httpx.post(f"{hub.url}/repos", json={"path": str(repo.root)}, timeout=60)
        assert answer.status_code == 201, answer.text
        yield hub
    finally:
        hub.stop()


def _wait(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting until {what}")


def _event(server: HubServer, key: str) -> dict[str, Any]:
    answer = httpx.get(f"{server.url}/events/{key}", timeout=10)
    assert answer.status_code == 200, answer.text
    event: dict[str, Any] = answer.json()
    return event


def _post(server: HubServer, path: str, body: object) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=30)


def _task_block(text: str, task_id: str) -> str:
    start = text.index(f'id = "{task_id}"')
    end = text.find("[[tasks]]", start)
    return text[start : end if end >= 0 else text.index("+++", start)]


def test_a_claim_waiting_on_a_persons_edit_does_not_undo_the_done_they_commit(
    server: HubServer, repo: GitRepo
) -> None:
    path = repo.root / PATH
    path.write_text(path.read_text() + "- a person is typing\n")  # the file is open: claims wait
    won = _post(server, f"/tasks/{T02}/claim", {"actor": "agt-a", "lease_s": 600})
    assert won.status_code == 200, won.text
    key = won.json()["key"]
    _wait(lambda: "uncommitted" in str(_event(server, key)["reason"]), "the claim waits for the person")

    # the person marks T02 done in the same edit and commits it
    edited = path.read_text().replace(
        'id = "T02"\ntitle = "Coil the ropes"\nstatus = "todo"',
        'id = "T02"\ntitle = "Coil the ropes"\nstatus = "done"',
    )
    assert 'status = "done"' in _task_block(edited, "T02")
    path.write_text(edited)
    repo.commit("person: ropes coiled")
    committed = path.read_bytes()

    _wait(lambda: _event(server, key)["state"] != "pending", "the claim is decided")
    refused = _event(server, key)
    assert refused["state"] == "rejected", refused
    assert "done" in refused["reason"], refused
    assert path.read_bytes() == committed  # the person's bytes, untouched
    assert repo.git("status", "--porcelain") == ""

    # the claim that never reached the file holds nothing: the lease ended with it
    state = httpx.get(f"{server.url}/tasks/{T02}/claim", timeout=10).json()
    assert (state["held"], state["actor"]) == (False, None), state
    beat = _post(server, f"/tasks/{T02}/heartbeat", {"actor": "agt-a"})
    assert beat.status_code == 409, beat.text
    assert beat.json()["details"]["reason"] == "not_held"
    assert "not written" in beat.json()["error"] and "done" in beat.json()["error"]
    gone = _post(server, f"/tasks/{T02}/release", {"actor": "agt-a", "status": "todo"})
    assert gone.status_code == 409, gone.text
    assert path.read_bytes() == committed


def test_a_release_keeps_the_status_a_person_wrote_meanwhile(server: HubServer, repo: GitRepo) -> None:
    won = _post(server, f"/tasks/{T03}/claim", {"actor": "agt-b", "lease_s": 600})
    assert won.status_code == 200, won.text
    _wait(lambda: _event(server, won.json()["key"])["state"] == "applied", "the claim is in the file")
    path = repo.root / PATH
    assert 'owner = "agt-b"' in _task_block(path.read_text(), "T03")

    # the person decides the flag is up: done, by hand, committed
    path.write_text(
        path.read_text().replace(
            'title = "Hoist the flag"\nstatus = "in-progress"', 'title = "Hoist the flag"\nstatus = "done"'
        )
    )
    repo.commit("person: flag is up")
    assert 'status = "done"' in _task_block(path.read_text(), "T03")

    given_back = _post(
        server, f"/tasks/{T03}/release", {"actor": "agt-b", "status": "todo", "note": "could not reach it"}
    )
    assert given_back.status_code == 200, given_back.text
    _wait(lambda: _event(server, given_back.json()["key"])["state"] != "pending", "the release is decided")
    assert _event(server, given_back.json()["key"])["state"] == "applied"
    text = path.read_text()
    assert 'status = "done"' in _task_block(text, "T03"), text  # what the person wrote stands
    assert f"{T03} @agt-b: could not reach it" in text  # the note is kept


def test_claim_bodies_refuse_fields_they_do_not_take(server: HubServer, repo: GitRepo) -> None:
    head = repo.git("rev-parse", "HEAD")
    for path, body, field in [
        (f"/tasks/{T02}/claim", {"actor": "agt-c", "lease": 60}, "lease"),
        (f"/tasks/{T02}/heartbeat", {"actor": "agt-c", "lease_seconds": 60}, "lease_seconds"),
        (f"/tasks/{T02}/release", {"actor": "agt-c", "status": "done", "notes": "lost?"}, "notes"),
    ]:
        answer = _post(server, path, body)
        assert answer.status_code == 400, (path, answer.text)
        assert field in answer.text
    assert httpx.get(f"{server.url}/tasks/{T02}/claim", timeout=10).json()["held"] is False
    assert repo.git("rev-parse", "HEAD") == head
    # and the OpenAPI document says so (statehub.api.openapi.ClosedStructSchemas)
    schemas = httpx.get(f"{server.url}/schema/openapi.json", timeout=30).json()["components"]["schemas"]
    for body in ("ClaimBody", "HeartbeatBody", "ReleaseBody"):
        assert schemas[body]["additionalProperties"] is False, schemas[body]


def _config(actor: str, url: str) -> dict[str, Any]:
    printed = subprocess.run(
        [sys.executable, "-m", "statehub", "mcp", "--config", "--url", url, "--actor", actor],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    server: dict[str, Any] = json.loads(printed.stdout)["mcpServers"]["statehub"]
    return server


def test_the_http_config_snippet_gives_each_agent_its_own_actor_on_an_open_hub(server: HubServer) -> None:
    """Two agents configured from ``statehub mcp --config --url`` race one task: one wins, the other
    is told who holds it (not a renewal of a claim it never made)."""
    results: dict[str, Any] = {}

    async def agent(actor: str) -> None:
        config = _config(actor, f"{server.url}/mcp")
        headers = {k: v for k, v in config["headers"].items() if "${" not in v}  # no token on an open hub
        assert headers == {"X-Statehub-Actor": actor}
        async with (
            httpx2.AsyncClient(headers=headers) as client,
            streamable_http_client(config["url"], http_client=client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            results[actor] = await session.call_tool("claim_task", {"ref": T03, "lease_s": 600})

    async def race() -> None:
        async with anyio.create_task_group() as group:
            for actor in ("agt-one", "agt-two"):
                group.start_soon(agent, actor)

    anyio.run(race)
    won = {actor for actor, result in results.items() if not result.is_error}
    assert len(won) == 1, {a: r.content for a, r in results.items()}
    (winner,) = won
    (loser,) = set(results) - won
    said = results[loser].content[0].text
    assert f"held by {winner}" in said, said
    assert results[winner].structured_content["actor"] == winner


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, STATEHUB_HOME=str(home))
    return subprocess.run(
        [sys.executable, "-m", "statehub", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_json_commands_that_fail_print_exactly_one_envelope(home: Path, repo: GitRepo) -> None:
    added = _cli(home, "repos", "add", str(repo.root))
    assert added.returncode == 0, added.stderr
    for ref in (T01, T02, T03):  # every task taken: nothing is claimable
        taken = _cli(home, "claim", ref, "--actor", f"agt-{ref[-1]}", "--json")
        assert taken.returncode == 0, taken.stderr
    none = _cli(home, "next", "--claim", "--actor", "agt-late", "--json")
    assert none.returncode == 5, none.stderr
    envelope = json.loads(none.stdout)  # one JSON document
    assert envelope["data"] is None and envelope["error"]["exit_code"] == 5
    assert envelope["error"]["details"]["candidates"] == 0
    assert "nothing claimed for agt-late" in envelope["error"]["error"]

    for args, command, says in [
        (("claim", T01, "--lease-s", "0", "--json"), "statehub claim", "--lease-s"),
        (("claim", "--json"), "statehub claim", "REF"),
        (("repos", "list", "--bogus", "--json"), "statehub repos list", "--bogus"),
    ]:
        failed = _cli(home, *args)
        assert failed.returncode == 2, (args, failed.stderr)
        usage = json.loads(failed.stdout)
        assert usage["command"] == command
        assert (usage["data"], usage["error"]["exit_code"], usage["error"]["status_code"]) == (None, 2, 400)
        assert says in usage["error"]["error"]
        assert says in failed.stderr  # the line on stderr is as without --json


def test_a_lease_that_runs_out_while_its_claim_waits_leaves_the_task_as_it_was(
    server: HubServer, repo: GitRepo
) -> None:
    """The claim waits for a person's commit, its lease runs out meanwhile: the hub's release is
    queued behind the claim, and once the person commits both apply in order (T01 ends todo under
    its old owner, with the note), in the person's file and nothing else of it changed."""
    path = repo.root / PATH
    path.write_text(path.read_text() + "- a person is typing\n")
    won = _post(server, f"/tasks/{T01}/claim", {"actor": "agt-d", "lease_s": 1})
    assert won.status_code == 200, won.text
    key = won.json()["key"]
    _wait(lambda: "uncommitted" in str(_event(server, key)["reason"]), "the claim waits for the person")

    def releases() -> list[dict[str, Any]]:
        pending = httpx.get(f"{server.url}/events?state=pending", timeout=10).json()["items"]
        return [e for e in pending if e["kind"] == "task.release"]

    _wait(lambda: bool(releases()), "the hub releases the run-out lease")
    expired = releases()
    assert [e["event"]["claim"] for e in expired] == [key], expired

    repo.commit("person: typed")
    _wait(lambda: _event(server, key)["state"] != "pending", "the claim is decided")
    _wait(lambda: _event(server, expired[0]["key"])["state"] != "pending", "the release is decided")
    assert (_event(server, key)["state"], _event(server, expired[0]["key"])["state"]) == (
        "applied",
        "applied",
    )
    text = path.read_text()
    block = _task_block(text, "T01")
    assert 'status = "todo"' in block and 'owner = "custodian"' in block, block
    assert f"{T01} @statehub: lease expired" in text
    assert "- a person is typing\n" in text
    assert repo.git("status", "--porcelain") == ""


def _stdio_watching(home: Path, **env: str) -> bool:
    """What ``statehub mcp`` over stdio says of watching, in a read tool's freshness."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "statehub", "mcp", "--actor", "agt-fresh"],
        env={"STATEHUB_HOME": str(home), "PATH": os.environ.get("PATH", ""), **env},
    )
    said: list[bool] = []

    async def ask() -> None:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            answer = await session.call_tool("get_task", {"ref": T01})
            assert not answer.is_error, answer.content
            said.append(answer.structured_content["freshness"]["watching"])  # type: ignore[index]

    anyio.run(ask)
    return said[0]


def test_stdio_mcp_says_whether_changes_are_followed(server: HubServer, home: Path) -> None:
    """It said ``watching: false`` whether a server on the same home followed the files or it
    watched them itself."""
    assert _stdio_watching(home) is True  # the server watches (and this process does not)
    server.stop()
    assert _stdio_watching(home) is True  # no server: this process watches
    assert _stdio_watching(home, STATEHUB_WATCH="0") is False


def test_a_claim_on_a_task_whose_file_cannot_be_parsed_says_so(server: HubServer, repo: GitRepo) -> None:
    """It said only "no task ..." while the task was there in a file with a typo."""
    path = repo.root / PATH
    path.write_text(path.read_text().replace('title = "Coil the ropes"', 'title = "Coil the ropes'))
    head = repo.git("rev-parse", "HEAD")

    def answer() -> httpx.Response:
        return _post(server, f"/tasks/{T02}/claim", {"actor": "agt-e"})

    _wait(lambda: answer().status_code == 404, "the watcher indexes the broken file")
    said = answer().json()["error"]
    assert f"{PATH}:" in said and "cannot be parsed" in said and "people" in said, said
    assert "cannot be parsed" in httpx.get(f"{server.url}/tasks/{T02}", timeout=10).json()["error"]
    assert repo.git("rev-parse", "HEAD") == head
    assert httpx.get(f"{server.url}/tasks/PEOPLE-WP-0002-T01", timeout=10).json()["error"].endswith("T02")
