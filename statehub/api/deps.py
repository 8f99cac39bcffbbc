"""What the controllers are given, and the parameters several of them take, declared once.

Dependencies (each a ``NamedDependency``, provided synchronously from the app's
state, which the lifespan fills): ``hub`` (:class:`statehub.hub.Hub`), ``desk``
(:class:`statehub.events.EventDesk`), ``rooms`` (:class:`sync.rooms.Rooms`).

Handlers open their cache connection themselves, ``with hub.engine.connect() as
conn:``, instead of through a generator dependency: its cleanup machinery was a
visible share of the server's CPU per request on the hub's busiest routes
(bench/query.py: hub/bare capacity for ``/tasks?status=blocked&owner=...`` rose
from 0.62 to about 0.7-0.85 without it).
"""

from __future__ import annotations

from typing import Annotated

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from statehub.api.inputbounds import MAX_QUERY_INT
from statehub.cache.queries import MAX_LIMIT
from statehub.events import EventDesk
from statehub.hub import Hub
from sync.rooms import Rooms

__all__ = ["DEPENDENCIES", "DeskDep", "HubDep", "Limit", "Offset", "RepoFilter", "RoomsDep"]

HubDep = NamedDependency[Hub]
DeskDep = NamedDependency[EventDesk]
RoomsDep = NamedDependency[Rooms]

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="At most this many items (1-1000).")]
Offset = Annotated[int, QueryParameter(ge=0, le=MAX_QUERY_INT, description="Skip this many items.")]
RepoFilter = Annotated[
    str | None,
    QueryParameter(description="Only this registered repo (slug); 404 when no repo has that slug."),
]


def _hub(state: State) -> Hub:
    hub: Hub = state.hub
    return hub


def _desk(state: State) -> EventDesk:
    desk: EventDesk = state.events
    return desk


def _rooms(state: State) -> Rooms:
    rooms: Rooms = state.rooms
    return rooms


DEPENDENCIES = {
    "hub": Provide(_hub, sync_to_thread=False),
    "desk": Provide(_desk, sync_to_thread=False),
    "rooms": Provide(_rooms, sync_to_thread=False),
}
"""The app's dependencies (``statehub.app``)."""
