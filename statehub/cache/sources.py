"""Which files of a repo the hub indexes, and the cache rows each kind of file becomes.

Each kind owns the tables its rows go to, keyed by (repo, path), so a changed
file is re-indexed by deleting its rows and inserting the new ones. Tables are
named here, not given as SQLAlchemy ``Table`` objects: reading and judging files
(``statehub.cache.reading``) loads no SQLAlchemy, so a rebuild's worker can start
before the process imports it (canon/ADR-043); ``tests/statehub/cache/test_gathering.py``
holds the names equal to ``statehub.cache.schema``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from statehub.cache.scan import _SINGLE_FILES, ScannedFile, kind_of, may_hold_sources, scan_sources
from workplans import parse_canon, parse_manifest, parse_workplan

__all__ = [
    "CANON",
    "DEPENDENCIES",
    "SOURCE_KINDS",
    "TASKS",
    "WORKPLANS",
    "Rows",
    "ScannedFile",
    "SourceKind",
    "json_safe",
    "kind_of",
    "may_hold_sources",
    "scan_sources",
]

WORKPLANS = "workplan"
TASKS = "task"
DEPENDENCIES = "task_dependency"
CANON = "canon"
"""The names of the tables a workplan and a canon document become (``statehub.cache.schema``)."""

Rows = dict[str, list[dict[str, Any]]]
"""Rows per table name, each row a dict of column values (JSON columns as Python values)."""


@dataclass(frozen=True, slots=True)
class SourceKind:
    name: str
    tables: tuple[str, ...]
    """The names of the tables its rows go to (``statehub.cache.schema.metadata.tables``)."""
    rows: Callable[[str, str, str], Rows]
    """(repo slug, repo-relative path, text) -> rows per table name; raises FormatError."""


def json_safe(value: Any) -> Any:
    """Unknown TOML keys may hold dates; the cache stores them as ISO strings."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _workplan_rows(repo: str, path: str, text: str) -> Rows:
    plan = parse_workplan(text, path)
    if plan is None:
        return {}
    tasks: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for position, task in enumerate(plan.tasks):
        depends_on = [plan.resolve_dependency(d) for d in task.depends_on]
        tasks.append(
            {
                "repo": repo,
                "path": path,
                "task_id": task.id,
                "ref": task.ref(plan.id),
                "workplan_id": plan.id,
                "position": position,
                "title": task.title,
                "status": task.status.value,
                "owner": task.owner,
                "depends_on": depends_on,
                "extra": json_safe(task.extra) if task.extra else {},
                "ready": False,
                "conflicted": False,
                "cyclic": False,
            }
        )
        edges.extend(
            {"repo": repo, "path": path, "task_id": task.id, "depends_on": d}
            for d in dict.fromkeys(depends_on)
        )
    plan_row = {
        "repo": repo,
        "path": path,
        "id": plan.id,
        "title": plan.title,
        "status": plan.status.value,
        "owner": plan.owner,
        "related": list(plan.related),
        "body": plan.body,
        "extra": json_safe(plan.extra),
        "task_count": len(plan.tasks),
        "conflicted": False,
    }
    return {WORKPLANS: [plan_row], TASKS: tasks, DEPENDENCIES: edges}


def _canon_rows(repo: str, path: str, text: str) -> Rows:
    doc = parse_canon(text, path)
    if doc is None:
        return {}
    row = {
        "repo": repo,
        "path": path,
        "id": doc.id,
        "title": doc.title,
        "kind": doc.kind.value,
        "status": doc.status.value,
        "date": doc.date.isoformat() if doc.date else None,
        "supersedes": list(doc.supersedes),
        "body": doc.body,
        "extra": json_safe(doc.extra),
        "conflicted": False,
    }
    return {CANON: [row]}


def _manifest_rows(repo: str, path: str, text: str) -> Rows:  # noqa: ARG001 - SourceKind.rows signature
    parse_manifest(text, path)  # the repo row is updated by the indexer; this validates
    return {}


WORKPLAN_FILES = SourceKind("workplan", (WORKPLANS, TASKS, DEPENDENCIES), _workplan_rows)
CANON_FILES = SourceKind("canon", (CANON,), _canon_rows)
MANIFEST_FILE = SourceKind("manifest", (), _manifest_rows)

SOURCE_KINDS: dict[str, SourceKind] = {k.name: k for k in (WORKPLAN_FILES, CANON_FILES, MANIFEST_FILE)}


def register_kind(kind: SourceKind, single_file: str | None = None) -> None:
    """Let another part of the hub index one more kind of file (e.g. the fleet registry)."""
    SOURCE_KINDS[kind.name] = kind
    if single_file is not None:
        _SINGLE_FILES[single_file] = kind.name
