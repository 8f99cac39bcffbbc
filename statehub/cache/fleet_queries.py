"""The fleet questions, answered from the cache: machines, workloads, lanes, drain plans, readiness.

The registry is read back from its cache rows as a ``FleetRegistry`` and the
``registry`` package answers; this module only finds the right file and
turns answers into the Structs of :mod:`statehub.cache.answers`. The API and
the CLI both call it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, and_, select

import registry
from statehub.cache.answers import (
    DrainPlan,
    DrainStep,
    DrainWave,
    FleetList,
    GateView,
    LaneItem,
    LaneList,
    LaneRisk,
    MachineAllows,
    MachineItem,
    Readiness,
    ReadinessBlocker,
    Violation,
    WorkloadItem,
)
from statehub.cache.fleet_index import registry_from_rows
from statehub.cache.schema import FILE_ERRORS, SOURCE_FILES
from statehub.errors import Conflict, NotFound, Unprocessable, as_hub_error
from workplans import FLEET_PATH, FleetRegistry, Gate, Workload, WorkloadState

__all__ = [
    "LoadedFleet",
    "drain_plan",
    "fleet_readiness",
    "fleet_violations",
    "list_lanes",
    "list_machines",
    "list_workloads",
    "load_fleet",
    "workload_item",
]


@dataclass(frozen=True, slots=True)
class LoadedFleet:
    repo: str
    path: str
    registry: FleetRegistry


def load_fleet(conn: Connection, repo: str | None = None) -> LoadedFleet:
    """The one fleet registry asked for: the only one registered, or the one in ``repo``."""
    query = select(SOURCE_FILES.c.repo, SOURCE_FILES.c.path).where(SOURCE_FILES.c.kind == "fleet")
    if repo:
        query = query.where(SOURCE_FILES.c.repo == repo)
    found = conn.execute(query.order_by(SOURCE_FILES.c.repo)).all()
    if not found:
        if repo:
            raise NotFound(f"repo {repo!r} has no {FLEET_PATH} (or is not registered)")
        raise NotFound(f"no registered repo has {FLEET_PATH}; register the repo that holds it")
    if len(found) > 1:
        repos = ", ".join(r.repo for r in found)
        raise Conflict(f"repos {repos} each hold {FLEET_PATH}; ask again with ?repo=<slug> (--repo)")
    slug, path = found[0]
    problems = conn.execute(
        select(FILE_ERRORS.c.line, FILE_ERRORS.c.message)
        .where(and_(FILE_ERRORS.c.repo == slug, FILE_ERRORS.c.path == path))
        .order_by(FILE_ERRORS.c.line, FILE_ERRORS.c.id)
    ).all()
    if problems:
        listed = "; ".join(f"{path}:{p.line}: {p.message}" if p.line else p.message for p in problems)
        raise Unprocessable(f"{FLEET_PATH} in repo {slug} cannot be read until it is fixed: {listed}")
    return LoadedFleet(slug, path, registry_from_rows(conn, slug, path))


def _gate(gate: Gate | None) -> GateView | None:
    """The gate as the API shows it: the recorded evidence without the unknown keys."""
    if gate is None:
        return None
    drill = gate.backup_restore_drill
    return GateView(
        overlay_repo=gate.overlay_repo,
        stages_proven=list(gate.stages_proven),
        backup_restore_drill=drill.isoformat() if drill else None,
        canary_observed=gate.canary_observed,
        operator_approval=gate.operator_approval,
        image=gate.image,
        exception=gate.exception,
    )


def workload_item(workload: Workload) -> WorkloadItem:
    return WorkloadItem(
        name=workload.name,
        current_host=workload.current_host,
        target_host=workload.target_host,
        runs_on=workload.runs_on,
        owner=workload.owner,
        wave=workload.wave,
        stateful=workload.stateful,
        state=workload.state,
        gate=_gate(workload.gate),
        gate_unmet=registry.unmet_gate_items(workload),
    )


def list_machines(conn: Connection, repo: str | None = None) -> FleetList[MachineItem]:
    """The registry's machines in file order, with what each role allows and what runs there."""
    fleet = load_fleet(conn, repo)
    items = []
    for machine in fleet.registry.machines:
        rules = registry.policy(machine.role)
        items.append(
            MachineItem(
                name=machine.name,
                role=machine.role,
                address=machine.address,
                notes=machine.notes,
                allows=MachineAllows(
                    placement=rules.accepts_placement,
                    promotion=rules.accepts_promotion,
                    production=rules.hosts_production,
                    critical_lanes=rules.carries_critical_lanes,
                ),
                rule=rules.summary,
                workloads=[w.name for w in fleet.registry.workloads if w.runs_on == machine.name],
            )
        )
    return FleetList(fleet.repo, items, len(items))


def list_workloads(
    conn: Connection,
    repo: str | None = None,
    *,
    host: str | None = None,
    state: WorkloadState | None = None,
    wave: int | None = None,
) -> FleetList[WorkloadItem]:
    """Filters: ``host`` matches the current or the target host; ``state``; ``wave``."""
    fleet = load_fleet(conn, repo)
    items = [
        workload_item(w)
        for w in fleet.registry.workloads
        if (host is None or host in (w.current_host, w.target_host))
        and (state is None or w.state is state)
        and (wave is None or w.wave == wave)
    ]
    return FleetList(fleet.repo, items, len(items))


def list_lanes(conn: Connection, repo: str | None = None) -> LaneList:
    """The lanes in file order, each with the machines on it whose role must not carry it."""
    fleet = load_fleet(conn, repo)
    risks = registry.lane_risks(fleet.registry)
    items = [
        LaneItem(
            name=lane.name,
            from_=lane.from_host,
            to=lane.to_host,
            via=list(lane.via),
            critical=lane.critical,
            risks=[LaneRisk(r.machine, r.role, r.position) for r in risks if r.lane == lane.name],
        )
        for lane in fleet.registry.lanes
    ]
    return LaneList(fleet.repo, items, len(items), at_risk=len({r.lane for r in risks}))


def drain_plan(conn: Connection, machine: str, repo: str | None = None) -> DrainPlan:
    """What must leave ``machine``, wave by wave; NotFound when the registry has no such machine."""
    fleet = load_fleet(conn, repo)
    try:
        plan = registry.drain_plan(fleet.registry, machine)
    except registry.UnknownMachine as error:
        raise as_hub_error(error) from None
    return DrainPlan(
        repo=fleet.repo,
        machine=plan.machine,
        role=plan.role,
        drained=plan.drained,
        waves=[
            DrainWave(
                wave=wave.wave,
                steps=[
                    DrainStep(
                        workload=step.workload,
                        state=step.state,
                        target_host=step.target_host,
                        next_step=step.next_step,
                        blockers=list(step.blockers),
                    )
                    for step in wave.steps
                ],
            )
            for wave in plan.waves
        ],
    )


READINESS_QUESTION = "can production run with every temporary-dev machine switched off?"


def fleet_readiness(conn: Connection, repo: str | None = None) -> Readiness:
    fleet = load_fleet(conn, repo)
    answer = registry.readiness(fleet.registry)
    return Readiness(
        repo=fleet.repo,
        question=READINESS_QUESTION,
        ready=answer.ready,
        switched_off=list(answer.switched_off),
        blockers=[ReadinessBlocker(b.kind, b.name, b.machine, b.reason) for b in answer.blockers],
    )


def fleet_violations(conn: Connection, repo: str | None = None) -> FleetList[Violation]:
    """Rules the file breaks as written (ADR-010): shown, never fatal; changes may not add more."""
    fleet = load_fleet(conn, repo)
    items = [Violation(v.subject, v.message) for v in registry.violations(fleet.registry)]
    return FleetList(fleet.repo, items, len(items))
