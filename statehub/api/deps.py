"""What the controllers are given, and the parameters several of them take, declared once.

Parameters: paging (``Limit``, ``Offset``) and every name a path or a query
carries, each with the bounds the hub checks and the OpenAPI document states
(``pattern``, ``maxLength``, an example; ADR-031): a slug matches the
manifest's slug rule, an event key the event key rule, any other name holds no
control character and at most :data:`MAX_NAME` characters.

Dependencies (each a ``NamedDependency``, provided synchronously from the app's
state, which the lifespan fills): ``hub`` (:class:`statehub.hub.Hub`), ``desk``
(:class:`statehub.events.EventDesk`), ``rooms`` (:class:`sync.rooms.Rooms`).

Handlers open their cache connection themselves, ``with hub.reads.connect() as
conn:`` (``Hub.reads``: no transaction round trips on PostgreSQL), instead of
through a generator dependency: its cleanup machinery was a
visible share of the server's CPU per request on the hub's busiest routes
(bench/query.py: hub/bare capacity for ``/tasks?status=blocked&owner=...`` rose
from 0.62 to about 0.7-0.85 without it).
"""

from __future__ import annotations

from typing import Annotated

from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi.spec import Example
from litestar.params import PathParameter, QueryParameter

from statehub.api.inputbounds import MAX_QUERY_INT
from statehub.cache.queries import MAX_LIMIT
from statehub.events import EventDesk
from statehub.hub import Hub
from sync.rooms import Rooms
from workplans.events import EVENT_KEY
from workplans.manifest import SLUG

__all__ = [
    "DEPENDENCIES",
    "MAX_NAME",
    "PRINTABLE",
    "CanonIdPath",
    "Descending",
    "DeskDep",
    "DocPath",
    "EventKey",
    "HubDep",
    "Limit",
    "NameQuery",
    "Offset",
    "OwnerPrefix",
    "RepoFilter",
    "RequiredName",
    "RoomsDep",
    "SlugPath",
    "TaskRefPath",
    "WorkplanIdPath",
    "name_in_path",
]

HubDep = NamedDependency[Hub]
DeskDep = NamedDependency[EventDesk]
RoomsDep = NamedDependency[Rooms]

Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="At most this many items (1-1000).")]
Offset = Annotated[int, QueryParameter(ge=0, le=MAX_QUERY_INT, description="Skip this many items.")]

# -- names in paths and queries: the bounds the hub enforces, stated in the OpenAPI document ---------------
# Litestar checks ``pattern`` and ``max_length`` before the handler (a value outside them is 400 in the
# one error shape) and writes them into the document, so a client (and schemathesis) knows them (ADR-031).

MAX_NAME = 255
"""The longest name (slug, id, reference, owner, machine) the hub takes in a path or a query: a
file or directory name's length on every file system the hub runs on; none of the hub's names is longer."""
MAX_DOC = 1024
"""The longest ``{doc}`` of ``/sync`` (``<slug>/<path>/save``): a repo-relative path and its slug."""
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
"""No control character (U+0000-U+001F, U+007F): ``statehub.api.inputbounds`` refuses one in any URL."""

_SLUG_RULE = "a repo slug: lower-case letters, digits and . _ - (workplans.manifest.SLUG)"


def _example(value: str) -> list[Example]:
    """A parameter's example in the document (Swagger UI shows it; schemathesis' examples phase sends it)."""
    return [Example(value=value)]


def name_in_path(example: str, description: str) -> PathParameter:
    """An id or a reference in a path (``/workplans/{workplan_id}``): no control character, at most
    :data:`MAX_NAME`; what it names is looked up as given, 404 if nothing has it."""
    return PathParameter(
        pattern=PRINTABLE,
        min_length=1,
        max_length=MAX_NAME,
        description=description,
        examples=_example(example),
    )


RepoFilter = Annotated[
    str | None,
    QueryParameter(
        pattern=SLUG.pattern,
        max_length=MAX_NAME,
        description=f"Only this registered repo, by {_SLUG_RULE}; 404 when no repo has that slug.",
        examples=_example("ops"),
    ),
]
SlugPath = Annotated[
    str,
    PathParameter(
        pattern=SLUG.pattern,
        max_length=MAX_NAME,
        description=f"The repo, by {_SLUG_RULE}.",
        examples=_example("ops"),
    ),
]
EventKey = Annotated[
    str,
    PathParameter(
        pattern=EVENT_KEY.pattern,
        description="An event's key: letters, digits and . _ : -, at most 128 (workplans.events.EVENT_KEY).",
        examples=_example("01JZ3K7T2Q9"),
    ),
]
WorkplanIdPath = Annotated[str, name_in_path("OPS-WP-0001", "A workplan id.")]
TaskRefPath = Annotated[str, name_in_path("OPS-WP-0001-T02", "A task reference: <workplan id>-<task id>.")]
CanonIdPath = Annotated[str, name_in_path("ADR-001", "A canon document's id.")]
NameQuery = Annotated[str | None, QueryParameter(pattern=PRINTABLE, max_length=MAX_NAME)]
OwnerPrefix = Annotated[
    str | None,
    QueryParameter(
        pattern=PRINTABLE,
        max_length=MAX_NAME,
        description="Only owners that begin with this text (case-sensitive; ``agt-`` finds every agent).",
        examples=_example("agt-"),
    ),
]
Descending = Annotated[
    bool, QueryParameter(description="Sort in descending order (ties keep the same order, reversed).")
]
"""An optional name filter (``?owner=``, ``?host=``): matched as given, no match is an empty list."""
RequiredName = Annotated[
    str,
    QueryParameter(pattern=PRINTABLE, min_length=1, max_length=MAX_NAME, examples=_example("railiance01")),
]
"""A name the route needs (``/fleet/drain-plan?machine=``)."""
DocPath = Annotated[
    str,
    PathParameter(
        pattern=PRINTABLE,
        max_length=MAX_DOC,
        description="``<repo slug>/<path>/save``, path ``statehub.toml`` or ``registry/fleet.toml``.",
        examples=_example("ops/statehub.toml/save"),
    ),
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
