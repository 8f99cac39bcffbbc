"""Who is in a room: pycrdt's ``Awareness``, with each client id bound to the connection that introduced it.

Awareness is how Yjs clients show each other who is here (a name, a colour, a
cursor). pycrdt's :class:`~pycrdt.Awareness` keeps the states and their clocks
and encodes them; what it applies, it relays to the other members. Our rule on
top (ADR-022): an awareness state belongs to the connection that introduced its
client id. Another connection can neither overwrite nor clear it, so nobody can
change somebody else's presence or the name they are credited under (an open
hub credits an unnamed editor by that name). A refused entry is answered with
an ``error`` message; the rest of the update is applied.

y-websocket sends back every awareness update it applies, other clients' too.
Such an echo carries nothing newer than the room holds (pycrdt's and
y-protocols' rule: a higher clock, or a ``null`` at the same clock, changes a
state) and is dropped without a word; only an entry that would change another
connection's state is refused.

The hub keeps no presence of its own (the room's ``Awareness`` has its local
state cleared) and does not expire its members' states: a connection's states
go when the connection does.

Across replicas (canon/ADR-051): what a local member's awareness changed is
also given to ``publish`` (the room's bus); what another replica published
comes in through :meth:`Presence.receive_remote`. A remote client id is bound to
its replica as a local one to its connection (a local member may not change
it), and expires as every Yjs peer expires a state: not renewed for
:data:`REMOTE_PRESENCE_SECONDS` (clients renew every 15 s), it is removed and
the local members hear ``null``. A replica that dies thus leaves no ghost
for longer than that; a replica that closes a connection publishes its
``null`` at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pycrdt import Awareness, Doc, create_awareness_message

from sync.rooms._member import Member
from sync.saving import Person, RoomInputError
from sync.ysync import AwarenessEntry, error_message, join_awareness, read_awareness

__all__ = ["AWARENESS_IDS", "AWARENESS_STATE_LIMIT", "REMOTE_PRESENCE_SECONDS", "Presence"]

AWARENESS_STATE_LIMIT = 8 * 1024
"""Bytes of one client's awareness state (its presence: name, colour, cursor)."""
AWARENESS_IDS = 8
"""Awareness client ids one connection may introduce."""

REMOTE_PRESENCE_SECONDS = 30.0
"""Seconds a state from another replica lives without a renewal (y-protocols' ``outdatedTimeout``)."""

Broadcast = Callable[[bytes, Member | None], None]
"""Sends a message to every member but the one given."""
Publish = Callable[[bytes], None]
"""Passes an awareness update (unframed) on to the other replicas."""
_REMOTE = object()
"""The origin of what another replica said: relayed to every local member, never published back."""


class Presence:
    """The awareness states of one room's members; what a member sets is relayed to the others."""

    def __init__(self, doc: Doc[Any], broadcast: Broadcast, publish: Publish | None = None) -> None:
        self.awareness = Awareness(doc)
        self.awareness.set_local_state(None)  # the hub itself is nobody
        self.owners: dict[int, Member] = {}
        """Awareness client id -> the connection that introduced it."""
        self.remote: dict[int, float] = {}
        """Client ids whose state another replica holds -> when it was last heard (``time.monotonic``)."""
        self._broadcast = broadcast
        self._publish = publish
        self.awareness.observe(self._relay)

    def receive(self, member: Member, update: bytes) -> None:
        """Apply what ``member`` may set of an awareness update: its own client ids, or new ones.

        A refused entry (another connection's client id, one id too many, a
        state over :data:`AWARENESS_STATE_LIMIT` bytes) is named in an ``error``
        message to ``member``; ValueError, RuntimeError or IndexError when the
        update cannot be read (nothing of it is applied then).
        """
        accepted: list[AwarenessEntry] = []
        refused: list[str] = []
        for entry in read_awareness(update):
            owner = self.owners.get(entry.client_id)
            if entry.client_id in self.remote:
                if self._changes(entry):
                    refused.append(f"client id {entry.client_id} belongs to a connection on another replica")
                continue  # else an echo of what the room sent
            if owner is not None and owner is not member:
                if self._changes(entry):
                    refused.append(f"client id {entry.client_id} belongs to another connection")
                continue  # else an echo of what the room sent
            if owner is None:
                if entry.state is None:
                    continue  # clearing what nobody set
                if len(member.awareness_ids) >= AWARENESS_IDS:
                    refused.append(f"a connection may introduce at most {AWARENESS_IDS} awareness client ids")
                    continue
            if entry.size > AWARENESS_STATE_LIMIT:
                refused.append(
                    f"an awareness state of {entry.size:,} bytes is over the limit of "
                    f"{AWARENESS_STATE_LIMIT:,} bytes"
                )
                continue
            member.awareness_ids.add(entry.client_id)
            self.owners[entry.client_id] = member
            accepted.append(entry)
        if refused:
            member.send(error_message("awareness refused: " + "; ".join(dict.fromkeys(refused))))
        if accepted:
            self.awareness.apply_awareness_update(join_awareness(accepted), member)

    def _changes(self, entry: AwarenessEntry) -> bool:
        """Would applying ``entry`` change the room's state for its client id? (pycrdt's rule.)"""
        meta = self.awareness.meta.get(entry.client_id)
        clock = 0 if meta is None else meta["clock"]
        present = entry.client_id in self.awareness.states
        return clock < entry.clock or (clock == entry.clock and entry.state is None and present)

    def _relay(self, topic: str, event: tuple[dict[str, list[int]], Any]) -> None:
        """pycrdt's observer: pass on what an update changed or renewed, to everyone but its sender."""
        changes, origin = event
        if topic != "update":
            return
        ids = changes["added"] + changes["updated"] + changes["removed"]
        update = self.awareness.encode_awareness_update(ids)
        self._broadcast(create_awareness_message(update), origin if isinstance(origin, Member) else None)
        if isinstance(origin, Member) and self._publish is not None:
            self._publish(update)

    def receive_remote(self, update: bytes) -> None:
        """Apply an awareness update another replica published; its local members' ids are left alone.

        ValueError, RuntimeError or IndexError when it cannot be read (nothing applied)."""
        now = time.monotonic()
        accepted = []
        gone = []
        for entry in read_awareness(update):
            if entry.client_id in self.owners:
                continue  # the client is here now: its connection here decides
            accepted.append(entry)
            if entry.state is None:
                gone.append(entry.client_id)
            else:
                self.remote[entry.client_id] = now
        if accepted:
            self.awareness.apply_awareness_update(join_awareness(accepted), _REMOTE)
        for cid in gone:  # as a local leave: the client coming back anywhere is shown at once
            if cid not in self.awareness.states:
                self.remote.pop(cid, None)
                self.awareness.meta.pop(cid, None)

    def expire(self, now: float | None = None) -> list[int]:
        """Remove the remote states not renewed for :data:`REMOTE_PRESENCE_SECONDS`; answer their ids."""
        now = time.monotonic() if now is None else now
        old = [cid for cid, heard in self.remote.items() if now - heard > REMOTE_PRESENCE_SECONDS]
        if old:
            self.awareness.remove_awareness_states(old, _REMOTE)
            for cid in old:
                del self.remote[cid]
                self.awareness.meta.pop(cid, None)
        return old

    def local(self) -> bytes | None:
        """An awareness update (unframed) with the states of this replica's members; None: none set."""
        ids = [cid for cid in self.owners if cid in self.awareness.states]
        return self.awareness.encode_awareness_update(ids) if ids else None

    def everyone(self) -> bytes | None:
        """An awareness message with every state the room holds; None when nobody set one."""
        if not self.awareness.states:
            return None
        return create_awareness_message(self.awareness.encode_awareness_update(list(self.awareness.states)))

    def forget(self, member: Member) -> None:
        """``member`` left: its states are cleared for everyone else and its client ids freed.

        The others hear ``null`` at the state's clock (as y-websocket's server
        sends it); the room forgets the clocks too, so the same client coming
        back over a new connection is taken at once.
        """
        ids = [cid for cid in member.awareness_ids if self.owners.get(cid) is member]
        for cid in ids:
            del self.owners[cid]
        self.awareness.remove_awareness_states(ids, member)
        for cid in ids:
            self.awareness.meta.pop(cid, None)

    def person(self, member: Member) -> Person | None:
        """The name (and email) ``member``'s own awareness state gives, if it is a git identity."""
        for cid in sorted(member.awareness_ids):
            state = self.awareness.states.get(cid)
            user = state.get("user") if isinstance(state, dict) else None
            if isinstance(user, dict) and isinstance(user.get("name"), str) and user["name"].strip():
                email = user.get("email") if isinstance(user.get("email"), str) else None
                try:
                    return Person(user["name"].strip(), email or None)
                except RoomInputError:
                    continue
        return None
