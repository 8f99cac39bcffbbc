"""The states and kinds the files name: workplan and task status, canon kind and status, and the
fleet registry's machine roles and workload states (FORMAT.md).

Kept apart from the models (``workplans.models``, ``workplans.fleet_models``, which
re-export them) so a reader that needs only an enum, as every CLI read does, does
not build the model dataclasses (canon/ADR-033).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["CanonKind", "CanonStatus", "MachineRole", "TaskStatus", "WorkloadState", "WorkplanStatus"]


class WorkplanStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    BLOCKED = "blocked"
    DONE = "done"
    CANCELLED = "cancelled"


class TaskStatus(StrEnum):
    TODO = "todo"
    IN_PROGRESS = "in-progress"
    BLOCKED = "blocked"
    DONE = "done"
    CANCELLED = "cancelled"

    @property
    def is_closed(self) -> bool:
        return self in (TaskStatus.DONE, TaskStatus.CANCELLED)


class CanonKind(StrEnum):
    ADR = "adr"
    STANDARD = "standard"
    RUNBOOK = "runbook"
    NOTE = "note"


class CanonStatus(StrEnum):
    PROPOSED = "proposed"
    ACCEPTED = "accepted"
    SUPERSEDED = "superseded"
    DEPRECATED = "deprecated"


class MachineRole(StrEnum):
    PRODUCTION_HOME = "production-home"
    FROZEN_LEGACY = "frozen-legacy"
    TEMPORARY_DEV = "temporary-dev"
    BUILD = "build"
    EXPERIMENTAL = "experimental"


class WorkloadState(StrEnum):
    RUNNING = "running"
    DRAINING = "draining"
    MIGRATED = "migrated"
    PROMOTED = "promoted"
    RETIRED = "retired"
