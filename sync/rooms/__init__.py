"""Rooms: one live Yjs document per manifest, shared by everyone who has it open.

A room speaks y-sync to each member over a pycrdt :class:`~pycrdt.Channel`
(the transport is somebody else's: the hub adapts Litestar's WebSocket) with
pycrdt's own helpers; what is ours is in :mod:`sync.ysync`. The package holds,
one job a module:

- ``_lifecycle``: :class:`Rooms`, the open rooms and their task group (loading,
  polling files, telling who is in a room and whether it holds a draft);
- ``_room``: :class:`Room`, the document, its file, its edits (stored before
  they are broadcast) and its saves;
- ``_connection``: serving one member (the lineage check, the size limits,
  the message dispatch);
- ``_presence``: awareness, each client id bound to the connection that
  introduced it (ADR-022);
- ``_member``: :class:`Member`, one connection, and :class:`Leave`.

Trust (ADR-022): every client sends bigger and stranger input than expected.
A message over :data:`MESSAGE_LIMIT` bytes, or an update that would make the
text longer than :data:`TEXT_LIMIT` bytes, is refused with a message and the
connection closed with :data:`TOO_LARGE_CLOSE_CODE` and the reason. An
awareness state belongs to the connection that introduced its client id.

We do not use pycrdt-websocket's ``YRoom`` as is: it broadcasts first and
writes its store afterwards in a background task, and it sends its own sync
step 1 before it has seen the client's state, so a client from an earlier
lineage would be merged (duplicating the text) before we could tell it to
resync (ADR-012). The message handling follows ``YRoom.serve`` otherwise.
"""

from sync.rooms._connection import DRAIN_SECONDS, MESSAGE_LIMIT, RESYNC_CLOSE_CODE, TOO_LARGE_CLOSE_CODE
from sync.rooms._lifecycle import Rooms, RoomsChanged, RoomState
from sync.rooms._member import Leave, Member
from sync.rooms._presence import AWARENESS_IDS, AWARENESS_STATE_LIMIT, REMOTE_PRESENCE_SECONDS, Presence
from sync.rooms._room import MERGE_SECONDS, TEXT_LIMIT, Room

__all__ = [
    "AWARENESS_IDS",
    "AWARENESS_STATE_LIMIT",
    "DRAIN_SECONDS",
    "MERGE_SECONDS",
    "MESSAGE_LIMIT",
    "REMOTE_PRESENCE_SECONDS",
    "RESYNC_CLOSE_CODE",
    "TEXT_LIMIT",
    "TOO_LARGE_CLOSE_CODE",
    "Leave",
    "Member",
    "Presence",
    "Room",
    "RoomState",
    "Rooms",
    "RoomsChanged",
]
