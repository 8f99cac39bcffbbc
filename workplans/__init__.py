"""The file formats: parse, validate and write back the files a registered repo holds.

Pure: text in, text out. No database, no network, nothing of ours imported.
"""

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
