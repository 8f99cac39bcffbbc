"""The hub as an MCP server (Model Context Protocol, official Python SDK ``mcp``): tools and
resources for coding agents, over stdio (``statehub mcp``) and streamable HTTP (``/mcp``, ADR-034).

One low-level :class:`mcp.server.lowlevel.Server` serves both transports; what differs is
who is asking (:class:`Caller`): over stdio the actor is ``--actor`` / ``STATEHUB_ACTOR`` and
events are authorised as a local command; over HTTP the actor is the token's and every read
and event is authorised by that token (``statehub.api.mcp``).

Tools (:data:`TOOLS`) take arguments described by a msgspec Struct; its JSON schema is the
tool's ``inputSchema`` and the arguments are decoded with it, so a wrong type, an unknown
argument, a value out of bounds or a missing one is a tool result with ``isError: true``
and a message naming the argument, and nothing is read or written. Every answer is a
typed Struct (statehub.cache.answers, :class:`ToolEvent`): its JSON schema is the
tool's ``outputSchema``, its value the ``structuredContent`` and, as JSON text, the
``content``. A hub error (404 unknown task, 409 ambiguous id, 422 a refused event, 403
a token without the right) is ``isError`` with the hub's sentence.

Writes are events through the write buffer (``EventDesk.submit``, the same intake as
``POST /events``), applied at once when no other process is applying, exactly like a CLI
command (ADR-007): never a direct file write. An event the applier rejects (the file
no longer allows it) is ``isError`` with the reason; an optional ``key`` makes a retry
exactly-once (ADR-006).

Resources: every workplan (``statehub://workplans/{id}``) and canon document
(``statehub://canon/{repo}/{id}``), listed in pages and read as the JSON of
``GET /workplans/{id}`` / ``GET /canon/{id}?repo=``.

This module imports neither Litestar nor the token library, so ``statehub mcp`` starts
fast; tool calls run in a worker thread (the cache and git work are blocking).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

import anyio
import msgspec
from mcp import types
from mcp.server.lowlevel import Server

from statehub.answers import Page, with_freshness
from statehub.auth.event_policy import EventAuthoriser
from statehub.cache import fleet_queries, queries
from statehub.cache.answers import (
    CanonDetail,
    CanonItem,
    DrainPlan,
    Readiness,
    SearchHit,
    TaskDetail,
    TaskItem,
    WorkplanDetail,
)
from statehub.cache.search import MAX_QUERY_CHARS, search
from statehub.errors import LIBRARY_ERRORS, BadRequest, HubError, NotFound, Unprocessable, as_hub_error
from sync.buffer import EventRecord, EventState
from workplans import CanonKind, CanonStatus, TaskStatus, is_workplan_id, split_task_ref

if TYPE_CHECKING:
    from types import ModuleType

    from mcp.server.context import ServerRequestContext

    from statehub.events import EventDesk
    from statehub.hub import Hub

__all__ = [
    "RESOURCE_PAGE",
    "TOOLS",
    "Caller",
    "HubAccess",
    "ToolEvent",
    "ToolSpec",
    "build_server",
]

log = logging.getLogger(__name__)

APPLY_WAIT = 5.0
"""Seconds a write waits for another applier (a running server) before leaving the event to it."""
RESOURCE_PAGE = 200
"""Resources per ``resources/list`` page."""
SERVER_ERROR = "the hub failed to answer this call; its log has the details"


# who is asking, and the hub they ask ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a call acts for: ``actor`` goes into every event; ``authorise`` checks each event
    (``statehub.auth.event_policy``); ``may_read(repo)`` raises a HubError when reading ``repo``
    (None: the whole hub) is not allowed."""

    actor: str
    authorise: EventAuthoriser
    may_read: Callable[[str | None], None]


def read_anything(_repo: str | None) -> None:
    """``Caller.may_read`` of a caller every read is allowed (stdio, an open hub)."""


class HubAccess(Protocol):
    """The open hub and its event desk (the server's own, or opened by ``statehub mcp``)."""

    @property
    def hub(self) -> Hub: ...

    def desk(self) -> EventDesk: ...


CallerOf = Callable[["ServerRequestContext[Any, Any]"], Caller]


# tool arguments ------------------------------------------------------------------------------------

Ref = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, description="A task reference: CUST-WP-0054-T02.")
]
WorkplanId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, description="A workplan id: CUST-WP-0054.")
]
RepoSlug = Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="A registered repo's slug.")]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
Key = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=200,
        description="Idempotency key: the same key sent again is the same event, applied once.",
    ),
]
Limit = Annotated[int, msgspec.Meta(ge=1, le=1000, description="At most this many items (1-1000).")]
Offset = Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000, description="Skip this many items.")]


class _Args(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Tool arguments: an argument the tool does not take is an error, not ignored."""


class ListReadyTasksArgs(_Args, frozen=True):
    repo: RepoSlug | None = None
    owner: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    limit: Limit = 50


class GetTaskArgs(_Args, frozen=True):
    ref: Ref


class GetWorkplanArgs(_Args, frozen=True):
    id: WorkplanId


class SearchArgs(_Args, frozen=True):
    q: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            description="Words that must all occur in a hit; quotes and operators are separators.",
        ),
    ]
    repo: RepoSlug | None = None
    kind: Literal["workplan", "task", "canon"] | None = None
    limit: Limit = 20
    offset: Offset = 0


class SetTaskStatusArgs(_Args, frozen=True):
    ref: Ref
    status: TaskStatus
    note: Text | None = None
    key: Key | None = None


class AddProgressNoteArgs(_Args, frozen=True):
    ref: Annotated[
        str, msgspec.Meta(min_length=1, max_length=200, description="A workplan id or a task reference.")
    ]
    note: Text
    key: Key | None = None


class AddTaskArgs(_Args, frozen=True):
    workplan: WorkplanId
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    owner: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    depends_on: Annotated[list[Ref], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)
    key: Key | None = None


class ListCanonArgs(_Args, frozen=True):
    repo: RepoSlug | None = None
    kind: CanonKind | None = None
    status: CanonStatus | None = None
    limit: Limit = 100
    offset: Offset = 0


class GetCanonArgs(_Args, frozen=True):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="A canon id: ADR-001.")]
    repo: RepoSlug | None = None


class FleetReadinessArgs(_Args, frozen=True):
    repo: RepoSlug | None = None


class DrainPlanArgs(_Args, frozen=True):
    machine: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    repo: RepoSlug | None = None


# answers of the write tools ------------------------------------------------------------------------


class ToolEvent(EventRecord, frozen=True):
    """What a write tool answers: the event as the write buffer holds it (``GET /events/{key}``),
    what intake said of it (``accepted`` | ``duplicate``) and whether this call applied it
    (False: the event is pending and the hub's applier will apply it within a second)."""

    result: str
    applied_here: bool


# the tools -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool: its arguments and answer types, hints for a client, and what it does."""

    name: str
    title: str
    description: str
    args: type[_Args]
    answer: Any
    run: Callable[[HubAccess, Caller, Any], Any]
    read_only: bool = True
    idempotent: bool = True

    def tool(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=json_schema(self.args),
            output_schema=json_schema(self.answer),
            annotations=types.ToolAnnotations(
                title=self.title,
                read_only_hint=self.read_only,
                destructive_hint=False,
                idempotent_hint=self.idempotent,
                open_world_hint=False,
            ),
        )


def json_schema(kind: Any) -> dict[str, Any]:
    """The JSON schema of a Struct type, as one object schema with its ``$defs``."""
    (schema,), components = msgspec.json.schema_components([kind], ref_template="#/$defs/{name}")
    ref = schema.get("$ref")
    if isinstance(ref, str):
        schema = dict(components.pop(ref.rsplit("/", 1)[-1]))
    if components:
        schema["$defs"] = components
    return schema


def _repo(access: HubAccess, caller: Caller, repo: str | None) -> None:
    """Reading ``repo`` is allowed and it is registered (a filter naming no repo is 404, as in the API)."""
    caller.may_read(repo)
    if repo is not None:
        access.hub.repo(repo)


def _list_ready_tasks(access: HubAccess, caller: Caller, args: ListReadyTasksArgs) -> Page[TaskItem]:
    """Claimable tasks first (the claims library's list when the hub has it, else ready ``todo``
    tasks), then ready tasks in progress or blocked; ``total`` counts every ready task."""
    _repo(access, caller, args.repo)
    claims = claims_library()
    if claims is not None:
        first: list[TaskItem] = list(
            claims.list_claimable(access.desk(), repo=args.repo, owner=args.owner, limit=args.limit).items
        )
    with access.hub.engine.connect() as conn:
        if claims is None:
            first = list(
                queries.list_tasks(
                    conn,
                    repo=args.repo,
                    owner=args.owner,
                    ready=True,
                    status=TaskStatus.TODO,
                    limit=args.limit,
                ).items
            )
        total = queries.list_tasks(conn, repo=args.repo, owner=args.owner, ready=True, limit=1).total
        items = first
        for status in (TaskStatus.IN_PROGRESS, TaskStatus.BLOCKED):
            if len(items) >= args.limit:
                break
            more = queries.list_tasks(
                conn,
                repo=args.repo,
                owner=args.owner,
                ready=True,
                status=status,
                limit=args.limit - len(items),
            )
            items += more.items
    return Page(items, total, access.hub.freshness([args.repo] if args.repo else None))


def _get_task(access: HubAccess, caller: Caller, args: GetTaskArgs) -> TaskDetail:
    with access.hub.engine.connect() as conn:
        task = queries.get_task(conn, args.ref)
    caller.may_read(task.repo)
    return TaskDetail(**msgspec.structs.asdict(task), freshness=access.hub.freshness([task.repo]))


def _get_workplan(access: HubAccess, caller: Caller, args: GetWorkplanArgs) -> WorkplanDetail:
    with access.hub.engine.connect() as conn:
        plan = queries.get_workplan(conn, args.id)
    caller.may_read(plan.repo)
    return msgspec.structs.replace(plan, freshness=access.hub.freshness([plan.repo]))


def _search(access: HubAccess, caller: Caller, args: SearchArgs) -> Page[SearchHit]:
    _repo(access, caller, args.repo)
    with access.hub.engine.connect() as conn:
        page = search(conn, args.q, repo=args.repo, kind=args.kind, limit=args.limit, offset=args.offset)
    return with_freshness(page, access.hub.freshness([args.repo] if args.repo else None))


def _list_canon(access: HubAccess, caller: Caller, args: ListCanonArgs) -> Page[CanonItem]:
    _repo(access, caller, args.repo)
    with access.hub.engine.connect() as conn:
        page = queries.list_canon(
            conn, repo=args.repo, kind=args.kind, status=args.status, limit=args.limit, offset=args.offset
        )
    return with_freshness(page, access.hub.freshness([args.repo] if args.repo else None))


def _get_canon(access: HubAccess, caller: Caller, args: GetCanonArgs) -> CanonDetail:
    _repo(access, caller, args.repo)
    with access.hub.engine.connect() as conn:
        doc = queries.get_canon(conn, args.id, args.repo)
    caller.may_read(doc.repo)
    return msgspec.structs.replace(doc, freshness=access.hub.freshness([doc.repo]))


def _fleet_readiness(access: HubAccess, caller: Caller, args: FleetReadinessArgs) -> Readiness:
    _repo(access, caller, args.repo)
    with access.hub.engine.connect() as conn:
        answer = fleet_queries.fleet_readiness(conn, args.repo)
    caller.may_read(answer.repo)
    return answer


def _drain_plan(access: HubAccess, caller: Caller, args: DrainPlanArgs) -> DrainPlan:
    _repo(access, caller, args.repo)
    with access.hub.engine.connect() as conn:
        answer = fleet_queries.drain_plan(conn, args.machine, args.repo)
    caller.may_read(answer.repo)
    return answer


def _task_parts(ref: str) -> tuple[str, str]:
    parts = split_task_ref(ref)
    if parts is None:
        raise BadRequest(f"{ref!r} is not a task reference; write it like CUST-WP-0054-T02")
    return parts


def _set_task_status(access: HubAccess, caller: Caller, args: SetTaskStatusArgs) -> ToolEvent:
    workplan, task = _task_parts(args.ref)
    body = {"kind": "task.status", "workplan": workplan, "task": task, "status": args.status.value}
    return send(access, caller, body | ({"note": args.note} if args.note else {}), args.key)


def _add_progress_note(access: HubAccess, caller: Caller, args: AddProgressNoteArgs) -> ToolEvent:
    body: dict[str, Any] = {"kind": "progress.note", "note": args.note}
    if is_workplan_id(args.ref):
        body["workplan"] = args.ref
    else:
        body["workplan"], body["task"] = _task_parts(args.ref)
    return send(access, caller, body, args.key)


def _add_task(access: HubAccess, caller: Caller, args: AddTaskArgs) -> ToolEvent:
    from statehub.events.intake import next_task_id

    if not is_workplan_id(args.workplan):
        raise BadRequest(f"{args.workplan!r} is not a workplan id; write it like CUST-WP-0054")
    desk = access.desk()
    body: dict[str, Any] = {
        "kind": "task.add",
        "workplan": args.workplan,
        "title": args.title,
        "task": next_task_id(desk.hub, desk.buffer, args.workplan),
    }
    if args.owner:
        body["owner"] = args.owner
    if args.depends_on:
        body["depends_on"] = list(args.depends_on)
    return send(access, caller, body, args.key)


def send(access: HubAccess, caller: Caller, body: dict[str, Any], key: str | None) -> ToolEvent:
    """Submit one event as ``caller`` and apply it in its repo at once when no other process is
    applying (then the hub's applier does within a second). Raises Unprocessable when intake or
    the applier refuses it (nothing written)."""
    from statehub.events import new_event_key

    desk = access.desk()
    event = body | {"key": key or new_event_key(), "actor": caller.actor}
    result = desk.submit(event, authorise=caller.authorise)[0]
    stored = desk.buffer.get(event["key"])
    if stored is None:  # pragma: no cover - submit stored it or raised
        raise Unprocessable("the event was not stored")
    applied = desk.apply_pending([stored.repo], timeout=APPLY_WAIT)
    record = desk.buffer.get(event["key"]) or stored
    if record.state is EventState.REJECTED:
        raise Unprocessable(f"the change was rejected when applied: {record.reason}")
    return ToolEvent(**msgspec.structs.asdict(record), result=result.result, applied_here=applied is not None)


# claims (statehub.claims, when the hub has it) --------------------------------------------------


def claims_library() -> ModuleType | None:
    """``statehub.claims`` (claims with leases, ADR-032) when this hub has it, else None: the claim
    tools and the claimable-first order of ``list_ready_tasks`` join when it is there."""
    try:
        return importlib.import_module("statehub.claims")
    except ModuleNotFoundError as error:
        if error.name != "statehub.claims":
            raise
        return None


class ClaimTaskArgs(_Args, frozen=True):
    ref: Ref
    lease_s: Annotated[
        int, msgspec.Meta(ge=1, le=86_400, description="Seconds the lease lasts (1-86400).")
    ] = 900


class HeartbeatArgs(_Args, frozen=True):
    ref: Ref
    lease_s: (
        Annotated[
            int,
            msgspec.Meta(
                ge=1, le=86_400, description="New lease length in seconds (default: the lease's own)."
            ),
        ]
        | None
    ) = None


class ReleaseTaskArgs(_Args, frozen=True):
    ref: Ref
    status: Literal["todo", "done", "blocked"]
    note: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)] | None = None


def _apply_for(access: HubAccess, ref: str) -> None:
    """Apply the pending events of ``ref``'s repo now, unless another process is applying."""
    with access.hub.engine.connect() as conn:
        repo = queries.get_task(conn, ref).repo
    access.desk().apply_pending([repo], timeout=APPLY_WAIT)


def _claim_task(access: HubAccess, caller: Caller, args: ClaimTaskArgs) -> Any:
    claims = _require_claims()
    answer = claims.claim(access.desk(), args.ref, caller.actor, args.lease_s, authorise=caller.authorise)
    _apply_for(access, args.ref)
    return answer


def _heartbeat(access: HubAccess, caller: Caller, args: HeartbeatArgs) -> Any:
    claims = _require_claims()
    return claims.heartbeat(access.desk(), args.ref, caller.actor, args.lease_s, authorise=caller.authorise)


def _release_task(access: HubAccess, caller: Caller, args: ReleaseTaskArgs) -> Any:
    claims = _require_claims()
    answer = claims.release(
        access.desk(), args.ref, caller.actor, TaskStatus(args.status), args.note, authorise=caller.authorise
    )
    _apply_for(access, args.ref)
    return answer


def _require_claims() -> ModuleType:
    claims = claims_library()
    if claims is None:  # pragma: no cover - the tools are listed only with the library
        raise NotFound("this hub has no claims")
    return claims


def claim_tools() -> tuple[ToolSpec, ...]:
    """``claim_task``, ``heartbeat``, ``release_task``: present when the claims library is."""
    claims = claims_library()
    if claims is None:
        return ()
    return (
        ToolSpec(
            "claim_task",
            "Claim task",
            "Take a claimable task (todo, every dependency done, no live claim by someone else) for a "
            "lease: exactly one of any number of concurrent claims wins; the task becomes in-progress "
            "and owned by you (one commit). Claiming again renews your lease. A lost claim is an error "
            "saying who holds it until when, or which dependency is open.",
            ClaimTaskArgs,
            claims.Claim,
            _claim_task,
            read_only=False,
        ),
        ToolSpec(
            "heartbeat",
            "Extend lease",
            "Extend your live lease on a claimed task (no commit); an error when you hold none.",
            HeartbeatArgs,
            claims.Claim,
            _heartbeat,
            read_only=False,
        ),
        ToolSpec(
            "release_task",
            "Release task",
            "End your claim: the status given (todo, done, blocked), the owner from before the claim "
            "restored, the note appended to Progress (one commit).",
            ReleaseTaskArgs,
            claims.Released,
            _release_task,
            read_only=False,
            idempotent=False,
        ),
    )


_READ_NOTE = " Read-only; answers from the hub's cache of the files."
_WRITE_NOTE = (
    " Sent as an event through the hub's write buffer and committed to the workplan file by the hub "
    "(one commit); the answer is the event with its state and commit."
)

TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "list_ready_tasks",
        "Ready tasks",
        "Tasks whose dependencies are all done, claimable ones (status todo) first, then ready tasks "
        "already in progress or blocked; filter by repo and owner." + _READ_NOTE,
        ListReadyTasksArgs,
        Page[TaskItem],
        _list_ready_tasks,
    ),
    ToolSpec(
        "get_task",
        "Task",
        "One task by reference (CUST-WP-0054-T02): status, owner, dependencies, ready." + _READ_NOTE,
        GetTaskArgs,
        TaskDetail,
        _get_task,
    ),
    ToolSpec(
        "get_workplan",
        "Workplan",
        "One workplan by id with its body (Progress notes included) and its tasks." + _READ_NOTE,
        GetWorkplanArgs,
        WorkplanDetail,
        _get_workplan,
    ),
    ToolSpec(
        "search",
        "Search",
        "Full-text search over workplan and task titles, workplan bodies and Progress notes, and canon "
        "documents: every word must occur; hits best first with a snippet (matches between **)." + _READ_NOTE,
        SearchArgs,
        Page[SearchHit],
        _search,
    ),
    ToolSpec(
        "set_task_status",
        "Set task status",
        "Set a task's status (todo, in-progress, blocked, done, cancelled), optionally with a progress "
        "note." + _WRITE_NOTE,
        SetTaskStatusArgs,
        ToolEvent,
        _set_task_status,
        read_only=False,
    ),
    ToolSpec(
        "add_progress_note",
        "Add progress note",
        "Append a line to a workplan's Progress section, for the workplan or one of its tasks." + _WRITE_NOTE,
        AddProgressNoteArgs,
        ToolEvent,
        _add_progress_note,
        read_only=False,
        idempotent=False,
    ),
    ToolSpec(
        "add_task",
        "Add task",
        "Add a task to a workplan (the next free task id), with an owner and dependencies." + _WRITE_NOTE,
        AddTaskArgs,
        ToolEvent,
        _add_task,
        read_only=False,
        idempotent=False,
    ),
    ToolSpec(
        "list_canon",
        "Canon documents",
        "ADRs, standards, runbooks and notes of every repo, by id; filter by repo, kind, status."
        + _READ_NOTE,
        ListCanonArgs,
        Page[CanonItem],
        _list_canon,
    ),
    ToolSpec(
        "get_canon",
        "Canon document",
        "One canon document with its body; give repo when two repos use the id." + _READ_NOTE,
        GetCanonArgs,
        CanonDetail,
        _get_canon,
    ),
    ToolSpec(
        "fleet_readiness",
        "Fleet readiness",
        "Can production run with every temporary-dev machine switched off, and what stands in the way "
        "(from registry/fleet.toml)." + _READ_NOTE,
        FleetReadinessArgs,
        Readiness,
        _fleet_readiness,
    ),
    ToolSpec(
        "drain_plan",
        "Drain plan",
        "What must leave a machine, wave by wave, with each workload's next step and blockers." + _READ_NOTE,
        DrainPlanArgs,
        DrainPlan,
        _drain_plan,
    ),
)


# calling a tool ------------------------------------------------------------------------------------


def call_tool(
    tools: dict[str, ToolSpec], access: HubAccess, caller: Caller, name: str, arguments: dict[str, Any] | None
) -> types.CallToolResult:
    """Run one tool; bad arguments and hub errors are ``isError`` results with a sentence."""
    spec = tools.get(name)
    if spec is None:
        return _error(f"unknown tool {name!r}; tools/list names the tools")
    try:
        args = msgspec.convert(arguments or {}, spec.args, strict=True)
    except msgspec.ValidationError as error:
        return _error(f"invalid arguments for {name}: {error}")
    try:
        answer = spec.run(access, caller, args)
    except (HubError, *LIBRARY_ERRORS) as error:
        return _error(as_hub_error(error).message)
    except Exception:
        log.exception("MCP tool %s failed", name)
        return _error(SERVER_ERROR)
    data = msgspec.to_builtins(answer)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=msgspec.json.encode(data).decode())],
        structured_content=data,
    )


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


# resources -----------------------------------------------------------------------------------------

WORKPLAN_URI = "statehub://workplans/"
CANON_URI = "statehub://canon/"
_JSON = "application/json"


def list_resources(access: HubAccess, caller: Caller, cursor: str | None) -> types.ListResourcesResult:
    """Workplans by id, then canon documents by id: :data:`RESOURCE_PAGE` a page, the cursor an offset."""
    caller.may_read(None)
    offset = _offset(cursor)
    items: list[types.Resource] = []
    with access.hub.engine.connect() as conn:
        plans = queries.list_workplans(conn, limit=RESOURCE_PAGE, offset=offset)
        items += [
            types.Resource(
                uri=WORKPLAN_URI + p.id,
                name=p.id,
                title=p.title,
                description=f"workplan in {p.repo}: {p.status.value}, {p.task_count} tasks",
                mime_type=_JSON,
            )
            for p in plans.items
        ]
        canon_offset = max(0, offset - plans.total)
        room = RESOURCE_PAGE - len(items)
        canon = queries.list_canon(conn, limit=max(room, 1), offset=canon_offset)
        if room > 0:
            items += [
                types.Resource(
                    uri=f"{CANON_URI}{c.repo}/{c.id}",
                    name=c.id,
                    title=c.title,
                    description=f"{c.kind.value} in {c.repo}: {c.status.value}",
                    mime_type=_JSON,
                )
                for c in canon.items
            ]
    following = offset + len(items)
    more = following < plans.total + canon.total
    return types.ListResourcesResult(resources=items, next_cursor=str(following) if more else None)


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit() or len(cursor) > 12:
        raise BadRequest(f"invalid cursor {cursor[:40]!r}: pass the nextCursor of the previous page")
    return int(cursor)


RESOURCE_TEMPLATES = (
    types.ResourceTemplate(
        uri_template=WORKPLAN_URI + "{id}",
        name="workplan",
        title="Workplan",
        description="A workplan with its body and tasks (the JSON of GET /workplans/{id}).",
        mime_type=_JSON,
    ),
    types.ResourceTemplate(
        uri_template=CANON_URI + "{repo}/{id}",
        name="canon",
        title="Canon document",
        description="A canon document with its body (the JSON of GET /canon/{id}?repo={repo}).",
        mime_type=_JSON,
    ),
)


def read_resource(access: HubAccess, caller: Caller, uri: str) -> types.ReadResourceResult:
    """A workplan or canon document as JSON; NotFound for a URI naming neither."""
    answer: WorkplanDetail | CanonDetail
    if len(uri) > 500:
        raise BadRequest("resource URI longer than 500 characters")
    with access.hub.engine.connect() as conn:
        if uri.startswith(WORKPLAN_URI):
            answer = queries.get_workplan(conn, uri.removeprefix(WORKPLAN_URI))
        elif uri.startswith(CANON_URI) and "/" in uri.removeprefix(CANON_URI):
            repo, _, doc_id = uri.removeprefix(CANON_URI).partition("/")
            answer = queries.get_canon(conn, doc_id, repo)
        else:
            raise NotFound(f"no resource {uri!r}; resources/list and the resource templates name them")
    caller.may_read(answer.repo)
    return types.ReadResourceResult(
        contents=[
            types.TextResourceContents(uri=uri, mime_type=_JSON, text=msgspec.json.encode(answer).decode())
        ]
    )


# the server ----------------------------------------------------------------------------------------


def build_server(
    access: HubAccess, caller_of: CallerOf, tools: tuple[ToolSpec, ...] | None = None
) -> Server[Any]:
    """The MCP server over ``access``; ``caller_of(ctx)`` says who each request acts for. ``tools``
    default: :data:`TOOLS` and, when the hub has claims, :func:`claim_tools`."""
    if tools is None:
        tools = TOOLS + claim_tools()
    by_name = {spec.name: spec for spec in tools}
    listed = types.ListToolsResult(tools=[spec.tool() for spec in tools])

    async def on_list_tools(
        _ctx: ServerRequestContext[Any, Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return listed

    async def on_call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        caller = caller_of(ctx)
        return await anyio.to_thread.run_sync(
            call_tool, by_name, access, caller, params.name, params.arguments
        )

    async def on_list_resources(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        caller = caller_of(ctx)
        cursor = params.cursor if params is not None else None
        return await anyio.to_thread.run_sync(_protocol_errors, list_resources, access, caller, cursor)

    async def on_list_resource_templates(
        _ctx: ServerRequestContext[Any, Any], _params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=list(RESOURCE_TEMPLATES))

    async def on_read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        caller = caller_of(ctx)
        return await anyio.to_thread.run_sync(
            _protocol_errors, read_resource, access, caller, str(params.uri)
        )

    return Server(
        "statehub",
        version=_version(),
        title="State Hub",
        instructions=(
            "Workplans, tasks, canon and fleet state of the hub's repos. Find work with list_ready_tasks "
            "or search, read it with get_task / get_workplan, report with add_progress_note and "
            "set_task_status. Changes become git commits in the workplan files."
        ),
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
        on_list_resources=on_list_resources,
        on_list_resource_templates=on_list_resource_templates,
        on_read_resource=on_read_resource,
    )


def _protocol_errors(func: Callable[..., Any], *args: Any) -> Any:
    """Run a resource request; a hub error becomes an MCP error with the hub's sentence."""
    from mcp.shared.exceptions import MCPError

    try:
        return func(*args)
    except (HubError, *LIBRARY_ERRORS) as error:
        hub_error = as_hub_error(error)
        code = types.INVALID_PARAMS if hub_error.status_code in (400, 404, 409) else types.INTERNAL_ERROR
        raise MCPError(code, hub_error.message) from None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("statehub")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree without metadata
        return "0"
