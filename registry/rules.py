"""Rules that must hold over a whole registry, listed as violations.

A file written by hand may break them already (and the hub shows that); a
change through the hub must never add a new one. That is how every change
check stays small: apply the change to the model, and refuse it when it
introduces a violation the registry did not have.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.gate import unmet_gate_items
from registry.roles import policy
from workplans.fleet_models import FleetRegistry, WorkloadState

__all__ = ["Violation", "added_violations", "violations"]

_POSITION = {"from": "starts at", "via": "passes through", "to": "ends at"}


@dataclass(frozen=True, slots=True)
class Violation:
    subject: str
    """``workload NAME``, ``lane NAME`` or ``machine NAME``."""
    message: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


def violations(registry: FleetRegistry) -> list[Violation]:
    """Every broken rule, in file order: placements, production on temporary-dev, gates, lanes."""
    roles = {m.name: m.role for m in registry.machines}
    found: list[Violation] = []
    for workload in registry.workloads:
        if workload.state is WorkloadState.RETIRED:
            continue
        subject = f"workload {workload.name}"
        target = workload.target_host
        already_there = workload.state is WorkloadState.PROMOTED and workload.runs_on == target
        if target is not None and target in roles and not already_there:
            role = roles[target]
            if not policy(role).accepts_placement:
                found.append(
                    Violation(subject, f"target host {target} is {role}: it accepts no new placement")
                )
        host = workload.runs_on
        if host is not None and host in roles and not policy(roles[host]).hosts_production:
            found.append(
                Violation(subject, f"runs on {host}, a {roles[host]} machine, which must host no production")
            )
        if workload.state is WorkloadState.PROMOTED:
            found.extend(
                Violation(subject, f"promotion gate unmet: {item}") for item in unmet_gate_items(workload)
            )
    for lane in registry.lanes:
        if not lane.critical:
            continue
        for position, machine in lane.hops:
            hop_role = roles.get(machine)
            if hop_role is not None and not policy(hop_role).carries_critical_lanes:
                found.append(
                    Violation(
                        f"lane {lane.name}",
                        f"critical lane {_POSITION[position]} {machine}, a {hop_role} machine",
                    )
                )
    return found


def added_violations(before: FleetRegistry, after: FleetRegistry) -> list[Violation]:
    """The violations ``after`` has that ``before`` did not (ADR-010: a change adds none), in file order."""
    known = set(violations(before))
    return [v for v in violations(after) if v not in known]
