"""Lane risks: critical network paths that touch a machine production must not lean on."""

from __future__ import annotations

from dataclasses import dataclass

from registry.roles import policy
from workplans.fleet_models import FleetRegistry, MachineRole

__all__ = ["LaneRisk", "lane_risks"]


@dataclass(frozen=True, slots=True)
class LaneRisk:
    lane: str
    machine: str
    role: MachineRole
    position: str
    """Where the machine sits on the lane: ``from``, ``via`` or ``to``."""


def lane_risks(registry: FleetRegistry) -> list[LaneRisk]:
    """Each critical lane hop on a temporary-dev or frozen-legacy machine, lanes and hops in file order."""
    roles = {m.name: m.role for m in registry.machines}
    risks: list[LaneRisk] = []
    for lane in registry.lanes:
        if not lane.critical:
            continue
        for position, machine in lane.hops:
            role = roles.get(machine)
            if role is not None and policy(role).lane_risk:
                risks.append(LaneRisk(lane.name, machine, role, position))
    return risks
