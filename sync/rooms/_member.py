"""One connection in a room, and how its session ended."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pycrdt import Channel

from sync.saving import Person

__all__ = ["Leave", "Member"]


@dataclass(frozen=True, slots=True)
class Leave:
    """How a member's session ended: ``code`` None when it simply left, else the close code and reason."""

    code: int | None = None
    reason: str = ""


@dataclass(eq=False)
class Member:
    """One connection in a room: what the room sends it waits in ``outbox`` for its sender task."""

    channel: Channel
    person: Person | None = None
    """Who the hub says this connection is (a token's actor, ``?user=``); None: ask its awareness."""
    outbox: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    awareness_ids: set[int] = field(default_factory=set)
    """The awareness client ids this connection introduced: the only ones it may set or clear."""
    synced: bool = False
    """Set once its sync step 1 showed a copy of this room's lineage (or none)."""

    def send(self, message: bytes) -> None:
        self.outbox.put_nowait(message)
