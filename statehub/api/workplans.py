"""``/workplans``: the workplans of every registered repo, and one with its tasks.

These and ``/tasks`` and ``/canon`` are the hub's busiest handlers: each opens its
cache connection itself (see ``statehub.api.deps``) and runs on the event loop
(``sync_to_thread=False``: a cache read takes well under a millisecond).
"""

from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.params import FromQuery

from statehub.answers import Page, with_freshness
from statehub.api.deps import HubDep, Limit, NameQuery, Offset, RepoFilter, WorkplanIdPath
from statehub.api.errorshape import error_responses
from statehub.cache import queries
from statehub.cache.answers import WorkplanDetail, WorkplanItem
from workplans import WorkplanStatus

__all__ = ["WorkplanController"]


class WorkplanController(Controller):
    path = "/workplans"
    tags = ["workplans"]

    @get("/", sync_to_thread=False, responses=error_responses(404))
    def list_workplans(
        self,
        hub: HubDep,
        repo: RepoFilter = None,
        status: FromQuery[WorkplanStatus | None] = None,
        owner: NameQuery = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> Page[WorkplanItem]:
        """Workplans by id; a workplan id claimed by two files is left out (it is a file error)."""
        with hub.engine.connect() as conn:
            page = queries.list_workplans(
                conn, repo=repo, status=status, owner=owner, limit=limit, offset=offset
            )
        return with_freshness(page, hub.freshness([repo] if repo else None))

    @get("/{workplan_id:str}", sync_to_thread=False, responses=error_responses(404, 409))
    def get_workplan(self, hub: HubDep, workplan_id: WorkplanIdPath) -> WorkplanDetail:
        """One workplan with its body and tasks; 409 when two files claim its id."""
        with hub.engine.connect() as conn:
            plan = queries.get_workplan(conn, workplan_id)
        return msgspec.structs.replace(plan, freshness=hub.freshness([plan.repo]))
