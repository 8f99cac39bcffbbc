"""Review of issue 13 over MCP: read tools say how fresh they are (deliverable 4), and ``/mcp``
is behind the hub's cross-site, Host and token checks like every route."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import httpx
from mcp import ClientSession, StdioServerParameters, stdio_client

from statehub.auth.tokens import mint
from tests.statehub.mcp.test_mcp import _data, _run, home, server, tokened

if TYPE_CHECKING:
    from pathlib import Path

    from tests.hubserver import HubServer

__all__ = ["home", "server", "tokened"]

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
ACCEPT = {"Accept": "application/json, text/event-stream"}


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


def test_read_tools_say_how_fresh_they_are(home: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "statehub", "mcp", "--actor", "agt-fresh"],
        env={"STATEHUB_HOME": str(home), "PATH": os.environ.get("PATH", "")},
    )
    reads = {
        "list_ready_tasks": {"repo": "ops"},
        "get_task": {"ref": "OPS-WP-0001-T02"},
        "get_workplan": {"id": "OPS-WP-0001"},
        "search": {"q": "lighthouse"},
        "list_canon": {},
        "get_canon": {"id": "ADR-001"},
    }

    async def scenario() -> None:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name: t for t in (await session.list_tools()).tools}
            for name, arguments in reads.items():
                answer = _data(await session.call_tool(name, arguments))
                fresh = answer.get("freshness")
                assert fresh is not None, name
                assert [r["repo"] for r in fresh["repos"]] == ["ops"], name
                assert "freshness" in str(tools[name].output_schema), name

    _run(scenario)


def test_mcp_is_behind_the_cross_site_and_host_checks(server: HubServer) -> None:
    url = f"{server.url}/mcp"
    refusals = [
        ({"Origin": "http://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Host": "rebound.evil.example"}, 421),
    ]
    for headers, status in refusals:
        response = httpx.post(url, json=INITIALIZE, headers=ACCEPT | headers, timeout=10)
        assert response.status_code == status, (headers, response.text)
        assert response.json()["status_code"] == status
    form = httpx.post(url, content=b"{}", headers=ACCEPT | {"Content-Type": "text/plain"}, timeout=10)
    assert form.status_code == 415


def test_a_token_acts_as_itself_whatever_x_statehub_actor_says(tokened: Any) -> None:
    hub, root = tokened
    writer = mint(root, "agt-token", "write", ("ops",)).to_base64()
    headers = ACCEPT | {"Authorization": f"Bearer {writer}", "X-Statehub-Actor": "agt-victim"}
    response = httpx.post(
        f"{hub.url}/mcp", json=_call("claim_task", {"ref": "OPS-WP-0001-T02"}), headers=headers, timeout=30
    )
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert not result["isError"], result
    assert result["structuredContent"]["actor"] == "agt-token"
    as_other = httpx.post(
        f"{hub.url}/tasks/OPS-WP-0001-T02/release",
        json={"actor": "agt-victim", "status": "done"},
        headers={"Authorization": f"Bearer {writer}"},
        timeout=30,
    )
    assert as_other.status_code == 403, as_other.text
