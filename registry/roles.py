"""Machine roles and what each allows: placements, promotions, production, critical lanes."""

from __future__ import annotations

from dataclasses import dataclass

from workplans.fleet_models import MachineRole

__all__ = ["POLICIES", "RolePolicy", "policy"]


@dataclass(frozen=True, slots=True)
class RolePolicy:
    role: MachineRole
    accepts_placement: bool
    """May a workload be given this machine as its new target host?"""
    accepts_promotion: bool
    """May a workload be promoted to serve production from this machine?"""
    hosts_production: bool
    """May any production workload run here at all? (temporary-dev: no; it may be switched off.)"""
    lane_risk: bool
    """Is a critical lane that touches this machine a risk?"""
    carries_critical_lanes: bool
    """May a critical lane start, end or pass here without breaking a rule?"""
    summary: str


POLICIES: dict[MachineRole, RolePolicy] = {
    p.role: p
    for p in (
        RolePolicy(
            MachineRole.PRODUCTION_HOME, True, True, True, False, True, "accepts placements and promotions"
        ),
        RolePolicy(
            MachineRole.FROZEN_LEGACY,
            False,
            False,
            True,
            True,
            True,
            "accepts no new placement; workloads may only leave",
        ),
        RolePolicy(
            MachineRole.TEMPORARY_DEV,
            False,
            False,
            False,
            True,
            False,
            "hosts no production workload and carries no critical lane; may be switched off any time",
        ),
        RolePolicy(MachineRole.BUILD, True, True, True, False, True, "accepts build and CI workloads"),
        RolePolicy(
            MachineRole.EXPERIMENTAL, True, False, True, False, True, "accepts trials; promotes nothing"
        ),
    )
}


def policy(role: MachineRole) -> RolePolicy:
    return POLICIES[role]
