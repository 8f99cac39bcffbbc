"""The answers read from the cache: repos, workplans, tasks, canon, and the fleet registry's plans.

msgspec Structs (ADR-025), built in :mod:`statehub.cache.queries` and
:mod:`statehub.cache.fleet_queries`, returned as they are by the HTTP API and
rendered by the CLI. Each field's JSON name is its Python name (but
``LaneItem.from_``, ``"from"``); field order is the JSON key order. Every
field is always present in the JSON (``None`` is ``null``).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

from statehub.answers import Freshness
from workplans import (
    CanonKind,
    CanonStatus,
    MachineRole,
    TaskStatus,
    WorkloadState,
    WorkplanStatus,
)

__all__ = [
    "CanonDetail",
    "CanonItem",
    "CanonShown",
    "Dependency",
    "DrainPlan",
    "DrainStep",
    "DrainWave",
    "FileError",
    "FleetList",
    "GateView",
    "IndexedRepo",
    "LaneItem",
    "LaneList",
    "LaneRisk",
    "MachineAllows",
    "MachineItem",
    "NextTask",
    "OutsideDependent",
    "Readiness",
    "ReadinessBlocker",
    "RepoCounts",
    "RepoDetail",
    "RepoItem",
    "SearchHit",
    "TaskDetail",
    "TaskItem",
    "TaskShown",
    "Violation",
    "WorkloadItem",
    "WorkplanDetail",
    "WorkplanItem",
    "WorkplanOverview",
    "WorkplanProgress",
    "WorkplanShown",
]


T = TypeVar("T")


# repos -------------------------------------------------------------------------------------------


class FileError(msgspec.Struct, frozen=True):
    """A problem in a repo file: where (repo-relative ``path``, 1-based ``line`` or None) and what."""

    path: str
    line: int | None
    message: str


class RepoCounts(msgspec.Struct, frozen=True):
    """How many workplans, tasks and canon documents the cache holds for a repo."""

    workplans: int
    tasks: int
    canon: int


class _RepoBase(msgspec.Struct, frozen=True):
    slug: str
    path: str
    """The work tree's absolute path on the hub's machine."""
    title: str | None
    prefixes: list[str]
    """Workplan id prefixes the repo's manifest claims (``statehub.toml``)."""
    default_branch: str | None


class RepoItem(_RepoBase, frozen=True):
    """A registered repo in ``GET /repos``: its manifest fields, file errors and workplans counted."""

    error_count: int
    workplan_count: int


class RepoDetail(_RepoBase, frozen=True, omit_defaults=True):
    """``GET /repos/{slug}``: the repo, what the cache holds for it and every file error."""

    counts: RepoCounts
    errors: list[FileError]
    """In path, line order."""
    error_count: int
    freshness: Freshness | None = None
    """How fresh the cache is for the repo (``GET /repos/{slug}``); left out when None."""


class IndexedRepo(RepoDetail, frozen=True, kw_only=True):
    """A repo just registered or refreshed: its detail and what indexing did (files seen, parsed, removed)."""

    files: int
    parsed: int
    removed: int


# workplans, tasks, canon ---------------------------------------------------------------------------


class TaskItem(msgspec.Struct, frozen=True):
    """One task: ``ref`` is ``<workplan id>-<task id>``, the hub-wide reference (CUST-WP-0054-T02)."""

    ref: str
    workplan: str
    id: str
    repo: str
    path: str
    """The workplan file, repo-relative."""
    title: str
    status: TaskStatus
    owner: str | None
    depends_on: list[str]
    """The tasks it depends on, as hub-wide references (a bare ``T01`` in the file names its own workplan)."""
    ready: bool
    """Open (todo or blocked) and every dependency done."""


class WorkplanItem(msgspec.Struct, frozen=True):
    """One workplan in a list: its front matter and how many tasks it has."""

    id: str
    repo: str
    path: str
    title: str
    status: WorkplanStatus
    owner: str | None
    related: list[str]
    task_count: int


class TaskDetail(TaskItem, frozen=True, omit_defaults=True):
    """``GET /tasks/{ref}``: the task, and how fresh the cache is for its repo."""

    freshness: Freshness | None = None
    """Left out when None."""


class WorkplanDetail(WorkplanItem, frozen=True, omit_defaults=True):
    """``GET /workplans/{id}``: the workplan, its markdown body, unknown front matter keys, its tasks."""

    body: str
    extra: dict[str, Any]
    tasks: list[TaskItem]
    """In file order."""
    freshness: Freshness | None = None
    """How fresh the cache is for its repo (``GET /workplans/{id}``); left out when None (the CLI's
    envelope carries it)."""


class CanonItem(msgspec.Struct, frozen=True):
    """One canon document (ADR, standard, runbook, note) in a list."""

    id: str
    repo: str
    path: str
    title: str
    kind: CanonKind
    status: CanonStatus
    date: str | None
    """``YYYY-MM-DD`` as written in the front matter."""
    supersedes: list[str]


class CanonDetail(CanonItem, frozen=True, omit_defaults=True):
    """``GET /canon/{id}``: the document, its markdown body and unknown front matter keys."""

    body: str
    extra: dict[str, Any]
    freshness: Freshness | None = None
    """How fresh the cache is for its repo (``GET /canon/{id}``); left out when None."""


# search ------------------------------------------------------------------------------------------


class SearchHit(msgspec.Struct, frozen=True):
    """One search hit (``GET /search``, statehub.cache.search): what matched and where.

    ``kind`` is ``workplan`` (title, body and its Progress notes), ``task`` (title) or ``canon``;
    ``ref`` the workplan id, task reference or canon id; ``workplan`` the workplan id of a
    workplan or task hit, None for canon; ``snippet`` the best-matching passage (at most 16
    words) with each matched word between ``**``; ``score`` the rank, higher is better, on the
    backend's own scale (SQLite: negated BM25; PostgreSQL: ``ts_rank``).
    """

    kind: str
    ref: str
    workplan: str | None
    repo: str
    path: str
    title: str
    snippet: str
    score: float


# fleet -------------------------------------------------------------------------------------------


class FleetList(msgspec.Struct, Generic[T], frozen=True):
    """A fleet list: the repo whose ``registry/fleet.toml`` answered, its items, how many."""

    repo: str
    items: list[T]
    total: int


class MachineAllows(msgspec.Struct, frozen=True):
    """What a machine's role allows (registry.policy)."""

    placement: bool
    promotion: bool
    production: bool
    critical_lanes: bool


class MachineItem(msgspec.Struct, frozen=True):
    name: str
    role: MachineRole
    address: str | None
    notes: str | None
    allows: MachineAllows
    rule: str
    """The role's rule in one sentence."""
    workloads: list[str]
    """Workloads running on the machine now."""


class GateView(msgspec.Struct, frozen=True):
    """A workload's promotion evidence as recorded (unknown keys left out)."""

    overlay_repo: str | None
    stages_proven: list[str]
    backup_restore_drill: str | None
    """``YYYY-MM-DD``."""
    canary_observed: bool
    operator_approval: str | None
    image: str | None
    exception: str
    """A documented exception with its rollback; empty when none."""


class WorkloadItem(msgspec.Struct, frozen=True):
    name: str
    current_host: str
    target_host: str | None
    runs_on: str | None
    """Where it runs now: the target once promoted, the current host before, None once retired."""
    owner: str | None
    wave: int | None
    stateful: bool
    state: WorkloadState
    gate: GateView | None
    gate_unmet: list[str]
    """Gate items still missing before a promotion (registry.unmet_gate_items)."""


class LaneRisk(msgspec.Struct, frozen=True):
    """A machine on a critical lane whose role must not carry one."""

    machine: str
    role: MachineRole
    position: str


class LaneItem(msgspec.Struct, frozen=True):
    name: str
    from_: str = msgspec.field(name="from")
    to: str
    via: list[str]
    critical: bool
    risks: list[LaneRisk]


class LaneList(msgspec.Struct, frozen=True):
    """``GET /fleet/lanes``: the lanes and how many of them are at risk."""

    repo: str
    items: list[LaneItem]
    total: int
    at_risk: int


class DrainStep(msgspec.Struct, frozen=True):
    workload: str
    state: WorkloadState
    target_host: str | None
    next_step: str
    blockers: list[str]


class DrainWave(msgspec.Struct, frozen=True):
    wave: int | None
    """None for workloads without a wave (they go last)."""
    steps: list[DrainStep]


class DrainPlan(msgspec.Struct, frozen=True):
    """What must leave ``machine``, wave by wave; ``drained`` when nothing is left on it."""

    repo: str
    machine: str
    role: MachineRole
    drained: bool
    waves: list[DrainWave]


class ReadinessBlocker(msgspec.Struct, frozen=True):
    kind: str
    """``workload`` or ``lane``."""
    name: str
    machine: str
    reason: str


class Readiness(msgspec.Struct, frozen=True):
    """Can production run with every temporary-dev machine switched off, and what stands in the way."""

    repo: str
    question: str
    ready: bool
    switched_off: list[str]
    blockers: list[ReadinessBlocker]


class Violation(msgspec.Struct, frozen=True):
    """A fleet rule the file breaks as written (ADR-010)."""

    subject: str
    message: str


# show and next -------------------------------------------------------------------------------------


class Dependency(msgspec.Struct, frozen=True):
    """One ``depends_on`` entry of a task: the reference as written (resolved hub-wide) and the task
    it names, or None when it names no task the cache holds (or one whose workplan id is claimed twice)."""

    ref: str
    task: TaskItem | None


class TaskShown(msgspec.Struct, frozen=True, tag="task", tag_field="kind"):
    """``statehub show <task ref>``: the task, what it depends on, and what depends on it."""

    task: TaskItem
    dependencies: list[Dependency]
    """In ``depends_on`` order."""
    dependents: list[TaskItem]
    """The tasks whose ``depends_on`` names this one, in workplan id, file order."""


class WorkplanProgress(msgspec.Struct, frozen=True):
    """How far a workplan is: tasks by status, and done of those not cancelled (``percent``, 0-100,
    rounded down; 100 when nothing is left to do)."""

    total: int
    done: int
    by_status: dict[str, int]
    """Every status, in the format's order, with its count (0 included)."""
    percent: int

    @classmethod
    def of(cls, tasks: list[TaskItem]) -> WorkplanProgress:
        """``tasks`` counted by status; ``percent`` is done of those not cancelled."""
        by_status = {status.value: 0 for status in TaskStatus}
        for task in tasks:
            by_status[task.status.value] += 1
        done = by_status[TaskStatus.DONE.value]
        counted = len(tasks) - by_status[TaskStatus.CANCELLED.value]
        percent = 100 if counted == 0 else done * 100 // counted
        return cls(total=len(tasks), done=done, by_status=by_status, percent=percent)


class WorkplanShown(msgspec.Struct, frozen=True, tag="workplan", tag_field="kind"):
    """``statehub show <workplan id>``: the workplan with its tasks and body (its Progress notes
    are in the body), and its progress counted."""

    workplan: WorkplanDetail
    progress: WorkplanProgress


class OutsideDependent(msgspec.Struct, frozen=True):
    """A task of another workplan that depends on ``on``, a task of this one."""

    on: str
    task: TaskItem


class WorkplanOverview(msgspec.Struct, frozen=True):
    """``GET /workplans/{id}/overview``: the workplan, its progress, and its tasks' links that leave it
    (what its dependency graph needs besides its own tasks).

    ``outside`` are the ``depends_on`` entries of its tasks that name a task of another workplan
    (any repo), resolved as :class:`Dependency`; ``dependents`` the tasks of other workplans whose
    ``depends_on`` names one of its tasks, each with the reference it names (``on``).
    """

    workplan: WorkplanDetail
    progress: WorkplanProgress
    outside: list[Dependency]
    dependents: list[OutsideDependent]


class CanonShown(msgspec.Struct, frozen=True, tag="canon", tag_field="kind"):
    """``statehub show <canon id>``: the document and its body."""

    canon: CanonDetail


class NextTask(msgspec.Struct, frozen=True):
    """``statehub next``: the best task ``actor`` can take now, or None when none is ready.

    Candidates are tasks with status ``todo`` that are ready (every dependency done,
    ADR-004) in a workplan that is neither done nor cancelled. The best is the first
    by: owned by the actor, then unowned, then owned by someone else; then the
    workplan's status (active, draft, blocked); then workplan id and file order.
    ``reason`` says in a sentence why it was chosen (or why nothing was).
    """

    actor: str
    task: TaskItem | None
    reason: str
    candidates: int
    """How many tasks were in the running."""
