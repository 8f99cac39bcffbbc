"""The fleet-role domain: roles, workload states, drain waves, the promotion gate, lane risks.

Pure functions over a parsed ``workplans`` fleet registry: no files, no
database, no network. The API, the CLI and the events applier all ask these.
"""

from registry.changes import apply_to_registry, changes_between, check_change, check_edit
from registry.drain import DrainPlan, DrainStep, DrainWave, drain_plan
from registry.errors import FleetChangeRefused, FleetFileBroken, RegistryError, UnknownMachine
from registry.event_kinds import fleet_event_kinds, hub_event_kinds
from registry.gate import REQUIRED_STAGES, is_pinned_by_digest, unmet_gate_items
from registry.lanes import LaneRisk, lane_risks
from registry.readiness import Blocker, Readiness, readiness
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
