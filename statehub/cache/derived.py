"""Facts that span files: ids claimed twice, and which tasks are ready.

Recomputed after every index change, in the same transaction, so readers never
see a half-updated answer. A rebuild recomputes everything; a refresh passes a
:class:`Scope` (the workplan ids, task refs and canon ids its changed files held
before and after) and only the rows those can affect are touched, so a one-file
refresh costs the same in a 70-repo hub as in a one-repo hub (ADR-003).

Ready (ADR-004): a task is ready when it is not done or cancelled, its workplan
id is not claimed twice, and every ``depends_on`` names an existing,
unconflicted task whose status is done. Readiness depends only on direct
dependencies' status, never on their readiness, so one level of dependents is
all a change can reach.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, select, text, tuple_, update

from statehub.cache.schema import CANON, DEPENDENCIES, FILE_ERRORS, TASKS, WORKPLANS

__all__ = ["Scope", "recompute_derived"]


@dataclass(slots=True)
class Scope:
    """What a set of changed files can affect: ids and refs they held before and after."""

    workplan_ids: set[str] = field(default_factory=set)
    refs: set[str] = field(default_factory=set)
    """Task refs that vanished or changed (refs of current tasks of ``workplan_ids`` are added)."""
    canon: set[tuple[str, str]] = field(default_factory=set)
    """(repo, canon id) pairs."""

    def __bool__(self) -> bool:
        return bool(self.workplan_ids or self.refs or self.canon)

    def merge(self, other: Scope) -> None:
        self.workplan_ids |= other.workplan_ids
        self.refs |= other.refs
        self.canon |= other.canon


# One expression, used by the full and the scoped recompute alike.
_READY = """(
    task.status NOT IN ('done', 'cancelled')
    AND task.conflicted = :no
    AND NOT EXISTS (
        SELECT 1 FROM task_dependency AS d
        WHERE d.repo = task.repo AND d.path = task.path AND d.task_id = task.task_id
        AND NOT EXISTS (
            SELECT 1 FROM task AS dep
            WHERE dep.ref = d.depends_on AND dep.status = 'done' AND dep.conflicted = :no
        )
    )
)"""
_FULL_READY = text(f"UPDATE task SET ready = {_READY} WHERE ready != {_READY}")
_READY_BY_WORKPLAN = text(
    f"UPDATE task SET ready = {_READY} WHERE workplan_id IN :ids AND ready != {_READY}"
).bindparams(bindparam("ids", expanding=True))
_READY_BY_KEY = text(
    f"UPDATE task SET ready = {_READY} WHERE repo = :repo AND path = :path AND task_id = :task_id"
)


def recompute_derived(conn: Connection, scope: Scope | None = None) -> None:
    """Everything (``scope`` None), or only what ``scope`` can reach (nothing for an empty scope)."""
    if scope is None:
        _full_duplicates(conn)
        conn.execute(_FULL_READY, {"no": False})
        return
    if not scope:
        return
    _scoped_workplan_duplicates(conn, scope.workplan_ids)
    _scoped_canon_duplicates(conn, scope.canon)
    _scoped_ready(conn, scope)


def _chunks(items: Iterable[Any], size: int = 500) -> list[list[Any]]:
    listed = sorted(items)
    return [listed[i : i + size] for i in range(0, len(listed), size)]


# duplicates --------------------------------------------------------------------------------------


def _full_duplicates(conn: Connection) -> None:
    conn.execute(delete(FILE_ERRORS).where(FILE_ERRORS.c.origin == "duplicate"))
    conn.execute(update(WORKPLANS).where(WORKPLANS.c.conflicted).values(conflicted=False))
    conn.execute(update(TASKS).where(TASKS.c.conflicted).values(conflicted=False))
    conn.execute(update(CANON).where(CANON.c.conflicted).values(conflicted=False))
    dup_plans = text("SELECT id FROM workplan GROUP BY id HAVING count(*) > 1")
    _mark_workplans(conn, [r.id for r in conn.execute(dup_plans)])
    dup_canon = text("SELECT repo, id FROM canon GROUP BY repo, id HAVING count(*) > 1")
    _mark_canon(conn, {(r.repo, r.id) for r in conn.execute(dup_canon)})


def _scoped_workplan_duplicates(conn: Connection, ids: set[str]) -> None:
    if not ids:
        return
    claims: list[Any] = []
    for chunk in _chunks(ids):
        claims += conn.execute(
            select(WORKPLANS.c.id, WORKPLANS.c.repo, WORKPLANS.c.path).where(WORKPLANS.c.id.in_(chunk))
        ).all()
    _clear_duplicate_errors(conn, [(c.repo, c.path) for c in claims])
    counts: dict[str, int] = {}
    for claim in claims:
        counts[claim.id] = counts.get(claim.id, 0) + 1
    for chunk in _chunks(ids):
        conn.execute(update(WORKPLANS).where(WORKPLANS.c.id.in_(chunk)).values(conflicted=False))
        conn.execute(update(TASKS).where(TASKS.c.workplan_id.in_(chunk)).values(conflicted=False))
    _mark_workplans(conn, [i for i, n in counts.items() if n > 1])


def _scoped_canon_duplicates(conn: Connection, pairs: set[tuple[str, str]]) -> None:
    if not pairs:
        return
    claims: list[Any] = []
    for chunk in _chunks(pairs):
        match = tuple_(CANON.c.repo, CANON.c.id).in_(chunk)
        claims += conn.execute(select(CANON.c.repo, CANON.c.id, CANON.c.path).where(match)).all()
        conn.execute(update(CANON).where(match).values(conflicted=False))
    _clear_duplicate_errors(conn, [(c.repo, c.path) for c in claims])
    counts: dict[tuple[str, str], int] = {}
    for claim in claims:
        counts[(claim.repo, claim.id)] = counts.get((claim.repo, claim.id), 0) + 1
    _mark_canon(conn, {pair for pair, n in counts.items() if n > 1})


def _clear_duplicate_errors(conn: Connection, files: list[tuple[str, str]]) -> None:
    for chunk in _chunks(set(files)):
        conn.execute(
            delete(FILE_ERRORS).where(
                and_(
                    FILE_ERRORS.c.origin == "duplicate",
                    tuple_(FILE_ERRORS.c.repo, FILE_ERRORS.c.path).in_(chunk),
                )
            )
        )


def _mark_workplans(conn: Connection, duplicated: list[str]) -> None:
    if not duplicated:
        return
    conn.execute(update(WORKPLANS).where(WORKPLANS.c.id.in_(duplicated)).values(conflicted=True))
    conn.execute(update(TASKS).where(TASKS.c.workplan_id.in_(duplicated)).values(conflicted=True))
    claims = conn.execute(
        select(WORKPLANS.c.id, WORKPLANS.c.repo, WORKPLANS.c.path)
        .where(WORKPLANS.c.id.in_(duplicated))
        .order_by(WORKPLANS.c.repo, WORKPLANS.c.path)
    ).all()
    _report_claims(conn, "workplan", [(r.id, r.id, r.repo, r.path) for r in claims])


def _mark_canon(conn: Connection, pairs: set[tuple[str, str]]) -> None:
    """Canon ids are unique within a repo; two repos may each have their own ADR-001."""
    if not pairs:
        return
    match = tuple_(CANON.c.repo, CANON.c.id).in_(sorted(pairs))
    conn.execute(update(CANON).where(match).values(conflicted=True))
    claims = conn.execute(
        select(CANON.c.id, CANON.c.repo, CANON.c.path).where(match).order_by(CANON.c.repo, CANON.c.path)
    ).all()
    # canon ids are scoped by repo: group claims by (repo, id)
    _report_claims(conn, "canon document", [((r.repo, r.id), r.id, r.repo, r.path) for r in claims])


def _report_claims(conn: Connection, what: str, claims: list[tuple[Any, str, str, str]]) -> None:
    """One error per claiming file, naming the others; claims are (group key, id, repo, path)."""
    by_key: dict[Any, tuple[str, list[tuple[str, str]]]] = {}
    for key, doc_id, repo, path in claims:
        by_key.setdefault(key, (doc_id, []))[1].append((repo, path))
    errors: list[dict[str, Any]] = []
    for doc_id, places in by_key.values():
        for repo, path in places:
            others = ", ".join(f"{r}/{p}" for r, p in places if (r, p) != (repo, path))
            errors.append(
                {
                    "repo": repo,
                    "path": path,
                    "line": None,
                    "origin": "duplicate",
                    "message": f"{what} id {doc_id} is also claimed by {others}; "
                    "ids must be unique, so neither file is served until one is renamed",
                }
            )
    if errors:
        conn.execute(FILE_ERRORS.insert(), errors)


# ready -------------------------------------------------------------------------------------------


def _scoped_ready(conn: Connection, scope: Scope) -> None:
    refs = set(scope.refs)
    for chunk in _chunks(scope.workplan_ids):
        conn.execute(_READY_BY_WORKPLAN, {"ids": chunk, "no": False})
        refs.update(conn.execute(select(TASKS.c.ref).where(TASKS.c.workplan_id.in_(chunk))).scalars())
    dependents: set[tuple[str, str, str]] = set()
    for chunk in _chunks(refs):
        dependents.update(
            (row.repo, row.path, row.task_id)
            for row in conn.execute(
                select(DEPENDENCIES.c.repo, DEPENDENCIES.c.path, DEPENDENCIES.c.task_id).where(
                    DEPENDENCIES.c.depends_on.in_(chunk)
                )
            )
        )
    if dependents:
        conn.execute(
            _READY_BY_KEY,
            [{"repo": r, "path": p, "task_id": t, "no": False} for r, p, t in sorted(dependents)],
        )
