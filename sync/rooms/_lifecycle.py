"""The open rooms: each opens with its first member, closes with its last; their work in a task group."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from sync import ysync
from sync.room_bus import BusMessage, LocalRoomBus
from sync.room_store import RoomPresence
from sync.rooms._room import Room

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Coroutine
    from types import TracebackType

    from pycrdt import Channel

    from sync.room_bus import RoomBus
    from sync.room_store import RoomStore
    from sync.rooms._member import Leave
    from sync.saving import FileLoader, Person, SaveOutcome, Saver

__all__ = ["RoomState", "Rooms", "RoomsChanged"]

log = logging.getLogger(__name__)

_UNREAD_OWN = 256
"""Own updates a room on a shared bus keeps track of before it reads them back (and forgets them)."""
PRESENCE_LOOK_S = 1.0
"""On a shared bus: seconds between two looks at every replica's ``room_presence`` rows (sooner when
another replica says its rows changed, or a local room's state changed)."""
PRESENCE_RENEW_S = 10.0
"""On a shared bus: seconds after which this replica renews its rows though nothing changed
(a row not renewed for :data:`~sync.room_store.PRESENCE_SECONDS` is a dead replica's)."""


@dataclass(frozen=True, slots=True)
class RoomState:
    """What is told about a room when it changes: whether anyone is in it, who, and whether it
    holds a draft (its text differs from its file)."""

    doc: str
    open: bool
    people: tuple[str, ...]
    unsaved: bool


RoomsChanged = Callable[[list[RoomState]], Awaitable[None]]
"""Told the rooms whose state changed (``Rooms(on_change=...)``); the hub puts them on its stream."""


class Rooms:
    """The open rooms, by document name; open with ``async with Rooms(...) as rooms:``.

    The rooms' own work runs in one ``asyncio.TaskGroup`` entered with the
    block (as pycrdt-websocket's ``YRoom`` enters its task group): loading a
    room (its file and pending edits, shared by everyone who opens it
    meanwhile) and polling the open rooms' files every ``poll_interval``
    seconds. Leaving the block cancels that work and waits for it; leave it in
    the task that entered it. A task that fails (none should: a load's error
    goes to those opening the room, a file check's to the log) cancels the
    task that entered the block and is raised when it leaves. Members'
    sessions run in their connections' tasks (:meth:`Room.serve
    <sync.rooms.Room.serve>`).

    ``on_change``, if given, is told each room whose :class:`RoomState` changed: someone
    joined or left, a draft appeared or was saved, the room closed. The same task that
    polls the files looks, so it hears within ``poll_interval`` seconds, once per change
    however many edits made it; a room never told about that nobody is in and that holds
    no draft (a save's brief hold) is not told.

    ``bus`` joins the rooms of the same documents on other replicas (canon/ADR-051,
    :mod:`sync.room_bus`); the rooms start it on entering and close it on leaving. On a
    shared bus who is in each room is kept in the store's ``room_presence`` rows (this
    replica's renewed every :data:`PRESENCE_RENEW_S` seconds, every replica's looked at
    every :data:`PRESENCE_LOOK_S`): :meth:`people` and ``on_change`` name the whole room,
    members on every live replica, and a change is told by the replica that made it and by
    the room's lowest replica (once or twice, the last word the whole room). The
    default, :class:`~sync.room_bus.LocalRoomBus`, is one process alone (a SQLite store).
    """

    def __init__(
        self,
        store: RoomStore,
        loader: FileLoader,
        saver: Saver,
        *,
        poll_interval: float = 0.25,
        on_change: RoomsChanged | None = None,
        bus: RoomBus | None = None,
    ) -> None:
        self.store = store
        self.bus: RoomBus = bus or LocalRoomBus()
        self.loader = loader
        self.saver = saver
        self.poll_interval = poll_interval
        self.on_change = on_change
        self.rooms: dict[str, Room] = {}
        self._told: dict[str, RoomState] = {}
        """The last state told of each room (closed rooms without a draft are forgotten)."""
        self._left: dict[str, RoomState] = {}
        """Rooms closed since the last look, with their state as they closed."""
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        """What runs in the group, to cancel on close (``TaskGroup`` has no cancel of its own)."""
        self._opened = asyncio.Event()
        """Set when a room opens: the file poll sleeps while no room is open."""
        self._forgetting: dict[str, asyncio.Task[None]] = {}
        """Rooms closed on a shared bus whose lineage is being let go (a reopening waits for it)."""
        self._posted: dict[str, RoomPresence] = {}
        """A shared bus: what this replica last recorded of its rooms in ``room_presence``."""
        self._posted_at = 0.0
        self._view: dict[str, RoomState] = {}
        """A shared bus: every replica's rooms as last looked at (what ``on_change`` was last told)."""
        self._look = asyncio.Event()
        """A shared bus: look at the rows now (a local room changed, another replica said so)."""

    async def __aenter__(self) -> Self:
        group = asyncio.TaskGroup()
        await group.__aenter__()
        self._group = group
        try:
            self.bus.start(self._heard, self._reconnected)
        except BaseException:
            self._group = None
            await group.__aexit__(None, None, None)
            raise
        self._start(self._watch_files(), "statehub-rooms-watch")
        if self.bus.shared:
            self._start(self._share_presence(), "statehub-rooms-presence")
        return self

    def _start(self, work: Coroutine[Any, Any, None], name: str) -> None:
        if self._group is None:
            work.close()
            raise RuntimeError("the rooms are not open: use 'async with Rooms(...) as rooms:'")
        task = self._group.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Cancel the rooms' work and wait for it; every room is dropped (unsaved edits stay in the store)."""
        group, self._group = self._group, None
        if group is not None:
            for task in self._tasks:
                task.cancel()
            await group.__aexit__(None, None, None)
            if self.bus.shared:
                await self._withdraw()
            await asyncio.to_thread(self.bus.close)
        self.rooms.clear()

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
        RuntimeError outside ``async with``.
        """
        room = self.rooms.get(name)
        if room is None:
            room = Room(name, self.store, self.loader, self.saver, self.bus)
            room.loading = asyncio.get_running_loop().create_future()
            self._start(self._load(room), f"statehub-room-load {name}")
            self.rooms[name] = room
            self._opened.set()
        assert room.loading is not None
        room.holds += 1  # while waiting: a load that ends meanwhile must not close the room
        try:
            await asyncio.shield(room.loading)
            await room.check_file()
            if room.file_problem is not None:
                raise room.file_problem
        except BaseException:
            room.holds -= 1
            self._close(room)
            raise
        room.holds -= 1
        return room

    async def _load(self, room: Room) -> None:
        """Load ``room``; its outcome goes to everyone opening it (``room.loading``)."""
        assert room.loading is not None
        try:
            forgetting = self._forgetting.get(room.name)
            if forgetting is not None:
                await asyncio.shield(forgetting)
            await self.bus.hold(room.name)  # before reading its lineage: nobody forgets it now
            await room.load()
            self.bus.publish("q", room.name)  # the others' presence
        except Exception as error:  # noqa: BLE001 - the openers get a RoomFileError, or a bug to report
            room.loading.set_exception(error)
        else:
            room.loading.set_result(None)
            if self.bus.shared:  # what was stored between its read and now woke nobody
                self._catch_up(room)
        finally:
            if not room.loading.done():  # cancelled: the rooms are closing
                room.loading.cancel()
        self._close(room)

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
        unsaved = room.loaded and room.unsaved
        if room.loaded and self.on_change is not None:
            self._left[room.name] = RoomState(room.name, False, (), unsaved)
        if not self.bus.shared:
            if room.loaded and not unsaved:
                self.store.forget(room.name)
        elif self._group is not None:  # let go of it; the last replica holding it forgets it
            forget = room.loaded and not unsaved
            task = self._group.create_task(
                self._let_go(room.name, forget=forget), name=f"statehub-room-close {room.name}"
            )
            self._forgetting[room.name] = task
            task.add_done_callback(functools.partial(self._forgot, room.name))

    async def _let_go(self, name: str, *, forget: bool) -> None:
        """A shared bus: release this replica's hold on ``name``, then forget its lineage if asked
        and no other replica holds it (:meth:`RoomStore.forget <sync.room_store.RoomStore.forget>`)."""
        try:
            await self.bus.release(name)
            if forget:
                await asyncio.to_thread(self.store.forget, name)
        except Exception:  # the lineage stays; the next room to close it forgets it
            log.exception("closing room %s on the bus failed", name)

    def _forgot(self, name: str, task: asyncio.Task[None]) -> None:
        if self._forgetting.get(name) is task:
            del self._forgetting[name]

    def _heard(self, message: BusMessage) -> None:
        """What another replica said about an open room (on the loop; :mod:`sync.room_bus`)."""
        if message.kind == "p":  # its rows of who is where changed
            self._look.set()
            return
        room = self.rooms.get(message.doc)
        if room is None or not room.loaded:
            return  # a room loading reads the store and asks for presence when it is done
        try:
            if message.kind == "u":
                self._catch_up(room)
            elif message.kind == "a":
                room.presence.receive_remote(message.awareness)
            elif message.kind == "q":
                local = room.presence.local()
                if local is not None:
                    room.publish_presence(local)
            elif message.kind == "h" and isinstance(message.data.get("m"), dict):
                room.broadcast(ysync.hub_message(message.data["m"]), None)
        except (ValueError, RuntimeError, IndexError) as error:
            log.warning(
                "room %s: an unreadable %s message from another replica: %s", room.name, message.kind, error
            )

    def _catch_up(self, room: Room) -> None:
        if room.catch_up_queued or self._group is None:
            return
        room.catch_up_queued = True
        self._start(self._catch_up_quietly(room), f"statehub-room-catch-up {room.name}")

    async def _catch_up_quietly(self, room: Room) -> None:
        try:
            await room.catch_up()
        except Exception:  # the store unreachable: the next notification, or a reconnect, tries again
            room.catch_up_queued = False
            log.exception("room %s: reading other replicas' updates failed", room.name)

    def _reconnected(self) -> None:
        """The bus heard nothing for a while: read what may have been missed, ask for presence."""
        for room in list(self.rooms.values()):
            if room.loaded:
                self._catch_up(room)
                self.bus.publish("q", room.name)

    def states(self) -> dict[str, RoomState]:
        """The state of every loaded room, by document name."""
        return {
            name: RoomState(name, bool(room.members), tuple(room.people()), room.unsaved)
            for name, room in self.rooms.items()
            if room.loaded
        }

    async def people(self) -> dict[str, list[str]]:
        """Who is in each room, by document name: on a shared bus the members on every live replica
        (``room_presence`` rows renewed within :data:`~sync.room_store.PRESENCE_SECONDS`), else here."""
        found = {name: set(room.people()) for name, room in self.rooms.items() if room.loaded}
        if self.bus.shared:
            rows = await asyncio.to_thread(self.store.presence)
            for doc, by in rows.items():
                for replica, said in by.items():
                    if replica != self.store.replica:  # this replica's own: as it is now
                        found.setdefault(doc, set()).update(said.people)
        return {doc: sorted(names) for doc, names in found.items()}

    def _local(self) -> dict[str, RoomPresence]:
        return {
            name: RoomPresence(tuple(room.people()), bool(room.members), room.unsaved)
            for name, room in self.rooms.items()
            if room.loaded
        }

    async def _share_presence(self) -> None:
        """A shared bus: record this replica's rooms in ``room_presence``, look at every replica's,
        and tell ``on_change`` the whole rooms (canon/ADR-051 addendum)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._look.wait(), PRESENCE_LOOK_S)
            self._look.clear()
            try:
                await self._share()
            except Exception:  # the store unreachable: the next look tries again
                log.exception("sharing who is in the rooms with the other replicas failed")

    async def _share(self) -> None:
        local = self._local()
        changed = {doc for doc, said in local.items() if self._posted.get(doc) != said}
        gone = [doc for doc in self._posted if doc not in local]
        now = asyncio.get_running_loop().time()
        if changed or gone or now - self._posted_at >= PRESENCE_RENEW_S:
            await asyncio.to_thread(self.store.post_presence, self.store.replica, local, gone)
            self._posted, self._posted_at = local, now
            if changed or gone:
                self.bus.publish("p", "")
        swept = await asyncio.to_thread(self.store.sweep_presence)
        rows = await asyncio.to_thread(self.store.presence)
        for doc in list(rows):
            rows[doc].pop(self.store.replica, None)
        for doc, said in local.items():
            rows.setdefault(doc, {})[self.store.replica] = said
        rows = {doc: by for doc, by in rows.items() if by}
        caused = changed | set(gone) | set(swept)
        view = {
            doc: RoomState(
                doc,
                any(said.open for said in by.values()),
                tuple(sorted({name for said in by.values() for name in said.people})),
                any(said.unsaved for said in by.values()),
            )
            for doc, by in rows.items()
        }
        left, self._left = self._left, {}
        told = []
        for doc in sorted(set(view) | set(self._view)):
            before = self._view.get(doc)
            state = view.get(doc)
            if state is None:  # nobody holds it now: closed, with the draft as the closing replica saw it
                unsaved = left[doc].unsaved if doc in left else before is not None and before.unsaved
                state = RoomState(doc, False, (), unsaved)
            if state == before or (before is None and not state.open and not state.unsaved):
                continue
            teller = doc in caused or min(rows.get(doc, {"": None})) == self.store.replica
            if teller:
                told.append(state)
        self._view = view
        if told and self.on_change is not None:
            try:
                await self.on_change(told)
            except Exception:  # telling must not stop the rooms' work
                log.exception("telling the hub about %d room changes failed", len(told))

    async def _withdraw(self) -> None:
        """A shared bus closing: this replica's rows go at once, and the others hear it."""
        try:
            await asyncio.to_thread(self.store.drop_presence, self.store.replica)
        except Exception:  # noqa: BLE001 - they expire on their own
            log.warning("could not withdraw this replica's rooms from room_presence; they expire in 30 s")
            return
        if self._posted:
            self.bus.publish("p", "")

    async def _tell(self) -> None:
        """Tell ``on_change`` the rooms whose state changed since it was last told (a shared bus:
        look at every replica's rows now, :meth:`_share_presence` tells)."""
        if self.bus.shared:
            if self._local() != self._posted or self._left:
                self._look.set()
            return
        if self.on_change is None:
            return
        now = {**self._left, **self.states()}
        self._left.clear()
        changed = [
            state
            for name, state in now.items()
            if self._told.get(name) != state and (name in self._told or state.open or state.unsaved)
        ]
        for state in changed:
            self._told[state.doc] = state
        for name in [n for n, s in self._told.items() if n not in self.rooms and not s.unsaved]:
            del self._told[name]
        if not changed:
            return
        try:
            await self.on_change(changed)
        except Exception:  # telling must not stop the rooms' work
            log.exception("telling the hub about %d room changes failed", len(changed))

    async def _watch_files(self) -> None:
        """Poll open rooms' files: out-of-band changes are merged while people edit; tell room changes."""
        while True:
            await self._tell()
            if not self.rooms:
                self._opened.clear()
                await self._opened.wait()
            await asyncio.sleep(self.poll_interval)
            for room in list(self.rooms.values()):
                if not room.loaded:
                    continue
                room.presence.expire()
                if room.unread_own > _UNREAD_OWN:  # nobody else wrote: our own ids pile up unread
                    self._catch_up(room)
                try:
                    await room.check_file()
                except Exception:  # one unreadable file must not stop the others
                    log.exception("checking room %s for outside changes failed", room.name)
