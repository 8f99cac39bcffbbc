"""Rooms: one live Yjs document per manifest, shared by everyone who has it open.

A room speaks y-sync to each member over a pycrdt :class:`~pycrdt.Channel`
(the transport is somebody else's: the hub adapts Litestar's WebSocket). It
reads its file only through the hub's :class:`~sync.saving.FileLoader` (never
a path of its own: the loader refuses symlinks, paths outside the repo,
non-UTF-8 and oversized files, ADR-022), seeds its text through
:mod:`sync.seed`, keeps every update in the :class:`~sync.room_store.RoomStore`
*before* it broadcasts it, merges changes that reach the file from outside
(line by line, in a worker thread, with a time bound), and hands saves to a
:data:`~sync.saving.Saver`.

Trust (ADR-022): every client sends bigger and stranger input than expected.
A message over :data:`MESSAGE_LIMIT` bytes, or an update that would make the
text longer than :data:`TEXT_LIMIT` bytes, is refused with a message and the
connection closed with :data:`TOO_LARGE_CLOSE_CODE` and the reason. An
awareness state belongs to the connection that introduced its client id:
another connection can neither overwrite nor clear it, so nobody can change
somebody else's presence or the name they are credited under.

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
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pycrdt import Channel, Decoder, Doc, Text, YMessageType, YSyncMessageType, merge_updates

from sync import ysync
from sync.room_store import RoomStore
from sync.saving import (
    FileLoader,
    Person,
    RoomError,
    RoomFileError,
    RoomInputError,
    SaveOutcome,
    Saver,
    SaveRequest,
    Stamp,
)
from sync.seed import TEXT_NAME, doc_text, file_change_update, seed_client_id, seed_doc

__all__ = [
    "AWARENESS_IDS",
    "AWARENESS_STATE_LIMIT",
    "MERGE_SECONDS",
    "MESSAGE_LIMIT",
    "RESYNC_CLOSE_CODE",
    "TEXT_LIMIT",
    "TOO_LARGE_CLOSE_CODE",
    "Leave",
    "Member",
    "Room",
    "Rooms",
]

log = logging.getLogger(__name__)

RESYNC_CLOSE_CODE = 4000
"""WebSocket close code after a ``resync`` message: the client's copy is from an earlier lineage."""
TOO_LARGE_CLOSE_CODE = 4413
"""WebSocket close code after a message or an edit over a limit (4000 + HTTP 413)."""

TEXT_LIMIT = 256 * 1024
"""Bytes (UTF-8) of a manifest: the largest file a room opens, merges or saves, or text it holds."""
MESSAGE_LIMIT = 1024 * 1024
"""Bytes of one message from a client."""
AWARENESS_STATE_LIMIT = 8 * 1024
"""Bytes of one client's awareness state (its presence: name, colour, cursor)."""
AWARENESS_IDS = 8
"""Awareness client ids one connection may introduce."""
MERGE_SECONDS = 0.5
"""How long a line-level merge of an out-of-band change may run before the one-block fallback is used."""


@dataclass(frozen=True, slots=True)
class Leave:
    """How a member's session ended: ``code`` None when it simply left, else the close code and reason."""

    code: int | None = None
    reason: str = ""


@dataclass(eq=False)
class Member:
    """One connection in a room."""

    channel: Channel
    person: Person | None = None
    outbox: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    awareness_ids: set[int] = field(default_factory=set)
    """The awareness client ids this connection introduced: the only ones it may set or clear."""
    synced: bool = False
    """Set once its sync step 1 showed a copy of this room's lineage (or none)."""

    def send(self, message: bytes) -> None:
        self.outbox.put_nowait(message)


def _error(message: str) -> bytes:
    return ysync.hub_message({"type": "error", "message": message})


class Room:
    """The live document for one manifest, named ``name``; call :meth:`load` before serving."""

    def __init__(self, name: str, store: RoomStore, loader: FileLoader, saver: Saver) -> None:
        self.name = name
        self.store = store
        self.loader = loader
        self.saver = saver
        self.doc: Doc[Any] = Doc()
        self._text = self.doc.get(TEXT_NAME, type=Text)
        self.members: list[Member] = []
        self.awareness: dict[int, ysync.AwarenessEntry] = {}
        self.owners: dict[int, Member] = {}
        """Awareness client id -> the connection that introduced it."""
        self.editors: dict[str, Person] = {}
        """Who changed the text since the last save, in order of their first edit."""
        self.save_lock = asyncio.Lock()
        self._file_lock = asyncio.Lock()
        self._stamp: Stamp | None = None
        self.file_problem: RoomFileError | None = None
        """Why the file cannot be read now (a symlink, too large, ...): new members are refused."""
        self.file_text = ""
        self.file_state = b""
        self.seed_id = 0
        self.loading: asyncio.Future[None] | None = None
        self.holds = 0
        """Callers between :meth:`Rooms.holding` and its end: the room stays open for them."""

    # loading and the file ------------------------------------------------------------------------

    async def load(self) -> None:
        """Read the file through the loader and restore pending edits; RoomFileError when it may not."""
        loaded = await asyncio.to_thread(self.loader, self.name)
        disk = loaded.text or ""
        self._stamp = loaded.stamp
        pending = await asyncio.to_thread(self.store.load, self.name)
        if pending is None:
            seed = seed_doc(disk)
            self.store.begin(self.name, disk, seed)
            self.doc.apply_update(seed)
            self.seed_id = seed_client_id(disk)
            self.file_text, self.file_state = disk, seed
            return
        self.seed_id = seed_client_id(pending.seed_text)
        self.doc.apply_update(seed_doc(pending.seed_text))
        for update in pending.updates:
            self.doc.apply_update(update)
        self.file_text, self.file_state = pending.file_text, pending.file_state
        for name, email in self.store.editors(self.name):
            try:
                self.editors[name] = Person(name, email)
            except RoomInputError:
                log.warning("room %s: dropping a stored editor name that is not a git identity", self.name)
        if disk != self.file_text:
            await self._merge_file(disk)

    @property
    def loaded(self) -> bool:
        """Did :meth:`load` finish without an error?"""
        done = self.loading is not None and self.loading.done() and not self.loading.cancelled()
        return done and self.loading is not None and self.loading.exception() is None

    @property
    def text(self) -> str:
        return doc_text(self.doc)

    @property
    def unsaved(self) -> bool:
        return self.text != self.file_text

    async def check_file(self) -> bool:
        """Merge the file into the room if it changed on disk since we last read it; True if it did.

        The look, the read and the merge run in worker threads: the event loop
        never waits on a file or a diff. A file that may no longer be read (it
        became a symlink, grew over the limit, is not UTF-8) is reported to
        every member once; the room keeps its text and reads nothing of it.
        """
        if self.save_lock.locked():
            return False  # our own save is writing it
        async with self._file_lock:
            try:
                now = await asyncio.to_thread(self.loader.stamp, self.name)
            except RoomFileError as error:
                self._file_error(error)
                return False
            if now == self._stamp and self.file_problem is None:
                return False
            if now is None:
                self.file_problem = None
                if self.file_text and self._stamp is not None:
                    # Gone (a branch switch, a mistaken rm): emptying the room would lose everyone's text.
                    log.warning("room %s: its file disappeared; keeping the room's text", self.name)
                    self._broadcast(ysync.hub_message({"type": "file-missing"}), None)
                self._stamp = None
                if self.file_text:
                    return False
            try:
                loaded = await asyncio.to_thread(self.loader, self.name)
            except RoomFileError as error:
                self._stamp = now
                self._file_error(error)
                return False
            self._stamp = loaded.stamp
            self.file_problem = None
            disk = loaded.text or ""
            if disk == self.file_text:
                return False
            await self._merge_file(disk)
            return True

    def _file_error(self, error: RoomFileError) -> None:
        if self.file_problem is None or self.file_problem.message != error.message:
            log.warning("room %s: %s", self.name, error.message)
            self._broadcast(
                _error(f"{error.message}; the room keeps its text and saving is refused until that is fixed"),
                None,
            )
        self.file_problem = error

    async def _merge_file(self, disk: str) -> None:
        """An out-of-band change (a pull, a sweep, an applied event): merge it as ``Y.Text`` edits.

        The update is computed in a thread, line by line; if that takes longer
        than :data:`MERGE_SECONDS`, the changed lines are replaced as one block
        instead (linear time), which keeps every unsaved edit.
        """
        file_state, old = self.file_state, self.file_text
        try:
            update = await asyncio.wait_for(
                asyncio.to_thread(file_change_update, file_state, old, disk), MERGE_SECONDS
            )
        except TimeoutError:
            log.warning(
                "room %s: line merge took over %s s; merging the change as one block",
                self.name,
                MERGE_SECONDS,
            )
            update = await asyncio.to_thread(file_change_update, file_state, old, disk, budget=0)
        self.file_state = merge_updates(file_state, update)
        self.file_text = disk
        self.doc.apply_update(update)
        # On the loop, like every store write: an update appended meanwhile must not be compacted away.
        self.store.file_written(self.name, disk, self.file_state, self.doc.get_update())
        self._broadcast(ysync.sync_update(update), None)
        self._broadcast(ysync.hub_message({"type": "file-changed"}), None)
        log.info("room %s merged a change made to its file outside the room", self.name)

    # members -------------------------------------------------------------------------------------

    async def serve(self, channel: Channel, person: Person | None = None) -> Leave:
        """Speak y-sync with one member until it leaves, is told to resync or sends too much."""
        member = Member(channel, person)
        self.members.append(member)
        pump = asyncio.create_task(self._pump(member))
        try:
            await self.check_file()
            async for message in channel:
                if len(message) > MESSAGE_LIMIT:
                    return self._too_large(
                        member,
                        f"a message of {len(message):,} bytes is over the limit of {MESSAGE_LIMIT:,} bytes",
                    )
                try:
                    leave = await self._receive(member, bytes(message))
                except RoomInputError as error:
                    if error.status == 413:
                        return self._too_large(member, error.message)
                    member.send(_error(error.message))
                    continue
                except (
                    RuntimeError,
                    IndexError,
                    ValueError,
                    OverflowError,
                ) as error:  # "Y protocol error" and kin
                    log.warning("room %s: unreadable message from a member: %s", self.name, error)
                    member.send(_error(f"unreadable y-sync message: {error}"))
                    continue
                if leave is not None:
                    return leave
            return Leave()
        finally:
            self.members.remove(member)
            self._forget_presence(member)
            member.outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pump, 2)

    def _too_large(self, member: Member, reason: str) -> Leave:
        log.warning("room %s: refused from a member: %s", self.name, reason)
        member.send(_error(f"refused: {reason}; nothing of it was applied"))
        return Leave(TOO_LARGE_CLOSE_CODE, reason)

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

    async def _receive(self, member: Member, message: bytes) -> Leave | None:
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
        return None

    def _sync_step1(self, member: Member, state_vector: bytes) -> Leave | None:
        client_state = ysync.decode_state_vector(state_vector)
        if client_state and self.seed_id not in client_state:
            reason = "the file changed since you last synced; reload to get it"
            member.send(ysync.hub_message({"type": "resync", "reason": reason}))
            return Leave(RESYNC_CLOSE_CODE, "resync: the file changed since you last synced")
        member.synced = True
        member.send(ysync.sync_step2(self.doc.get_update(state_vector)))
        member.send(ysync.sync_step1(self.doc.get_state()))
        self._send_presence(member)
        return None

    def _check_size(self, update: bytes) -> None:
        """RoomInputError (413) if ``update`` would make the text longer than :data:`TEXT_LIMIT` bytes.

        The text can grow by at most the update's size, so the exact check (on
        a copy of the document) runs only near the limit.
        """
        if len(self._text) + len(update) <= TEXT_LIMIT:
            return
        trial: Doc[Any] = Doc()
        trial.apply_update(self.doc.get_update())
        trial.apply_update(update)
        size = len(trial.get(TEXT_NAME, type=Text))
        if size > TEXT_LIMIT:
            raise RoomInputError(
                f"this edit makes the text {size:,} bytes long, over the limit of {TEXT_LIMIT:,} bytes", 413
            )

    def _apply(self, member: Member, update: bytes, *, is_edit: bool) -> None:
        """Apply a member's update: checked, stored, then broadcast, then credited to its author.

        An update message is an edit; a sync step 2 (catching up after a
        reconnect) counts only if it brought new content, since Yjs repeats
        its whole delete set in every step 2.
        """
        self._check_size(update)
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
        """Take the entries ``member`` may set: its own client ids (or new ones), within the limits."""
        accepted: list[ysync.AwarenessEntry] = []
        refused: list[str] = []
        for entry in ysync.decode_awareness(payload):
            owner = self.owners.get(entry.client_id)
            if owner is not None and owner is not member:
                refused.append(f"client id {entry.client_id} belongs to another connection")
                continue
            if owner is None:
                if entry.state is None:
                    continue  # clearing what nobody set
                if len(member.awareness_ids) >= AWARENESS_IDS:
                    refused.append(f"a connection may introduce at most {AWARENESS_IDS} awareness client ids")
                    continue
            size = len(entry.state_json.encode("utf-8"))
            if size > AWARENESS_STATE_LIMIT:
                refused.append(
                    f"an awareness state of {size:,} bytes is over the limit of "
                    f"{AWARENESS_STATE_LIMIT:,} bytes"
                )
                continue
            member.awareness_ids.add(entry.client_id)
            self.owners[entry.client_id] = member
            if entry.state is None:
                self.awareness.pop(entry.client_id, None)
            else:
                self.awareness[entry.client_id] = entry
            accepted.append(entry)
        if refused:
            member.send(_error("awareness refused: " + "; ".join(dict.fromkeys(refused))))
        if accepted:
            self._broadcast(ysync.encode_awareness(accepted), member)

    def _send_presence(self, member: Member) -> None:
        if self.awareness:
            member.send(ysync.encode_awareness(list(self.awareness.values())))

    def _forget_presence(self, member: Member) -> None:
        gone = [
            ysync.AwarenessEntry(cid, self.awareness[cid].clock + 1, "null")
            for cid in member.awareness_ids
            if cid in self.awareness
        ]
        for cid in member.awareness_ids:
            self.awareness.pop(cid, None)
            if self.owners.get(cid) is member:
                del self.owners[cid]
        if gone:
            self._broadcast(ysync.encode_awareness(gone), member)

    def _person(self, member: Member) -> Person | None:
        """The member's person, else the name its own awareness state gives (if it is a git identity)."""
        if member.person is not None:
            return member.person
        for cid in sorted(member.awareness_ids):
            entry = self.awareness.get(cid)
            user = entry.state.get("user") if entry and isinstance(entry.state, dict) else None
            if isinstance(user, dict) and isinstance(user.get("name"), str) and user["name"].strip():
                email = user.get("email") if isinstance(user.get("email"), str) else None
                try:
                    return Person(user["name"].strip(), email or None)
                except RoomInputError:
                    continue
        return None

    def people(self) -> list[str]:
        """Who is here, by name, for the page's presence list and the API."""
        names = [p.name for p in (self._person(m) for m in self.members) if p is not None]
        return sorted(set(names))

    # saving --------------------------------------------------------------------------------------

    async def save(self, saver: Person | None) -> SaveOutcome:
        """Validate and write the room's text through the hub; every member hears the outcome.

        ``saver`` None lets the hub choose the author (on an open hub, the
        repo's git identity) or refuse.
        """
        await self.check_file()
        async with self._file_lock, self.save_lock:
            if self.file_problem is not None:
                outcome = SaveOutcome(
                    False, f"not saved: {self.file_problem.message}", status=self.file_problem.status
                )
            else:
                outcome = await self._save(saver)
        by = outcome.by or (saver.name if saver else None)
        payload = {"type": "save-result", "by": by, **outcome.to_json()}
        self._broadcast(ysync.hub_message(payload), None)
        return outcome

    async def _save(self, saver: Person | None) -> SaveOutcome:
        text, live_state = self.text, self.doc.get_update()
        coauthors = [p for name, p in self.editors.items() if saver is None or name != saver.name]
        request = SaveRequest(self.name, text, self.file_text, saver, coauthors)
        try:
            outcome = await self.saver(request)
        except Exception:  # the room must outlive a failed save
            log.exception("saving %s failed", self.name)
            return SaveOutcome(False, "saving failed on the hub; nothing was saved (the hub's log says why)")
        if outcome.ok:
            self.file_text, self.file_state = text, live_state
            with contextlib.suppress(RoomError):
                self._stamp = await asyncio.to_thread(self.loader.stamp, self.name)
            self.store.file_written(self.name, text, live_state, self.doc.get_update())
            if self.text == text:
                self.editors.clear()
                self.store.clear_editors(self.name)
        return outcome


class Rooms:
    """The open rooms, by document name; a room opens with its first member and closes with its last."""

    def __init__(
        self, store: RoomStore, loader: FileLoader, saver: Saver, *, poll_interval: float = 0.25
    ) -> None:
        self.store = store
        self.loader = loader
        self.saver = saver
        self.poll_interval = poll_interval
        self.rooms: dict[str, Room] = {}
        self._watch: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def holding(self, name: str) -> AsyncIterator[Room]:
        """The room for ``name``, opened and kept open until the block ends.

        Raises RoomFileError before anything of the file is sent to anyone
        when it may not be read (ADR-022): a caller refuses the connection then.
        """
        room = await self.open(name)
        room.holds += 1
        try:
            yield room
        finally:
            room.holds -= 1
            self._close(room)

    async def open(self, name: str) -> Room:
        """The room for ``name``, loaded; RoomFileError when its file may not be read.

        Prefer :meth:`holding`: a room opened here closes as soon as nobody is in it.
        """
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name, self.store, self.loader, self.saver)
            room.loading = asyncio.ensure_future(room.load())
            if self._watch is None or self._watch.done():
                self._watch = asyncio.create_task(self._watch_files(), name="statehub-rooms-watch")
        assert room.loading is not None
        try:
            await asyncio.shield(room.loading)
            await room.check_file()
            if room.file_problem is not None:
                raise room.file_problem
        except BaseException:
            self._close(room)
            raise
        return room

    async def join(self, name: str, channel: Channel, person: Person | None = None) -> Leave:
        """Serve one member in the room for ``name`` until it leaves (RoomFileError: not opened)."""
        async with self.holding(name) as room:
            return await room.serve(channel, person)

    async def save(self, name: str, saver: Person | None) -> SaveOutcome:
        """A save from outside the room (``POST /sync/{doc}/save``)."""
        async with self.holding(name) as room:
            return await room.save(saver)

    async def drafts(self) -> set[str]:
        """Documents with unsaved edits: those of open rooms, and those kept in the store for closed ones."""
        stored = await asyncio.to_thread(self.store.drafts)
        loaded = {name: room for name, room in self.rooms.items() if room.loaded}
        return {doc for doc in stored if doc not in loaded} | {n for n, r in loaded.items() if r.unsaved}

    def _close(self, room: Room) -> None:
        if self.rooms.get(room.name) is not room or room.members or room.holds or room.save_lock.locked():
            return
        if room.loading is not None and not room.loading.done():
            return
        del self.rooms[room.name]
        if room.loaded and not room.unsaved:
            self.store.forget(room.name)

    async def _watch_files(self) -> None:
        """Poll open rooms' files: out-of-band changes are merged while people edit."""
        while self.rooms:
            await asyncio.sleep(self.poll_interval)
            for room in list(self.rooms.values()):
                if not room.loaded:
                    continue
                try:
                    await room.check_file()
                except Exception:  # one unreadable file must not stop the others
                    log.exception("checking room %s for outside changes failed", room.name)

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        self.rooms.clear()
