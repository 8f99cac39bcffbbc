"""Facts that span files: ids claimed twice, and which tasks are ready.

Recomputed after every index change, in the same transaction, so readers never
see a half-updated answer.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    delete,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
    update,
)

from statehub.cache.schema import CANON, DEPENDENCIES, FILE_ERRORS, TASKS, WORKPLANS

__all__ = ["recompute_derived"]


CLOSED = ("done", "cancelled")


def recompute_derived(conn: Connection) -> None:
    _mark_duplicate_workplans(conn)
    _mark_duplicate_canon(conn)
    _mark_ready(conn)


def _mark_duplicate_workplans(conn: Connection) -> None:
    dup_ids = select(WORKPLANS.c.id).group_by(WORKPLANS.c.id).having(func.count() > 1)
    had = conn.execute(select(func.count()).select_from(WORKPLANS).where(WORKPLANS.c.conflicted)).scalar_one()
    duplicated = [r.id for r in conn.execute(dup_ids)]
    conn.execute(
        delete(FILE_ERRORS).where(
            and_(FILE_ERRORS.c.origin == "duplicate", FILE_ERRORS.c.message.like("workplan%"))
        )
    )
    if not duplicated and not had:
        return
    conn.execute(update(WORKPLANS).values(conflicted=WORKPLANS.c.id.in_(duplicated)))
    conn.execute(update(TASKS).values(conflicted=TASKS.c.workplan_id.in_(duplicated)))
    claims = conn.execute(
        select(WORKPLANS.c.id, WORKPLANS.c.repo, WORKPLANS.c.path)
        .where(WORKPLANS.c.id.in_(duplicated))
        .order_by(WORKPLANS.c.repo, WORKPLANS.c.path)
    ).all()
    _report_claims(conn, "workplan", [(r.id, r.repo, r.path) for r in claims])


def _mark_duplicate_canon(conn: Connection) -> None:
    """Canon ids are unique within a repo; two repos may each have their own ADR-001."""
    conn.execute(
        delete(FILE_ERRORS).where(
            and_(FILE_ERRORS.c.origin == "duplicate", FILE_ERRORS.c.message.like("canon%"))
        )
    )
    dup = select(CANON.c.repo, CANON.c.id).group_by(CANON.c.repo, CANON.c.id).having(func.count() > 1)
    pairs = [(r.repo, r.id) for r in conn.execute(dup)]
    had = conn.execute(select(func.count()).select_from(CANON).where(CANON.c.conflicted)).scalar_one()
    if not pairs and not had:
        return
    conn.execute(update(CANON).values(conflicted=False))
    claims: list[tuple[str, str, str]] = []
    for repo, doc_id in pairs:
        match = and_(CANON.c.repo == repo, CANON.c.id == doc_id)
        conn.execute(update(CANON).where(match).values(conflicted=True))
        claims.extend(
            (doc_id, r.repo, r.path) for r in conn.execute(select(CANON.c.repo, CANON.c.path).where(match))
        )
    _report_claims(conn, "canon document", claims)


def _report_claims(conn: Connection, what: str, claims: list[tuple[str, str, str]]) -> None:
    by_id: dict[str, list[tuple[str, str]]] = {}
    for doc_id, repo, path in claims:
        by_id.setdefault(doc_id, []).append((repo, path))
    errors: list[dict[str, Any]] = []
    for doc_id, places in by_id.items():
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


def _mark_ready(conn: Connection) -> None:
    """Ready: not done or cancelled, and every dependency exists and is done."""
    done = TASKS.alias("done_task")
    unmet = exists().where(
        and_(
            DEPENDENCIES.c.repo == TASKS.c.repo,
            DEPENDENCIES.c.path == TASKS.c.path,
            DEPENDENCIES.c.task_id == TASKS.c.task_id,
            not_(
                exists().where(
                    and_(
                        done.c.ref == DEPENDENCIES.c.depends_on,
                        done.c.status == "done",
                        done.c.conflicted == false(),
                    )
                )
            ),
        )
    )
    blocked = or_(TASKS.c.status.in_(CLOSED), TASKS.c.conflicted == true(), unmet)
    conn.execute(update(TASKS).values(ready=not_(blocked)))
