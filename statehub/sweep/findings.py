"""Consistency findings for one repo, read from the cache after it was brought up to date.

Each finding says where (path, line when known) and what to do about it.
"""

from __future__ import annotations

import msgspec
from sqlalchemy import Connection, and_, select

from statehub.cache.schema import CANON, DEPENDENCIES, FILE_ERRORS, TASKS, WORKPLANS

__all__ = ["Finding", "find_problems"]

OPEN = ("todo", "in-progress", "blocked")


class Finding(msgspec.Struct, frozen=True):
    """One inconsistency: ``kind`` (unknown-dependency, cancelled-dependency, done-with-open-tasks,
    unknown-supersedes, duplicate-id, dependency-cycle (a self-dependency too), file-error), where
    (repo-relative path, line or None), what to do."""

    kind: str
    path: str
    line: int | None
    message: str


_ERROR_KINDS = {"duplicate": "duplicate-id", "cycle": "dependency-cycle"}
"""A file error's finding kind by its origin in the cache (statehub.cache.derived): a cycle or a
duplicate id is found across files that each read fine, so it is not called a file error."""


def _finding(kind: str, path: str, message: str, line: int | None = None) -> Finding:
    return Finding(kind=kind, path=path, line=line, message=message)


def find_problems(conn: Connection, slug: str) -> list[Finding]:
    """Every inconsistency in repo ``slug``, in a stable order."""
    found: list[Finding] = []
    known_refs = set(conn.execute(select(TASKS.c.ref)).scalars())
    cancelled = set(conn.execute(select(TASKS.c.ref).where(TASKS.c.status == "cancelled")).scalars())
    for edge in conn.execute(
        select(DEPENDENCIES.c.path, DEPENDENCIES.c.task_id, DEPENDENCIES.c.depends_on, TASKS.c.ref)
        .join(
            TASKS,
            and_(
                TASKS.c.repo == DEPENDENCIES.c.repo,
                TASKS.c.path == DEPENDENCIES.c.path,
                TASKS.c.task_id == DEPENDENCIES.c.task_id,
            ),
        )
        .where(DEPENDENCIES.c.repo == slug)
        .order_by(DEPENDENCIES.c.path, DEPENDENCIES.c.task_id)
    ):
        if edge.depends_on not in known_refs:
            found.append(
                _finding(
                    "unknown-dependency", edge.path, f"{edge.ref} depends on unknown task {edge.depends_on}"
                )
            )
        elif edge.depends_on in cancelled:
            found.append(
                _finding(
                    "cancelled-dependency",
                    edge.path,
                    f"{edge.ref} depends on {edge.depends_on}, which is cancelled; "
                    "drop or replace the dependency",
                )
            )
    for plan in conn.execute(
        select(WORKPLANS.c.id, WORKPLANS.c.path).where(
            and_(WORKPLANS.c.repo == slug, WORKPLANS.c.status == "done")
        )
    ):
        open_tasks = list(
            conn.execute(
                select(TASKS.c.task_id)
                .where(and_(TASKS.c.repo == slug, TASKS.c.path == plan.path, TASKS.c.status.in_(OPEN)))
                .order_by(TASKS.c.position)
            ).scalars()
        )
        if open_tasks:
            found.append(
                _finding(
                    "done-with-open-tasks",
                    plan.path,
                    f"workplan {plan.id} is done but tasks {', '.join(open_tasks)} are still open",
                )
            )
    canon_ids = set(conn.execute(select(CANON.c.id)).scalars())
    for doc in conn.execute(
        select(CANON.c.id, CANON.c.path, CANON.c.supersedes)
        .where(CANON.c.repo == slug)
        .order_by(CANON.c.path)
    ):
        for other in doc.supersedes or []:
            if other not in canon_ids:
                found.append(
                    _finding("unknown-supersedes", doc.path, f"{doc.id} supersedes unknown canon id {other}")
                )
    for error in conn.execute(
        select(FILE_ERRORS).where(FILE_ERRORS.c.repo == slug).order_by(FILE_ERRORS.c.path, FILE_ERRORS.c.line)
    ):
        kind = _ERROR_KINDS.get(error.origin, "file-error")
        found.append(_finding(kind, error.path, error.message, error.line))
    return found
