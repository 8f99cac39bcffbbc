"""``/workplans``: the workplans of every registered repo, and one with its tasks.

These and ``/tasks`` and ``/canon`` are the hub's busiest handlers: each opens its
cache connection itself (see ``statehub.api.deps``) and runs on the event loop
(``sync_to_thread=False``: a cache read takes well under a millisecond).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import QueryParameter

from statehub.answers import Page, with_freshness
from statehub.api.deps import (
    Descending,
    HubDep,
    Limit,
    NameQuery,
    Offset,
    OwnerPrefix,
    RepoFilter,
    WorkplanIdPath,
)
from statehub.api.errorshape import error_responses
from statehub.cache import queries
from statehub.cache.answers import WorkplanDetail, WorkplanItem, WorkplanOverview
from workplans import WorkplanStatus

__all__ = ["WorkplanController"]

StatusFilter = Annotated[
    list[WorkplanStatus] | None,
    QueryParameter(
        description="Only workplans in one of these statuses; repeat it for several (``&status=draft``).",
        max_items=len(WorkplanStatus),
    ),
]
WorkplanSortQuery = Annotated[
    queries.WorkplanSort | None, QueryParameter(description="Sort by this field, then by id (the default).")
]


class WorkplanController(Controller):
    path = "/workplans"
    tags = ["workplans"]

    @get("/", sync_to_thread=False, responses=error_responses(404))
    def list_workplans(
        self,
        hub: HubDep,
        repo: RepoFilter = None,
        status: StatusFilter = None,
        owner: NameQuery = None,
        owner_prefix: OwnerPrefix = None,
        sort: WorkplanSortQuery = None,
        desc: Descending = False,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Page[WorkplanItem]:
        """Workplans by id (or by ``sort``, then id); a workplan id claimed by two files is left out
        (it is a file error). ``total`` counts every match, not only the page."""
        with hub.reads.connect() as conn:
            page = queries.list_workplans(
                conn,
                repo=repo,
                status=status,
                owner=owner,
                owner_prefix=owner_prefix,
                sort=sort or "id",
                descending=desc,
                limit=limit,
                offset=offset,
            )
        return with_freshness(page, hub.freshness([repo] if repo else None))

    @get("/{workplan_id:str}", sync_to_thread=False, responses=error_responses(404, 409))
    def get_workplan(self, hub: HubDep, workplan_id: WorkplanIdPath) -> WorkplanDetail:
        """One workplan with its body and tasks; 409 when two files claim its id."""
        with hub.reads.connect() as conn:
            plan = queries.get_workplan(conn, workplan_id)
        return msgspec.structs.replace(plan, freshness=hub.freshness([plan.repo]))

    @get("/{workplan_id:str}/overview", sync_to_thread=False, responses=error_responses(404, 409))
    def workplan_overview(self, hub: HubDep, workplan_id: WorkplanIdPath) -> WorkplanOverview:
        """The workplan, its progress (tasks by status, percent done of those not cancelled) and
        the dependency links of its tasks that leave it, to or from tasks of other workplans in
        any repo: what its dependency graph needs besides its own tasks."""
        with hub.reads.connect() as conn:
            return queries.workplan_overview(conn, workplan_id)
