"""The drain plan of one machine: its workloads by wave, each with its next step and blockers.

Lower waves move first. A workload has left the machine once it is promoted
elsewhere or retired; until then its step is blocked by any earlier wave
that has not left yet, by a missing or unacceptable target host, and, for
the promotion step, by every unmet item of the promotion gate.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.errors import UnknownMachine
from registry.gate import unmet_gate_items
from registry.roles import policy
from workplans.fleet_models import FleetRegistry, MachineRole, Workload, WorkloadState

__all__ = ["DrainPlan", "DrainStep", "DrainWave", "UnknownMachine", "drain_plan"]


@dataclass(frozen=True, slots=True)
class DrainStep:
    workload: str
    state: WorkloadState
    target_host: str | None
    next_step: str
    """What to do next, in words; ``done`` once the workload has left."""
    blockers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DrainWave:
    wave: int | None
    """None for workloads with no wave yet; they come last."""
    steps: tuple[DrainStep, ...]


@dataclass(frozen=True, slots=True)
class DrainPlan:
    machine: str
    role: MachineRole
    waves: tuple[DrainWave, ...]

    @property
    def drained(self) -> bool:
        return all(step.next_step == "done" for wave in self.waves for step in wave.steps)


def _has_left(workload: Workload, machine: str) -> bool:
    return workload.state is WorkloadState.RETIRED or (
        workload.state is WorkloadState.PROMOTED and workload.runs_on != machine
    )


def _next_step(workload: Workload, machine: str, registry: FleetRegistry) -> tuple[str, list[str]]:
    target = workload.target_host
    blockers: list[str] = []
    if workload.state is WorkloadState.PROMOTED:
        return "move it again by hand (a promoted workload has no further transition)", [
            f"promoted on {machine} itself"
        ]
    if target is None:
        return "choose a target host", [f"no target host: statehub fleet place {workload.name} --on HOST"]
    if target == machine:
        return "choose a target host", [f"target host is {machine} itself"]
    role = registry.machine(target).role  # type: ignore[union-attr]
    if not policy(role).accepts_placement:
        blockers.append(f"target host {target} is {role}: it accepts no new placement")
    if workload.state is WorkloadState.RUNNING:
        return f"start draining to {target}", blockers
    if workload.state is WorkloadState.DRAINING:
        return f"finish migrating to {target}", blockers
    if not policy(role).accepts_promotion:
        blockers.append(f"target host {target} is {role}: it accepts no promotion")
    blockers.extend(f"gate: {item}" for item in unmet_gate_items(workload))
    return f"promote on {target}", blockers


def drain_plan(registry: FleetRegistry, machine_name: str) -> DrainPlan:
    """What has to happen, wave by wave, before ``machine_name`` carries no workload."""
    machine = registry.machine(machine_name)
    if machine is None:
        raise UnknownMachine(machine_name, [m.name for m in registry.machines])
    members = [w for w in registry.workloads if machine_name in (w.current_host, w.runs_on)]
    open_waves = sorted({w.wave for w in members if w.wave is not None and not _has_left(w, machine_name)})
    by_wave: dict[int | None, list[DrainStep]] = {}
    for workload in members:
        if _has_left(workload, machine_name):
            step = DrainStep(workload.name, workload.state, workload.target_host, "done")
        else:
            next_step, blockers = _next_step(workload, machine_name, registry)
            if workload.wave is None:
                blockers.insert(0, "no wave assigned")
            else:
                earlier = [str(n) for n in open_waves if n < workload.wave]
                if earlier:
                    blockers.insert(0, f"waits for earlier waves: {', '.join(earlier)}")
            step = DrainStep(workload.name, workload.state, workload.target_host, next_step, tuple(blockers))
        by_wave.setdefault(workload.wave, []).append(step)
    order = sorted(by_wave, key=lambda w: (w is None, w or 0))
    return DrainPlan(machine.name, machine.role, tuple(DrainWave(w, tuple(by_wave[w])) for w in order))
