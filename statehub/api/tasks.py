"""``/tasks``: the tasks of every workplan, filtered, and one by reference (a hot path: see workplans)."""

from __future__ import annotations

import asyncio
import functools
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import FromQuery, QueryParameter

from statehub import claims
from statehub.answers import Page, with_freshness
from statehub.api.deps import (
    Descending,
    DeskDep,
    HubDep,
    Limit,
    NameQuery,
    Offset,
    OwnerPrefix,
    RepoFilter,
    TaskRefPath,
)
from statehub.api.errorshape import error_responses
from statehub.cache import queries
from statehub.cache.answers import TaskDetail, TaskItem, TaskShown
from workplans import TaskStatus

__all__ = ["StatusFilter", "TaskController"]

StatusFilter = Annotated[
    list[TaskStatus] | None,
    QueryParameter(
        description="Only tasks in one of these statuses; repeat it for several (``&status=done``).",
        max_items=len(TaskStatus),
    ),
]
TaskSortQuery = Annotated[
    queries.TaskSort | None,
    QueryParameter(description="Sort by this field, then by workplan id and file order (the default)."),
]


class TaskController(Controller):
    path = "/tasks"
    tags = ["tasks"]

    @get("/", responses=error_responses(404))
    async def list_tasks(
        self,
        desk: DeskDep,
        repo: RepoFilter = None,
        workplan: NameQuery = None,
        status: StatusFilter = None,
        owner: NameQuery = None,
        owner_prefix: OwnerPrefix = None,
        ready: FromQuery[bool | None] = None,
        claimable: FromQuery[bool | None] = None,
        sort: TaskSortQuery = None,
        desc: Descending = False,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Page[TaskItem]:
        """Tasks in workplan id, then file order (or by ``sort``); ``ready=true``: open with every
        dependency done. ``total`` counts every match, not only the page.

        ``freshness`` says how current the cache is for the repos listed (``repo``, else all).

        ``claimable=true``: what a claim would win now (todo, every dependency done, no live
        lease, nothing pending, not contested: ``statehub.claims``); ``claimable=false``: the
        rest. The other filters narrow either, and ``sort`` orders either.
        """
        # One dependency, the hub taken from the desk: Litestar resolves two independent ones in an
        # anyio task group, a task each (5% of the server's GIL time under bench/claims.py).
        hub = desk.hub
        if claimable is not None:
            # In a worker thread: it reads the lease store and the cache, while agents claim.
            page = await asyncio.to_thread(
                functools.partial(
                    claims.list_claimable,
                    desk,
                    claimable=claimable,
                    repo=repo,
                    workplan=workplan,
                    status=status,
                    owner=owner,
                    owner_prefix=owner_prefix,
                    ready=ready,
                    sort=sort or "workplan",
                    descending=desc,
                    limit=limit,
                    offset=offset,
                )
            )
            return with_freshness(page, hub.freshness([repo] if repo else None))
        # On the event loop, as before: a thread hop cost this hot path (bench/query.py).
        with hub.reads.connect() as conn:
            page = queries.list_tasks(
                conn,
                repo=repo,
                workplan=workplan,
                status=status,
                owner=owner,
                owner_prefix=owner_prefix,
                ready=ready,
                sort=sort or "workplan",
                descending=desc,
                limit=limit,
                offset=offset,
            )
        return with_freshness(page, hub.freshness([repo] if repo else None))

    @get("/{ref:str}", sync_to_thread=False, responses=error_responses(404, 409))
    def get_task(self, hub: HubDep, ref: TaskRefPath) -> TaskDetail:
        """One task by reference (``CUST-WP-0054-T02``); 409 when its workplan id is claimed twice.
        ``freshness`` says how current the cache is for its repo."""
        with hub.reads.connect() as conn:
            task = queries.get_task(conn, ref)
        return TaskDetail(**msgspec.structs.asdict(task), freshness=hub.freshness([task.repo]))

    @get("/{ref:str}/links", sync_to_thread=False, responses=error_responses(404, 409))
    def task_links(self, hub: HubDep, ref: TaskRefPath) -> TaskShown:
        """The task with what it depends on (each reference resolved hub-wide, ``task`` null when it
        names no task the cache holds) and what depends on it (any workplan, any repo); 409 as
        ``GET /tasks/{ref}``. Its events and their commits: ``GET /events?task={ref}``."""
        with hub.reads.connect() as conn:
            return queries.task_shown(conn, ref)
