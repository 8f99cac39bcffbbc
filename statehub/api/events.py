"""``/events``: send events (one or a list), list them by state, look one up by key."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import FromQuery, HeaderParameter, JSONBody, QueryParameter
from litestar.response import Stream
from litestar.status_codes import HTTP_202_ACCEPTED

from statehub.answers import Page
from statehub.api.deps import MAX_NAME, PRINTABLE, Descending, DeskDep, EventKey, Limit, NameQuery, Offset
from statehub.api.errorshape import REPO_IN_BUFFER, WRITE_STATUSES, error_responses
from statehub.api.inputbounds import MAX_QUERY_INT
from statehub.auth import PER_EVENT, token_of
from statehub.auth.event_policy import event_authoriser
from statehub.auth.guard import StillAllowed
from statehub.auth.verify import repos_in_scope
from statehub.errors import BadRequest, Forbidden, HubError, NotFound, Unavailable, unknown_repo
from statehub.stream import MAX_REPOS, RUN, Broadcaster, StreamFilter, Subscriber, frame, parse_types, replay
from sync.buffer import EventRecord, EventResults, EventState
from workplans.ids import split_task_ref
from workplans.manifest import SLUG

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from statehub.auth.verify import VerifiedToken
    from statehub.changes import ChangeLog

__all__ = ["EventController", "StreamController"]

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


StreamRepos = Annotated[
    list[str] | None,
    QueryParameter(
        name="repo",
        max_items=MAX_REPOS,
        description=f"Only messages of these repos (repeat it, at most {MAX_REPOS}); each a repo slug.",
    ),
]
StreamTypes = Annotated[
    str | None,
    QueryParameter(
        pattern=PRINTABLE,
        max_length=1000,
        description="Only these message types: prefixes separated by commas (task, event.applied, claim.).",
    ),
]
Since = Annotated[
    int | None,
    QueryParameter(
        ge=0, le=MAX_QUERY_INT, description="Replay the messages after this id (as Last-Event-ID does)."
    ),
]
LastEventId = Annotated[
    str | None,
    HeaderParameter(
        name="last-event-id",
        pattern=r"^[0-9]{1,18}$",
        max_length=18,
        required=False,
        description="The id of the last message the client got (what an EventSource sends to reconnect).",
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
        broadcaster: Broadcaster = request.app.state.stream
        with broadcaster.foreground():  # the write-back pauses at its next step (canon/ADR-044)
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


class StreamController(Controller):
    """``GET /events/stream``: the hub's changes as server-sent events (canon/ADR-038)."""

    path = "/events/stream"
    tags = ["events"]

    @get("/", media_type="text/event-stream", responses=error_responses(404, 503))
    async def stream(
        self,
        request: Request[Any, Any, Any],
        repo: StreamRepos = None,
        workplan: NameQuery = None,
        owner: NameQuery = None,
        types: StreamTypes = None,
        since: Since = None,
        last_event_id: LastEventId = None,
    ) -> Stream:
        """Every change as it happens, as ``text/event-stream``: ``id`` (rising, never reused),
        ``event`` (the type) and ``data`` (JSON); docs/architecture.md "Change stream" gives each
        type's data.

        Filters (all must hold): ``repo`` (repeatable), ``workplan``, ``owner``, ``types``
        (prefixes). ``since`` or the ``Last-Event-ID`` header replays what came after that id,
        filtered, then goes on live; asking for messages the log no longer keeps (or never had)
        first gets a ``reset`` message: reload, then follow. A comment line every
        ``STATEHUB_STREAM_KEEPALIVE`` seconds of silence keeps proxies from closing it. A client
        that falls more than ``STATEHUB_STREAM_QUEUE`` messages behind gets a final ``dropped``
        message and the stream ends. A repo-scoped token gets only its repos' messages (and the
        hub-wide ones that name no repo); a ``repo`` filter outside its scope is 403.
        """
        broadcaster: Broadcaster = request.app.state.stream
        settings = request.app.state.hub.settings
        wanted = _stream_repos(repo)
        try:
            prefixes = parse_types(types)
        except ValueError as error:
            raise BadRequest(str(error)) from None
        start = since
        if last_event_id is not None:
            if not last_event_id.isdigit() or len(last_event_id) > 18:
                raise BadRequest("Last-Event-ID must be a message id (a whole number)")
            # an EventSource opened with ?since= sends Last-Event-ID when it reconnects by itself,
            # to the same URL: the later of the two is what the client has, so nothing comes twice
            start = max(start or 0, int(last_event_id))
        registered = [r.slug for r in request.app.state.hub.repos()]
        unknown = sorted((wanted or frozenset()) - set(registered))
        if unknown:  # as GET /tasks?repo= says: a typo must not be a silent stream
            raise unknown_repo(unknown[0])
        token = token_of(request)
        allowed = None
        if token is not None:
            allowed = await asyncio.to_thread(_scope_of, token, registered)
            outside = sorted(slug for slug in wanted or () if not allowed(slug))
            if outside:
                raise Forbidden(
                    f"the token for {token.actor} is not scoped to {', '.join(outside)}: its stream "
                    "carries only its own repos' messages (canon/ADR-038)"
                )
        actor = token.actor if token is not None else None
        if broadcaster.full(actor):
            if len(broadcaster.subscribers) < broadcaster.capacity:
                raise Unavailable(
                    f"the token for {actor} holds {broadcaster.per_actor} streams open already "
                    "(STATEHUB_STREAM_PER_ACTOR); close one, or try again later"
                )
            raise Unavailable(
                f"the hub streams to {broadcaster.capacity} subscribers already "
                "(STATEHUB_STREAM_SUBSCRIBERS); try again later"
            )
        # checked again before each frame and keepalive: a token revoked or expired (or a session
        # ended) mid-stream ends the stream, as it ends an editor's WebSocket (ADR-040)
        still = StillAllowed(request, "read", None) if token is not None else None
        stream_filter = StreamFilter(wanted, workplan, owner, prefixes, allowed)
        subscriber = broadcaster.subscribe(stream_filter, actor)
        until = subscriber.last  # live messages are those after it; a replay ends there
        try:
            first = await _opening(broadcaster.changes, subscriber, start)
        except BaseException:
            broadcaster.unsubscribe(subscriber)
            raise
        return Stream(
            _frames(broadcaster, subscriber, first, (start, until), settings.stream_keepalive_s, still),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def _stream_repos(given: list[str] | None) -> frozenset[str] | None:
    if not given:
        return None
    if len(given) > MAX_REPOS:
        raise BadRequest(f"{len(given)} repo parameters; give at most {MAX_REPOS}")
    for slug in given:
        if len(slug) > MAX_NAME or not SLUG.fullmatch(slug):
            raise BadRequest(f"repo {slug[:100]!r} is not a repo slug (lower-case letters, digits and . _ -)")
    return frozenset(given)


def _scope_of(token: VerifiedToken, registered: list[str]) -> Any:
    """A predicate: may ``token`` read this repo's messages (its repo scope, ADR-016, ADR-038)?
    Worked out now for the registered repos, and once for each other repo met later."""
    known = dict.fromkeys(registered, False) | dict.fromkeys(repos_in_scope(token, registered), True)

    def allowed(slug: str) -> bool:
        if slug not in known:
            if len(known) > 10_000:  # bounded: a repo slug a message names is one the hub indexed
                known.clear()
            known[slug] = bool(repos_in_scope(token, [slug]))
        return known[slug]

    return allowed


async def _opening(changes: ChangeLog, subscriber: Subscriber, start: int | None) -> bytes | None:
    """A ``reset`` frame when ``start`` asks for messages the log cannot give; None otherwise.
    Live messages at or below ``start`` are skipped (the log may hold some not yet fanned out)."""
    if start is None:
        return None
    pruned, newest = await asyncio.to_thread(changes.bounds)
    if pruned <= start <= newest:
        subscriber.floor = start
        return None
    why = (
        f"messages after {start} are no longer kept (the log starts after {pruned})"
        if start < pruned
        else f"no message {start} was ever given here (the newest is {newest}): the log was replaced"
    )
    data = {
        "reason": why + "; reload what you show, then follow this stream",
        "oldest": pruned + 1,
        "newest": newest,
    }
    return frame("reset", subscriber.last, json.dumps(data, separators=(",", ":")))


_GATHER_BYTES = 64 * 1024
"""Queued frames go out as one chunk up to this many bytes (:func:`_gathered`), or
:data:`statehub.stream.RUN` frames when those are more."""


def _gathered(subscriber: Subscriber, first: bytes) -> bytes:
    """``first`` and the frames queued behind it (up to :data:`_GATHER_BYTES`, and at least a run
    of the broadcaster's, :data:`statehub.stream.RUN`: what it queues between two turns), in order, as one
    chunk: one pass through the response stack and one socket write for what a subscriber has
    waiting (a write-back's ``task.changed`` ... ``event.applied`` and the next ``event.accepted``
    behind them), not one each. The stream's bytes are the same; a ``dropped`` frame is always
    the last in its queue, so it stays last."""
    queue = subscriber.queue
    if queue.empty():
        return first
    parts = [first]
    size = len(first)
    while (size < _GATHER_BYTES or len(parts) < RUN) and not queue.empty():
        part = queue.get_nowait()
        parts.append(part)
        size += len(part)
    return b"".join(parts)


async def _frames(
    broadcaster: Broadcaster,
    subscriber: Subscriber,
    first: bytes | None,
    span: tuple[int | None, int],
    keepalive: float,
    still: StillAllowed | None = None,
) -> AsyncIterator[bytes]:
    """The stream's bytes: a comment, the reset or the replay of ``span`` (after the first id, up to
    the second), then live frames and keepalives until the client leaves or is dropped.

    ``still`` (a hub with tokens) is asked before each frame and keepalive: when the token has
    been revoked or has expired, or the session ended, the stream ends with a ``dropped`` message
    saying why, and nothing more is sent."""
    start, until = span

    def refused() -> bytes | None:
        if still is None:
            return None
        try:
            still()
        except HubError as error:
            data = json.dumps({"reason": error.message, "last_id": subscriber.last}, separators=(",", ":"))
            return frame("dropped", None, data)
        return None

    try:
        yield b": statehub change stream\n\n"
        if first is not None:
            yield first
        elif start is not None:
            async for replayed in replay(broadcaster.changes, start, until, subscriber.filter):
                if (ended := refused()) is not None:
                    yield ended
                    return
                yield replayed
        while True:
            try:
                async with asyncio.timeout(keepalive):  # no task per frame, as wait_for makes
                    sent = await subscriber.queue.get()
            except TimeoutError:
                sent = b": keepalive\n\n"
            else:
                sent = _gathered(subscriber, sent)
            if (ended := refused()) is not None:
                yield ended
                return
            yield sent
            if subscriber.dropped and subscriber.queue.empty():
                return
    finally:
        broadcaster.unsubscribe(subscriber)
