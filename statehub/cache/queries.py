"""Read the cache: the questions people ask of the hub, answered from indexed rows."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, bindparam, false, func, select

from statehub.cache.prepared import PreparedPage, decode_json, prepare_page
from statehub.cache.schema import CANON, FILE_ERRORS, REPOS, TASKS, WORKPLANS
from statehub.errors import BadRequest, Conflict, NotFound, invalid_choice
from workplans import CanonKind, CanonStatus, TaskStatus, WorkplanStatus

__all__ = [
    "MAX_LIMIT",
    "Page",
    "get_canon",
    "get_repo",
    "get_task",
    "get_workplan",
    "list_canon",
    "list_repos",
    "list_tasks",
    "list_workplans",
]

MAX_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    total: int


def _check(name: str, value: str | None, enum: type[Any]) -> None:
    if value is not None and value not in {m.value for m in enum}:
        raise invalid_choice(name, value, [m.value for m in enum])


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"invalid limit {limit}: use 1 to {MAX_LIMIT}")
    if offset < 0:
        raise BadRequest(f"invalid offset {offset}: use 0 or more")


def _where(query: Select[Any], *conditions: ColumnElement[bool] | None) -> Select[Any]:
    present = [c for c in conditions if c is not None]
    return query.where(and_(*present)) if present else query


# repos -------------------------------------------------------------------------------------------


def list_repos(conn: Connection) -> Page:
    counts: dict[str, int] = dict(
        conn.execute(select(FILE_ERRORS.c.repo, func.count()).group_by(FILE_ERRORS.c.repo)).all()
    )
    plans: dict[str, int] = dict(
        conn.execute(select(WORKPLANS.c.repo, func.count()).group_by(WORKPLANS.c.repo)).all()
    )
    items = [
        _repo_item(row) | {"error_count": counts.get(row.slug, 0), "workplan_count": plans.get(row.slug, 0)}
        for row in conn.execute(select(REPOS).order_by(REPOS.c.slug))
    ]
    return Page(items, len(items))


def get_repo(conn: Connection, slug: str) -> dict[str, Any]:
    row = conn.execute(select(REPOS).where(REPOS.c.slug == slug)).first()
    if row is None:
        raise NotFound(f"no repo registered as {slug!r}; 'statehub repos list' shows the registered ones")
    errors = [
        {"path": e.path, "line": e.line, "message": e.message}
        for e in conn.execute(
            select(FILE_ERRORS)
            .where(FILE_ERRORS.c.repo == slug)
            .order_by(FILE_ERRORS.c.path, FILE_ERRORS.c.line, FILE_ERRORS.c.id)
        )
    ]
    counts = {
        "workplans": conn.execute(
            select(func.count()).select_from(WORKPLANS).where(WORKPLANS.c.repo == slug)
        ).scalar_one(),
        "tasks": conn.execute(
            select(func.count()).select_from(TASKS).where(TASKS.c.repo == slug)
        ).scalar_one(),
        "canon": conn.execute(
            select(func.count()).select_from(CANON).where(CANON.c.repo == slug)
        ).scalar_one(),
    }
    return _repo_item(row) | {"counts": counts, "errors": errors, "error_count": len(errors)}


def _repo_item(row: Any) -> dict[str, Any]:
    return {
        "slug": row.slug,
        "path": row.path,
        "title": row.title,
        "prefixes": row.prefixes,
        "default_branch": row.default_branch,
    }


# workplans ---------------------------------------------------------------------------------------


def list_workplans(
    conn: Connection,
    *,
    repo: str | None = None,
    status: str | None = None,
    owner: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page:
    _check("status", status, WorkplanStatus)
    _check_page(limit, offset)
    values = {"repo": repo, "status": status, "owner": owner}
    rows, total = _workplans_query(bool(repo), bool(status), bool(owner)).run(conn, values, limit, offset)
    return Page([_workplan_item(r) for r in rows], total)


_WORKPLAN_COLUMNS = (
    WORKPLANS.c.id,
    WORKPLANS.c.repo,
    WORKPLANS.c.path,
    WORKPLANS.c.title,
    WORKPLANS.c.status,
    WORKPLANS.c.owner,
    WORKPLANS.c.related,
    WORKPLANS.c.task_count,
)


@cache
def _workplans_query(repo: bool, status: bool, owner: bool) -> PreparedPage:
    return prepare_page(
        lambda: _where(
            select(*_WORKPLAN_COLUMNS),
            WORKPLANS.c.conflicted == false(),
            WORKPLANS.c.repo == bindparam("repo") if repo else None,
            WORKPLANS.c.status == bindparam("status") if status else None,
            WORKPLANS.c.owner == bindparam("owner") if owner else None,
        ).order_by(WORKPLANS.c.id)
    )


def _workplan_item(row: Any) -> dict[str, Any]:
    plan_id, repo, path, title, status, owner, related, task_count = row[:8]
    return {
        "id": plan_id,
        "repo": repo,
        "path": path,
        "title": title,
        "status": status,
        "owner": owner,
        "related": decode_json(related),
        "task_count": task_count,
    }


def get_workplan(conn: Connection, workplan_id: str) -> dict[str, Any]:
    rows = conn.execute(select(WORKPLANS).where(WORKPLANS.c.id == workplan_id)).all()
    if not rows:
        raise NotFound(f"no workplan {workplan_id!r} in any registered repo")
    if len(rows) > 1:
        places = ", ".join(f"{r.repo}/{r.path}" for r in rows)
        raise Conflict(f"workplan id {workplan_id} is claimed by {places}; rename one of them")
    row = rows[0]
    if row.conflicted:
        raise Conflict(f"workplan id {workplan_id} is claimed by more than one file; rename one of them")
    tasks = conn.execute(
        _task_columns()
        .where(and_(TASKS.c.repo == row.repo, TASKS.c.path == row.path))
        .order_by(TASKS.c.position)
    ).all()
    return _workplan_item(tuple(getattr(row, c.name) for c in _WORKPLAN_COLUMNS)) | {
        "body": row.body,
        "extra": row.extra,
        "tasks": [_task_item(t) for t in tasks],
    }


# tasks -------------------------------------------------------------------------------------------


def _task_columns() -> Select[Any]:
    return select(
        TASKS.c.ref,
        TASKS.c.workplan_id,
        TASKS.c.task_id,
        TASKS.c.repo,
        TASKS.c.path,
        TASKS.c.title,
        TASKS.c.status,
        TASKS.c.owner,
        TASKS.c.depends_on,
        TASKS.c.ready,
    )


def _task_item(row: Any) -> dict[str, Any]:
    ref, workplan_id, task_id, repo, path, title, status, owner, depends_on, ready = row[:10]
    return {
        "ref": ref,
        "workplan": workplan_id,
        "id": task_id,
        "repo": repo,
        "path": path,
        "title": title,
        "status": status,
        "owner": owner,
        "depends_on": decode_json(depends_on),
        "ready": bool(ready),
    }


@cache
def _tasks_query(repo: bool, workplan: bool, status: bool, owner: bool, ready: bool) -> PreparedPage:
    return prepare_page(
        lambda: _where(
            _task_columns(),
            TASKS.c.conflicted == false(),
            TASKS.c.repo == bindparam("repo") if repo else None,
            TASKS.c.workplan_id == bindparam("workplan") if workplan else None,
            TASKS.c.status == bindparam("status") if status else None,
            TASKS.c.owner == bindparam("owner") if owner else None,
            TASKS.c.ready == bindparam("ready") if ready else None,
        ).order_by(TASKS.c.workplan_id, TASKS.c.position)
    )


def list_tasks(
    conn: Connection,
    *,
    repo: str | None = None,
    workplan: str | None = None,
    status: str | None = None,
    owner: str | None = None,
    ready: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page:
    _check("status", status, TaskStatus)
    _check_page(limit, offset)
    values = {"repo": repo, "workplan": workplan, "status": status, "owner": owner, "ready": ready}
    prepared = _tasks_query(bool(repo), bool(workplan), bool(status), bool(owner), ready is not None)
    rows, total = prepared.run(conn, values, limit, offset)
    return Page([_task_item(r) for r in rows], total)


def get_task(conn: Connection, ref: str) -> dict[str, Any]:
    rows = conn.execute(_task_columns().add_columns(TASKS.c.conflicted).where(TASKS.c.ref == ref)).all()
    if not rows:
        raise NotFound(f"no task {ref!r}; a task reference looks like CUST-WP-0054-T02")
    if len(rows) > 1 or rows[0].conflicted:
        raise Conflict(f"task {ref} belongs to a workplan id claimed by more than one file")
    return _task_item(rows[0])


# canon -------------------------------------------------------------------------------------------


_CANON_COLUMNS = (
    CANON.c.id,
    CANON.c.repo,
    CANON.c.path,
    CANON.c.title,
    CANON.c.kind,
    CANON.c.status,
    CANON.c.date,
    CANON.c.supersedes,
)


def _canon_item(row: Any) -> dict[str, Any]:
    doc_id, repo, path, title, kind, status, date, supersedes = row[:8]
    return {
        "id": doc_id,
        "repo": repo,
        "path": path,
        "title": title,
        "kind": kind,
        "status": status,
        "date": date,
        "supersedes": decode_json(supersedes),
    }


@cache
def _canon_query(repo: bool, kind: bool, status: bool) -> PreparedPage:
    return prepare_page(
        lambda: _where(
            select(*_CANON_COLUMNS),
            CANON.c.conflicted == false(),
            CANON.c.repo == bindparam("repo") if repo else None,
            CANON.c.kind == bindparam("kind") if kind else None,
            CANON.c.status == bindparam("status") if status else None,
        ).order_by(CANON.c.id, CANON.c.repo)
    )


def list_canon(
    conn: Connection,
    *,
    repo: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page:
    _check("kind", kind, CanonKind)
    _check("status", status, CanonStatus)
    _check_page(limit, offset)
    values = {"repo": repo, "kind": kind, "status": status}
    rows, total = _canon_query(bool(repo), bool(kind), bool(status)).run(conn, values, limit, offset)
    return Page([_canon_item(r) for r in rows], total)


def get_canon(conn: Connection, doc_id: str, repo: str | None = None) -> dict[str, Any]:
    query = _where(select(CANON).where(CANON.c.id == doc_id), CANON.c.repo == repo if repo else None)
    rows = conn.execute(query).all()
    if not rows:
        where = f" in repo {repo!r}" if repo else ""
        raise NotFound(f"no canon document {doc_id!r}{where}")
    if len(rows) > 1:
        repos = sorted({r.repo for r in rows})
        if len(repos) > 1:
            raise Conflict(f"{doc_id} exists in repos {', '.join(repos)}; ask again with ?repo=<slug>")
        raise Conflict(f"{doc_id} is claimed by more than one file in {repos[0]}; rename one of them")
    row = rows[0]
    return _canon_item(tuple(getattr(row, c.name) for c in _CANON_COLUMNS)) | {
        "body": row.body,
        "extra": row.extra,
    }
