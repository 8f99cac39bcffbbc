"""The fleet-role domain: roles, workload states, drain waves, the promotion gate, lane risks.

Pure functions over a parsed ``workplans`` fleet registry: no files, no
database, no network. The API, the CLI and the events applier all ask these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Eager: the function shares its submodule's name, and importing ``registry.readiness`` anywhere
# would otherwise set the package attribute ``readiness`` to the module, hiding the function.
from registry.readiness import Blocker, Readiness, readiness
from workplans.lazy import lazy_exports

if TYPE_CHECKING:
    from registry.changes import apply_to_registry, changes_between, check_change, check_edit
    from registry.drain import DrainPlan, DrainStep, DrainWave, drain_plan
    from registry.errors import FleetChangeRefused, FleetFileBroken, RegistryError, UnknownMachine
    from registry.event_kinds import fleet_event_kinds, hub_event_kinds
    from registry.gate import REQUIRED_STAGES, is_pinned_by_digest, unmet_gate_items
    from registry.lanes import LaneRisk, lane_risks
    from registry.roles import POLICIES, RolePolicy, policy
    from registry.rules import Violation, added_violations, violations
    from registry.states import NEXT_STATES, transition_refusal

__all__ = [
    "NEXT_STATES",
    "POLICIES",
    "REQUIRED_STAGES",
    "Blocker",
    "DrainPlan",
    "DrainStep",
    "DrainWave",
    "FleetChangeRefused",
    "FleetFileBroken",
    "LaneRisk",
    "Readiness",
    "RegistryError",
    "RolePolicy",
    "UnknownMachine",
    "Violation",
    "added_violations",
    "apply_to_registry",
    "changes_between",
    "check_change",
    "check_edit",
    "drain_plan",
    "fleet_event_kinds",
    "hub_event_kinds",
    "is_pinned_by_digest",
    "lane_risks",
    "policy",
    "readiness",
    "transition_refusal",
    "unmet_gate_items",
    "violations",
]

_WHERE = {
    "DrainPlan": "registry.drain",
    "DrainStep": "registry.drain",
    "DrainWave": "registry.drain",
    "FleetChangeRefused": "registry.errors",
    "FleetFileBroken": "registry.errors",
    "LaneRisk": "registry.lanes",
    "NEXT_STATES": "registry.states",
    "POLICIES": "registry.roles",
    "REQUIRED_STAGES": "registry.gate",
    "RegistryError": "registry.errors",
    "RolePolicy": "registry.roles",
    "UnknownMachine": "registry.errors",
    "Violation": "registry.rules",
    "added_violations": "registry.rules",
    "apply_to_registry": "registry.changes",
    "changes_between": "registry.changes",
    "check_change": "registry.changes",
    "check_edit": "registry.changes",
    "drain_plan": "registry.drain",
    "fleet_event_kinds": "registry.event_kinds",
    "hub_event_kinds": "registry.event_kinds",
    "is_pinned_by_digest": "registry.gate",
    "lane_risks": "registry.lanes",
    "policy": "registry.roles",
    "transition_refusal": "registry.states",
    "unmet_gate_items": "registry.gate",
    "violations": "registry.rules",
}
"""Each public name and the submodule that defines it: imported on first use (PEP 562), so a
reader that needs one enum does not load every parser and writer (canon/ADR-033)."""


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, __all__)
