"""Typed models of the files in a registered repo (FORMAT.md).

Plain frozen dataclasses: the format layer stays free of any database or web
framework, and equality is structural so round-trip tests can compare models.
Unknown keys are kept in ``extra`` so write-back can leave them untouched.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from workplans.enums import CanonKind, CanonStatus, TaskStatus, WorkplanStatus

__all__ = [
    "CanonDocument",
    "CanonKind",
    "CanonStatus",
    "RepoManifest",
    "Task",
    "TaskStatus",
    "Workplan",
    "WorkplanStatus",
]


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    title: str
    status: TaskStatus = TaskStatus.TODO
    owner: str | None = None
    depends_on: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def ref(self, workplan_id: str) -> str:
        """The hub-wide reference, e.g. ``CUST-WP-0054-T02``."""
        return f"{workplan_id}-{self.id}"


@dataclass(frozen=True, slots=True)
class Workplan:
    id: str
    title: str
    status: WorkplanStatus
    owner: str | None = None
    related: tuple[str, ...] = ()
    tasks: tuple[Task, ...] = ()
    body: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def resolve_dependency(self, dependency: str) -> str:
        """A ``depends_on`` entry as a hub-wide task reference (local ids get this plan's id)."""
        if dependency.startswith("T") and "-" not in dependency:
            return f"{self.id}-{dependency}"
        return dependency


@dataclass(frozen=True, slots=True)
class CanonDocument:
    id: str
    title: str
    kind: CanonKind
    status: CanonStatus
    date: dt.date | None = None
    supersedes: tuple[str, ...] = ()
    body: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RepoManifest:
    slug: str | None = None
    title: str | None = None
    prefixes: tuple[str, ...] = ()
    default_branch: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
