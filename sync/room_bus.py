"""What the rooms of one document on several replicas tell each other (canon/ADR-051).

A room lives in one process; on a fleet hub whose state is on PostgreSQL the
same document may be open on several replicas at once, each with members of
its own. The bus joins them:

- **Edits**: a replica's :meth:`RoomStore.append <sync.room_store.RoomStore.append>`
  notifies :data:`~sync.room_store.ROOM_CHANNEL` (``{"k": "u"}``) in the
  statement that stores the update; every other replica holding the room reads
  the updates it has not applied (``WHERE doc = ? AND id > last ORDER BY id``),
  applies them and passes them to its members. Nothing is re-appended: what a
  replica reads from the store is already there.
- **Presence**: what a local member's awareness changed is published
  (``{"k": "a", "u": <base64 awareness update>}``); a replica that opens a room asks the others
  for theirs (``{"k": "q"}``). Who is in each room on each replica, for the listings
  (``GET /sync``, ``room.changed``), is in the store's ``room_presence`` rows; ``{"k": "p"}``
  says "look at them now".
- **Large messages**: one whose JSON does not fit a ``NOTIFY`` (:data:`NOTIFY_LIMIT`) is stored
  as a ``room_note`` row and its id notified (``{"k": "n", "n": id}``) in one statement; the
  others read the row. Up to :data:`NOTE_LIMIT` bytes; notes are swept after
  :data:`~sync.room_store.PRESENCE_SECONDS`. Remote states expire like any Yjs peer's
  (30 s without a renewal, :data:`sync.rooms.REMOTE_PRESENCE_SECONDS`), so a
  replica that dies leaves no ghost for long.
- **Saves** (:meth:`RoomBus.save_lock`): one save or file merge of a document
  at a time across replicas: a session advisory lock on a connection of its
  own, freed by the server if the replica dies.
- **Who holds a room** (:meth:`RoomBus.hold`): each replica with the room open
  holds a shared advisory lock; the last one to close it may forget its lineage
  (:meth:`RoomStore.forget <sync.room_store.RoomStore.forget>` tries the lock
  exclusively).

On SQLite one process owns the rooms: :class:`LocalRoomBus` is the same
surface doing nothing. :func:`room_bus` picks by where the store lives.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import functools
import json
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sync._pg_listen import NOTIFY_LIMIT, PgListener
from sync.errors import RoomError, StoreUnreachable
from sync.room_store import ROOM_CHANNEL, lock_name

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import psycopg

    from sync._durable_pg import PgState
    from sync.room_store import RoomStore

__all__ = [
    "NOTE_LIMIT",
    "PRESENCE_BACKLOG",
    "SAVE_WAIT_SECONDS",
    "BusMessage",
    "LocalRoomBus",
    "PgRoomBus",
    "RoomBus",
    "room_bus",
]

log = logging.getLogger(__name__)

SAVE_WAIT_SECONDS = 30
"""How long a save waits for another replica's save of the same document before it is refused
(``lock_timeout``): a replica on a host that vanished holds its lock until the server notices."""
LISTEN_WAIT_S = 5.0
"""How long opening the bus waits for its first ``LISTEN`` (seconds); past it, the listener's
connect says "look now" when it comes, and the rooms catch up from the store."""

Kind = Literal["u", "a", "q", "h", "p"]
"""What a room publishes."""
Heard = Literal["u", "a", "q", "h", "p", "n"]
"""What the bus hears: a kind, or ``n`` (a note's id: the bus reads the row and hands on its message)."""

PRESENCE_BACKLOG = 256
"""Commands waiting for the sender past which an awareness update (``a``) is not passed on: a member
sending presence faster than the store takes notes (8 KiB states, each a ``room_note`` row) would
otherwise grow the queue without bound, hundreds of MB, and hold every other command of the bus
(a room's ``hold``, a save's answer) behind it. Presence is renewed by every Yjs client within
15 s, so a dropped state is soon sent again (review16e)."""

NOTE_LIMIT = 2 * 1024 * 1024
"""Bytes of a bus message at most (sent as a ``room_note`` row when over :data:`NOTIFY_LIMIT`): above
what a member may send at once (its awareness states are bounded by
:data:`sync.rooms.AWARENESS_STATE_LIMIT` each, a save's answer by the manifest's problems)."""


def _fewer_errors(message: Any) -> Any:
    """A save's answer (``{"errors": [...]}``) with as many of its first problems as fit in half of
    :data:`NOTE_LIMIT`, and ``errors_omitted`` the count left out: a 256 KiB text can name 60,000
    problems (4.6 MB), and the other replicas' members must still hear that the save failed."""
    if not isinstance(message, dict) or not isinstance(message.get("errors"), list):
        return message
    errors: list[Any] = message["errors"]
    kept, room = 0, NOTE_LIMIT // 2
    for error in errors:
        room -= len(json.dumps(error, separators=(",", ":")).encode()) + 1
        if room < 0:
            break
        kept += 1
    return {**message, "errors": errors[:kept], "errors_omitted": len(errors) - kept}


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One thing another replica said about document ``doc``.

    ``kind``: ``u`` an update was stored (read the store), ``a`` an awareness
    update (``awareness``), ``q`` a replica asks for everyone's presence, ``h`` a
    State Hub message for the members (``data["m"]``, a save's result), ``p`` a replica's
    ``room_presence`` rows changed (``doc`` empty). (``n``, a note's id, is read by the bus
    and never handed on.)
    """

    kind: Heard
    doc: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def awareness(self) -> bytes:
        """The awareness update of an ``a`` message; ValueError when ``u`` is not base64 text."""
        text = self.data.get("u", "")
        if not isinstance(text, str):
            raise ValueError(f"the awareness update is a {type(text).__name__}, not base64 text")
        return base64.b64decode(text)


class RoomBus(Protocol):
    """The rooms' line to the other replicas of their documents (see the module docstring)."""

    shared: bool
    """Whether other replicas may hold the same rooms (False: this process alone)."""

    def start(self, on_message: Callable[[BusMessage], None], on_reconnect: Callable[[], None]) -> None:
        """Start hearing the others: both callbacks run on the running event loop."""
        ...

    def publish(self, kind: Kind, doc: str, data: dict[str, Any] | None = None) -> None:
        """Tell the others, without waiting (too large for ``NOTIFY``: by reference, :data:`NOTE_LIMIT`)."""
        ...

    async def hold(self, doc: str) -> None: ...

    async def release(self, doc: str) -> None: ...

    def save_lock(self, doc: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Held around a save or a file merge of ``doc``: one at a time across replicas."""
        ...

    def close(self) -> None: ...


class LocalRoomBus:
    """One process holds every room (the store is a SQLite file): nothing to tell anyone."""

    shared = False

    def start(self, on_message: Callable[[BusMessage], None], on_reconnect: Callable[[], None]) -> None:
        pass

    def publish(self, kind: Kind, doc: str, data: dict[str, Any] | None = None) -> None:
        pass

    async def hold(self, doc: str) -> None:
        pass

    async def release(self, doc: str) -> None:
        pass

    @contextlib.asynccontextmanager
    async def save_lock(self, doc: str) -> AsyncIterator[None]:  # noqa: ARG002 - the surface's
        yield

    def close(self) -> None:
        pass


def room_bus(store: RoomStore) -> RoomBus:
    """The bus for the rooms on ``store``: PostgreSQL's when the store is there, else the local one."""
    from pathlib import Path

    if isinstance(store.location, Path):
        return LocalRoomBus()
    return PgRoomBus(store.location, store.replica)


def _close_got(future: asyncio.Future[psycopg.Connection[Any]]) -> None:
    if not future.cancelled() and future.exception() is None:
        future.result().close()


_Command = tuple[str, str, "concurrent.futures.Future[Any] | None"]


class PgRoomBus:
    """The bus over PostgreSQL: ``LISTEN``/``NOTIFY`` on :data:`~sync.room_store.ROOM_CHANNEL`.

    Three connections of its own: the listener's (:class:`~sync._pg_listen.PgListener`), the
    sender's (a thread that sends notifications in order and holds the rooms' shared ``open``
    locks, taken again on a new connection when the server dropped it: looked at as soon as the
    listener reconnects), and one per save while it holds its lock.
    ``replica`` is the store's: notifications this process sent are not news to it.
    """

    shared = True

    def __init__(self, state: PgState, replica: str) -> None:
        self.state = state
        self.replica = replica
        self._listener: PgListener | None = None
        self._commands: queue.Queue[_Command | None] = queue.Queue()
        self._held: set[str] = set()
        self._sender: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._dropped = 0
        """Awareness updates not passed on (the backlog at :data:`PRESENCE_BACKLOG`) since the log said so."""
        self._dropped_told = -math.inf

    def start(self, on_message: Callable[[BusMessage], None], on_reconnect: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()

        def heard(payload: str | None) -> None:
            if payload is None:  # (re)connected: what was sent meanwhile is in the store
                reconnected()
                return
            message = self._parse(payload)
            if message is None:
                return
            note = message.data.get("n")
            if isinstance(note, int) and message.kind == "n":  # too large for NOTIFY: read its row
                fetched: concurrent.futures.Future[Any] = concurrent.futures.Future()
                fetched.add_done_callback(functools.partial(read_note, note))
                self._commands.put(("fetch", str(note), fetched))
            else:
                loop.call_soon_threadsafe(on_message, message)

        def read_note(note: int, fetched: concurrent.futures.Future[Any]) -> None:
            body = None if fetched.cancelled() or fetched.exception() is not None else fetched.result()
            message = self._parse(body) if isinstance(body, str) else None
            if message is None or message.kind == "n":
                log.warning("the rooms' bus could not read note %d (gone, or unreadable)", note)
                return
            loop.call_soon_threadsafe(on_message, message)

        def reconnected() -> None:
            self._commands.put(("ping", "", None))  # the sender's connection may have dropped too
            loop.call_soon_threadsafe(on_reconnect)

        self._conn = self.state.connect(wait_for_flush=False)
        self._listener = PgListener(self.state, ROOM_CHANNEL, heard)
        try:
            self._listener.start(wait_s=LISTEN_WAIT_S)
        except BaseException:
            self._conn.close()
            raise
        self._sender = threading.Thread(target=self._send, name="statehub-room-bus", daemon=True)
        self._sender.start()

    def _parse(self, payload: str) -> BusMessage | None:
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("r") == self.replica:
            return None
        kind, doc = data.get("k"), data.get("d")
        if kind not in ("u", "a", "q", "h", "p", "n") or not isinstance(doc, str):
            return None
        return BusMessage(kind, doc, data)

    def publish(self, kind: Kind, doc: str, data: dict[str, Any] | None = None) -> None:
        if kind == "a" and self._commands.qsize() >= PRESENCE_BACKLOG:
            self._dropped += 1
            now = time.monotonic()
            if now - self._dropped_told >= 60:  # said at most once a minute: a flood must not flood the log
                log.warning(
                    "room %s: %d bus commands wait; %d awareness updates not passed on (clients renew them)",
                    doc,
                    PRESENCE_BACKLOG,
                    self._dropped,
                )
                self._dropped, self._dropped_told = 0, now
            return
        payload = json.dumps({"k": kind, "r": self.replica, "d": doc, **(data or {})}, separators=(",", ":"))
        size = len(payload.encode())
        if size > NOTE_LIMIT and kind == "h" and data is not None:
            payload = json.dumps(
                {"k": kind, "r": self.replica, "d": doc, **data, "m": _fewer_errors(data.get("m"))},
                separators=(",", ":"),
            )
            size = len(payload.encode())
        if size < NOTIFY_LIMIT:
            self._commands.put(("notify", payload, None))
        elif size <= NOTE_LIMIT:  # by reference: the row's id goes over NOTIFY
            self._commands.put(("note", payload, None))
        else:
            log.warning(
                "room %s: a %s message of %d bytes is over the bus's limit of %d bytes; not passed on",
                doc,
                kind,
                size,
                NOTE_LIMIT,
            )

    async def hold(self, doc: str) -> None:
        await self._ask("hold", doc)

    async def release(self, doc: str) -> None:
        await self._ask("release", doc)

    async def _ask(self, command: str, doc: str) -> None:
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._commands.put((command, doc, done))
        await asyncio.wrap_future(done)

    def _send(self) -> None:
        """The sender's thread: notifications in order, the shared ``open`` locks; reconnects as needed."""
        import psycopg

        while (command := self._commands.get()) is not None:
            what, arg, done = command
            try:
                try:
                    result = self._run(what, arg)
                except psycopg.OperationalError:
                    if self._conn is None or not self._conn.closed:
                        raise
                    result = self._run(what, arg)  # once more on a new connection, the rooms held again
            except (psycopg.Error, StoreUnreachable) as error:
                log.warning("the rooms' bus could not %s (%s); reconnecting", what, error)
                if done is not None:
                    done.set_exception(StoreUnreachable(self.state.where, str(error).splitlines()[0]))
                continue
            except Exception as error:  # noqa: BLE001 - a bug: tell the waiter, keep the thread
                if done is not None:
                    done.set_exception(error)
                continue
            if done is not None:
                done.set_result(result)

    def _run(self, what: str, arg: str) -> str | None:
        """One command on the sender's connection; a ``fetch`` answers the note's body (None: gone)."""
        conn = self._live()
        if what == "ping":
            conn.execute("SELECT 1")
        elif what == "notify":
            conn.execute("SELECT pg_notify(%s, %s)", (ROOM_CHANNEL, arg))
        elif what == "note":  # stored, and its id notified, in one statement
            conn.execute(
                "WITH stored AS (INSERT INTO room_note (body) VALUES (%s) RETURNING id) "
                "SELECT pg_notify(%s, json_build_object('k', 'n', 'r', %s::text, 'd', %s::text, 'n', id)"
                "::text) FROM stored",
                (arg, ROOM_CHANNEL, self.replica, ""),
            )
        elif what == "fetch":
            row = conn.execute("SELECT body FROM room_note WHERE id = %s", (int(arg),)).fetchone()
            return None if row is None else str(row[0])
        elif what == "hold":
            if arg not in self._held:
                conn.execute(
                    "SELECT pg_advisory_lock_shared(hashtextextended(%s, 0))", (lock_name("open", arg),)
                )
                self._held.add(arg)
        elif what == "release" and arg in self._held:
            self._held.discard(arg)
            conn.execute(
                "SELECT pg_advisory_unlock_shared(hashtextextended(%s, 0))", (lock_name("open", arg),)
            )
        return None

    def _live(self) -> psycopg.Connection[Any]:
        """The sender's connection; a new one (its rooms held again) when the server dropped it."""
        assert self._conn is not None
        if self._conn.closed:
            self._conn = self.state.connect(wait_for_flush=False)
            for doc in sorted(self._held):
                self._conn.execute(
                    "SELECT pg_advisory_lock_shared(hashtextextended(%s, 0))", (lock_name("open", doc),)
                )
        return self._conn

    @contextlib.asynccontextmanager
    async def save_lock(self, doc: str) -> AsyncIterator[None]:
        """A session advisory lock ``rooms:save:<doc>`` on a connection of its own for the block."""
        future = asyncio.get_running_loop().run_in_executor(None, self._lock_save, doc)
        try:
            conn = await asyncio.shield(future)
        except asyncio.CancelledError:  # the thread may still get the lock: let it go when it does
            future.add_done_callback(_close_got)
            raise
        try:
            yield
        finally:
            await asyncio.to_thread(conn.close)  # ends the session: the server frees its lock

    def _lock_save(self, doc: str) -> psycopg.Connection[Any]:
        """A connection holding ``rooms:save:<doc>``; RoomError (409) after :data:`SAVE_WAIT_SECONDS`
        of waiting, StoreUnreachable when the server does not answer."""
        import psycopg

        conn = self.state.connect(wait_for_flush=False)
        try:
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{SAVE_WAIT_SECONDS}s",))
            conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (lock_name("save", doc),))
        except psycopg.errors.LockNotAvailable:
            conn.close()
            raise RoomError(
                f"{doc} has been saving on another replica for over {SAVE_WAIT_SECONDS} s; nothing was "
                "saved here: save again in a moment",
                409,
            ) from None
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        """Stop listening and sending (what is queued is sent first); every lock goes with its session."""
        if self._sender is not None:
            self._commands.put(None)
            self._sender.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
        if self._conn is not None:
            self._conn.close()
