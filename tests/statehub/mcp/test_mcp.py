"""The MCP server driven by the official SDK's client: ``statehub mcp`` over stdio (a child
process) and ``/mcp`` over streamable HTTP on a real hub server process, with and without tokens."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import httpx2
import pytest
from click.testing import CliRunner
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.tokens import mint
from statehub.cli import main
from statehub.hub import Hub
from statehub.settings import Settings
from tests.gitfixtures import GitRepo, workplan_text
from tests.hubserver import HubServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from mcp import types

TOOLS = {
    "list_ready_tasks",
    "get_task",
    "get_workplan",
    "search",
    "set_task_status",
    "add_progress_note",
    "add_task",
    "list_canon",
    "get_canon",
    "fleet_readiness",
    "drain_plan",
}
WRITES = {"set_task_status", "add_progress_note", "add_task", "claim_task", "heartbeat", "release_task"}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hub home with one registered repo: a workplan of three tasks and a canon document."""
    home = tmp_path / "hub-home"
    monkeypatch.setenv("STATEHUB_HOME", str(home))
    monkeypatch.delenv("STATEHUB_DATABASE_URL", raising=False)
    for name in (
        "STATEHUB_PROFILE",
        "STATEHUB_AUTH",
        "STATEHUB_TOKEN_PUBLIC_KEY",
        "STATEHUB_TOKEN_ROOT_KEY_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    repo = GitRepo(tmp_path / "repos" / "ops")
    repo.write("statehub.toml", '[repo]\nslug = "ops"\nprefixes = ["OPS"]\n')
    repo.write(
        "workplans/OPS-WP-0001.md",
        workplan_text(
            "OPS-WP-0001",
            [
                {"id": "T01", "title": "Provision the lighthouse", "status": "done"},
                {"id": "T02", "title": "Wire the lighthouse lamp", "depends_on": ["T01"]},
                {"id": "T03", "title": "Paint it", "status": "in-progress", "depends_on": ["T01"]},
                {"id": "T04", "title": "Open it", "depends_on": ["T02"]},
            ],
            title="Lighthouse",
            body="\n# Plan\n\nKeep the lamp lit.\n\n## Progress\n\n",
        ),
    )
    repo.write(
        "canon/ADR-001.md",
        '+++\nid = "ADR-001"\ntitle = "Lamps are LED"\nkind = "adr"\n'
        'status = "accepted"\n+++\nLED lamps only.\n',
    )
    repo.commit()
    with Hub(Settings.from_env().with_overrides(watch=False)) as hub:
        hub.register(repo.root)
    return home


def _repo(home: Path) -> GitRepo:
    return GitRepo(home.parent / "repos" / "ops", init=False)


def _data(result: types.CallToolResult) -> Any:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    text = result.content[0]
    assert json.loads(text.text) == result.structured_content  # type: ignore[union-attr]
    return result.structured_content


def _message(result: types.CallToolResult) -> str:
    assert result.is_error
    return str(result.content[0].text)  # type: ignore[union-attr]


async def _agent_loop(session: ClientSession, repo: GitRepo, actor: str) -> None:
    """What an agent does: list tools, find work, read it, report, finish; bad input writes nothing."""
    listed = await session.list_tools()
    tools = {t.name: t for t in listed.tools}
    assert set(tools) >= TOOLS
    for name, tool in tools.items():
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is (name not in WRITES)

    ready = _data(await session.call_tool("list_ready_tasks", {"repo": "ops"}))
    assert [t["ref"] for t in ready["items"]] == ["OPS-WP-0001-T02", "OPS-WP-0001-T03"]  # todo first
    task = _data(await session.call_tool("get_task", {"ref": "OPS-WP-0001-T02"}))
    assert (task["status"], task["ready"]) == ("todo", True)
    plan = _data(await session.call_tool("get_workplan", {"id": "OPS-WP-0001"}))
    assert [t["id"] for t in plan["tasks"]] == ["T01", "T02", "T03", "T04"]
    hits = _data(await session.call_tool("search", {"q": "lighthouse lamp"}))
    assert hits["items"][0]["ref"] == "OPS-WP-0001-T02"
    canon = _data(await session.call_tool("list_canon", {}))
    assert [c["id"] for c in canon["items"]] == ["ADR-001"]
    assert "LED" in _data(await session.call_tool("get_canon", {"id": "ADR-001"}))["body"]

    head = repo.git("rev-parse", "HEAD")
    for name, arguments, says in [
        ("set_task_status", {"ref": "OPS-WP-0001-T02", "status": "finished"}, "status"),
        ("set_task_status", {"ref": "OPS-WP-0001-T02"}, "status"),
        ("set_task_status", {"ref": "OPS-WP-0001-T02", "status": "done", "colour": "red"}, "colour"),
        ("add_progress_note", {"ref": "OPS-WP-0001-T02", "note": ""}, "note"),
        ("add_progress_note", {"ref": "OPS-WP-0001-T99", "note": "x"}, "T99"),
        ("add_task", {"workplan": "OPS-WP-0001", "title": 7}, "title"),
        ("list_ready_tasks", {"limit": 0}, "limit"),
        ("get_task", {"ref": "OPS-WP-0009-T01"}, "OPS-WP-0009-T01"),
        ("search", {"q": '"" --'}, "no word"),
        ("search", {"q": "x", "repo": "nope"}, "nope"),
        ("no_such_tool", {}, "no_such_tool"),
    ]:
        result = await session.call_tool(name, arguments)
        assert says in _message(result), (name, arguments, _message(result))
    assert repo.git("rev-parse", "HEAD") == head  # nothing was written
    assert _data(await session.call_tool("get_task", {"ref": "OPS-WP-0001-T02"}))["status"] == "todo"

    note = _data(
        await session.call_tool("add_progress_note", {"ref": "OPS-WP-0001-T02", "note": "lamp wired halfway"})
    )
    assert (note["kind"], note["state"], note["result"]) == ("progress.note", "applied", "accepted")
    assert note["event"]["actor"] == actor
    done = _data(
        await session.call_tool(
            "set_task_status", {"ref": "OPS-WP-0001-T02", "status": "done", "key": "k-done-1"}
        )
    )
    assert done["state"] == "applied"
    assert done["commit"]
    again = _data(
        await session.call_tool(
            "set_task_status", {"ref": "OPS-WP-0001-T02", "status": "done", "key": "k-done-1"}
        )
    )
    assert again["result"] == "duplicate"
    added = _data(await session.call_tool("add_task", {"workplan": "OPS-WP-0001", "title": "Log the light"}))
    assert added["event"]["task"] == "T05"

    text = repo.read("workplans/OPS-WP-0001.md")
    assert f"OPS-WP-0001-T02 @{actor}: lamp wired halfway" in text
    assert 'title = "Log the light"' in text
    assert repo.git("status", "--porcelain") == ""
    assert _data(await session.call_tool("get_task", {"ref": "OPS-WP-0001-T02"}))["status"] == "done"
    ready = _data(await session.call_tool("list_ready_tasks", {"repo": "ops"}))
    assert [t["ref"] for t in ready["items"]][:2] == ["OPS-WP-0001-T04", "OPS-WP-0001-T05"]

    resources = await session.list_resources()
    uris = {str(r.uri) for r in resources.resources}
    assert uris == {"statehub://workplans/OPS-WP-0001", "statehub://canon/ops/ADR-001"}
    read = await session.read_resource("statehub://canon/ops/ADR-001")
    assert json.loads(read.contents[0].text)["title"] == "Lamps are LED"  # type: ignore[union-attr]
    templates = await session.list_resource_templates()
    assert {t.name for t in templates.resource_templates} == {"workplan", "canon"}


def _run(scenario: Callable[[], Awaitable[None]]) -> None:
    anyio.run(scenario)


def test_stdio_agent_loop(home: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "statehub", "mcp", "--actor", "agt-stdio"],
        env={"STATEHUB_HOME": str(home), "PATH": os.environ.get("PATH", "")},
    )

    async def scenario() -> None:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            await _agent_loop(session, _repo(home), "agt-stdio")
            # a file edited by hand reaches the answers: statehub mcp watches when no server does
            repo = _repo(home)
            path = "workplans/OPS-WP-0001.md"
            repo.write(path, repo.read(path).replace("Paint it", "Paint it white"))
            with anyio.fail_after(30):
                while _data(await session.call_tool("get_task", {"ref": "OPS-WP-0001-T03"}))["title"] != (
                    "Paint it white"
                ):
                    await anyio.sleep(0.1)

    _run(scenario)


@pytest.fixture
def server(home: Path) -> AsyncIterator[HubServer] | Any:
    hub = HubServer(home).start()
    yield hub
    hub.stop()


def test_http_agent_loop_on_an_open_hub(server: HubServer, home: Path) -> None:
    for method in ("GET", "DELETE"):  # no server-sent stream, no sessions: 405, never a held connection
        response = httpx.request(
            method, f"{server.url}/mcp", headers={"Accept": "text/event-stream"}, timeout=10
        )
        assert response.status_code == 405, response.text
        assert (response.json()["status_code"], response.headers["allow"]) == (405, "POST")

    async def scenario() -> None:
        async with (
            httpx2.AsyncClient(headers={"X-Statehub-Actor": "agt-http"}) as client,
            streamable_http_client(f"{server.url}/mcp", http_client=client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await _agent_loop(session, _repo(home), "agt-http")

    _run(scenario)


@pytest.fixture
def tokened(home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings = Settings.from_env()
    init_root_key(settings.root_key_file)
    root = load_root_key(settings.root_key_file)
    monkeypatch.setenv("STATEHUB_AUTH", "required")
    server = HubServer(home).start()
    yield server, root
    server.stop()


def test_http_with_tokens_acts_as_the_token_and_refuses_others(tokened: Any, home: Path) -> None:
    server, root = tokened
    writer = mint(root, "agt-token", "write", ("ops",)).to_base64()
    reader = mint(root, "agt-reader", "read", ("ops",)).to_base64()
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    for bearer in (None, "Bearer not-a-token"):
        sent = headers | ({"Authorization": bearer} if bearer else {})
        response = httpx.post(f"{server.url}/mcp", json=initialize, headers=sent, timeout=10)
        assert response.status_code == 401, response.text
        body = response.json()
        assert body["status_code"] == 401
        assert "token" in body["error"]

    async def scenario() -> None:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {writer}"}) as client,
            streamable_http_client(f"{server.url}/mcp", http_client=client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await _agent_loop(session, _repo(home), "agt-token")
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {reader}"}) as client,
            streamable_http_client(f"{server.url}/mcp", http_client=client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            assert _data(await session.call_tool("get_task", {"ref": "OPS-WP-0001-T04"}))["ref"]
            head = _repo(home).git("rev-parse", "HEAD")
            refused = await session.call_tool(
                "add_progress_note", {"ref": "OPS-WP-0001-T04", "note": "sneaky"}
            )
            assert "write" in _message(refused)
            assert _repo(home).git("rev-parse", "HEAD") == head

    _run(scenario)


def test_claims_over_stdio(home: Path) -> None:
    """claim_task, heartbeat, release_task call the claims library (when the hub has it)."""
    pytest.importorskip("statehub.claims")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "statehub", "mcp", "--actor", "agt-claimer"],
        env={"STATEHUB_HOME": str(home), "PATH": os.environ.get("PATH", "")},
    )
    repo = _repo(home)

    async def scenario() -> None:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = {t.name for t in (await session.list_tools()).tools}
            assert {"claim_task", "heartbeat", "release_task"} <= names
            head = repo.git("rev-parse", "HEAD")
            bad = await session.call_tool("claim_task", {"ref": "OPS-WP-0001-T02", "lease_s": 0})
            assert "lease_s" in _message(bad)
            blocked = await session.call_tool("claim_task", {"ref": "OPS-WP-0001-T04"})
            assert "OPS-WP-0001-T02" in _message(blocked)  # the open dependency
            assert _message(await session.call_tool("heartbeat", {"ref": "OPS-WP-0001-T02"}))  # not held
            assert repo.git("rev-parse", "HEAD") == head

            ready = _data(await session.call_tool("list_ready_tasks", {}))
            assert ready["items"][0]["ref"] == "OPS-WP-0001-T02"  # the claimable one first
            won = _data(await session.call_tool("claim_task", {"ref": "OPS-WP-0001-T02", "lease_s": 600}))
            assert (won["ref"], won["actor"]) == ("OPS-WP-0001-T02", "agt-claimer")
            task = _data(await session.call_tool("get_task", {"ref": "OPS-WP-0001-T02"}))
            assert (task["status"], task["owner"]) == ("in-progress", "agt-claimer")
            assert (
                _data(await session.call_tool("heartbeat", {"ref": "OPS-WP-0001-T02"}))["key"] == won["key"]
            )
            released = _data(
                await session.call_tool(
                    "release_task", {"ref": "OPS-WP-0001-T02", "status": "done", "note": "lamp wired"}
                )
            )
            assert (released["status"], released["owner"]) == ("done", None)
            task = _data(await session.call_tool("get_task", {"ref": "OPS-WP-0001-T02"}))
            assert (task["status"], task["owner"]) == ("done", None)
            again = await session.call_tool("release_task", {"ref": "OPS-WP-0001-T02", "status": "done"})
            assert _message(again)
            assert "OPS-WP-0001-T02 @agt-claimer: lamp wired" in repo.read("workplans/OPS-WP-0001.md")
            assert repo.git("status", "--porcelain") == ""

    _run(scenario)


def test_config_prints_the_client_snippet(home: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["mcp", "--config", "--actor", "agt-x"])
    assert result.exit_code == 0, result.output
    server = json.loads(result.output)["mcpServers"]["statehub"]
    assert (server["type"], server["args"]) == ("stdio", ["mcp"])
    assert server["env"] == {"STATEHUB_ACTOR": "agt-x", "STATEHUB_HOME": str(home.resolve())}
    result = runner.invoke(main, ["mcp", "--config", "--url", "https://hub.example/mcp", "--actor", "agt-y"])
    assert json.loads(result.output)["mcpServers"]["statehub"] == {
        "type": "http",
        "url": "https://hub.example/mcp",
        "headers": {"Authorization": "Bearer ${STATEHUB_TOKEN}", "X-Statehub-Actor": "agt-y"},
    }
    assert runner.invoke(main, ["mcp", "--url", "https://hub.example/mcp"]).exit_code == 2


def test_statehub_mcp_does_not_load_the_web_stack(home: Path) -> None:
    """A whole stdio session, a write included, without Litestar (fast start, ADR-034)."""
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {
                "name": "add_progress_note",
                "arguments": {"ref": "OPS-WP-0001-T02", "note": "no web"},
            },
        },
    ]
    script = (
        "import sys, atexit\n"
        "atexit.register(lambda: print('litestar', 'litestar' in sys.modules, file=sys.stderr))\n"
        "from statehub.cli import main\n"
        "main(['mcp', '--actor', 'agt-lean'])\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "STATEHUB_HOME": str(home), "STATEHUB_WATCH": "0"},
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        answers: dict[int, Any] = {}
        for message in messages:
            process.stdin.write(json.dumps(message) + "\n")
            process.stdin.flush()
            if "id" in message:  # wait for its answer (the server drops what is in flight at EOF)
                while message["id"] not in answers:
                    answer = json.loads(process.stdout.readline())
                    answers[answer["id"]] = answer
        stderr = process.communicate(timeout=60)[1]  # closes stdin: the server ends
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert answers[2]["result"]["isError"] is False, answers
    assert "litestar False" in stderr.splitlines()[-1], stderr
    assert "@agt-lean: no web" in _repo(home).read("workplans/OPS-WP-0001.md")
