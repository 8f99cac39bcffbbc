"""Two hub processes, one data dir, one PostgreSQL state schema: one room across replicas (canon/ADR-051).

Client 1 on replica A and client 2 on replica B of the same manifest edit at
once and converge, see each other's presence, a save through either commits
once with the merged text, and replica B killed with SIGKILL loses nothing:
its client reconnects to A and converges.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.backends import selected_backends
from tests.hubserver import HubServer
from tests.nodepackages import node_packages
from tests.statehub.test_stream import Subscriber
from tests.sync_fixtures import MANIFEST, demo, room
from tests.ysync_client import YClient

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from statehub.settings import Settings
    from tests.gitfixtures import GitRepo

__all__ = ["demo"]

DOC = "demo/statehub.toml"


@pytest.fixture
def replicas(
    request: pytest.FixtureRequest, demo: GitRepo, served_settings: Settings
) -> Iterator[tuple[HubServer, HubServer]]:
    """Replicas A and B over one hub home and one fresh PostgreSQL database for their state."""
    if "postgres" not in selected_backends(request.config):
        pytest.skip("rooms across replicas need PostgreSQL (--backends postgres)")
    state_url = request.getfixturevalue("postgres_database")
    home = served_settings.config_dir.parent
    env = {"STATEHUB_STATE_URL": state_url}
    a = HubServer(home, env=env)
    b = HubServer(home, env=env)
    b.log = home / "server-b.log"
    try:
        a.start()  # one at a time: the first migrates the state schema and builds the cache
        b.start()
        yield a, b
    finally:
        b.stop()
        a.stop()


def _commits(repo: GitRepo) -> int:
    return int(repo.git("rev-list", "--count", "HEAD"))


def _names(client: YClient) -> set[str]:
    return {
        s["user"]["name"]
        for s in client.awareness.states.values()
        if isinstance(s, dict) and isinstance(s.get("user"), dict)
    }


def _unsaved(server: HubServer) -> bool:
    items: list[dict[str, Any]] = httpx.get(f"{server.url}/sync", timeout=30).json()["items"]
    return next(bool(item["unsaved"]) for item in items if item["doc"] == DOC)


async def _connected(url: str, name: str, doc: YClient | None = None) -> YClient:
    client = YClient(url, name=name)
    if doc is not None:  # a client that kept its copy (y-websocket reconnecting)
        client.doc.apply_update(doc.doc.get_update())
    await client.connect()
    await asyncio.wait_for(client.synced.wait(), 10)
    return client


async def _edit_together(ada: YClient, bob: YClient, rounds: int, tag: str) -> None:
    """Both type ``rounds`` lines at once, at opposite ends, without waiting for each other."""
    for i in range(rounds):
        ada.text.insert(len(str(ada.text)), f"# {tag} ada {i}\n")
        bob.text.insert(0, f"# {tag} bob {i}\n")
        await asyncio.sleep(0.005)


def _has_each_once(text: str, tag: str, rounds: int) -> bool:
    return all(text.count(f"# {tag} {who} {i}\n") == 1 for who in ("ada", "bob") for i in range(rounds))


def test_clients_on_two_replicas_converge_see_each_other_and_save_once(
    replicas: tuple[HubServer, HubServer], demo: GitRepo
) -> None:
    a, b = replicas
    before = _commits(demo)

    async def scenario() -> str:
        ada = await _connected(room(a, "Ada"), "Ada")
        bob = await _connected(room(b, "Bob"), "Bob")
        assert str(ada.text) == str(bob.text) == MANIFEST
        await _edit_together(ada, bob, 20, "one")
        await ada.wait_for(lambda: _has_each_once(str(ada.text), "one", 20), 15)
        await bob.wait_for(lambda: str(bob.text) == str(ada.text), 15)
        # Presence crosses replicas both ways.
        await ada.wait_for(lambda: "Bob" in _names(ada), 10)
        await bob.wait_for(lambda: "Ada" in _names(bob), 10)

        # A save through A: one commit, both clients told, both replicas see the saved state.
        await ada.save()
        await ada.wait_for(lambda: any(m.get("type") == "save-result" for m in ada.hub_messages), 15)
        await bob.wait_for(lambda: any(m.get("type") == "save-result" for m in bob.hub_messages), 15)
        saved = next(m for m in ada.hub_messages if m.get("type") == "save-result")
        assert saved["ok"], saved
        assert demo.read("statehub.toml") == str(ada.text)
        await ada.wait_for(lambda: not _unsaved(a) and not _unsaved(b), 10)

        # Both save at once after more edits: the saves queue, one commit holds the merged text.
        await _edit_together(ada, bob, 5, "two")
        await ada.wait_for(lambda: _has_each_once(str(ada.text), "two", 5), 15)
        await bob.wait_for(lambda: str(bob.text) == str(ada.text), 15)
        ada.hub_messages.clear()
        bob.hub_messages.clear()
        await asyncio.gather(ada.save(), bob.save())

        def both_answered() -> bool:
            return all(sum(m.get("type") == "save-result" for m in c.hub_messages) >= 2 for c in (ada, bob))

        await ada.wait_for(both_answered, 20)
        assert all(m["ok"] for m in ada.hub_messages if m.get("type") == "save-result"), ada.hub_messages
        text = str(ada.text)
        await ada.close()
        await bob.close()
        return text

    text = asyncio.run(scenario())
    assert demo.read("statehub.toml") == text
    assert _commits(demo) == before + 2  # the first save, then one of the two at once
    assert demo.git("status", "--porcelain") == ""
    assert "Co-authored-by: Bob" in demo.git("log", "-2", "--format=%B")


def test_a_replica_killed_mid_edit_loses_nothing(
    replicas: tuple[HubServer, HubServer], demo: GitRepo
) -> None:
    a, b = replicas

    async def scenario() -> None:
        ada = await _connected(room(a, "Ada"), "Ada")
        bob = await _connected(room(b, "Bob"), "Bob")
        await _edit_together(ada, bob, 10, "live")
        await ada.wait_for(lambda: _has_each_once(str(ada.text), "live", 10), 15)
        await bob.wait_for(lambda: str(bob.text) == str(ada.text), 15)
        await ada.wait_for(lambda: "Bob" in _names(ada), 10)

        assert b.process is not None
        b.process.kill()  # SIGKILL: no goodbye to anyone
        b.process.wait(timeout=30)
        await bob.wait_for(lambda: bob.closed is not None, 10)
        ghost = bob.awareness.client_id
        assert ghost in ada.awareness.states  # B could not say Bob left
        # Edits on both sides while B is gone: Bob's wait in his copy.
        bob.text.insert(0, "# offline bob\n")
        ada.text.insert(len(str(ada.text)), "# ada meanwhile\n")
        again = await _connected(room(a, "Bob"), "Bob", doc=bob)
        await again.wait_for(lambda: "# offline bob\n" in str(again.text), 15)
        await again.wait_for(lambda: "# ada meanwhile\n" in str(again.text), 15)
        await ada.wait_for(lambda: str(ada.text) == str(again.text), 15)
        final = str(ada.text)
        assert _has_each_once(final, "live", 10)
        assert final.count("# offline bob\n") == final.count("# ada meanwhile\n") == 1
        assert final.count(MANIFEST) == 1
        # Bob's presence through B is not renewed by anyone now: it leaves within 30 s (plus a poll).
        await ada.wait_for(lambda: ghost not in ada.awareness.states, 40)
        assert "Bob" in _names(ada)  # Bob through A
        await ada.save()
        await ada.wait_for(lambda: any(m.get("type") == "save-result" for m in ada.hub_messages), 15)
        await ada.close()
        await again.close()
        assert demo.read("statehub.toml") == final

    asyncio.run(scenario())
    b.process = None  # killed above: nothing for the fixture to stop
    assert (
        subprocess.run(
            ["git", "-C", str(demo.root), "status", "--porcelain"], check=True, capture_output=True
        ).stdout
        == b""
    )


def test_stock_yjs_clients_on_two_replicas_converge_and_see_each_other(
    replicas: tuple[HubServer, HubServer], demo: GitRepo
) -> None:
    """y-websocket's ``WebsocketProvider``, unchanged: node-a through A, node-b through B."""
    a, b = replicas
    modules = node_packages()

    async def scenario() -> dict[str, Any]:
        run = await asyncio.create_subprocess_exec(
            "node",
            str(modules / "interop.mjs"),
            f"{a.ws_url}/sync",
            DOC,
            f"{b.ws_url}/sync",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(run.communicate(), 30)
        assert run.returncode == 0, err.decode()
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return result

    result = asyncio.run(scenario())
    assert result["ok"]
    assert {"node-a", "node-b"} <= set(result["awareness"])
    assert result["hubMessages"] == []  # echoes of the other replica's presence are not refused
    assert result["text"] == "# from node-a\n" + MANIFEST + "# from node-b\n"


def test_an_outside_change_is_merged_once_though_both_replicas_see_it(
    replicas: tuple[HubServer, HubServer], demo: GitRepo
) -> None:
    a, b = replicas

    async def scenario() -> None:
        ada = await _connected(room(a, "Ada"), "Ada")
        bob = await _connected(room(b, "Bob"), "Bob")
        ada.text.insert(0, "# unsaved ada\n")
        await bob.wait_for(lambda: "# unsaved ada\n" in str(bob.text), 10)
        demo.write("statehub.toml", MANIFEST + 'default_branch = "main"\n')
        demo.commit("a change made outside the rooms")
        want = "# unsaved ada\n" + MANIFEST + 'default_branch = "main"\n'
        await ada.wait_for(lambda: str(ada.text) == want, 15)
        await bob.wait_for(lambda: str(bob.text) == want, 15)
        await asyncio.sleep(1)  # both replicas' polls have looked at the file by now
        assert str(ada.text) == str(bob.text) == want
        await ada.close()
        await bob.close()

    asyncio.run(scenario())


def _people(server: HubServer) -> list[str]:
    items: list[dict[str, Any]] = httpx.get(f"{server.url}/sync", timeout=30).json()["items"]
    return next(list(item["people"]) for item in items if item["doc"] == DOC)


def _last_room(watcher: Subscriber) -> dict[str, Any] | None:
    said = [m.data for m in watcher.messages if m.event == "room.changed" and m.data["doc"] == DOC]
    return said[-1] if said else None


async def _until(what: str, found: Callable[[], bool], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(found):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never: {what}")
        await asyncio.sleep(0.2)


def test_every_replica_lists_and_streams_the_whole_room_and_drops_a_dead_replicas_members(
    replicas: tuple[HubServer, HubServer],
) -> None:
    """``GET /sync`` on either replica and the ``room.changed`` stream name the members on every
    live replica; a replica killed with SIGKILL (no goodbye) leaves the listings within
    ``PRESENCE_SECONDS`` (30 s), and the stream says so once."""
    a, b = replicas
    watcher = Subscriber(f"{a.url}/events/stream?types=room.changed").start()

    async def scenario() -> None:
        ada = await _connected(room(a, "Ada"), "Ada")
        bob = await _connected(room(b, "Bob"), "Bob")
        both = ["Ada", "Bob"]
        await _until("A lists both", lambda: _people(a) == both, 10)
        await _until("B lists both", lambda: _people(b) == both, 10)
        await _until("the stream names both", lambda: (_last_room(watcher) or {}).get("people") == both, 10)
        await asyncio.sleep(2)  # every replica has looked again: nothing says otherwise since
        last = _last_room(watcher) or {}
        assert (last["open"], last["people"], last["unsaved"]) == (True, both, False)

        assert b.process is not None
        b.process.kill()
        b.process.wait(timeout=30)
        killed = asyncio.get_running_loop().time()
        await _until("A lists Ada alone", lambda: _people(a) == ["Ada"], 45)
        await _until(
            "the stream names Ada alone", lambda: (_last_room(watcher) or {}).get("people") == ["Ada"], 10
        )
        # B's rows were renewed up to about 11 s before it died and count for 30 s: none went early.
        assert asyncio.get_running_loop().time() - killed > 15
        changes = len(watcher.messages)
        await ada.close()
        await _until(
            "the stream says the room closed", lambda: (_last_room(watcher) or {}).get("open") is False, 10
        )
        await asyncio.sleep(1.5)
        assert len(watcher.messages) == changes + 1  # told once
        await bob.wait_for(lambda: bob.closed is not None, 10)

    try:
        asyncio.run(scenario())
    finally:
        watcher.close()
    b.process = None  # killed above


def _cursor(client: YClient) -> int:
    return max(
        (len(s.get("cursor", "")) for s in client.awareness.states.values() if isinstance(s, dict)), default=0
    )


def test_a_large_presence_crosses_replicas_and_one_over_the_bound_is_refused_where_it_was_sent(
    replicas: tuple[HubServer, HubServer],
) -> None:
    """A presence of 7.5 KB is over what one NOTIFY carries once wrapped: it goes by reference
    (a ``room_note`` row). One over the room's 8 KiB bound is refused with the bound named, on its
    own replica, and nothing of it reaches the other."""
    a, b = replicas

    async def scenario() -> None:
        ada = await _connected(room(a, "Ada"), "Ada")
        bob = await _connected(room(b, "Bob"), "Bob")
        await bob.wait_for(lambda: "Ada" in _names(bob), 10)
        await ada.set_presence({"user": {"name": "Ada"}, "cursor": "c" * 7500})
        await bob.wait_for(lambda: _cursor(bob) == 7500, 10)
        await ada.set_presence({"user": {"name": "Ada"}, "cursor": "d" * 9000})
        await ada.wait_for(lambda: any(m.get("type") == "error" for m in ada.hub_messages), 10)
        refused = next(m for m in ada.hub_messages if m.get("type") == "error")
        assert "over the limit of 8,192 bytes" in refused["message"], refused
        await asyncio.sleep(1)
        assert _cursor(bob) == 7500
        await ada.close()
        await bob.close()

    asyncio.run(scenario())
