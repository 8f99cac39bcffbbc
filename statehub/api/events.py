"""``/events``: send events (one or a list), list them by state, look one up by key."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED

from statehub.answers import Page
from statehub.api.deps import MAX_NAME, PRINTABLE, Descending, DeskDep, EventKey, Limit, NameQuery, Offset
from statehub.api.errorshape import REPO_IN_BUFFER, WRITE_STATUSES, error_responses
from statehub.auth import PER_EVENT, token_of
from statehub.auth.event_policy import event_authoriser
from statehub.errors import BadRequest, NotFound
from sync.buffer import EventRecord, EventResults, EventState
from workplans.ids import split_task_ref

__all__ = ["EventController"]

StateFilter = Annotated[
    EventState | None, QueryParameter(name="state", description="Only events in this state.")
]
"""``?state=``: Litestar reserves the name ``state`` (the app's state), so the handler calls it ``state_``."""

EventsRepo = Annotated[
    str | None,
    QueryParameter(
        pattern=PRINTABLE,
        max_length=MAX_NAME,
        description="Only events for this repo: a registered one, or one the buffer has events for.",
    ),
]

TaskFilter = Annotated[
    str | None,
    QueryParameter(
        # workplans.ids.TASK_REF without its group names (JSON Schema's regex has none), or empty
        pattern=r"^([A-Z][A-Z0-9]*(-[A-Z0-9]+)*-WP-[0-9]{4}-T[0-9]{2,})?$",
        max_length=MAX_NAME,
        description="Only events of this task (``OPS-WP-0001-T02``; empty: any): its timeline, commits.",
    ),
]
KindFilter = Annotated[
    str | None,
    QueryParameter(
        pattern=PRINTABLE, max_length=MAX_NAME, description="Only events of this kind (``task.status``)."
    ),
]


NO_BODY = "POST /events needs a JSON body: one event (an object) or a list of events"


class EventController(Controller):
    path = "/events"
    tags = ["events"]

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        opt=PER_EVENT,
        responses=error_responses(409, 422, *WRITE_STATUSES),
    )
    async def send(
        self,
        request: Request[Any, Any, Any],
        desk: DeskDep,
        data: JSONBody[Any] = None,
        each: FromQuery[bool] = False,
    ) -> EventResults:
        """Accept one event or a list. 202 means every event is on disk in the write buffer.

        The body is any JSON: intake (``statehub.events.intake``) says what is wrong with
        each item (422, nothing stored); malformed JSON, or no body at all, is 400.

        ``?each=true`` (what a relaying hub sends, ADR-019): no all-or-nothing;
        every event gets its own result (accepted, duplicate, rejected with a
        reason) and its state here (pending, applied, rejected).

        With tokens, every event (resent or not) is authorised before any is stored
        (``statehub.auth.event_policy``): write on its repo as the token's actor, or
        admin on its repo (a hub relaying its people's events, ADR-021); a fleet role
        change needs admin.
        """
        if data is None and not await request.body():
            raise BadRequest(NO_BODY)
        authorise = event_authoriser(token_of(request))
        results = await asyncio.to_thread(desk.submit, data, authorise=authorise, each=each)
        return EventResults(results)

    @get("/", sync_to_thread=True, opt={REPO_IN_BUFFER: True}, responses=error_responses(404))
    def list_events(
        self,
        desk: DeskDep,
        repo: EventsRepo = None,
        state_: StateFilter = None,
        workplan: NameQuery = None,
        task: TaskFilter = None,
        kind: KindFilter = None,
        desc: Descending = False,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Page[EventRecord]:
        """The write buffer, oldest first (``desc=true``: newest first), filtered; ``total`` counts
        every match. Each record has its state, the reason it waits or was refused, and the commit
        that applied it. 400 when ``task`` is not a task reference."""
        workplan_id, task_id = workplan, None
        if task:
            parts = split_task_ref(task)
            if parts is None:
                raise BadRequest(f"task={task!r} is not a task reference; one looks like OPS-WP-0001-T02")
            if workplan is not None and workplan != parts[0]:
                return Page([], 0)
            workplan_id, task_id = parts
        items, total = desk.buffer.list_events(
            state=state_,
            repo=repo,
            workplan=workplan_id,
            task=task_id,
            kind=kind,
            newest_first=desc,
            limit=limit,
            offset=offset,
        )
        return Page(items, total)

    @get("/{key:str}", sync_to_thread=False, responses=error_responses(404))
    def get_event(self, desk: DeskDep, key: EventKey) -> EventRecord:
        """One event by its key."""
        found = desk.buffer.get(key)
        if found is None:
            raise NotFound(f"no event with key {key!r} in the write buffer")
        return found
