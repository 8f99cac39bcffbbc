"""Serving one member of a room: y-sync in, the room's answers out, until it leaves.

The message handling follows pycrdt-websocket's ``YRoom.serve`` with pycrdt's
helpers, with three differences that are ours (ADR-012, ADR-022):

- the room answers a client's sync step 1 only after checking its lineage: a
  copy with content but without the room's seed is told to ``resync`` and the
  connection closed with :data:`RESYNC_CLOSE_CODE` (``YRoom`` sends its own step
  1 first and would merge it, duplicating the text);
- an update is checked against the text limit, stored, then broadcast
  (:meth:`Room.apply <sync.rooms.Room.apply>`);
- a message over :data:`MESSAGE_LIMIT` bytes, or an edit that would make the
  text too long, is refused with a message and the connection closed with
  :data:`TOO_LARGE_CLOSE_CODE` and the reason.

What the room sends a member waits in the member's outbox; one sender task per
member drains it, so a slow client never holds up the others. That task lives
in a task group around the session (``asyncio.TaskGroup``): when the member
leaves, what is queued for it is sent for at most :data:`DRAIN_SECONDS`, then
the task is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from pycrdt import Channel, Decoder, YMessageType, YSyncMessageType, create_sync_message, handle_sync_message

from sync import ysync
from sync.rooms._member import Leave, Member
from sync.saving import Person, RoomInputError

if TYPE_CHECKING:
    from sync.rooms._room import Room

__all__ = ["DRAIN_SECONDS", "MESSAGE_LIMIT", "RESYNC_CLOSE_CODE", "TOO_LARGE_CLOSE_CODE", "serve"]

log = logging.getLogger(__name__)

RESYNC_CLOSE_CODE = 4000
"""WebSocket close code after a ``resync`` message: the client's copy is from an earlier lineage."""
TOO_LARGE_CLOSE_CODE = 4413
"""WebSocket close code after a message or an edit over a limit (4000 + HTTP 413)."""
MESSAGE_LIMIT = 1024 * 1024
"""Bytes of one message from a client."""
DRAIN_SECONDS = 2.0
"""How long what is queued for a member that left may take to be sent before it is dropped."""

_UNREADABLE = (RuntimeError, IndexError, ValueError, OverflowError)
"""What pycrdt raises on a message it cannot read ("Y protocol error" and kin)."""


async def serve(room: Room, channel: Channel, person: Person | None = None) -> Leave:
    """Speak y-sync with one member of ``room`` until it leaves, is told to resync or sends too much."""
    member = Member(channel, person)
    room.members.append(member)
    async with asyncio.TaskGroup() as tasks:
        sender = tasks.create_task(_send_queued(member), name=f"statehub-room-send {room.name}")
        try:
            leave = await _converse(room, member)
        finally:
            room.members.remove(member)
            room.presence.forget(member)
            member.outbox.put_nowait(None)
            drained = asyncio.get_running_loop().call_later(DRAIN_SECONDS, sender.cancel)
    drained.cancel()
    return leave


async def _send_queued(member: Member) -> None:
    while (message := await member.outbox.get()) is not None:
        try:
            await member.channel.send(message)
        except Exception:  # noqa: BLE001 - a socket that failed however: its session ends on its own
            return


async def _converse(room: Room, member: Member) -> Leave:
    await room.check_file()
    async for message in member.channel:
        if len(message) > MESSAGE_LIMIT:
            return _too_large(
                room,
                member,
                f"a message of {len(message):,} bytes is over the limit of {MESSAGE_LIMIT:,} bytes",
            )
        try:
            leave = await _receive(room, member, bytes(message))
        except RoomInputError as error:
            if error.status == 413:
                return _too_large(room, member, error.message)
            member.send(ysync.error_message(error.message))
            continue
        except _UNREADABLE as error:
            log.warning("room %s: unreadable message from a member: %s", room.name, error)
            member.send(ysync.error_message(f"unreadable y-sync message: {error}"))
            continue
        if leave is not None:
            return leave
    return Leave()


def _too_large(room: Room, member: Member, reason: str) -> Leave:
    log.warning("room %s: refused from a member: %s", room.name, reason)
    member.send(ysync.error_message(f"refused: {reason}; nothing of it was applied"))
    return Leave(TOO_LARGE_CLOSE_CODE, reason)


def _body(message: bytes, start: int) -> bytes:
    """The length-prefixed payload of ``message`` from byte ``start`` on; ValueError when it has none."""
    payload = Decoder(message[start:]).read_message()
    if payload is None:
        raise ValueError("the message ends before its payload")
    return payload


async def _receive(room: Room, member: Member, message: bytes) -> Leave | None:
    kind = message[0]
    if kind == YMessageType.SYNC:
        step = message[1]
        if step == YSyncMessageType.SYNC_STEP1:
            return _sync_step1(room, member, message)
        if step in (YSyncMessageType.SYNC_STEP2, YSyncMessageType.SYNC_UPDATE) and member.synced:
            update = _body(message, 2)
            if update != b"\x00\x00":  # an empty update, as pycrdt's handle_sync_message skips it
                room.apply(member, update, is_edit=step == YSyncMessageType.SYNC_UPDATE)
    elif kind == YMessageType.AWARENESS:
        room.presence.receive(member, _body(message, 1))
    elif kind == ysync.QUERY_AWARENESS:
        _send_presence(room, member)
    elif kind == ysync.STATEHUB:
        request = ysync.read_hub_message(message[1:])
        if request.get("type") == "save":
            await room.save(room.person(member))
    return None


def _sync_step1(room: Room, member: Member, message: bytes) -> Leave | None:
    """Check the client's lineage, then answer: sync step 2, the room's own step 1, everyone's presence."""
    client_state = ysync.read_state_vector(_body(message, 2))
    if client_state and room.seed_id not in client_state:
        reason = "the file changed since you last synced; reload to get it"
        member.send(ysync.hub_message({"type": "resync", "reason": reason}))
        return Leave(RESYNC_CLOSE_CODE, "resync: the file changed since you last synced")
    member.synced = True
    reply = handle_sync_message(message[1:], room.doc)  # sync step 2: what the client lacks
    if reply is not None:
        member.send(reply)
    member.send(create_sync_message(room.doc))
    _send_presence(room, member)
    return None


def _send_presence(room: Room, member: Member) -> None:
    message = room.presence.everyone()
    if message is not None:
        member.send(message)
