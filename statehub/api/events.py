"""``/events``: send events (one or a list), list them by state, look one up by key."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import Parameter, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED

from statehub.api.errorshape import REPO_IN_BUFFER
from statehub.api.inputbounds import MAX_QUERY_INT
from statehub.auth import PER_EVENT, token_of
from statehub.auth.event_policy import event_authoriser
from statehub.errors import BadRequest, NotFound, invalid_choice
from statehub.events import EventDesk
from sync.buffer import EventState

__all__ = ["EventController", "provide_desk"]


def provide_desk(state: State) -> EventDesk:
    desk: EventDesk = state.events
    return desk


class EventController(Controller):
    path = "/events"
    tags = ["events"]

    @post("/", status_code=HTTP_202_ACCEPTED, opt=PER_EVENT)
    async def send(
        self, request: Request[Any, Any, Any], events: EventDesk, each: bool = False
    ) -> dict[str, Any]:
        """Accept one event or a list. 202 means every event is on disk in the write buffer.

        ``?each=true`` (what a relaying hub sends, ADR-019): no all-or-nothing;
        every event gets its own result (accepted, duplicate, rejected with a
        reason) and its state here (pending, applied, rejected).

        With tokens, every event (resent or not) is authorised before any is stored
        (``statehub.auth.event_policy``): write on its repo as the token's actor, or
        admin on its repo (a hub relaying its people's events, ADR-021); a fleet role
        change needs admin.
        """
        try:
            body = await request.json()
        except Exception:
            raise BadRequest("the body must be JSON: one event object or a list of them") from None
        authorise = event_authoriser(token_of(request))
        results = await asyncio.to_thread(events.submit, body, authorise=authorise, each=each)
        return {"results": results}

    @get("/", sync_to_thread=True, opt={REPO_IN_BUFFER: True})
    def list_events(
        self,
        events: EventDesk,
        repo: str | None = None,
        limit: int = Parameter(ge=1, le=1000, default=100),
        offset: int = Parameter(ge=0, le=MAX_QUERY_INT, default=0),
        state_: Annotated[str | None, QueryParameter(name="state")] = None,  # "state" is a reserved name
    ) -> dict[str, Any]:
        if state_ is not None and state_ not in {s.value for s in EventState}:
            raise invalid_choice("state", state_, [s.value for s in EventState])
        items, total = events.buffer.list_events(state=state_, repo=repo, limit=limit, offset=offset)
        return {"items": [item.as_dict() for item in items], "total": total}

    @get("/{key:str}", sync_to_thread=False)
    def get_event(self, events: EventDesk, key: str) -> dict[str, Any]:
        found = events.buffer.get(key)
        if found is None:
            raise NotFound(f"no event with key {key!r} in the write buffer")
        return found.as_dict()
