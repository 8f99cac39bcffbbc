"""Rooms: one live Yjs document per manifest, shared by everyone who has it open.

A room speaks y-sync to each member over a pycrdt :class:`~pycrdt.Channel`
(the transport is somebody else's: the hub adapts Litestar's WebSocket). It
loads its text through :mod:`sync.seed`, keeps every update in the
:class:`~sync.room_store.RoomStore` *before* it broadcasts it, merges changes
that reach the file from outside, and hands saves to a :data:`~sync.saving.Saver`.

We do not use pycrdt-websocket's ``YRoom`` as is: it broadcasts first and
writes its store afterwards in a background task, and it sends its own sync
step 1 before it has seen the client's state, so a client from an earlier
lineage would be merged (duplicating the text) before we could tell it to
resync. The message handling below follows ``YRoom.serve`` otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pycrdt import Channel, Decoder, Doc, YMessageType, YSyncMessageType, merge_updates

from sync import ysync
from sync.room_store import RoomStore
from sync.saving import Person, SaveOutcome, Saver, SaveRequest
from sync.seed import doc_text, file_change_update, seed_client_id, seed_doc

__all__ = ["RESYNC_CLOSE_CODE", "Member", "Room", "Rooms"]

log = logging.getLogger(__name__)

RESYNC_CLOSE_CODE = 4000
"""WebSocket close code after a ``resync`` message: the client's copy is from an earlier lineage."""


@dataclass(eq=False)
class Member:
    """One connection in a room."""

    channel: Channel
    person: Person | None = None
    outbox: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    awareness_ids: set[int] = field(default_factory=set)
    synced: bool = False
    """Set once its sync step 1 showed a copy of this room's lineage (or none)."""

    def send(self, message: bytes) -> None:
        self.outbox.put_nowait(message)


class Room:
    """The live document for one manifest file."""

    def __init__(self, name: str, path: Path, store: RoomStore, saver: Saver) -> None:
        self.name = name
        self.path = path
        self.store = store
        self.saver = saver
        self.doc: Doc[Any] = Doc()
        self.members: list[Member] = []
        self.awareness: dict[int, ysync.AwarenessEntry] = {}
        self.editors: dict[str, Person] = {}
        """Who changed the text since the last save, in order of their first edit."""
        self.save_lock = asyncio.Lock()
        self._file_stat: tuple[int, int, int] | None = None
        self._load()

    # loading and the file ------------------------------------------------------------------------

    def _load(self) -> None:
        disk = self._read_file()
        pending = self.store.load(self.name)
        if pending is None:
            seed = seed_doc(disk)
            self.store.begin(self.name, disk, seed)
            self.doc.apply_update(seed)
            self.seed_id = seed_client_id(disk)
            self.file_text, self.file_state = disk, seed
        else:
            self.seed_id = seed_client_id(pending.seed_text)
            self.doc.apply_update(seed_doc(pending.seed_text))
            for update in pending.updates:
                self.doc.apply_update(update)
            self.file_text, self.file_state = pending.file_text, pending.file_state
            self.editors = {name: Person(name, email) for name, email in self.store.editors(self.name)}
            if disk != self.file_text:
                self._merge_file(disk)

    def _read_file(self) -> str:
        try:
            stat = self.path.stat()
            self._file_stat = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._file_stat = None
            return ""

    @property
    def text(self) -> str:
        return doc_text(self.doc)

    @property
    def unsaved(self) -> bool:
        return self.text != self.file_text

    def check_file(self) -> bool:
        """Merge the file into the room if it changed on disk since we last read it; True if it did."""
        if self.save_lock.locked():
            return False  # our own save is writing it
        try:
            stat = self.path.stat()
            now: tuple[int, int, int] | None = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        except FileNotFoundError:
            now = None
        if now == self._file_stat:
            return False
        if now is None and self.file_text:
            # Gone (a branch switch, a mistaken rm): emptying the room would lose everyone's text.
            if self._file_stat is not None:
                log.warning("room %s: %s disappeared; keeping the room's text", self.name, self.path)
                self._broadcast(ysync.hub_message({"type": "file-missing"}), None)
            self._file_stat = None
            return False
        disk = self._read_file()
        if disk == self.file_text:
            return False
        self._merge_file(disk)
        return True

    def _merge_file(self, disk: str) -> None:
        """An out-of-band change (a pull, a sweep, an applied event): merge it as ``Y.Text`` edits."""
        update = file_change_update(self.file_state, self.file_text, disk)
        self.file_state = merge_updates(self.file_state, update)
        self.file_text = disk
        self.doc.apply_update(update)
        self.store.file_written(self.name, disk, self.file_state, self.doc.get_update())
        self._broadcast(ysync.sync_update(update), None)
        self._broadcast(ysync.hub_message({"type": "file-changed"}), None)
        log.info("room %s merged a change made to %s outside the room", self.name, self.path)

    # members -------------------------------------------------------------------------------------

    async def serve(self, channel: Channel, person: Person | None = None) -> bool:
        """Speak y-sync with one member until it leaves; False if it was told to resync."""
        member = Member(channel, person)
        self.members.append(member)
        pump = asyncio.create_task(self._pump(member))
        self.check_file()
        try:
            async for message in channel:
                try:
                    stay = await self._receive(member, bytes(message))
                except (RuntimeError, IndexError, ValueError) as error:  # pycrdt's "Y protocol error" and kin
                    log.warning("room %s: unreadable message from a member: %s", self.name, error)
                    member.send(
                        ysync.hub_message({"type": "error", "message": f"unreadable y-sync message: {error}"})
                    )
                    continue
                if not stay:
                    return False
            return True
        finally:
            self.members.remove(member)
            self._forget_presence(member)
            member.outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pump, 2)

    async def _pump(self, member: Member) -> None:
        while (message := await member.outbox.get()) is not None:
            try:
                await member.channel.send(message)
            except Exception:  # a closed socket: its serve loop ends on its own
                return

    def _broadcast(self, message: bytes, sender: Member | None) -> None:
        for member in self.members:
            if member is not sender:
                member.send(message)

    async def _receive(self, member: Member, message: bytes) -> bool:
        decoder = Decoder(message)
        kind = decoder.read_var_uint()
        if kind == YMessageType.SYNC:
            step = decoder.read_var_uint()
            payload = decoder.read_message() or b""
            if step == YSyncMessageType.SYNC_STEP1:
                return self._sync_step1(member, payload)
            if member.synced and payload != b"\x00\x00":
                self._apply(member, payload, is_edit=step == YSyncMessageType.SYNC_UPDATE)
        elif kind == YMessageType.AWARENESS:
            self._awareness(member, decoder.read_message() or b"")
        elif kind == ysync.QUERY_AWARENESS:
            self._send_presence(member)
        elif kind == ysync.STATEHUB:
            request = ysync.read_hub_message(message[1:])
            if request.get("type") == "save":
                await self.save(self._person(member))
        return True

    def _sync_step1(self, member: Member, state_vector: bytes) -> bool:
        client_state = ysync.decode_state_vector(state_vector)
        if client_state and self.seed_id not in client_state:
            member.send(
                ysync.hub_message(
                    {
                        "type": "resync",
                        "reason": f"{self.path.name} changed since you last synced; reload to get it",
                    }
                )
            )
            return False
        member.synced = True
        member.send(ysync.sync_step2(self.doc.get_update(state_vector)))
        member.send(ysync.sync_step1(self.doc.get_state()))
        self._send_presence(member)
        return True

    def _apply(self, member: Member, update: bytes, *, is_edit: bool) -> None:
        """Apply a member's update: stored first, then broadcast, then credited to its author.

        An update message is an edit; a sync step 2 (catching up after a
        reconnect) counts only if it brought new content, since Yjs repeats
        its whole delete set in every step 2.
        """
        before = None if is_edit else self.doc.get_state()
        self.doc.apply_update(update)
        self.store.append(self.name, update)
        self._broadcast(ysync.sync_update(update), member)
        person = self._person(member)
        changed = is_edit or self.doc.get_state() != before
        if person is not None and changed and person.name not in self.editors:
            self.editors[person.name] = person
            self.store.credit(self.name, person.name, person.email)

    # presence ------------------------------------------------------------------------------------

    def _awareness(self, member: Member, payload: bytes) -> None:
        for entry in ysync.decode_awareness(payload):
            member.awareness_ids.add(entry.client_id)
            if entry.state is None:
                self.awareness.pop(entry.client_id, None)
            else:
                self.awareness[entry.client_id] = entry
        self._broadcast(ysync.write_awareness(payload), member)

    def _send_presence(self, member: Member) -> None:
        if self.awareness:
            member.send(ysync.encode_awareness(list(self.awareness.values())))

    def _forget_presence(self, member: Member) -> None:
        gone = [
            ysync.AwarenessEntry(cid, self.awareness[cid].clock + 1, "null")
            for cid in member.awareness_ids
            if cid in self.awareness
        ]
        for entry in gone:
            del self.awareness[entry.client_id]
        if gone:
            self._broadcast(ysync.encode_awareness(gone), member)

    def _person(self, member: Member) -> Person | None:
        if member.person is not None:
            return member.person
        for cid in member.awareness_ids:
            entry = self.awareness.get(cid)
            user = entry.state.get("user") if entry and isinstance(entry.state, dict) else None
            if isinstance(user, dict) and isinstance(user.get("name"), str) and user["name"].strip():
                email = user.get("email") if isinstance(user.get("email"), str) else None
                return Person(user["name"].strip(), email)
        return None

    def people(self) -> list[str]:
        """Who is here, by name, for the page's presence list and the API."""
        names = [p.name for p in (self._person(m) for m in self.members) if p is not None]
        return sorted(set(names))

    # saving --------------------------------------------------------------------------------------

    async def save(self, saver: Person | None) -> SaveOutcome:
        """Validate and write the room's text through the hub; every member hears the outcome."""
        if saver is None:
            outcome = SaveOutcome(False, "say who you are to save: connect with ?user=NAME")
            self._broadcast(ysync.hub_message({"type": "save-result", **outcome.to_json()}), None)
            return outcome
        self.check_file()
        async with self.save_lock:
            text, live_state = self.text, self.doc.get_update()
            coauthors = [p for name, p in self.editors.items() if name != saver.name]
            request = SaveRequest(self.name, self.path, text, self.file_text, saver, coauthors)
            try:
                outcome = await self.saver(request)
            except Exception as error:  # the room must outlive a failed save
                log.exception("saving %s failed", self.name)
                outcome = SaveOutcome(False, f"saving failed: {error}")
            if outcome.ok:
                self.file_text, self.file_state = text, live_state
                self._read_file()
                self.store.file_written(self.name, text, live_state, self.doc.get_update())
                if self.text == text:
                    self.editors.clear()
                    self.store.clear_editors(self.name)
        payload = {"type": "save-result", "by": saver.name, **outcome.to_json()}
        self._broadcast(ysync.hub_message(payload), None)
        return outcome


class Rooms:
    """The open rooms, by document name; a room opens with its first member and closes with its last."""

    def __init__(self, store: RoomStore, saver: Saver, *, poll_interval: float = 0.25) -> None:
        self.store = store
        self.saver = saver
        self.poll_interval = poll_interval
        self.rooms: dict[str, Room] = {}
        self._watch: asyncio.Task[None] | None = None

    def open(self, name: str, path: Path) -> Room:
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name, path, self.store, self.saver)
            if self._watch is None or self._watch.done():
                self._watch = asyncio.create_task(self._watch_files(), name="statehub-rooms-watch")
        return room

    async def join(self, name: str, path: Path, channel: Channel, person: Person | None = None) -> bool:
        """Serve one member in the room for ``name``; False if it was told to resync."""
        room = self.open(name, path)
        try:
            return await room.serve(channel, person)
        finally:
            if not room.members:
                self._close(room)

    async def save(self, name: str, path: Path, saver: Person | None) -> SaveOutcome:
        """A save from outside the room (``POST /sync/{doc}/save``)."""
        room = self.open(name, path)
        try:
            return await room.save(saver)
        finally:
            if not room.members:
                self._close(room)

    def _close(self, room: Room) -> None:
        if self.rooms.get(room.name) is room and not room.members and not room.save_lock.locked():
            del self.rooms[room.name]
            if not room.unsaved:
                self.store.forget(room.name)

    async def _watch_files(self) -> None:
        """Poll open rooms' files: out-of-band changes are merged while people edit."""
        while self.rooms:
            await asyncio.sleep(self.poll_interval)
            for room in list(self.rooms.values()):
                try:
                    room.check_file()
                except Exception:  # one unreadable file must not stop the others
                    log.exception("checking %s for outside changes failed", room.path)

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        self.rooms.clear()
