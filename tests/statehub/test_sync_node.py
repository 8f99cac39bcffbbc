"""A stock Yjs client (npm ``yjs`` + ``y-websocket``) edits a manifest through ``/sync/{doc}``."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import pytest

from tests.nodepackages import node_packages
from tests.sync_fixtures import MANIFEST, demo, room, server
from tests.ysync_client import YClient

if TYPE_CHECKING:
    from pathlib import Path

    from tests.gitfixtures import GitRepo
    from tests.hubserver import HubServer

__all__ = ["demo", "server"]


@pytest.fixture(scope="module")
def node_modules() -> Path:
    return node_packages()


def test_a_stock_yjs_client_converges_with_another_and_the_server(
    node_modules: Path, server: HubServer, demo: GitRepo
) -> None:
    async def scenario() -> str:
        watcher = await YClient(room(server, "py")).connect()
        await asyncio.wait_for(watcher.synced.wait(), 5)
        run = await asyncio.create_subprocess_exec(
            "node",
            str(node_modules / "interop.mjs"),
            f"{server.ws_url}/sync",
            "demo/statehub.toml",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(run.communicate(), 30)
        assert run.returncode == 0, err.decode()
        result = json.loads(out.decode().strip().splitlines()[-1])
        assert result["ok"]
        assert {"node-a", "node-b"} <= set(result["awareness"])
        # y-websocket sends back every awareness update it applies: no refusal for that.
        assert result["hubMessages"] == []
        text: str = result["text"]
        await watcher.wait_for(lambda: str(watcher.text) == text)
        await watcher.close()
        return text

    text = asyncio.run(scenario())
    assert text == "# from node-a\n" + MANIFEST + "# from node-b\n"
