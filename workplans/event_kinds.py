"""The workplan event kinds, each a reader from :mod:`workplans.events` with its applier from
:mod:`workplans.apply`: the one place the two meet.

Whoever reads or applies events builds the table once and passes it in: a
reader of workplan events alone calls :func:`workplan_event_kinds`; the hub
adds the fleet kinds (``registry.event_kinds.hub_event_kinds``).
"""

from __future__ import annotations

from workplans.apply import (
    apply_progress_note,
    apply_task_add,
    apply_task_claim,
    apply_task_release,
    apply_task_status,
    apply_workplan_status,
)
from workplans.events import (
    EventKind,
    EventKinds,
    read_progress_note,
    read_task_add,
    read_task_claim,
    read_task_release,
    read_task_status,
    read_workplan_status,
)

__all__ = ["workplan_event_kinds"]


def workplan_event_kinds() -> EventKinds:
    """The kinds that change a workplan's file (the event's workplan names which)."""
    return EventKinds(
        [
            EventKind("task.status", read_task_status, apply_task_status),
            EventKind("task.add", read_task_add, apply_task_add),
            EventKind("workplan.status", read_workplan_status, apply_workplan_status),
            EventKind("progress.note", read_progress_note, apply_progress_note),
            EventKind("task.claim", read_task_claim, apply_task_claim),
            EventKind("task.release", read_task_release, apply_task_release),
        ]
    )
