"""Read the cache: the questions people ask of the hub, answered from indexed rows."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import ColumnElement, Connection, Select, Table, and_, bindparam, false, func, select, true

from statehub.answers import Page
from statehub.cache.answers import (
    CanonDetail,
    CanonItem,
    FileError,
    IndexedRepo,
    RepoCounts,
    RepoDetail,
    RepoItem,
    TaskItem,
    WorkplanDetail,
    WorkplanItem,
)
from statehub.cache.fastread import MAX_LIMIT, check_page
from statehub.cache.prepared import (
    PreparedPage,
    decode_json,
    decode_list,
    fetch_all,
    member_of,
    prepare_page,
    struct_columns,
)
from statehub.cache.schema import CANON, DEPENDENCIES, FILE_ERRORS, REPOS, TASKS, WORKPLANS
from statehub.errors import Conflict, NotFound, unknown_repo
from workplans import CanonKind, CanonStatus, TaskStatus, WorkplanStatus, split_task_ref

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable, Sequence

    from statehub.cache.indexer import IndexReport

__all__ = [
    "MAX_LIMIT",
    "dependents",
    "get_canon",
    "get_repo",
    "get_task",
    "get_workplan",
    "indexed_repo",
    "list_canon",
    "list_claimable",
    "list_repos",
    "list_tasks",
    "list_workplans",
    "ready_todo",
    "task_states",
    "tasks_by_ref",
]

_check_page = check_page


def _where(query: Select[Any], *conditions: ColumnElement[bool] | None) -> Select[Any]:
    present = [c for c in conditions if c is not None]
    return query.where(and_(*present)) if present else query


def _value(choice: Any) -> str | None:
    """An enum filter as the text stored in the cache (psycopg would send an Enum by its name)."""
    return None if choice is None else str(choice.value)


# repos -------------------------------------------------------------------------------------------


def _repo_fields(row: Any) -> dict[str, Any]:
    """The manifest fields of a ``repo`` row, by name."""
    return {
        "slug": row.slug,
        "path": row.path,
        "title": row.title,
        "prefixes": decode_list(row.prefixes),
        "default_branch": row.default_branch,
    }


def list_repos(conn: Connection) -> Page[RepoItem]:
    """Every registered repo, by slug, with its file errors and workplans counted."""
    counts: dict[str, int] = {
        row.repo: row.n
        for row in conn.execute(
            select(FILE_ERRORS.c.repo, func.count().label("n")).group_by(FILE_ERRORS.c.repo)
        )
    }
    plans: dict[str, int] = {
        row.repo: row.n
        for row in conn.execute(select(WORKPLANS.c.repo, func.count().label("n")).group_by(WORKPLANS.c.repo))
    }
    items = [
        RepoItem(
            **_repo_fields(row),
            error_count=counts.get(row.slug, 0),
            workplan_count=plans.get(row.slug, 0),
        )
        for row in conn.execute(select(REPOS).order_by(REPOS.c.slug))
    ]
    return Page(items, len(items))


def get_repo(conn: Connection, slug: str) -> RepoDetail:
    """One repo with its counts and every file error; NotFound when ``slug`` is not registered."""
    row = conn.execute(select(REPOS).where(REPOS.c.slug == slug)).first()
    if row is None:
        raise unknown_repo(slug)
    errors = [
        FileError(path=e.path, line=e.line, message=e.message)
        for e in conn.execute(
            select(FILE_ERRORS.c.path, FILE_ERRORS.c.line, FILE_ERRORS.c.message)
            .where(FILE_ERRORS.c.repo == slug)
            .order_by(FILE_ERRORS.c.path, FILE_ERRORS.c.line, FILE_ERRORS.c.id)
        )
    ]
    counts = RepoCounts(
        workplans=_count(conn, WORKPLANS, WORKPLANS.c.repo == slug),
        tasks=_count(conn, TASKS, TASKS.c.repo == slug),
        canon=_count(conn, CANON, CANON.c.repo == slug),
    )
    return RepoDetail(**_repo_fields(row), counts=counts, errors=errors, error_count=len(errors))


def _count(conn: Connection, table: Table, condition: ColumnElement[bool]) -> int:
    found: int = conn.execute(select(func.count()).select_from(table).where(condition)).scalar_one()
    return found


def indexed_repo(conn: Connection, report: IndexReport) -> IndexedRepo:
    """The repo ``report`` indexed, with what indexing did: files seen, parsed, removed."""
    detail = get_repo(conn, report.repo)
    return IndexedRepo(
        **msgspec.structs.asdict(detail), files=report.files, parsed=report.parsed, removed=report.removed
    )


# workplans ---------------------------------------------------------------------------------------

_WORKPLAN_ITEM = struct_columns(
    WorkplanItem,
    id=WORKPLANS.c.id,
    repo=WORKPLANS.c.repo,
    path=WORKPLANS.c.path,
    title=WORKPLANS.c.title,
    status=(WORKPLANS.c.status, member_of(WorkplanStatus)),
    owner=WORKPLANS.c.owner,
    related=(WORKPLANS.c.related, decode_list),
    task_count=WORKPLANS.c.task_count,
)


def list_workplans(
    conn: Connection,
    *,
    repo: str | None = None,
    status: WorkplanStatus | None = None,
    owner: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[WorkplanItem]:
    """Workplans by id, filtered; those whose id two files claim are left out (they are file errors)."""
    _check_page(limit, offset)
    values = {"repo": repo, "status": _value(status), "owner": owner}
    rows, total = _workplans_query(bool(repo), bool(status), bool(owner)).run(conn, values, limit, offset)
    return Page([_WORKPLAN_ITEM.read(r) for r in rows], total)


@cache
def _workplans_query(repo: bool, status: bool, owner: bool) -> PreparedPage:
    return prepare_page(
        lambda: _where(
            select(*_WORKPLAN_ITEM.columns),
            WORKPLANS.c.conflicted == false(),
            WORKPLANS.c.repo == bindparam("repo") if repo else None,
            WORKPLANS.c.status == bindparam("status") if status else None,
            WORKPLANS.c.owner == bindparam("owner") if owner else None,
        ).order_by(WORKPLANS.c.id)
    )


def get_workplan(conn: Connection, workplan_id: str) -> WorkplanDetail:
    """One workplan with its tasks; NotFound, or Conflict when two files claim the id."""
    rows = conn.execute(
        select(*_WORKPLAN_ITEM.columns, WORKPLANS.c.body, WORKPLANS.c.extra, WORKPLANS.c.conflicted).where(
            WORKPLANS.c.id == workplan_id
        )
    ).all()
    if not rows:
        raise NotFound(f"no workplan {workplan_id!r} in any registered repo")
    if len(rows) > 1:
        places = ", ".join(f"{r.repo}/{r.path}" for r in rows)
        raise Conflict(f"workplan id {workplan_id} is claimed by {places}; rename one of them")
    row = rows[0]
    if row.conflicted:
        raise Conflict(f"workplan id {workplan_id} is claimed by more than one file; rename one of them")
    tasks = conn.execute(
        select(*_TASK_ITEM.columns)
        .where(and_(TASKS.c.repo == row.repo, TASKS.c.path == row.path))
        .order_by(TASKS.c.position)
    )
    return WorkplanDetail(
        **msgspec.structs.asdict(_WORKPLAN_ITEM.read(row)),
        body=row.body,
        extra=decode_json(row.extra),
        tasks=[_TASK_ITEM.read(t) for t in tasks],
    )


# tasks -------------------------------------------------------------------------------------------

_TASK_ITEM = struct_columns(
    TaskItem,
    ref=TASKS.c.ref,
    workplan=TASKS.c.workplan_id,
    id=TASKS.c.task_id,
    repo=TASKS.c.repo,
    path=TASKS.c.path,
    title=TASKS.c.title,
    status=(TASKS.c.status, member_of(TaskStatus)),
    owner=TASKS.c.owner,
    depends_on=(TASKS.c.depends_on, decode_list),
    ready=(TASKS.c.ready, bool),
)


@cache
def _tasks_query(repo: bool, workplan: bool, status: bool, owner: bool, ready: bool) -> PreparedPage:
    return prepare_page(
        lambda: _where(
            select(*_TASK_ITEM.columns),
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
    status: TaskStatus | None = None,
    owner: str | None = None,
    ready: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[TaskItem]:
    """Tasks in workplan id, file order, filtered; ``ready`` True for those that can start now."""
    _check_page(limit, offset)
    values = {"repo": repo, "workplan": workplan, "status": _value(status), "owner": owner, "ready": ready}
    prepared = _tasks_query(bool(repo), bool(workplan), bool(status), bool(owner), ready is not None)
    rows, total = prepared.run(conn, values, limit, offset)
    return Page([_TASK_ITEM.read(r) for r in rows], total)


_TASK_BY_REF = select(*_TASK_ITEM.columns, TASKS.c.conflicted).where(TASKS.c.ref == bindparam("ref"))
_STATE_BY_REF = select(TASKS.c.status, TASKS.c.owner).where(
    TASKS.c.ref == bindparam("ref"), TASKS.c.conflicted == false()
)


def get_task(conn: Connection, ref: str) -> TaskItem:
    """One task by reference; NotFound, or Conflict when its workplan id is claimed twice."""
    rows = fetch_all(conn, _TASK_BY_REF, {"ref": ref})
    if not rows:
        raise NotFound(f"no task {ref!r}; a task reference looks like CUST-WP-0054-T02{_unparsed(conn, ref)}")
    if len(rows) > 1 or rows[0][-1]:
        raise Conflict(f"task {ref} belongs to a workplan id claimed by more than one file")
    return _TASK_ITEM.read(rows[0])


def _unparsed(conn: Connection, ref: str) -> str:
    """For a NotFound task: ``; its workplan's file ... cannot be parsed: ...`` when a file named
    after the reference's workplan id has a parse error (its tasks are not indexed until it is
    fixed), else ''. Files are named by their id by convention (docs/format.md), so this is a hint."""
    parts = split_task_ref(ref)
    if parts is None:
        return ""
    found = conn.execute(
        select(FILE_ERRORS.c.repo, FILE_ERRORS.c.path, FILE_ERRORS.c.line, FILE_ERRORS.c.message)
        .where(
            FILE_ERRORS.c.origin == "parse", FILE_ERRORS.c.path.endswith(f"/{parts[0]}.md", autoescape=True)
        )
        .order_by(FILE_ERRORS.c.repo, FILE_ERRORS.c.path, FILE_ERRORS.c.line)
        .limit(1)
    ).first()
    if found is None:
        return ""
    where = f"{found.path}:{found.line}" if found.line is not None else found.path
    return (
        f"; its workplan's file {where} in repo {found.repo} cannot be parsed ({found.message[:300]}), "
        "so its tasks are not served until it is fixed"
    )


def task_states(conn: Connection, refs: Iterable[str]) -> dict[str, tuple[str, str | None]]:
    """ref -> (status, owner) of the unconflicted tasks among ``refs`` (a claim's task and its
    dependencies: a few; one compiled statement each)."""
    found: dict[str, tuple[str, str | None]] = {}
    for ref in refs:
        for status, owner in fetch_all(conn, _STATE_BY_REF, {"ref": ref}):
            found[ref] = (status, owner)
    return found


def list_claimable(
    conn: Connection,
    *,
    excluded: Collection[str],
    claimable: bool = True,
    repo: str | None = None,
    workplan: str | None = None,
    status: TaskStatus | None = None,
    owner: str | None = None,
    ready: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[TaskItem]:
    """Tasks, filtered as :func:`list_tasks`, that a claim would win now (``claimable``) or would not.

    Claimable: status todo and ready in the cache (every dependency done, not in a cycle) and not
    in ``excluded`` (refs the lease store says are held or about to change: ``statehub.claims``).
    The matching rows are read in list order in one statement compiled once (``fetch_all``) and
    sorted out here; only the page's rows become TaskItems: a ``NOT IN`` of a thousand held refs
    made the query 8x slower, and SQLAlchemy's row processing of every task cost more than the
    query (bench/claims.py).
    """
    _check_page(limit, offset)
    values = {
        "repo": repo,
        "workplan": workplan,
        "status": _value(status),
        "owner": owner,
        "ready": ready,
        "todo": TaskStatus.TODO.value,
    }
    shape = (claimable, bool(repo), bool(workplan), bool(status), bool(owner), ready is not None)
    todo = TaskStatus.TODO.value
    positions: list[int] = []
    refs: list[str] = []
    for at, (ref, row_status, row_ready) in enumerate(fetch_all(conn, _claimable_query(*shape), values)):
        if (row_status == todo and bool(row_ready) and ref not in excluded) is claimable:
            positions.append(at)
            refs.append(ref)
    page = refs[offset : offset + limit]
    if not page:
        return Page([], len(refs))
    # The same rows in the same order, whole, up to the page's last; taken by ref, so a re-index
    # between the two reads can only leave a task out, never show one it did not choose.
    upto = positions[offset + len(page) - 1] + 1
    rows = {
        row[0]: row for row in fetch_all(conn, _claimable_rows(*shape), values | {"upto": upto, "skip": 0})
    }
    return Page([_TASK_ITEM.read(rows[ref]) for ref in page if ref in rows], len(refs))


def _claimable_where(
    query: Select[Any], claimable: bool, repo: bool, workplan: bool, status: bool, owner: bool, ready: bool
) -> Select[Any]:
    return _where(
        query,
        TASKS.c.conflicted == false(),
        TASKS.c.repo == bindparam("repo") if repo else None,
        TASKS.c.workplan_id == bindparam("workplan") if workplan else None,
        TASKS.c.status == bindparam("status") if status else None,
        TASKS.c.owner == bindparam("owner") if owner else None,
        TASKS.c.ready == bindparam("ready") if ready else None,
        TASKS.c.status == bindparam("todo") if claimable else None,
        TASKS.c.ready == true() if claimable else None,
    ).order_by(TASKS.c.workplan_id, TASKS.c.position, TASKS.c.ref)


@cache
def _claimable_query(
    claimable: bool, repo: bool, workplan: bool, status: bool, owner: bool, ready: bool
) -> Select[Any]:
    """ref, status, ready of the tasks :func:`list_claimable` sorts out, in list order.
    ``claimable``: only the cache's todo tasks that are ready (the rest can never be claimable),
    so the rows shrink as tasks are claimed."""
    query = select(TASKS.c.ref, TASKS.c.status, TASKS.c.ready)
    return _claimable_where(query, claimable, repo, workplan, status, owner, ready)


@cache
def _claimable_rows(
    claimable: bool, repo: bool, workplan: bool, status: bool, owner: bool, ready: bool
) -> Select[Any]:
    """The same tasks whole (TaskItem columns), in the same order, the first ``upto``."""
    query = select(*_TASK_ITEM.columns)
    where = _claimable_where(query, claimable, repo, workplan, status, owner, ready)
    return where.limit(bindparam("upto")).offset(bindparam("skip"))


def tasks_by_ref(conn: Connection, refs: Sequence[str]) -> dict[str, TaskItem]:
    """The unconflicted tasks among ``refs``, by ref (a ref naming nothing is left out)."""
    found: dict[str, TaskItem] = {}
    for start in range(0, len(refs), 500):
        chunk = list(refs[start : start + 500])
        query = select(*_TASK_ITEM.columns).where(and_(TASKS.c.conflicted == false(), TASKS.c.ref.in_(chunk)))
        for row in conn.execute(query):
            found[row.ref] = _TASK_ITEM.read(row)
    return found


def dependents(conn: Connection, ref: str) -> list[TaskItem]:
    """The unconflicted tasks whose ``depends_on`` names ``ref``, in workplan id, file order."""
    query = (
        select(*_TASK_ITEM.columns)
        .join(
            DEPENDENCIES,
            and_(
                DEPENDENCIES.c.repo == TASKS.c.repo,
                DEPENDENCIES.c.path == TASKS.c.path,
                DEPENDENCIES.c.task_id == TASKS.c.task_id,
            ),
        )
        .where(and_(DEPENDENCIES.c.depends_on == ref, TASKS.c.conflicted == false()))
        .order_by(TASKS.c.workplan_id, TASKS.c.position)
    )
    return [_TASK_ITEM.read(r) for r in conn.execute(query)]


def ready_todo(conn: Connection, repo: str | None = None) -> list[tuple[TaskItem, WorkplanStatus]]:
    """Every unconflicted todo task with every dependency done (``ready``), in ``repo`` when given,
    in workplan id, file order, each with its workplan's status; a task whose workplan is not
    served (conflicted) is left out. What ``statehub next`` chooses from, in one query."""
    where = [TASKS.c.conflicted == false(), TASKS.c.status == TaskStatus.TODO.value, TASKS.c.ready == true()]
    if repo is not None:
        where.append(TASKS.c.repo == repo)
    query = (
        select(*_TASK_ITEM.columns, WORKPLANS.c.status.label("plan_status"))
        .join(WORKPLANS, and_(WORKPLANS.c.id == TASKS.c.workplan_id, WORKPLANS.c.conflicted == false()))
        .where(and_(*where))
        .order_by(TASKS.c.workplan_id, TASKS.c.position)
    )
    return [(_TASK_ITEM.read(r), WorkplanStatus(r.plan_status)) for r in conn.execute(query)]


# canon -------------------------------------------------------------------------------------------

_CANON_ITEM = struct_columns(
    CanonItem,
    id=CANON.c.id,
    repo=CANON.c.repo,
    path=CANON.c.path,
    title=CANON.c.title,
    kind=(CANON.c.kind, member_of(CanonKind)),
    status=(CANON.c.status, member_of(CanonStatus)),
    date=CANON.c.date,
    supersedes=(CANON.c.supersedes, decode_list),
)


@cache
def _canon_query(repo: bool, kind: bool, status: bool) -> PreparedPage:
    return prepare_page(
        lambda: _where(
            select(*_CANON_ITEM.columns),
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
    kind: CanonKind | None = None,
    status: CanonStatus | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Page[CanonItem]:
    """Canon documents by id, then repo, filtered."""
    _check_page(limit, offset)
    values = {"repo": repo, "kind": _value(kind), "status": _value(status)}
    rows, total = _canon_query(bool(repo), bool(kind), bool(status)).run(conn, values, limit, offset)
    return Page([_CANON_ITEM.read(r) for r in rows], total)


def get_canon(conn: Connection, doc_id: str, repo: str | None = None) -> CanonDetail:
    """One canon document; NotFound, or Conflict when the id is ambiguous (``repo`` settles two repos)."""
    query = _where(
        select(*_CANON_ITEM.columns, CANON.c.body, CANON.c.extra).where(CANON.c.id == doc_id),
        CANON.c.repo == repo if repo else None,
    )
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
    return CanonDetail(
        **msgspec.structs.asdict(_CANON_ITEM.read(row)), body=row.body, extra=decode_json(row.extra)
    )
