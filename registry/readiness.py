"""Readiness: can production run with every temporary-dev machine switched off?

The answer is a yes or no with every blocker listed, so the team knows the
whole list of what still leans on a laptop, not just the first thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from workplans.enums import MachineRole, WorkloadState

if TYPE_CHECKING:
    from workplans.fleet_models import FleetRegistry

__all__ = ["Blocker", "Readiness", "readiness"]

_ON_LANE = {"from": "starts at", "via": "passes through", "to": "ends at"}


@dataclass(frozen=True, slots=True)
class Blocker:
    kind: str
    """``workload`` or ``lane``."""
    name: str
    machine: str
    reason: str


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    switched_off: tuple[str, ...]
    """The temporary-dev machines the question switches off."""
    blockers: tuple[Blocker, ...]


def readiness(registry: FleetRegistry) -> Readiness:
    """Workload blockers first, then lane blockers, each in file order."""
    dev = tuple(m.name for m in registry.machines if m.role is MachineRole.TEMPORARY_DEV)
    off = set(dev)
    blockers: list[Blocker] = []
    for workload in registry.workloads:
        if workload.state is WorkloadState.RETIRED:
            continue
        host = workload.runs_on
        if host in off:
            assert host is not None
            blockers.append(Blocker("workload", workload.name, host, f"{workload.state} on {host}"))
        elif workload.target_host in off:
            assert workload.target_host is not None
            target = workload.target_host
            blockers.append(Blocker("workload", workload.name, target, f"planned to move to {target}"))
    for lane in registry.lanes:
        if not lane.critical:
            continue
        for position, machine in lane.hops:
            if machine in off:
                reason = f"critical lane {_ON_LANE[position]} {machine}"
                blockers.append(Blocker("lane", lane.name, machine, reason))
    return Readiness(not blockers, dev, tuple(blockers))
