"""The file formats: parse, validate and write back the files a registered repo holds.

Pure: text in, text out. No database, no network, nothing of ours imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workplans.lazy import lazy_exports

if TYPE_CHECKING:
    from workplans.apply import apply_event
    from workplans.canon import CANON_ID, parse_canon, render_canon
    from workplans.errors import (
        ApplyError,
        BrokenTarget,
        FleetChangeError,
        FormatError,
        InvalidEvent,
        NoLongerApplies,
        WorkplansError,
    )
    from workplans.event_kinds import workplan_event_kinds
    from workplans.events import (
        Event,
        EventKind,
        EventKinds,
        ProgressNoteEvent,
        TaskAddEvent,
        TaskClaimEvent,
        TaskReleaseEvent,
        TaskStatusEvent,
        WorkplanStatusEvent,
        parse_event,
    )
    from workplans.fleet import parse_fleet, render_fleet
    from workplans.fleet_models import (
        FLEET_PATH,
        FleetRegistry,
        Gate,
        Lane,
        Machine,
        MachineRole,
        Workload,
        WorkloadState,
    )
    from workplans.ids import is_task_id, is_task_ref, is_workplan_id, split_task_ref
    from workplans.manifest import MANIFEST_PATH, parse_manifest
    from workplans.models import (
        CanonDocument,
        CanonKind,
        CanonStatus,
        RepoManifest,
        Task,
        TaskStatus,
        Workplan,
        WorkplanStatus,
    )
    from workplans.problems import FileProblem
    from workplans.workplan import parse_workplan, render_workplan

__all__ = [
    "CANON_ID",
    "FLEET_PATH",
    "MANIFEST_PATH",
    "ApplyError",
    "BrokenTarget",
    "CanonDocument",
    "CanonKind",
    "CanonStatus",
    "Event",
    "EventKind",
    "EventKinds",
    "FileProblem",
    "FleetChangeError",
    "FleetRegistry",
    "FormatError",
    "Gate",
    "InvalidEvent",
    "Lane",
    "Machine",
    "MachineRole",
    "NoLongerApplies",
    "ProgressNoteEvent",
    "RepoManifest",
    "Task",
    "TaskAddEvent",
    "TaskClaimEvent",
    "TaskReleaseEvent",
    "TaskStatus",
    "TaskStatusEvent",
    "Workload",
    "WorkloadState",
    "Workplan",
    "WorkplanStatus",
    "WorkplanStatusEvent",
    "WorkplansError",
    "apply_event",
    "is_task_id",
    "is_task_ref",
    "is_workplan_id",
    "parse_canon",
    "parse_event",
    "parse_fleet",
    "parse_manifest",
    "parse_workplan",
    "render_canon",
    "render_fleet",
    "render_workplan",
    "split_task_ref",
    "workplan_event_kinds",
]

_WHERE = {
    "ApplyError": "workplans.errors",
    "BrokenTarget": "workplans.errors",
    "CANON_ID": "workplans.canon",
    "CanonDocument": "workplans.models",
    "CanonKind": "workplans.enums",
    "CanonStatus": "workplans.enums",
    "Event": "workplans.events",
    "EventKind": "workplans.events",
    "EventKinds": "workplans.events",
    "FLEET_PATH": "workplans.fleet_models",
    "FileProblem": "workplans.problems",
    "FleetChangeError": "workplans.errors",
    "FleetRegistry": "workplans.fleet_models",
    "FormatError": "workplans.errors",
    "Gate": "workplans.fleet_models",
    "InvalidEvent": "workplans.errors",
    "Lane": "workplans.fleet_models",
    "MANIFEST_PATH": "workplans.manifest",
    "Machine": "workplans.fleet_models",
    "MachineRole": "workplans.enums",
    "NoLongerApplies": "workplans.errors",
    "ProgressNoteEvent": "workplans.events",
    "RepoManifest": "workplans.models",
    "Task": "workplans.models",
    "TaskAddEvent": "workplans.events",
    "TaskClaimEvent": "workplans.events",
    "TaskReleaseEvent": "workplans.events",
    "TaskStatus": "workplans.enums",
    "TaskStatusEvent": "workplans.events",
    "Workload": "workplans.fleet_models",
    "WorkloadState": "workplans.enums",
    "Workplan": "workplans.models",
    "WorkplanStatus": "workplans.enums",
    "WorkplanStatusEvent": "workplans.events",
    "WorkplansError": "workplans.errors",
    "apply_event": "workplans.apply",
    "is_task_id": "workplans.ids",
    "is_task_ref": "workplans.ids",
    "is_workplan_id": "workplans.ids",
    "parse_canon": "workplans.canon",
    "parse_event": "workplans.events",
    "parse_fleet": "workplans.fleet",
    "parse_manifest": "workplans.manifest",
    "parse_workplan": "workplans.workplan",
    "render_canon": "workplans.canon",
    "render_fleet": "workplans.fleet",
    "render_workplan": "workplans.workplan",
    "split_task_ref": "workplans.ids",
    "workplan_event_kinds": "workplans.event_kinds",
}
"""Each public name and the submodule that defines it: imported on first use (PEP 562), so a
reader that needs one enum does not load every parser and writer (canon/ADR-033)."""


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
