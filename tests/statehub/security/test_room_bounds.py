"""ADR-022: every room input is bounded, and no room input blocks the hub.

Against a real hub process and real y-sync clients: out-of-band changes to a
20 KB and a 1 MB manifest under an open room (the hub answers
``/state/health`` within a second throughout; the 20 KB change is merged with
the unsaved edit kept, the 1 MB one is refused with the limit and the room
keeps its text); the text limit, the message limit and the manifest limit at,
just over and far over each; a non-UTF-8 manifest; drafts in ``GET /sync``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING

import httpx
import pytest
import websockets
from pycrdt import Doc, create_sync_message

from statehub.collab import MANIFEST_LIMIT, ManifestSaver
from statehub.hub import Hub
from sync import ysync
from sync.rooms import MESSAGE_LIMIT, TEXT_LIMIT, TOO_LARGE_CLOSE_CODE
from sync.saving import Person, SaveRequest
from tests.statehub.security.editorhub import MANIFEST, EditorHub, editor_hub, refusal, snapshot
from tests.ysync_client import YClient, claim_presence

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EditorHub]:
    with editor_hub(tmp_path_factory.mktemp("room-bounds")) as running:
        yield running


@pytest.fixture
def fresh(hub: EditorHub) -> Iterator[EditorHub]:
    """The demo repo back at its first commit, and a hub with no drafts, after each test."""
    head = hub.demo.git("rev-parse", "HEAD").strip()
    yield hub
    hub.demo.git("reset", "-q", "--hard", head)
    hub.demo.git("clean", "-qfdx")
    asyncio.run(_discard_drafts(hub))


async def _discard_drafts(hub: EditorHub) -> None:
    """Open each room with unsaved edits and set its text back to the file's: the room then forgets it."""
    listed = await asyncio.to_thread(hub.call, "GET", "/sync")
    for item in listed.json()["items"]:
        if not item["unsaved"]:
            continue
        repo = hub.demo if item["repo"] == "demo" else hub.beta
        disk = repo.read(item["path"]) if (repo.root / item["path"]).exists() else ""
        client = await YClient(hub.room(item["doc"])).connect()
        await asyncio.wait_for(client.synced.wait(), 10)
        await asyncio.sleep(0.3)
        with client.doc.transaction():
            del client.text[0 : len(client.text)]
            client.text.insert(0, disk)
        await asyncio.sleep(0.3)
        await client.close()
    await asyncio.sleep(0.3)
    listed = await asyncio.to_thread(hub.call, "GET", "/sync")
    assert not any(item["unsaved"] for item in listed.json()["items"]), listed.text


class HealthWatch:
    """Asks ``/state/health`` every 50 ms from a thread; ``worst`` is the slowest answer in seconds."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.worst = 0.0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                start = time.monotonic()
                try:
                    client.get(f"{self.url}/state/health").raise_for_status()
                except httpx.HTTPError as error:
                    self.failures.append(str(error))
                self.worst = max(self.worst, time.monotonic() - start)
                time.sleep(0.05)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


async def _drain(socket: websockets.ClientConnection) -> None:
    async with asyncio.timeout(10):
        while True:
            await socket.recv()


def _message_of(size: int) -> bytes:
    """A State Hub message (which a room ignores) of exactly ``size`` bytes."""
    pad = size
    while len(message := ysync.hub_message({"type": "note", "pad": "p" * pad})) != size:
        pad -= len(message) - size
    return message


def _manifest_of(size: int) -> str:
    """A valid manifest of exactly ``size`` bytes: comment lines after the [repo] table."""
    lines = [MANIFEST]
    length = len(MANIFEST.encode())
    while length + 80 < size:
        lines.append(f"# line {len(lines) - 1:06d} " + "x" * 62 + "\n")
        length += 77
    return "".join(lines) + "#" * (size - length - 1) + "\n"


@pytest.mark.parametrize("size", [20_000, 1_000_000])
def test_an_out_of_band_change_never_blocks_the_hub(fresh: EditorHub, size: int) -> None:
    hub = fresh
    base = _manifest_of(size // 2 if size < MANIFEST_LIMIT else 20_000)
    hub.demo.write("statehub.toml", base)
    hub.demo.commit("a big manifest")
    changed = _manifest_of(size).replace("# line 000001", "# LINE 000001 changed")

    async def scenario() -> None:
        ada = await YClient(hub.room(user="Ada")).connect()
        await asyncio.wait_for(ada.synced.wait(), 10)
        ada.text.insert(0, "# unsaved by Ada\n")
        await asyncio.sleep(0.3)
        with HealthWatch(hub.url) as watch:
            hub.demo.write("statehub.toml", changed)
            if size < MANIFEST_LIMIT:
                await ada.wait_for(lambda: str(ada.text) == "# unsaved by Ada\n" + changed, 20)
            else:
                await ada.wait_for(lambda: any(m.get("type") == "error" for m in ada.hub_messages), 20)
                error = next(m for m in ada.hub_messages if m.get("type") == "error")["message"]
                assert f"over the editor's limit of {MANIFEST_LIMIT:,} bytes" in error
                await asyncio.sleep(1)
                assert str(ada.text) == "# unsaved by Ada\n" + base
            await asyncio.sleep(0.5)
        assert watch.failures == []
        assert watch.worst < 1.0, f"health took {watch.worst:.2f} s"
        await ada.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("size", "opens"), [(MANIFEST_LIMIT, True), (MANIFEST_LIMIT + 1, False), (5_000_000, False)]
)
def test_a_manifest_over_the_limit_is_not_opened(fresh: EditorHub, size: int, opens: bool) -> None:
    hub = fresh
    hub.demo.write("statehub.toml", _manifest_of(size))
    hub.demo.commit("sized")
    before = snapshot(hub.demo)
    if opens:

        async def scenario() -> None:
            client = await YClient(hub.room(user="Ada")).connect()
            await asyncio.wait_for(client.synced.wait(), 10)
            assert len(str(client.text).encode()) == size
            await client.close()

        asyncio.run(scenario())
    else:
        status, body = refusal(hub.room(user="Ada"))
        assert status == 413, body
        assert f"over the editor's limit of {MANIFEST_LIMIT:,} bytes" in body
        answer = hub.call("POST", "/sync/demo/statehub.toml/save?user=Ada")
        assert answer.status_code == 413 and f"{MANIFEST_LIMIT:,}" in answer.json()["error"]
    assert snapshot(hub.demo) == before


def test_a_non_utf8_manifest_is_a_clear_error(fresh: EditorHub) -> None:
    hub = fresh
    (hub.demo.root / "statehub.toml").write_bytes(b'[repo]\nslug = "demo"\ntitle = "D\xe9mo"\n')
    hub.demo.commit("latin-1")
    before = snapshot(hub.demo)
    status, body = refusal(hub.room(user="Ada"))
    assert status == 400, body
    assert "is not UTF-8 text" in body
    answer = hub.call("POST", "/sync/demo/statehub.toml/save?user=Ada")
    assert answer.status_code == 400 and "is not UTF-8 text" in answer.json()["error"]
    assert hub.call("GET", "/sync").status_code == 200
    assert snapshot(hub.demo) == before


def test_the_text_limit_at_just_over_and_far_over(fresh: EditorHub) -> None:
    hub = fresh
    start = len(MANIFEST.encode())

    async def scenario() -> None:
        ada = await YClient(hub.room(user="Ada")).connect()
        bob = await YClient(hub.room(user="Bob")).connect()
        for client in (ada, bob):
            await asyncio.wait_for(client.synced.wait(), 10)
        ada.text.insert(start, "#" * (TEXT_LIMIT - start - 1) + "\n")  # exactly at the limit
        await bob.wait_for(lambda: len(str(bob.text).encode()) == TEXT_LIMIT, 20)
        ada.text.insert(0, "!")  # one byte over
        await ada.wait_for(lambda: ada.closed is not None, 10)
        assert ada.closed is not None
        assert ada.closed[0] == TOO_LARGE_CLOSE_CODE
        assert f"over the limit of {TEXT_LIMIT:,} bytes" in ada.closed[1]
        assert any("nothing of it was applied" in str(m.get("message")) for m in ada.hub_messages)
        await asyncio.sleep(0.3)
        assert len(str(bob.text).encode()) == TEXT_LIMIT
        # Far over: Bob pastes a megabyte in one go.
        del bob.text[0 : len(bob.text)]
        await asyncio.sleep(0.3)
        bob.text.insert(0, "y" * 900_000)
        await bob.wait_for(lambda: bob.closed is not None, 10)
        assert bob.closed is not None and bob.closed[0] == TOO_LARGE_CLOSE_CODE
        cy = await YClient(hub.room(user="Cy")).connect()
        await asyncio.wait_for(cy.synced.wait(), 10)
        assert str(cy.text) == ""  # Bob's delete went through, his paste did not
        await cy.close()

    asyncio.run(scenario())
    assert hub.demo.read("statehub.toml") == MANIFEST


@pytest.mark.parametrize(
    ("size", "accepted"), [(MESSAGE_LIMIT, True), (MESSAGE_LIMIT + 1, False), (8 * MESSAGE_LIMIT, False)]
)
def test_the_message_limit_at_just_over_and_far_over(fresh: EditorHub, size: int, accepted: bool) -> None:
    hub = fresh

    async def scenario() -> None:
        async with websockets.connect(hub.room(user="Ada"), max_size=None) as socket:
            await socket.send(create_sync_message(Doc()))
            padded = _message_of(size)
            await socket.send(padded)
            await socket.send(ysync.hub_message({"type": "ping"}))
            if accepted:
                await asyncio.sleep(0.5)
                assert socket.close_code is None
                return
            with pytest.raises(websockets.ConnectionClosed):
                await _drain(socket)
            assert socket.close_code == TOO_LARGE_CLOSE_CODE
            assert f"over the limit of {MESSAGE_LIMIT:,} bytes" in (socket.close_reason or "")

    asyncio.run(scenario())
    assert hub.call("GET", "/state/health").status_code == 200


def test_an_awareness_state_over_the_limit_is_refused(fresh: EditorHub) -> None:
    hub = fresh

    async def scenario() -> None:
        async with websockets.connect(hub.room()) as socket:
            big = {"user": {"name": "Ada", "pad": "p" * 9000}}
            await socket.send(claim_presence({7: big}))
            async with asyncio.timeout(10):
                while True:
                    message = await socket.recv()
                    if isinstance(message, bytes) and message[:1] == bytes([ysync.STATEHUB]):
                        assert (
                            "over the limit of 8,192 bytes" in ysync.read_hub_message(message[1:])["message"]
                        )
                        break
            listed = await asyncio.to_thread(hub.call, "GET", "/sync")
            assert listed.json()["items"][0]["people"] == []

    asyncio.run(scenario())


def test_drafts_are_listed_from_the_store_after_the_room_closes_and_a_restart(fresh: EditorHub) -> None:
    hub = fresh

    async def scenario() -> None:
        ada = await YClient(hub.room(user="Ada")).connect()
        await asyncio.wait_for(ada.synced.wait(), 10)
        ada.text.insert(0, "# a draft\n")
        await asyncio.sleep(0.3)
        await ada.close()
        await asyncio.sleep(0.3)

    asyncio.run(scenario())

    def unsaved() -> bool:
        items = hub.call("GET", "/sync").json()["items"]
        return bool(next(i for i in items if i["doc"] == "demo/statehub.toml")["unsaved"])

    assert unsaved()
    hub.process.stop()
    hub.process.start()
    assert unsaved()

    async def discard() -> None:
        ada = await YClient(hub.room(user="Ada")).connect()
        await asyncio.wait_for(ada.synced.wait(), 10)
        del ada.text[0 : len("# a draft\n")]
        await asyncio.sleep(0.3)
        await ada.close()
        await asyncio.sleep(0.3)

    asyncio.run(discard())
    assert not unsaved()


def test_a_save_over_the_limit_is_refused_with_the_limit(tmp_path: Path) -> None:
    """The saver's own check (a room never holds such a text; a caller of the saver might)."""
    with editor_hub(tmp_path) as running:
        hub = Hub(running.settings)
        try:
            before = snapshot(running.demo)
            for size in (MANIFEST_LIMIT + 1, 10 * MANIFEST_LIMIT):
                text = _manifest_of(size)
                request = SaveRequest("demo/statehub.toml", text, MANIFEST, Person("Ada"), [])
                outcome = asyncio.run(ManifestSaver(hub)(request))
                assert not outcome.ok and outcome.status == 413
                assert f"over the limit of {MANIFEST_LIMIT:,} bytes" in outcome.message
            assert snapshot(running.demo) == before
        finally:
            hub.close()
