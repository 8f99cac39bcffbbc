"""Rooms over in-process channels: store before broadcast, presence, saves, their outcome, their tasks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from typing import TYPE_CHECKING, Any

import pytest
from pycrdt import (
    Awareness,
    Doc,
    Text,
    YMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    read_message,
    write_message,
)

from sync import ysync
from sync.room_bus import BusMessage
from sync.room_store import RoomStore
from sync.rooms import Rooms
from sync.saving import LoadedFile, Person, RoomFileError, SaveOutcome, SaveRequest, Stamp
from sync.seed import TEXT_NAME
from sync.ysync import read_awareness

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path


class PathLoader:
    """A test loader over one plain file (the hub's reads through statehub.repofiles)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, doc: str) -> LoadedFile:
        stamp = self.stamp(doc)
        try:
            return LoadedFile(self.path.read_text(encoding="utf-8") if stamp else None, stamp)
        except UnicodeDecodeError:
            raise RoomFileError(f"{self.path.name} is not UTF-8") from None

    def stamp(self, doc: str) -> Stamp | None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)


class MemoryChannel:
    """A real in-process transport: what a member sends is queued, what the room sends is kept."""

    def __init__(self, on_send: Any = None) -> None:
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.sent: list[bytes] = []
        self.on_send = on_send

    @property
    def path(self) -> str:
        return "memory"

    def __aiter__(self) -> MemoryChannel:
        return self

    async def __anext__(self) -> bytes:
        message = await self.inbox.get()
        if message is None:
            raise StopAsyncIteration
        return message

    async def recv(self) -> bytes:
        return await self.__anext__()

    async def send(self, message: bytes) -> None:
        if self.on_send:
            self.on_send(message)
        self.sent.append(message)

    def kinds(self) -> list[tuple[int, int]]:
        """(message type, sync step or -1) of every message the room sent."""
        return [(m[0], m[1] if m[0] == YMessageType.SYNC else -1) for m in self.sent]

    def hub_messages(self) -> list[dict[str, Any]]:
        return [ysync.read_hub_message(m[1:]) for m in self.sent if m[0] == ysync.STATEHUB]


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def _rooms(path: Path, log: list[SaveRequest], poll_interval: float = 0.25) -> AsyncIterator[Rooms]:
    with RoomStore(path.parent / "rooms.sqlite3") as store:
        async with Rooms(store, PathLoader(path), _writer(path, log), poll_interval=poll_interval) as rooms:
            yield rooms


def _writer(path: Path, log: list[SaveRequest]) -> Any:
    async def save(request: SaveRequest) -> SaveOutcome:
        log.append(request)
        if "bad" in request.text:
            return SaveOutcome(False, "invalid", [{"line": 1, "column": 1, "message": "bad"}])
        path.write_text(request.text, encoding="utf-8")
        return SaveOutcome(True, "saved", commit="c0ffee")

    return save


def _presence(client_id: int, state: dict[str, Any] | None, clock: int = 1) -> bytes:
    """An awareness message from the client ``client_id``: its state at ``clock``, as pycrdt encodes it."""
    own = Awareness(Doc(client_id=client_id))
    for _ in range(clock):
        own.set_local_state(state)
    return create_awareness_message(own.encode_awareness_update([client_id]))


def _awareness_sent(channel: MemoryChannel) -> list[tuple[int, int, Any]]:
    """(client id, clock, state) of every awareness entry the room sent to ``channel``."""
    return [
        (e.client_id, e.clock, e.state)
        for m in channel.sent
        if m[0] == YMessageType.AWARENESS
        for e in read_awareness(read_message(m[1:]))
    ]


def test_an_update_is_stored_before_any_member_receives_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "statehub.toml"
        path.write_text("x = 1\n")
        async with _rooms(path, [], poll_interval=0.05) as rooms:
            store = rooms.store
            stored_at_send: list[int] = []

            def on_send(message: bytes) -> None:
                if message[:2] == b"\x00\x02":  # a broadcast update
                    stored_at_send.append(store.update_count("d"))

            ada, bob = MemoryChannel(), MemoryChannel(on_send)
            tasks = [
                asyncio.create_task(rooms.join("d", ch, Person(n))) for ch, n in ((ada, "Ada"), (bob, "Bob"))
            ]
            for channel in (ada, bob):
                channel.inbox.put_nowait(create_sync_message(Doc()))
            await _settle()
            client: Doc[Any] = Doc()
            client.apply_update(rooms.rooms["d"].doc.get_update())
            before = client.get_state()
            client.get(TEXT_NAME, type=Text).insert(0, "# hi\n")
            ada.inbox.put_nowait(create_update_message(client.get_update(before)))
            await _settle()
            assert stored_at_send == [1]
            assert rooms.rooms["d"].text == "# hi\nx = 1\n"
            assert rooms.rooms["d"].editors == {"Ada": Person("Ada")}
            for channel in (ada, bob):
                channel.inbox.put_nowait(None)
            assert [leave.code for leave in await asyncio.gather(*tasks)] == [None, None]
            assert "d" not in rooms.rooms
            assert store.load("d") is not None  # unsaved: kept for the next opening

    asyncio.run(scenario())


def test_presence_is_relayed_named_and_cleared_when_a_member_leaves(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "statehub.toml"
        path.write_text("x = 1\n")
        async with _rooms(path, []) as rooms:
            ada, bob = MemoryChannel(), MemoryChannel()
            tasks = [asyncio.create_task(rooms.join("d", ch)) for ch in (ada, bob)]
            for channel in (ada, bob):
                channel.inbox.put_nowait(create_sync_message(Doc()))
            await _settle()
            state = {"user": {"name": "Ada", "email": "ada@example.org"}}
            ada.inbox.put_nowait(_presence(41, state))
            await _settle()
            room = rooms.rooms["d"]
            assert room.people() == ["Ada"]
            assert _awareness_sent(bob) == [(41, 1, state)]
            assert _awareness_sent(ada) == []  # not sent back to its sender
            ada.inbox.put_nowait(None)
            await _settle()
            # Gone, at the clock it had: Yjs clients drop a state on a null at the same clock.
            assert _awareness_sent(bob)[-1] == (41, 1, None)
            assert room.people() == []
            bob.inbox.put_nowait(None)
            await asyncio.gather(*tasks)

    asyncio.run(scenario())


def test_a_presence_name_in_any_script_reaches_the_others_intact(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "statehub.toml"
        path.write_text("x = 1\n")
        async with _rooms(path, []) as rooms:
            ada, bob = MemoryChannel(), MemoryChannel()
            tasks = [asyncio.create_task(rooms.join("d", ch)) for ch in (ada, bob)]
            await _settle()
            state = {"user": {"name": "Zoë Ōtsuka 李", "color": "#3366cc"}}
            raw = json.dumps(state, ensure_ascii=False).encode()  # as JSON.stringify sends it: raw UTF-8
            ada.inbox.put_nowait(create_awareness_message(b"\x01\x07\x01" + write_message(raw)))
            await _settle()
            assert rooms.rooms["d"].people() == ["Zoë Ōtsuka 李"]
            assert _awareness_sent(bob) == [(7, 1, state)]
            for channel in (ada, bob):
                channel.inbox.put_nowait(None)
            await asyncio.gather(*tasks)

    asyncio.run(scenario())


def test_an_echo_of_another_presence_is_dropped_and_a_change_to_it_refused(tmp_path: Path) -> None:
    """y-websocket sends back what it applied, other clients' states too: no attempt to change them."""

    async def scenario() -> None:
        path = tmp_path / "statehub.toml"
        path.write_text("x = 1\n")
        async with _rooms(path, []) as rooms:
            ada, bob = MemoryChannel(), MemoryChannel()
            tasks = [asyncio.create_task(rooms.join("d", ch)) for ch in (ada, bob)]
            await _settle()
            ada.inbox.put_nowait(_presence(41, {"user": {"name": "Ada"}}, clock=2))
            await _settle()
            bob.inbox.put_nowait(_presence(41, {"user": {"name": "Ada"}}, clock=2))  # the echo
            bob.inbox.put_nowait(_presence(41, {"user": {"name": "Ada"}}, clock=1))  # an older one
            await _settle()
            assert bob.hub_messages() == []
            assert _awareness_sent(ada) == []
            bob.inbox.put_nowait(_presence(41, {"user": {"name": "Mallory"}}, clock=3))
            bob.inbox.put_nowait(_presence(41, None, clock=2))  # clearing it at its clock
            await _settle()
            refusals = [m["message"] for m in bob.hub_messages()]
            assert refusals == ["awareness refused: client id 41 belongs to another connection"] * 2
            assert rooms.rooms["d"].people() == ["Ada"]
            assert _awareness_sent(ada) == []
            for channel in (ada, bob):
                channel.inbox.put_nowait(None)
            await asyncio.gather(*tasks)

    asyncio.run(scenario())


def test_saves_name_the_saver_and_credit_the_other_editors(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "statehub.toml"
        path.write_text("x = 1\n")
        requests: list[SaveRequest] = []
        async with _rooms(path, requests) as rooms:
            room = await rooms.open("d")
            room.editors = {"Ada": Person("Ada"), "Bob": Person("Bob")}
            room.doc.get(TEXT_NAME, type=Text).insert(0, "bad\n")
            refused = await room.save(Person("Bob"))
            assert not refused.ok and path.read_text() == "x = 1\n"
            assert room.editors  # a refused save credits nobody away
            del room.doc.get(TEXT_NAME, type=Text)[0:4]
            room.doc.get(TEXT_NAME, type=Text).insert(0, "# ok\n")
            saved = await room.save(Person("Bob"))
            assert saved.ok and path.read_text() == "# ok\nx = 1\n"
            assert [p.name for p in requests[-1].coauthors] == ["Ada"]
            assert requests[-1].base_text == "x = 1\n"
            assert room.editors == {} and not room.unsaved

    asyncio.run(scenario())


def test_a_deleted_file_does_not_empty_the_room(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "statehub.toml"
        path.write_text("x = 1\n")
        async with _rooms(path, []) as rooms:
            room = await rooms.open("d")
            path.unlink()
            assert not await room.check_file()
            assert room.text == "x = 1\n"
            path.write_text("x = 2\n")
            assert await room.check_file()
            assert room.text == "x = 2\n"

    asyncio.run(scenario())


def test_a_file_that_may_not_be_read_refuses_the_opener_and_the_rooms_go_on(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "statehub.toml"
        path.write_bytes(b"\xff\xfe not UTF-8\n")
        async with _rooms(path, []) as rooms:
            with pytest.raises(RoomFileError, match="not UTF-8"):
                await rooms.open("d")
            assert rooms.rooms == {}
            path.write_text("x = 1\n")
            room = await rooms.open("d")
            assert room.text == "x = 1\n"

    asyncio.run(scenario())


def test_closing_the_rooms_cancels_and_awaits_their_tasks(tmp_path: Path) -> None:
    """The file poll, a load under way and members' senders: none outlives the rooms or the session."""

    async def scenario() -> None:
        path = tmp_path / "statehub.toml"
        path.write_text("x = 1\n")
        release = threading.Event()

        class SlowLoader(PathLoader):
            def __call__(self, doc: str) -> LoadedFile:
                if doc == "slow":
                    release.wait(10)
                return super().__call__(doc)

        ours = asyncio.current_task()
        with RoomStore(tmp_path / "rooms.sqlite3") as store:
            async with Rooms(store, SlowLoader(path), _writer(path, []), poll_interval=0.01) as rooms:
                ada = MemoryChannel()
                member = asyncio.create_task(rooms.join("d", ada))
                ada.inbox.put_nowait(create_sync_message(Doc()))
                await _settle()
                opener = asyncio.create_task(rooms.open("slow"))
                await _settle()
                assert not opener.done()  # its load is under way in the rooms' task group
                ada.inbox.put_nowait(None)
                assert (await member).code is None
                assert {t.get_name() for t in asyncio.all_tasks() if t not in (ours, opener)} == {
                    "statehub-rooms-watch",
                    "statehub-room-load slow",
                }
            assert rooms.rooms == {}
            with pytest.raises(asyncio.CancelledError):
                await opener  # it was waiting for the load the rooms cancelled
            assert asyncio.all_tasks() == {ours}
            release.set()

    asyncio.run(scenario())


def test_an_awareness_message_from_another_replica_whose_update_is_not_text_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """review16e: ``{"k": "a", "u": 5}`` on the bus (a note planted in ``room_note``, or a NOTIFY by
    hand) raised TypeError out of the bus's callback (asyncio's "Exception in callback" and a
    traceback) where every other unreadable message is one warning and the room goes on."""

    async def scenario() -> None:
        path = tmp_path / "statehub.toml"
        path.write_text("x = 1\n")
        async with _rooms(path, [], poll_interval=0.05) as rooms:
            ada = MemoryChannel()
            task = asyncio.create_task(rooms.join("d", ada, Person("Ada")))
            ada.inbox.put_nowait(create_sync_message(Doc()))
            await _settle()
            with caplog.at_level("WARNING", logger="sync.rooms._lifecycle"):
                for bad in (5, None, ["x"], {"u": 1}):
                    rooms._heard(BusMessage("a", "d", {"u": bad}))
            assert sum("an unreadable a message" in r.getMessage() for r in caplog.records) == 4
            ada.inbox.put_nowait(None)
            assert (await task).code is None

    asyncio.run(scenario())
