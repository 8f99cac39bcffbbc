"""``/workplans``, ``/tasks`` and ``/canon``: the read side of plans and standards."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.params import Parameter
from sqlalchemy import Connection

from statehub.cache import queries

Limit = Parameter(ge=1, le=queries.MAX_LIMIT, default=100)
Offset = Parameter(ge=0, default=0)


@get("/workplans", sync_to_thread=False, tags=["workplans"])
def list_workplans(
    conn: Connection,
    repo: str | None = None,
    status: str | None = None,
    owner: str | None = None,
    limit: int = Limit,
    offset: int = Offset,
) -> dict[str, Any]:
    page = queries.list_workplans(conn, repo=repo, status=status, owner=owner, limit=limit, offset=offset)
    return {"items": page.items, "total": page.total}


@get("/workplans/{workplan_id:str}", sync_to_thread=False, tags=["workplans"])
def get_workplan(conn: Connection, workplan_id: str) -> dict[str, Any]:
    return queries.get_workplan(conn, workplan_id)


@get("/tasks", sync_to_thread=False, tags=["tasks"])
def list_tasks(
    conn: Connection,
    repo: str | None = None,
    workplan: str | None = None,
    status: str | None = None,
    owner: str | None = None,
    ready: bool | None = None,
    limit: int = Limit,
    offset: int = Offset,
) -> dict[str, Any]:
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
    return {"items": page.items, "total": page.total}


@get("/tasks/{ref:str}", sync_to_thread=False, tags=["tasks"])
def get_task(conn: Connection, ref: str) -> dict[str, Any]:
    return queries.get_task(conn, ref)


@get("/canon", sync_to_thread=False, tags=["canon"])
def list_canon(
    conn: Connection,
    repo: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    limit: int = Limit,
    offset: int = Offset,
) -> dict[str, Any]:
    page = queries.list_canon(conn, repo=repo, kind=kind, status=status, limit=limit, offset=offset)
    return {"items": page.items, "total": page.total}


@get("/canon/{doc_id:str}", sync_to_thread=False, tags=["canon"])
def get_canon(conn: Connection, doc_id: str, repo: str | None = None) -> dict[str, Any]:
    return queries.get_canon(conn, doc_id, repo)


ROUTES = [list_workplans, get_workplan, list_tasks, get_task, list_canon, get_canon]
