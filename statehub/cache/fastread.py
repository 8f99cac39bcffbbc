"""The CLI's read path: the cache's answers read straight from its SQLite file with sqlite3.

``statehub tasks | workplans | canon | show | next | repos list`` must answer at
once (issue 13: 150 ms whole-process on 74 repos), and importing SQLAlchemy alone
takes longer than that. So for a SQLite cache these questions are asked here in
plain SQL, through the standard library's driver, and answered with the same
Structs as :mod:`statehub.cache.queries` (which the API and a PostgreSQL cache
use). The two are held equal by tests/statehub/cache/test_fastread.py, which asks
both the same questions of the same cache (canon/ADR-033).

Every statement is a constant string with ``?`` parameters; filters add fixed
clauses, never text from the caller.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any, Self

import msgspec

from statehub.answers import Page
from statehub.cache.answers import (
    CanonDetail,
    CanonItem,
    RepoItem,
    TaskItem,
    WorkplanDetail,
    WorkplanItem,
)
from statehub.cache.version import SCHEMA_VERSION
from statehub.errors import BadRequest, Conflict, NotFound
from workplans.enums import CanonKind, CanonStatus, TaskStatus, WorkplanStatus

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path
    from types import TracebackType

__all__ = ["MAX_LIMIT", "SqliteReader", "check_page", "open_sqlite_reader"]

MAX_LIMIT = 1000
"""The largest page any list answers (the API and the CLI alike)."""

_decode_list = msgspec.json.Decoder(list[str]).decode
_decode_any = msgspec.json.decode

_TASK_COLUMNS = "ref, workplan_id, task_id, repo, path, title, status, owner, depends_on, ready"
_WORKPLAN_COLUMNS = "id, repo, path, title, status, owner, related, task_count"
_CANON_COLUMNS = "id, repo, path, title, kind, status, date, supersedes"
_TASK_STATUS = {m.value: m for m in TaskStatus}
_WORKPLAN_STATUS = {m.value: m for m in WorkplanStatus}
_CANON_KIND = {m.value: m for m in CanonKind}
_CANON_STATUS = {m.value: m for m in CanonStatus}


def check_page(limit: int, offset: int) -> None:
    """BadRequest unless ``limit`` is 1 to :data:`MAX_LIMIT` and ``offset`` 0 or more."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"invalid limit {limit}: use 1 to {MAX_LIMIT}")
    if offset < 0:
        raise BadRequest(f"invalid offset {offset}: use 0 or more")


def _task(row: Sequence[Any]) -> TaskItem:
    return TaskItem(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        _TASK_STATUS[row[6]],
        row[7],
        _decode_list(row[8]),
        bool(row[9]),
    )


def _workplan(row: Sequence[Any]) -> WorkplanItem:
    return WorkplanItem(
        row[0], row[1], row[2], row[3], _WORKPLAN_STATUS[row[4]], row[5], _decode_list(row[6]), row[7]
    )


def _canon(row: Sequence[Any]) -> CanonItem:
    return CanonItem(
        row[0],
        row[1],
        row[2],
        row[3],
        _CANON_KIND[row[4]],
        _CANON_STATUS[row[5]],
        row[6],
        _decode_list(row[7]),
    )


def _where(clauses: Iterable[tuple[str, Any]]) -> tuple[str, list[Any]]:
    """``WHERE conflicted = 0 AND <column> = ?...`` for the filters given (value not None)."""
    sql, params = ["conflicted = 0"], []
    for clause, value in clauses:
        if value is not None:
            sql.append(clause)
            params.append(value)
    return " WHERE " + " AND ".join(sql), params


def open_sqlite_reader(path: Path) -> SqliteReader | None:
    """A reader of the SQLite cache at ``path``; None when there is no file there, or the file
    holds another schema version (the slow path then rebuilds it, ``statehub.cache.database``)."""
    if not path.is_file():
        return None
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        row = conn.execute("SELECT value FROM cache_meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.Error:
        conn.close()
        return None
    if row is None or row[0] != str(SCHEMA_VERSION):
        conn.close()
        return None
    return SqliteReader(conn)


class SqliteReader:
    """Answers from one SQLite cache connection; close it (or use ``with``) when done."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a constant statement (``statehub.cache.freshness``'s) and return its rows."""
        return self.conn.execute(sql).fetchall()

    def _page(
        self, columns: str, table: str, where: tuple[str, list[Any]], order: str, limit: int, offset: int
    ) -> tuple[list[Any], int]:
        clause, params = where
        total = self.conn.execute(f"SELECT count(*) FROM {table}{clause}", params).fetchone()[0]  # noqa: S608 - constant pieces
        rows = self.conn.execute(
            f"SELECT {columns} FROM {table}{clause} ORDER BY {order} LIMIT ? OFFSET ?",  # noqa: S608 - constant pieces
            [*params, limit, offset],
        ).fetchall()
        return rows, int(total)

    # repos ---------------------------------------------------------------------------------------

    def list_repos(self) -> Page[RepoItem]:
        """As ``queries.list_repos``: every repo by slug, with file errors and workplans counted."""
        errors = dict(self.conn.execute("SELECT repo, count(*) FROM file_error GROUP BY repo").fetchall())
        plans = dict(self.conn.execute("SELECT repo, count(*) FROM workplan GROUP BY repo").fetchall())
        items = [
            RepoItem(
                slug=slug,
                path=path,
                title=title,
                prefixes=_decode_list(prefixes) if prefixes is not None else [],
                default_branch=branch,
                error_count=errors.get(slug, 0),
                workplan_count=plans.get(slug, 0),
            )
            for slug, path, title, prefixes, branch in self.conn.execute(
                "SELECT slug, path, title, prefixes, default_branch FROM repo ORDER BY slug"
            )
        ]
        return Page(items, len(items))

    # lists ---------------------------------------------------------------------------------------

    def list_tasks(
        self,
        *,
        repo: str | None = None,
        workplan: str | None = None,
        status: TaskStatus | None = None,
        owner: str | None = None,
        ready: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[TaskItem]:
        """As ``queries.list_tasks``."""
        check_page(limit, offset)
        where = _where(
            (
                ("repo = ?", repo),
                ("workplan_id = ?", workplan),
                ("status = ?", None if status is None else status.value),
                ("owner = ?", owner),
                ("ready = ?", ready),
            )
        )
        rows, total = self._page(_TASK_COLUMNS, "task", where, "workplan_id, position", limit, offset)
        return Page([_task(r) for r in rows], total)

    def list_workplans(
        self,
        *,
        repo: str | None = None,
        status: WorkplanStatus | None = None,
        owner: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[WorkplanItem]:
        """As ``queries.list_workplans``."""
        check_page(limit, offset)
        where = _where(
            (
                ("repo = ?", repo),
                ("status = ?", None if status is None else status.value),
                ("owner = ?", owner),
            )
        )
        rows, total = self._page(_WORKPLAN_COLUMNS, "workplan", where, "id", limit, offset)
        return Page([_workplan(r) for r in rows], total)

    def list_canon(
        self,
        *,
        repo: str | None = None,
        kind: CanonKind | None = None,
        status: CanonStatus | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page[CanonItem]:
        """As ``queries.list_canon``."""
        check_page(limit, offset)
        where = _where(
            (
                ("repo = ?", repo),
                ("kind = ?", None if kind is None else kind.value),
                ("status = ?", None if status is None else status.value),
            )
        )
        rows, total = self._page(_CANON_COLUMNS, "canon", where, "id, repo", limit, offset)
        return Page([_canon(r) for r in rows], total)

    # one of each ---------------------------------------------------------------------------------

    def get_task(self, ref: str) -> TaskItem:
        """As ``queries.get_task``: NotFound, or Conflict when its workplan id is claimed twice."""
        sql = f"SELECT {_TASK_COLUMNS}, conflicted FROM task WHERE ref = ?"  # noqa: S608 - constant pieces
        rows = self.conn.execute(sql, (ref,)).fetchall()
        if not rows:
            raise NotFound(f"no task {ref!r}; a task reference looks like CUST-WP-0054-T02")
        if len(rows) > 1 or rows[0][-1]:
            raise Conflict(f"task {ref} belongs to a workplan id claimed by more than one file")
        return _task(rows[0])

    def tasks_by_ref(self, refs: Sequence[str]) -> dict[str, TaskItem]:
        """The unconflicted tasks among ``refs``, by ref (a ref naming nothing is left out)."""
        found: dict[str, TaskItem] = {}
        for start in range(0, len(refs), 500):
            chunk = list(refs[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            for row in self.conn.execute(
                f"SELECT {_TASK_COLUMNS} FROM task WHERE conflicted = 0 AND ref IN ({marks})",  # noqa: S608 - constant pieces
                chunk,
            ):
                found[row[0]] = _task(row)
        return found

    def dependents(self, ref: str) -> list[TaskItem]:
        """The unconflicted tasks whose ``depends_on`` names ``ref``, in workplan id, file order."""
        columns = ", ".join(f"t.{c.strip()}" for c in _TASK_COLUMNS.split(","))
        rows = self.conn.execute(
            f"SELECT DISTINCT {columns}, t.position FROM task_dependency d JOIN task t"  # noqa: S608 - constant pieces
            " ON t.repo = d.repo AND t.path = d.path AND t.task_id = d.task_id"
            " WHERE d.depends_on = ? AND t.conflicted = 0 ORDER BY t.workplan_id, t.position",
            (ref,),
        ).fetchall()
        return [_task(r) for r in rows]

    def get_workplan(self, workplan_id: str) -> WorkplanDetail:
        """As ``queries.get_workplan``."""
        rows = self.conn.execute(
            f"SELECT {_WORKPLAN_COLUMNS}, body, extra, conflicted FROM workplan WHERE id = ?",  # noqa: S608 - constant pieces
            (workplan_id,),
        ).fetchall()
        if not rows:
            raise NotFound(f"no workplan {workplan_id!r} in any registered repo")
        if len(rows) > 1:
            places = ", ".join(f"{r[1]}/{r[2]}" for r in rows)
            raise Conflict(f"workplan id {workplan_id} is claimed by {places}; rename one of them")
        row = rows[0]
        if row[-1]:
            raise Conflict(f"workplan id {workplan_id} is claimed by more than one file; rename one of them")
        tasks = self.conn.execute(
            f"SELECT {_TASK_COLUMNS} FROM task WHERE repo = ? AND path = ? ORDER BY position",  # noqa: S608 - constant pieces
            (row[1], row[2]),
        ).fetchall()
        item = _workplan(row)
        return WorkplanDetail(
            **msgspec.structs.asdict(item),
            body=row[8],
            extra=_decode_any(row[9]),
            tasks=[_task(t) for t in tasks],
        )

    def get_canon(self, doc_id: str, repo: str | None = None) -> CanonDetail:
        """As ``queries.get_canon``."""
        sql = f"SELECT {_CANON_COLUMNS}, body, extra FROM canon WHERE id = ?"  # noqa: S608 - constant pieces
        params: list[Any] = [doc_id]
        if repo:
            sql += " AND repo = ?"
            params.append(repo)
        rows = self.conn.execute(sql, params).fetchall()
        if not rows:
            where = f" in repo {repo!r}" if repo else ""
            raise NotFound(f"no canon document {doc_id!r}{where}")
        if len(rows) > 1:
            repos = sorted({r[1] for r in rows})
            if len(repos) > 1:
                raise Conflict(f"{doc_id} exists in repos {', '.join(repos)}; ask again with ?repo=<slug>")
            raise Conflict(f"{doc_id} is claimed by more than one file in {repos[0]}; rename one of them")
        row = rows[0]
        return CanonDetail(**msgspec.structs.asdict(_canon(row)), body=row[8], extra=_decode_any(row[9]))

    def next_candidates(
        self, actor: str, repo: str | None = None, limit: int = 1
    ) -> tuple[list[tuple[TaskItem, WorkplanStatus]], int]:
        """As ``queries.next_candidates``: the best ``limit`` tasks ``actor`` can take now, each with
        its workplan's status, and how many there are in all. Ranked in SQL, so only those rows are
        read and built (``next`` has thousands of candidates on a big fleet and shows one)."""
        where, params = ("", []) if repo is None else (" AND t.repo = ?", [repo])
        total = self.conn.execute(_NEXT_COUNT + where, params).fetchone()[0]
        rows = self.conn.execute(_NEXT_SELECT + where + _NEXT_ORDER, [*params, actor, limit]).fetchall()
        return [(_task(row), _WORKPLAN_STATUS[row[10]]) for row in rows], int(total)


_NEXT_FROM = (
    " FROM task t JOIN workplan w ON w.id = t.workplan_id AND w.conflicted = 0"
    " WHERE t.conflicted = 0 AND t.status = 'todo' AND t.ready = 1"
    " AND w.status IN ('active', 'draft', 'blocked')"
)
_NEXT_COUNT = "SELECT count(*)" + _NEXT_FROM
_NEXT_SELECT = (
    "SELECT " + ", ".join(f"t.{c.strip()}" for c in _TASK_COLUMNS.split(",")) + ", w.status" + _NEXT_FROM
)
_NEXT_ORDER = (
    " ORDER BY CASE WHEN t.owner = ? THEN 0 WHEN t.owner IS NULL THEN 1 ELSE 2 END,"
    " CASE w.status WHEN 'active' THEN 0 WHEN 'draft' THEN 1 ELSE 2 END, t.workplan_id, t.position"
    " LIMIT ?"
)
"""``next``'s ranking (canon/ADR-033): the actor's own, then unowned, then
others'; active workplans, then draft, then blocked; then workplan id and file order."""
