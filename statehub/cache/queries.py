"""Read the cache: the questions people ask of the hub, answered from indexed rows."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Select,
    Table,
    and_,
    bindparam,
    case,
    false,
    func,
    literal_column,
    select,
    true,
)

from statehub.answers import Page
from statehub.cache.answers import (
    CanonDetail,
    CanonItem,
    Dependency,
    FileError,
    IndexedRepo,
    OutsideDependent,
    RepoCounts,
    RepoDetail,
    RepoItem,
    TaskItem,
    TaskShown,
    WorkplanDetail,
    WorkplanItem,
    WorkplanOverview,
    WorkplanProgress,
)
from statehub.cache.fastread import MAX_LIMIT, check_page
from statehub.cache.generation import read_generation
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
    "CandidateMemo",
    "CanonSort",
    "TaskSort",
    "WorkplanSort",
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
    "next_candidates",
    "task_shown",
    "task_states",
    "tasks_by_ref",
    "workplan_overview",
]

_check_page = check_page


def _where(query: Select[Any], *conditions: ColumnElement[bool] | None) -> Select[Any]:
    present = [c for c in conditions if c is not None]
    return query.where(and_(*present)) if present else query


def _value(choice: Any) -> str | None:
    """An enum filter as the text stored in the cache (psycopg would send an Enum by its name)."""
    return None if choice is None else str(choice.value)


def _values(choice: Any) -> tuple[str, ...]:
    """A status filter (one enum member, several, or None) as the distinct texts stored, in order."""
    if choice is None:
        return ()
    members = [choice] if isinstance(choice, Enum) else list(choice)
    return tuple(sorted({str(m.value) for m in members}))


def _one_of(column: ColumnElement[Any], name: str, count: int) -> ColumnElement[bool] | None:
    """``column IN (:name_0, ...)`` with ``count`` named parameters (one compiled shape per count)."""
    if not count:
        return None
    return column.in_([bindparam(f"{name}_{i}") for i in range(count)])


def _bind_values(name: str, texts: tuple[str, ...]) -> dict[str, str]:
    return {f"{name}_{i}": text for i, text in enumerate(texts)}


def _starts_with(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column`` begins with the text bound as ``name`` (its length bound as ``name_len``).

    ``substr`` rather than ``LIKE``: no wildcard to escape, case-sensitive on SQLite and
    PostgreSQL alike."""
    start: ColumnElement[int] = literal_column(
        "1"
    )  # not a bound value: every parameter of a prepared page is named
    return func.substr(column, start, bindparam(f"{name}_len", type_=Integer)) == bindparam(name)


def _ordered(
    query: Select[Any],
    first: ColumnElement[Any] | None,
    then: tuple[ColumnElement[Any], ...],
    descending: bool,
) -> Select[Any]:
    """``query`` ordered by ``first`` (if any), then ``then``: all ascending or all descending."""
    keys = ((first,) if first is not None else ()) + then
    return query.order_by(*(k.desc() if descending else k.asc() for k in keys))


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


def repos_summary(conn: Connection, slugs: Sequence[str]) -> tuple[RepoCounts, list[tuple[str, FileError]]]:
    """The counts of ``slugs`` summed, and their file errors as (slug, error): repo by repo in
    ``slugs`` order, each repo's in :func:`get_repo`'s order. Four queries, whatever the number
    of repos (``statehub rebuild``'s summary)."""
    wanted = set(slugs)
    totals = []
    for table in (WORKPLANS, TASKS, CANON):
        per_repo = conn.execute(select(table.c.repo, func.count()).group_by(table.c.repo)).all()
        totals.append(sum(n for repo, n in per_repo if repo in wanted))
    found: dict[str, list[FileError]] = {}
    for e in conn.execute(
        select(FILE_ERRORS.c.repo, FILE_ERRORS.c.path, FILE_ERRORS.c.line, FILE_ERRORS.c.message).order_by(
            FILE_ERRORS.c.repo, FILE_ERRORS.c.path, FILE_ERRORS.c.line, FILE_ERRORS.c.id
        )
    ):
        if e.repo in wanted:
            found.setdefault(e.repo, []).append(FileError(path=e.path, line=e.line, message=e.message))
    errors = [(slug, error) for slug in dict.fromkeys(slugs) for error in found.get(slug, ())]
    return RepoCounts(workplans=totals[0], tasks=totals[1], canon=totals[2]), errors


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


WorkplanSort = Literal["id", "title", "status", "owner", "repo", "task_count"]
"""What ``GET /workplans`` sorts by (then by id)."""

_WORKPLAN_SORT: dict[str, ColumnElement[Any] | None] = {
    "id": None,
    "title": WORKPLANS.c.title,
    "status": WORKPLANS.c.status,
    "owner": WORKPLANS.c.owner,
    "repo": WORKPLANS.c.repo,
    "task_count": WORKPLANS.c.task_count,
}


def list_workplans(
    conn: Connection,
    *,
    repo: str | None = None,
    status: WorkplanStatus | Collection[WorkplanStatus] | None = None,
    owner: str | None = None,
    owner_prefix: str | None = None,
    sort: WorkplanSort = "id",
    descending: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> Page[WorkplanItem]:
    """Workplans by id (or by ``sort``, then id), filtered; those whose id two files claim are left
    out (they are file errors). ``status`` may name several (any of them); ``owner_prefix`` keeps
    owners that begin with it (case-sensitive)."""
    _check_page(limit, offset)
    statuses = _values(status)
    values: dict[str, Any] = {"repo": repo, "owner": owner, **_bind_values("status", statuses)}
    if owner_prefix:
        values |= {"owner_prefix": owner_prefix, "owner_prefix_len": len(owner_prefix)}
    prepared = _workplans_query(bool(repo), len(statuses), bool(owner), bool(owner_prefix), sort, descending)
    rows, total = prepared.run(conn, values, limit, offset)
    return Page([_WORKPLAN_ITEM.read(r) for r in rows], total)


@cache
def _workplans_query(
    repo: bool, statuses: int, owner: bool, owner_prefix: bool, sort: str, descending: bool
) -> PreparedPage:
    return prepare_page(
        lambda: _ordered(
            _where(
                select(*_WORKPLAN_ITEM.columns),
                WORKPLANS.c.conflicted == false(),
                WORKPLANS.c.repo == bindparam("repo") if repo else None,
                _one_of(WORKPLANS.c.status, "status", statuses),
                WORKPLANS.c.owner == bindparam("owner") if owner else None,
                _starts_with(WORKPLANS.c.owner, "owner_prefix") if owner_prefix else None,
            ),
            _WORKPLAN_SORT[sort],
            (WORKPLANS.c.id,),
            descending,
        )
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


TaskSort = Literal["workplan", "ref", "title", "status", "owner", "repo", "ready"]
"""What ``GET /tasks`` sorts by (then by workplan id and file order); ``workplan`` is that order."""

_TASK_SORT: dict[str, ColumnElement[Any] | None] = {
    "workplan": None,
    "ref": TASKS.c.ref,
    "title": TASKS.c.title,
    "status": TASKS.c.status,
    "owner": TASKS.c.owner,
    "repo": TASKS.c.repo,
    "ready": TASKS.c.ready,
}


@cache
def _tasks_query(
    repo: bool,
    workplan: bool,
    statuses: int,
    owner: bool,
    owner_prefix: bool,
    ready: bool,
    sort: str,
    descending: bool,
) -> PreparedPage:
    return prepare_page(
        lambda: _ordered(
            _where(
                select(*_TASK_ITEM.columns),
                TASKS.c.conflicted == false(),
                TASKS.c.repo == bindparam("repo") if repo else None,
                TASKS.c.workplan_id == bindparam("workplan") if workplan else None,
                _one_of(TASKS.c.status, "status", statuses),
                TASKS.c.owner == bindparam("owner") if owner else None,
                _starts_with(TASKS.c.owner, "owner_prefix") if owner_prefix else None,
                TASKS.c.ready == bindparam("ready") if ready else None,
            ),
            _TASK_SORT[sort],
            (TASKS.c.workplan_id, TASKS.c.position),
            descending,
        )
    )


def list_tasks(
    conn: Connection,
    *,
    repo: str | None = None,
    workplan: str | None = None,
    status: TaskStatus | Collection[TaskStatus] | None = None,
    owner: str | None = None,
    owner_prefix: str | None = None,
    ready: bool | None = None,
    sort: TaskSort = "workplan",
    descending: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> Page[TaskItem]:
    """Tasks in workplan id, file order (or by ``sort``, then that order), filtered; ``ready`` True
    for those that can start now. ``status`` may name several (any of them); ``owner_prefix`` keeps
    owners that begin with it (case-sensitive)."""
    _check_page(limit, offset)
    statuses = _values(status)
    values: dict[str, Any] = {
        "repo": repo,
        "workplan": workplan,
        "owner": owner,
        "ready": ready,
        **_bind_values("status", statuses),
    }
    if owner_prefix:
        values |= {"owner_prefix": owner_prefix, "owner_prefix_len": len(owner_prefix)}
    prepared = _tasks_query(
        bool(repo),
        bool(workplan),
        len(statuses),
        bool(owner),
        bool(owner_prefix),
        ready is not None,
        sort,
        descending,
    )
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


class CandidateMemo:
    """What :func:`list_claimable` read from the cache, remembered per cache generation.

    The claimable list is asked before every claim attempt, and the cache's rows change only
    when something is indexed (``statehub.cache.generation``); the lease store's exclusions are
    applied after, per request, so an answer drawn from here is as exact as one read anew.
    Kept: the candidate rows (ref, status, ready) of at most ``shapes`` filter combinations, each
    of at most ``max_rows`` rows (a bigger answer is read every time), and the TaskItems of the
    pages served from them. Everything goes when the generation read differs. Thread-safe.
    """

    def __init__(self, shapes: int = 16, max_rows: int = 20_000) -> None:
        self.shapes = shapes
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._generation: str | None = None
        self._entries: dict[tuple[Any, ...], _Candidates] = {}

    def get(self, generation: str | None, key: tuple[Any, ...]) -> _Candidates | None:
        with self._lock:
            if generation is None or generation != self._generation:
                return None
            return self._entries.get(key)

    def put(self, generation: str | None, key: tuple[Any, ...], found: _Candidates) -> None:
        if generation is None or len(found.order) > self.max_rows:
            return
        with self._lock:
            if generation != self._generation:
                self._generation = generation
                self._entries = {}
            if len(self._entries) >= self.shapes:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = found


class _Candidates:
    """The rows :func:`list_claimable` sorts out, with what every request asks of them worked out once."""

    __slots__ = ("eligible", "eligible_set", "items", "order", "position")

    def __init__(self, rows: Sequence[tuple[str, str, Any]]) -> None:
        todo = TaskStatus.TODO.value
        self.order = [row[0] for row in rows]
        """Every matching ref, in list order."""
        self.position = {ref: at for at, ref in enumerate(self.order)}
        self.eligible = [ref for ref, status, ready in rows if status == todo and bool(ready)]
        """The refs the cache says are todo and ready, in list order: claimable unless excluded."""
        self.eligible_set = frozenset(self.eligible)
        self.items: dict[str, TaskItem] = {}
        """The TaskItems of refs served on a page so far."""

    def chosen(self, excluded: Collection[str], claimable: bool, upto: int) -> tuple[list[str], int]:
        """The first ``upto`` refs a claim would win (``claimable``) or would not, and how many in all."""
        blocked = len(self.eligible_set.intersection(excluded))
        refs: list[str] = []
        if claimable:
            for ref in self.eligible:
                if len(refs) >= upto:
                    break
                if ref not in excluded:
                    refs.append(ref)
            return refs, len(self.eligible) - blocked
        eligible = self.eligible_set
        for ref in self.order:
            if len(refs) >= upto:
                break
            if ref not in eligible or ref in excluded:
                refs.append(ref)
        return refs, len(self.order) - len(self.eligible) + blocked


def list_claimable(
    conn: Connection,
    *,
    excluded: Collection[str],
    claimable: bool = True,
    repo: str | None = None,
    workplan: str | None = None,
    status: TaskStatus | Collection[TaskStatus] | None = None,
    owner: str | None = None,
    owner_prefix: str | None = None,
    ready: bool | None = None,
    sort: TaskSort = "workplan",
    descending: bool = False,
    limit: int = 100,
    offset: int = 0,
    memo: CandidateMemo | None = None,
) -> Page[TaskItem]:
    """Tasks, filtered and ordered as :func:`list_tasks`, that a claim would win now
    (``claimable``) or would not.

    Claimable: status todo and ready in the cache (every dependency done, not in a cycle) and not
    in ``excluded`` (refs the lease store says are held or about to change: ``statehub.claims``).
    The matching rows are read in list order in one statement compiled once (``fetch_all``) and
    sorted out here; only the page's rows become TaskItems: a ``NOT IN`` of a thousand held refs
    made the query 8x slower, and SQLAlchemy's row processing of every task cost more than the
    query (bench/claims.py). With a ``memo``, the rows and TaskItems read are remembered until
    the cache's generation changes (read first: rows read after it are at least as new).
    """
    _check_page(limit, offset)
    statuses = _values(status)
    values: dict[str, Any] = {
        "repo": repo,
        "workplan": workplan,
        "owner": owner,
        "ready": ready,
        "todo": TaskStatus.TODO.value,
        **_bind_values("status", statuses),
    }
    if owner_prefix:
        values |= {"owner_prefix": owner_prefix, "owner_prefix_len": len(owner_prefix)}
    shape = _ClaimableShape(
        claimable,
        bool(repo),
        bool(workplan),
        len(statuses),
        bool(owner),
        bool(owner_prefix),
        ready is not None,
        sort,
        descending,
    )
    key = (shape, repo, workplan, tuple(statuses), owner, owner_prefix, ready)
    generation = read_generation(conn) if memo is not None else None
    found = memo.get(generation, key) if memo is not None else None
    if found is None:
        found = _Candidates(fetch_all(conn, _claimable_query(shape), values))
        if memo is not None:
            memo.put(generation, key, found)
    refs, total = found.chosen(excluded, claimable, offset + limit)
    page = refs[offset:]
    if not page:
        return Page([], total)
    items = found.items
    if any(ref not in items for ref in page):
        # The same rows in the same order, whole, up to the page's last; taken by ref, so a
        # re-index between the two reads can only leave a task out, never show one it did not choose.
        upto = found.position[page[-1]] + 1
        for row in fetch_all(conn, _claimable_rows(shape), values | {"upto": upto, "skip": 0}):
            if row[0] not in items:
                items[row[0]] = _TASK_ITEM.read(row)
    return Page([items[ref] for ref in page if ref in items], total)


@dataclass(frozen=True, slots=True)
class _ClaimableShape:
    """Which filters a claimable list has (one compiled statement per shape)."""

    claimable: bool
    repo: bool
    workplan: bool
    statuses: int
    owner: bool
    owner_prefix: bool
    ready: bool
    sort: str
    descending: bool


def _claimable_where(query: Select[Any], shape: _ClaimableShape) -> Select[Any]:
    return _ordered(
        _where(
            query,
            TASKS.c.conflicted == false(),
            TASKS.c.repo == bindparam("repo") if shape.repo else None,
            TASKS.c.workplan_id == bindparam("workplan") if shape.workplan else None,
            _one_of(TASKS.c.status, "status", shape.statuses),
            TASKS.c.owner == bindparam("owner") if shape.owner else None,
            _starts_with(TASKS.c.owner, "owner_prefix") if shape.owner_prefix else None,
            TASKS.c.ready == bindparam("ready") if shape.ready else None,
            TASKS.c.status == bindparam("todo") if shape.claimable else None,
            TASKS.c.ready == true() if shape.claimable else None,
        ),
        _TASK_SORT[shape.sort],
        (TASKS.c.workplan_id, TASKS.c.position, TASKS.c.ref),
        shape.descending,
    )


@cache
def _claimable_query(shape: _ClaimableShape) -> Select[Any]:
    """ref, status, ready of the tasks :func:`list_claimable` sorts out, in list order.
    ``claimable``: only the cache's todo tasks that are ready (the rest can never be claimable),
    so the rows shrink as tasks are claimed."""
    return _claimable_where(select(TASKS.c.ref, TASKS.c.status, TASKS.c.ready), shape)


@cache
def _claimable_rows(shape: _ClaimableShape) -> Select[Any]:
    """The same tasks whole (TaskItem columns), in the same order, the first ``upto``."""
    where = _claimable_where(select(*_TASK_ITEM.columns), shape)
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


def task_shown(conn: Connection, ref: str) -> TaskShown:
    """The task ``ref`` with what it depends on (resolved hub-wide) and what depends on it;
    NotFound or Conflict as :func:`get_task`."""
    task = get_task(conn, ref)
    found = tasks_by_ref(conn, task.depends_on)
    return TaskShown(
        task=task,
        dependencies=[Dependency(d, found.get(d)) for d in task.depends_on],
        dependents=dependents(conn, ref),
    )


def workplan_overview(conn: Connection, workplan_id: str) -> WorkplanOverview:
    """The workplan with its progress and the dependency links of its tasks that leave it (to or
    from tasks of other workplans, any repo); NotFound or Conflict as :func:`get_workplan`."""
    plan = get_workplan(conn, workplan_id)
    own = {t.ref for t in plan.tasks}
    outside_refs = list(dict.fromkeys(d for t in plan.tasks for d in t.depends_on if d not in own))
    found = tasks_by_ref(conn, outside_refs)
    query = (
        select(DEPENDENCIES.c.depends_on, *_TASK_ITEM.columns)
        .join(
            DEPENDENCIES,
            and_(
                DEPENDENCIES.c.repo == TASKS.c.repo,
                DEPENDENCIES.c.path == TASKS.c.path,
                DEPENDENCIES.c.task_id == TASKS.c.task_id,
            ),
        )
        .where(
            and_(
                DEPENDENCIES.c.depends_on.in_(sorted(own)) if own else false(),
                TASKS.c.workplan_id != workplan_id,
                TASKS.c.conflicted == false(),
            )
        )
        .order_by(TASKS.c.workplan_id, TASKS.c.position)
    )
    outside_dependents = [
        OutsideDependent(on=row[0], task=_TASK_ITEM.read(row[1:])) for row in conn.execute(query)
    ]
    return WorkplanOverview(
        workplan=plan,
        progress=WorkplanProgress.of(plan.tasks),
        outside=[Dependency(ref, found.get(ref)) for ref in outside_refs],
        dependents=outside_dependents,
    )


_NEXT_PLAN_STATUSES = (WorkplanStatus.ACTIVE.value, WorkplanStatus.DRAFT.value, WorkplanStatus.BLOCKED.value)
"""Workplans whose tasks ``statehub next`` offers, best first; done and cancelled ones offer none."""


def next_candidates(
    conn: Connection, actor: str, repo: str | None = None, limit: int = 1
) -> tuple[list[tuple[TaskItem, WorkplanStatus]], int]:
    """The best ``limit`` tasks ``actor`` can take now, each with its workplan's status, and how
    many there are in all: unconflicted, todo, every dependency done (``ready``), in ``repo`` when
    given, in a served workplan that is active, draft or blocked. Best first: the actor's own, then
    unowned, then others'; active workplans, then draft, then blocked; then workplan id and file
    order (canon/ADR-033). Ranked in SQL, so only ``limit`` rows are read."""
    where = [
        TASKS.c.conflicted == false(),
        TASKS.c.status == TaskStatus.TODO.value,
        TASKS.c.ready == true(),
        WORKPLANS.c.status.in_(_NEXT_PLAN_STATUSES),
    ]
    if repo is not None:
        where.append(TASKS.c.repo == repo)
    joined = TASKS.join(
        WORKPLANS, and_(WORKPLANS.c.id == TASKS.c.workplan_id, WORKPLANS.c.conflicted == false())
    )
    total = conn.execute(select(func.count()).select_from(joined).where(and_(*where))).scalar_one()
    owner_rank = case((TASKS.c.owner == actor, 0), (TASKS.c.owner.is_(None), 1), else_=2)
    plan_rank = case(
        {status: rank for rank, status in enumerate(_NEXT_PLAN_STATUSES)}, value=WORKPLANS.c.status
    )
    query = (
        select(*_TASK_ITEM.columns, WORKPLANS.c.status.label("plan_status"))
        .select_from(joined)
        .where(and_(*where))
        .order_by(owner_rank, plan_rank, TASKS.c.workplan_id, TASKS.c.position)
        .limit(limit)
    )
    rows = [(_TASK_ITEM.read(r), WorkplanStatus(r.plan_status)) for r in conn.execute(query)]
    return rows, int(total)


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
def _canon_query(repo: bool, kind: bool, status: bool, sort: str, descending: bool) -> PreparedPage:
    return prepare_page(
        lambda: _ordered(
            _where(
                select(*_CANON_ITEM.columns),
                CANON.c.conflicted == false(),
                CANON.c.repo == bindparam("repo") if repo else None,
                CANON.c.kind == bindparam("kind") if kind else None,
                CANON.c.status == bindparam("status") if status else None,
            ),
            _CANON_SORT[sort],
            (CANON.c.id, CANON.c.repo),
            descending,
        )
    )


CanonSort = Literal["id", "title", "kind", "status", "date", "repo"]
"""What ``GET /canon`` sorts by (then by id and repo)."""

_CANON_SORT: dict[str, ColumnElement[Any] | None] = {
    "id": None,
    "title": CANON.c.title,
    "kind": CANON.c.kind,
    "status": CANON.c.status,
    "date": CANON.c.date,
    "repo": CANON.c.repo,
}


def list_canon(
    conn: Connection,
    *,
    repo: str | None = None,
    kind: CanonKind | None = None,
    status: CanonStatus | None = None,
    sort: CanonSort = "id",
    descending: bool = False,
    limit: int = 100,
    offset: int = 0,
) -> Page[CanonItem]:
    """Canon documents by id, then repo (or by ``sort``, then that order), filtered."""
    _check_page(limit, offset)
    values = {"repo": repo, "kind": _value(kind), "status": _value(status)}
    prepared = _canon_query(bool(repo), bool(kind), bool(status), sort, descending)
    rows, total = prepared.run(conn, values, limit, offset)
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
