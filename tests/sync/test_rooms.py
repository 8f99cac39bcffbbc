"""Rooms over in-process channels: store before broadcast, presence, saves and their outcome."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from pycrdt import Decoder, Doc, Text

from sync import ysync
from sync.room_store import RoomStore
from sync.rooms import Rooms
from sync.saving import LoadedFile, Person, SaveOutcome, SaveRequest, Stamp
from sync.seed import TEXT_NAME


class PathLoader:
    """A test loader over one plain file (the hub's reads through statehub.repofiles)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, doc: str) -> LoadedFile:
        stamp = self.stamp(doc)
        return LoadedFile(self.path.read_text(encoding="utf-8") if stamp else None, stamp)

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
        found = []
        for message in self.sent:
            decoder = Decoder(message)
            kind = decoder.read_var_uint()
            found.append((kind, decoder.read_var_uint() if kind == 0 else -1))
        return found


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.01)


def _rooms(path: Path, log: list[SaveRequest], poll_interval: float = 0.25) -> Rooms:
    store = RoomStore(path.parent / "rooms.sqlite3")
    return Rooms(store, PathLoader(path), _writer(path, log), poll_interval=poll_interval)


def _writer(path: Path, log: list[SaveRequest]) -> Any:
    async def save(request: SaveRequest) -> SaveOutcome:
        log.append(request)
        if "bad" in request.text:
            return SaveOutcome(False, "invalid", [{"line": 1, "column": 1, "message": "bad"}])
        path.write_text(request.text, encoding="utf-8")
        return SaveOutcome(True, "saved", commit="c0ffee")

    return save


def test_an_update_is_stored_before_any_member_receives_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "statehub.toml"
        path.write_text("x = 1\n")
        rooms = _rooms(path, [], poll_interval=0.05)
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
            channel.inbox.put_nowait(ysync.sync_step1(b"\x00"))
        await _settle()
        client: Doc[Any] = Doc()
        client.apply_update(rooms.rooms["d"].doc.get_update())
        before = client.get_state()
        client.get(TEXT_NAME, type=Text).insert(0, "# hi\n")
        ada.inbox.put_nowait(ysync.sync_update(client.get_update(before)))
        await _settle()
        assert stored_at_send == [1]
        assert rooms.rooms["d"].text == "# hi\nx = 1\n"
        assert rooms.rooms["d"].editors == {"Ada": Person("Ada")}
        for channel in (ada, bob):
            channel.inbox.put_nowait(None)
        assert [leave.code for leave in await asyncio.gather(*tasks)] == [None, None]
        assert "d" not in rooms.rooms
        assert store.load("d") is not None  # unsaved: kept for the next opening
        await rooms.close()

    asyncio.run(scenario())


def test_presence_is_relayed_named_and_cleared_when_a_member_leaves(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "statehub.toml"
        path.write_text("x = 1\n")
        rooms = _rooms(path, [])
        ada, bob = MemoryChannel(), MemoryChannel()
        tasks = [asyncio.create_task(rooms.join("d", ch)) for ch in (ada, bob)]
        for channel in (ada, bob):
            channel.inbox.put_nowait(ysync.sync_step1(b"\x00"))
        state = json.dumps({"user": {"name": "Ada", "email": "ada@example.org"}})
        ada.inbox.put_nowait(ysync.encode_awareness([ysync.AwarenessEntry(41, 1, state)]))
        await _settle()
        room = rooms.rooms["d"]
        assert room.people() == ["Ada"]
        assert (1, -1) in bob.kinds()
        ada.inbox.put_nowait(None)
        await _settle()
        last = Decoder(bob.sent[-1])
        assert last.read_var_uint() == 1
        entries = ysync.decode_awareness(last.read_message() or b"")
        assert [(e.client_id, e.clock, e.state) for e in entries] == [(41, 2, None)]
        bob.inbox.put_nowait(None)
        await asyncio.gather(*tasks)
        await rooms.close()

    asyncio.run(scenario())


def test_saves_name_the_saver_and_credit_the_other_editors(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "statehub.toml"
        path.write_text("x = 1\n")
        requests: list[SaveRequest] = []
        rooms = _rooms(path, requests)
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
        await rooms.close()

    asyncio.run(scenario())


def test_a_deleted_file_does_not_empty_the_room(tmp_path: Path) -> None:
    async def scenario() -> None:
        path = tmp_path / "statehub.toml"
        path.write_text("x = 1\n")
        rooms = _rooms(path, [])
        room = await rooms.open("d")
        path.unlink()
        assert not await room.check_file()
        assert room.text == "x = 1\n"
        path.write_text("x = 2\n")
        assert await room.check_file()
        assert room.text == "x = 2\n"
        await rooms.close()

    asyncio.run(scenario())
