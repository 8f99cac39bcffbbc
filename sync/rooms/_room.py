"""One room: the live Yjs document of one manifest, its file, its edits and its saves.

A room reads its file only through the hub's :class:`~sync.saving.FileLoader`
(never a path of its own: the loader refuses symlinks, paths outside the repo,
non-UTF-8 and oversized files, ADR-022), seeds its text through
:mod:`sync.seed`, keeps every update in the :class:`~sync.room_store.RoomStore`
*before* it broadcasts it (ADR-012), merges changes that reach the file from
outside (line by line, in a worker thread, with a time bound), and hands saves
to a :data:`~sync.saving.Saver`. An update that would make the text longer than
:data:`TEXT_LIMIT` bytes is refused (RoomInputError, status 413).

Across replicas (canon/ADR-051) the store is the room's meeting point: a room
applies what other replicas stored (:meth:`Room.catch_up`, woken by the bus),
and a save or a file merge runs under the bus's save lock, after catching up and
taking the lineage as the store holds it (another replica may have saved or
merged the file meanwhile: merging that again would duplicate it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from pycrdt import Channel, Doc, Text, create_update_message, merge_updates

from sync import ysync
from sync.errors import StoreUnreachable
from sync.room_bus import LocalRoomBus
from sync.rooms._connection import serve
from sync.rooms._presence import Presence
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

if TYPE_CHECKING:
    from sync.room_bus import RoomBus
    from sync.room_store import RoomStore
    from sync.rooms._member import Leave, Member

__all__ = ["MERGE_SECONDS", "TEXT_LIMIT", "Room"]

log = logging.getLogger(__name__)

TEXT_LIMIT = 256 * 1024
"""Bytes (UTF-8) of a manifest: the largest file a room opens, merges or saves, or text it holds."""
MERGE_SECONDS = 0.5
"""How long a line-level merge of an out-of-band change may run before the one-block fallback is used."""


class Room:
    """The live document for one manifest, named ``name``; call :meth:`load` before serving."""

    def __init__(
        self, name: str, store: RoomStore, loader: FileLoader, saver: Saver, bus: RoomBus | None = None
    ) -> None:
        self.name = name
        self.store = store
        self.loader = loader
        self.saver = saver
        self.bus: RoomBus = bus or LocalRoomBus()
        self.doc: Doc[Any] = Doc()
        self._text = self.doc.get(TEXT_NAME, type=Text)
        self.members: list[Member] = []
        self.presence = Presence(self.doc, self.broadcast, self.publish_presence if self.bus.shared else None)
        self.last = 0
        """The id of the newest stored update this room has applied (and every earlier one of its own)."""
        self._own: set[int] = set()
        """Ids of updates this room stored after ``last``: not applied again when read back."""
        self._catching = asyncio.Lock()
        self.catch_up_queued = False
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
        # The stored lineage, or a new one from the file (another replica may begin it at the same time).
        pending = await asyncio.to_thread(self.store.open_lineage, self.name, disk, seed_doc(disk))
        self.seed_id = seed_client_id(pending.seed_text)
        self.doc.apply_update(seed_doc(pending.seed_text))
        for update in pending.updates:
            self.doc.apply_update(update)
        self.last = pending.through
        self.file_text, self.file_state = pending.file_text, pending.file_state
        await self._load_editors()
        if disk != self.file_text:
            await self._merge_outside(disk)

    async def _load_editors(self) -> None:
        """Who edited since the last save, as the store says (every replica credits there)."""
        editors = {}
        for name, email in await asyncio.to_thread(self.store.editors, self.name):
            try:
                editors[name] = Person(name, email)
            except RoomInputError:
                log.warning("room %s: dropping a stored editor name that is not a git identity", self.name)
        self.editors = editors

    # other replicas ------------------------------------------------------------------------------

    async def catch_up(self) -> int:
        """Apply the updates other replicas stored since :attr:`last` and pass them to the members;
        answer how many. The bus wakes it; a save and a file merge call it first."""
        async with self._catching:
            self.catch_up_queued = False
            found = await asyncio.to_thread(self.store.updates_after, self.name, self.last)
            applied = 0
            for uid, update in found:
                if uid <= self.last:
                    continue
                self.last = uid
                if uid in self._own:
                    continue
                self.doc.apply_update(update)
                self.broadcast(create_update_message(update), None)
                applied += 1
            self._own = {uid for uid in self._own if uid > self.last}
            return applied

    def _stored(self, uid: int) -> None:
        """This room stored update ``uid``. Alone (a local bus) every earlier id is its own and
        applied, so ``last`` moves; shared, others' may come before it, read by :meth:`catch_up`."""
        if self.bus.shared:
            self._own.add(uid)
        else:
            self.last = max(self.last, uid)

    @property
    def unread_own(self) -> int:
        """Own updates stored since :attr:`last`: the rooms catch up when these pile up unread."""
        return len(self._own)

    def publish_presence(self, update: bytes) -> None:
        self.bus.publish("a", self.name, {"u": base64.b64encode(update).decode()})

    async def _reconcile(self) -> None:
        """Under the bus's save lock: every stored update applied, the lineage's file as the store
        holds it (another replica may have saved or merged), and its editors."""
        await self.catch_up()
        stored = await asyncio.to_thread(self.store.lineage, self.name)
        if stored is not None and stored != (self.file_text, self.file_state):
            self.file_text, self.file_state = stored
        if self.bus.shared:  # other replicas credit their editors in the store (alone, it holds ours)
            await self._load_editors()

    async def _merge_outside(self, disk: str) -> None:
        """Merge ``disk`` unless another replica already did, under the bus's save lock."""
        async with self.bus.save_lock(self.name):
            await self._reconcile()
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
            return await self._check_file(locked=False)

    async def _check_file(self, *, locked: bool) -> bool:
        """:meth:`check_file` under ``_file_lock``; ``locked``: the bus's save lock is held already."""
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
                self.broadcast(ysync.hub_message({"type": "file-missing"}), None)
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
        if locked:
            await self._merge_file(disk)
        else:
            await self._merge_outside(disk)
        return True

    def _file_error(self, error: RoomFileError) -> None:
        if self.file_problem is None or self.file_problem.message != error.message:
            log.warning("room %s: %s", self.name, error.message)
            self.broadcast(
                ysync.error_message(
                    f"{error.message}; the room keeps its text and saving is refused until that is fixed"
                ),
                None,
            )
        self.file_problem = error

    async def _merge_file(self, disk: str) -> None:
        """An out-of-band change (a pull, a sweep, an applied event): merge it as ``Y.Text`` edits.

        The update is computed in a thread, line by line; if that takes longer
        than :data:`MERGE_SECONDS`, the changed lines are replaced as one block
        instead (linear time), which keeps every unsaved edit. Runs under the
        bus's save lock, after :meth:`_reconcile`.
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
        self._own.add(
            self.store.file_written(
                self.name, disk, self.file_state, self.doc.get_update(), through=self.last
            )
        )
        self.broadcast(create_update_message(update), None)
        self.broadcast(ysync.hub_message({"type": "file-changed"}), None)
        log.info("room %s merged a change made to its file outside the room", self.name)

    # members -------------------------------------------------------------------------------------

    async def serve(self, channel: Channel, person: Person | None = None) -> Leave:
        """Speak y-sync with one member over ``channel`` until it leaves, is told to resync or sends too much.

        ``person`` is who the hub says the connection is (None: the name its
        awareness state gives, if any). The close code and reason to send, if
        any, are in the answer (:mod:`sync.rooms._connection`).
        """
        return await serve(self, channel, person)

    def broadcast(self, message: bytes, sender: Member | None) -> None:
        """Queue ``message`` for every member but ``sender``."""
        for member in self.members:
            if member is not sender:
                member.send(message)

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

    def apply(self, member: Member, update: bytes, *, is_edit: bool) -> None:
        """Apply a member's update: checked, stored, applied, then broadcast, then credited to its author.

        An update message is an edit; a sync step 2 (catching up after a
        reconnect) counts only if it brought new content, since Yjs repeats
        its whole delete set in every step 2.
        """
        self._check_size(update)  # (applies it to a trial document: an unreadable one raises here)
        before = None if is_edit else self.doc.get_state()
        # Stored first: when the store fails (its database gone) the room must not hold the edit,
        # or the member's reconnect, which sends only what the room lacks, would never store it
        # nor pass it on to the others.
        self._stored(self.store.append(self.name, update))
        self.doc.apply_update(update)
        self.broadcast(create_update_message(update), member)
        person = self.person(member)
        changed = is_edit or self.doc.get_state() != before
        if person is not None and changed and person.name not in self.editors:
            self.editors[person.name] = person
            self.store.credit(self.name, person.name, person.email)

    def person(self, member: Member) -> Person | None:
        """The member's person, else the name its own awareness state gives (if it is a git identity)."""
        return member.person if member.person is not None else self.presence.person(member)

    def people(self) -> list[str]:
        """Who is here, by name, for the page's presence list and the API."""
        names = [p.name for p in (self.person(m) for m in self.members) if p is not None]
        return sorted(set(names))

    # saving --------------------------------------------------------------------------------------

    async def save(self, saver: Person | None) -> SaveOutcome:
        """Validate and write the room's text through the hub; every member hears the outcome.

        ``saver`` None lets the hub choose the author (on an open hub, the
        repo's git identity) or refuse.
        """
        async with self._file_lock, self.save_lock:
            outcome = await self._save_alone(saver)
        by = outcome.by or (saver.name if saver else None)
        payload = {"type": "save-result", "by": by, **outcome.to_json()}
        self.broadcast(ysync.hub_message(payload), None)
        self.bus.publish("h", self.name, {"m": payload})
        return outcome

    async def _save_alone(self, saver: Person | None) -> SaveOutcome:
        """The save under the bus's save lock, after catching up with the other replicas' edits,
        saves and merges; refused (nothing written) when the lock or the store cannot be had."""
        async with contextlib.AsyncExitStack() as held:
            try:
                await held.enter_async_context(self.bus.save_lock(self.name))
                await self._reconcile()
            except RoomError as error:  # another replica's save held the document too long
                return SaveOutcome(False, f"not saved: {error.message}", status=error.status)
            except StoreUnreachable as error:
                return SaveOutcome(False, f"not saved: {error}", status=503)
            await self._check_file(locked=True)
            if self.file_problem is not None:
                return SaveOutcome(
                    False, f"not saved: {self.file_problem.message}", status=self.file_problem.status
                )
            return await self._save(saver)

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
            self._stored(
                self.store.file_written(self.name, text, live_state, self.doc.get_update(), through=self.last)
            )
            if self.text == text:
                self.editors.clear()
                self.store.clear_editors(self.name)
        return outcome
