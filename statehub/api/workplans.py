"""``/workplans``, ``/tasks`` and ``/canon``: the read side of plans and standards.

These are the hub's busiest handlers, so each opens its cache connection itself
instead of through the ``conn`` generator dependency, whose cleanup machinery
was a visible share of the server's CPU per request (bench/query.py: hub/bare
capacity for ``/tasks?status=blocked&owner=...`` rose from 0.62 to about 0.7-0.85).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter

from statehub.api.inputbounds import MAX_QUERY_INT
from statehub.cache import queries
from statehub.hub import Hub

Limit = Annotated[int, QueryParameter(ge=1, le=queries.MAX_LIMIT, description="At most this many items.")]
Offset = Annotated[int, QueryParameter(ge=0, le=MAX_QUERY_INT, description="Skip this many items.")]
HubDep = NamedDependency[Hub]


def _page(page: queries.Page) -> dict[str, Any]:
    return {"items": page.items, "total": page.total}


@get("/workplans", sync_to_thread=False, tags=["workplans"])
def list_workplans(
    hub: HubDep,
    repo: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    owner: FromQuery[str | None] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        return _page(
            queries.list_workplans(conn, repo=repo, status=status, owner=owner, limit=limit, offset=offset)
        )


@get("/workplans/{workplan_id:str}", sync_to_thread=False, tags=["workplans"])
def get_workplan(hub: HubDep, workplan_id: FromPath[str]) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        return queries.get_workplan(conn, workplan_id)


@get("/tasks", sync_to_thread=False, tags=["tasks"])
def list_tasks(
    hub: HubDep,
    repo: FromQuery[str | None] = None,
    workplan: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    owner: FromQuery[str | None] = None,
    ready: FromQuery[bool | None] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        return _page(
            queries.list_tasks(
                conn,
                repo=repo,
                workplan=workplan,
                status=status,
                owner=owner,
                ready=ready,
                limit=limit,
                offset=offset,
            )
        )


@get("/tasks/{ref:str}", sync_to_thread=False, tags=["tasks"])
def get_task(hub: HubDep, ref: FromPath[str]) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        return queries.get_task(conn, ref)


@get("/canon", sync_to_thread=False, tags=["canon"])
def list_canon(
    hub: HubDep,
    repo: FromQuery[str | None] = None,
    kind: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        return _page(
            queries.list_canon(conn, repo=repo, kind=kind, status=status, limit=limit, offset=offset)
        )


@get("/canon/{doc_id:str}", sync_to_thread=False, tags=["canon"])
def get_canon(hub: HubDep, doc_id: FromPath[str], repo: FromQuery[str | None] = None) -> dict[str, Any]:
    with hub.engine.connect() as conn:
        return queries.get_canon(conn, doc_id, repo)


ROUTES = [list_workplans, get_workplan, list_tasks, get_task, list_canon, get_canon]
