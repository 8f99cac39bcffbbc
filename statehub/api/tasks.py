"""``/tasks``: the tasks of every workplan, filtered, and one by reference (a hot path: see workplans)."""

from __future__ import annotations

import asyncio
import functools

import msgspec
from litestar import Controller, get
from litestar.params import FromQuery

from statehub import claims
from statehub.answers import Page, with_freshness
from statehub.api.deps import DeskDep, HubDep, Limit, NameQuery, Offset, RepoFilter, TaskRefPath
from statehub.api.errorshape import error_responses
from statehub.cache import queries
from statehub.cache.answers import TaskDetail, TaskItem
from workplans import TaskStatus

__all__ = ["TaskController"]


class TaskController(Controller):
    path = "/tasks"
    tags = ["tasks"]

    @get("/", responses=error_responses(404))
    async def list_tasks(
        self,
        desk: DeskDep,
        repo: RepoFilter = None,
        workplan: NameQuery = None,
        status: FromQuery[TaskStatus | None] = None,
        owner: NameQuery = None,
        ready: FromQuery[bool | None] = None,
        claimable: FromQuery[bool | None] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Page[TaskItem]:
        """Tasks in workplan id, then file order; ``ready=true``: open with every dependency done.

        ``freshness`` says how current the cache is for the repos listed (``repo``, else all).

        ``claimable=true``: what a claim would win now (todo, every dependency done, no live
        lease, nothing pending, not contested: ``statehub.claims``); ``claimable=false``: the
        rest. The other filters narrow either.
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
                    ready=ready,
                    limit=limit,
                    offset=offset,
                )
            )
            return with_freshness(page, hub.freshness([repo] if repo else None))
        # On the event loop, as before: a thread hop cost this hot path (bench/query.py).
        with hub.engine.connect() as conn:
            page = queries.list_tasks(
                conn,
                repo=repo,
                workplan=workplan,
                status=status,
                owner=owner,
                ready=ready,
                limit=limit,
                offset=offset,
            )
        return with_freshness(page, hub.freshness([repo] if repo else None))

    @get("/{ref:str}", sync_to_thread=False, responses=error_responses(404, 409))
    def get_task(self, hub: HubDep, ref: TaskRefPath) -> TaskDetail:
        """One task by reference (``CUST-WP-0054-T02``); 409 when its workplan id is claimed twice.
        ``freshness`` says how current the cache is for its repo."""
        with hub.engine.connect() as conn:
            task = queries.get_task(conn, ref)
        return TaskDetail(**msgspec.structs.asdict(task), freshness=hub.freshness([task.repo]))
