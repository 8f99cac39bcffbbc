"""``WS /sync/{doc}`` and ``POST /sync/{doc}/save`` against a real hub server and real sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import websockets

from tests.sync_fixtures import MANIFEST, demo, room, server
from tests.ysync_client import YClient

if TYPE_CHECKING:
    from statehub.settings import Settings
    from tests.gitfixtures import GitRepo
    from tests.hubserver import HubServer

__all__ = ["demo", "server"]


async def _two(server: HubServer) -> tuple[YClient, YClient]:
    ada = await YClient(room(server, "Ada")).connect()
    bob = await YClient(room(server, "Bob")).connect()
    await asyncio.wait_for(ada.synced.wait(), 5)
    await asyncio.wait_for(bob.synced.wait(), 5)
    return ada, bob


def test_two_clients_converge_and_a_save_commits_with_a_co_author(server: HubServer, demo: GitRepo) -> None:
    async def scenario() -> None:
        ada, bob = await _two(server)
        assert str(ada.text) == MANIFEST
        ada.text.insert(len(str(ada.text)), 'default_branch = "main"\n')
        bob.text.insert(0, "# edited together\n")
        want = "# edited together\n" + MANIFEST + 'default_branch = "main"\n'
        await ada.wait_for(lambda: str(ada.text) == want)
        await bob.wait_for(lambda: str(bob.text) == want)
        await bob.save()
        await bob.wait_for(lambda: any(m.get("type") == "save-result" for m in bob.hub_messages))
        await ada.wait_for(lambda: any(m.get("type") == "save-result" for m in ada.hub_messages))
        result = next(m for m in ada.hub_messages if m.get("type") == "save-result")
        assert result["ok"], result
        await ada.close()
        await bob.close()

    asyncio.run(scenario())
    assert demo.read("statehub.toml").startswith("# edited together\n")
    assert demo.read("statehub.toml").endswith('default_branch = "main"\n')
    log = demo.git("log", "-1", "--format=%an <%ae>%n%B")
    assert log.startswith("Bob <bob@users.statehub.invalid>")
    assert "Co-authored-by: Ada <ada@users.statehub.invalid>" in log
    assert "Co-authored-by: Bob" not in log
    assert demo.git("status", "--porcelain") == ""


def test_an_invalid_save_reaches_every_client_and_writes_nothing(server: HubServer, demo: GitRepo) -> None:
    head = demo.git("rev-parse", "HEAD")

    async def scenario() -> None:
        ada, bob = await _two(server)
        ada.text.insert(len("[repo]\n"), "owner = = 1\n")
        await bob.wait_for(lambda: "owner = = 1" in str(bob.text))
        await bob.save()
        for client in (ada, bob):
            await client.wait_for(
                lambda c=client: any(m.get("type") == "save-result" for m in c.hub_messages)
            )
        result = next(m for m in ada.hub_messages if m.get("type") == "save-result")
        assert not result["ok"]
        assert result["errors"][0]["line"] == 2
        assert result["errors"][0]["column"] == 9
        assert "invalid TOML" in result["errors"][0]["message"]
        await ada.close()
        await bob.close()

    asyncio.run(scenario())
    assert demo.read("statehub.toml") == MANIFEST
    assert demo.git("rev-parse", "HEAD") == head


def test_a_schema_error_is_refused_over_http_with_its_line(server: HubServer, demo: GitRepo) -> None:
    async def scenario() -> None:
        ada = await YClient(room(server, "Ada")).connect()
        await asyncio.wait_for(ada.synced.wait(), 5)
        start = str(ada.text).index("DEMO")
        ada.text.insert(len(str(ada.text)[:start].encode()), "lower-")
        await asyncio.sleep(0.2)
        answer = httpx.post(f"{server.url}/sync/demo/statehub.toml/save?user=Ada", timeout=10)
        assert answer.status_code == 422
        error = answer.json()["errors"][0]
        assert error["line"] == 4
        assert "lower-DEMO" in error["message"]
        await ada.close()

    asyncio.run(scenario())
    assert demo.read("statehub.toml") == MANIFEST


def test_anything_but_an_editable_manifest_is_refused_before_accept(server: HubServer) -> None:
    async def scenario() -> None:
        for doc, status in [("demo/workplans/x.md", 400), ("nobody/statehub.toml", 404)]:
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(room(server, "Ada", doc))
            assert refused.value.response.status_code == status
            assert (
                b"editable manifest" in refused.value.response.body
                or b"no repo" in refused.value.response.body
            )

    asyncio.run(scenario())


def test_a_restart_mid_edit_loses_and_duplicates_nothing(server: HubServer, demo: GitRepo) -> None:
    async def scenario() -> None:
        ada, bob = await _two(server)
        ada.text.insert(0, "# unsaved by Ada\n")
        await bob.wait_for(lambda: str(bob.text).startswith("# unsaved by Ada\n"))
        await asyncio.to_thread(server.restart)
        await bob.wait_for(lambda: bob.closed is not None)
        # Bob kept his copy (as a browser tab does) and reconnects with it.
        again = YClient(room(server, "Bob"))
        again.doc.apply_update(bob.doc.get_update())
        await again.connect()
        await asyncio.wait_for(again.synced.wait(), 5)
        fresh = await YClient(room(server, "Cy")).connect()
        await asyncio.wait_for(fresh.synced.wait(), 5)
        want = "# unsaved by Ada\n" + MANIFEST
        await again.wait_for(lambda: str(again.text) == want)
        await fresh.wait_for(lambda: str(fresh.text) == want)
        await again.close()
        await fresh.close()
        await ada.close()

    asyncio.run(scenario())
    assert demo.read("statehub.toml") == MANIFEST


def test_an_out_of_band_change_merges_with_unsaved_edits(server: HubServer, demo: GitRepo) -> None:
    async def scenario() -> None:
        ada, bob = await _two(server)
        ada.text.insert(0, "# unsaved\n")
        await bob.wait_for(lambda: str(bob.text).startswith("# unsaved\n"))
        demo.write("statehub.toml", MANIFEST.replace('"Demo"', '"Demo pulled"'))
        want = "# unsaved\n" + MANIFEST.replace('"Demo"', '"Demo pulled"')
        await ada.wait_for(lambda: str(ada.text) == want)
        await bob.wait_for(lambda: str(bob.text) == want)
        await ada.close()
        await bob.close()

    asyncio.run(scenario())


def test_a_client_from_an_earlier_lineage_is_told_to_resync(server: HubServer, demo: GitRepo) -> None:
    async def scenario() -> None:
        old = await YClient(room(server, "Ada")).connect()
        await asyncio.wait_for(old.synced.wait(), 5)
        kept = old.doc.get_update()
        await old.close()
        await asyncio.sleep(0.1)  # the room closes with nothing unsaved, and forgets its lineage
        demo.write("statehub.toml", MANIFEST + "# pulled while nobody had it open\n")
        stale = YClient(room(server, "Ada"))
        stale.doc.apply_update(kept)
        await stale.connect()
        await stale.wait_for(lambda: stale.closed is not None)
        assert stale.closed is not None
        assert stale.closed[0] == 4000
        assert any(m.get("type") == "resync" for m in stale.hub_messages)
        fresh = await YClient(room(server, "Ada")).connect()
        await asyncio.wait_for(fresh.synced.wait(), 5)
        assert str(fresh.text) == MANIFEST + "# pulled while nobody had it open\n"
        await fresh.close()

    asyncio.run(scenario())


def test_room_store_lives_in_the_data_dir(server: HubServer, served_settings: Settings) -> None:
    assert (Path(served_settings.data_dir) / "rooms.sqlite3").exists()


def test_the_room_list_names_every_editable_manifest(server: HubServer) -> None:
    listed = httpx.get(f"{server.url}/sync", timeout=5).json()["items"]
    assert [(d["doc"], d["exists"]) for d in listed] == [
        ("demo/statehub.toml", True),
        ("demo/registry/fleet.toml", False),
    ]
    assert httpx.get(f"{server.url}/", timeout=5).text.count("/static/app.js") == 1
    assert httpx.get(f"{server.url}/static/app.js", timeout=5).status_code == 200


def test_an_unreadable_message_is_answered_and_the_room_goes_on(server: HubServer) -> None:
    async def scenario() -> None:
        ada, bob = await _two(server)
        await ada._ws.send(b"\x00\x02\x05\xff\xff")  # a sync update whose payload is not a Yjs update
        await ada._ws.send(b"\x00")  # a sync message cut short
        await ada.wait_for(lambda: sum(m.get("type") == "error" for m in ada.hub_messages) == 2)
        ada.text.insert(0, "# still here\n")
        await bob.wait_for(lambda: str(bob.text).startswith("# still here\n"))
        await ada.close()
        await bob.close()

    asyncio.run(scenario())


def test_a_file_changed_while_the_hub_was_down_merges_with_unsaved_edits(
    server: HubServer, demo: GitRepo
) -> None:
    async def scenario() -> None:
        ada = await YClient(room(server, "Ada")).connect()
        await asyncio.wait_for(ada.synced.wait(), 5)
        ada.text.insert(0, "# unsaved\n")
        await asyncio.sleep(0.3)
        await asyncio.to_thread(server.stop)
        demo.write("statehub.toml", MANIFEST + "# pulled while the hub was down\n")
        await asyncio.to_thread(server.start)
        again = YClient(room(server, "Ada"))
        again.doc.apply_update(ada.doc.get_update())
        await again.connect()
        await asyncio.wait_for(again.synced.wait(), 5)
        want = "# unsaved\n" + MANIFEST + "# pulled while the hub was down\n"
        await again.wait_for(lambda: str(again.text) == want)
        assert again.closed is None
        await again.close()
        await ada.close()

    asyncio.run(scenario())
