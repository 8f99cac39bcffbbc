"""``/tasks``: the tasks of every workplan, filtered, and one by reference (a hot path: see workplans)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromQuery

from statehub.answers import Page
from statehub.api.deps import HubDep, Limit, NameQuery, Offset, RepoFilter, TaskRefPath
from statehub.api.errorshape import error_responses
from statehub.cache import queries
from statehub.cache.answers import TaskItem
from workplans import TaskStatus

__all__ = ["TaskController"]


class TaskController(Controller):
    path = "/tasks"
    tags = ["tasks"]

    @get("/", sync_to_thread=False, responses=error_responses(404))
    def list_tasks(
        self,
        hub: HubDep,
        repo: RepoFilter = None,
        workplan: NameQuery = None,
        status: FromQuery[TaskStatus | None] = None,
        owner: NameQuery = None,
        ready: FromQuery[bool | None] = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Page[TaskItem]:
        """Tasks in workplan id, then file order; ``ready=true``: open with every dependency done."""
        with hub.engine.connect() as conn:
            return queries.list_tasks(
                conn,
                repo=repo,
                workplan=workplan,
                status=status,
                owner=owner,
                ready=ready,
                limit=limit,
                offset=offset,
            )

    @get("/{ref:str}", sync_to_thread=False, responses=error_responses(404, 409))
    def get_task(self, hub: HubDep, ref: TaskRefPath) -> TaskItem:
        """One task by reference (``CUST-WP-0054-T02``); 409 when its workplan id is claimed twice."""
        with hub.engine.connect() as conn:
            return queries.get_task(conn, ref)
