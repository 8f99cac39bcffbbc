"""Change checks: refusals with their reasons, and no sequence of changes breaks the rules."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from registry import apply_to_registry, check_change, unmet_gate_items
from registry.gate import REQUIRED_STAGES
from workplans import FleetRegistry, MachineRole, WorkloadState, parse_fleet
from workplans.fleet_events import (
    FleetChange,
    PlaceWorkload,
    SetGateFields,
    SetMachineRole,
    SetWorkloadState,
    apply_fleet_change,
)

from .conftest import EXAMPLE_PATH

S = WorkloadState
DIGEST = "forge.example/registry@sha256:" + "c" * 64


def test_placement_on_the_frozen_host_is_refused(example: FleetRegistry) -> None:
    assert check_change(example, PlaceWorkload("vault", "coulombcore")) == [
        "workload vault: target host coulombcore is frozen-legacy: it accepts no new placement"
    ]
    assert check_change(example, PlaceWorkload("vault", "workstation")) == [
        "workload vault: target host workstation is temporary-dev: it accepts no new placement"
    ]
    assert check_change(example, PlaceWorkload("vault", "railiance01")) == []
    assert check_change(example, PlaceWorkload("vault", "buildbox")) == []


def test_placement_only_before_migration(example: FleetRegistry) -> None:
    assert check_change(example, PlaceWorkload("woodpecker-ci", "buildbox")) == [
        "workload woodpecker-ci is migrated: only a running or draining workload can get a new target host"
    ]
    assert check_change(example, PlaceWorkload("container-registry", "buildbox")) == []


def test_promotion_with_missing_evidence_names_what_is_missing(example: FleetRegistry) -> None:
    migrated = apply_to_registry(example, SetWorkloadState("container-registry", S.MIGRATED))
    assert check_change(migrated, SetWorkloadState("container-registry", S.PROMOTED)) == [
        "workload container-registry: promotion gate unmet: stage 'promote' is not in stages_proven",
        "workload container-registry: promotion gate unmet: stage 'rollback' is not in stages_proven",
        "workload container-registry: promotion gate unmet: canary_observed is not true",
        "workload container-registry: promotion gate unmet: operator_approval is not recorded",
        "workload container-registry: promotion gate unmet: image 'forge.example/registry:2.8' "
        "is not pinned by digest (name@sha256:<64 hex>)",
        "workload container-registry: promotion gate unmet: backup_restore_drill is not recorded "
        "(required for a stateful workload)",
    ]
    evidence = SetGateFields(
        "container-registry",
        {
            "stages_proven": REQUIRED_STAGES,
            "canary_observed": True,
            "operator_approval": "ops-lead",
            "image": DIGEST,
            "backup_restore_drill": dt.date(2026, 7, 1),
        },
    )
    assert check_change(migrated, evidence) == []
    proven = apply_to_registry(migrated, evidence)
    assert check_change(proven, SetWorkloadState("container-registry", S.PROMOTED)) == []
    assert check_change(example, SetWorkloadState("woodpecker-ci", S.PROMOTED)) == []


def test_a_documented_exception_lets_a_promotion_through(example: FleetRegistry) -> None:
    migrated = apply_to_registry(example, SetWorkloadState("container-registry", S.MIGRATED))
    excepted = apply_to_registry(
        migrated, SetGateFields("container-registry", {"exception": "vendor image; rollback: old VM"})
    )
    assert check_change(excepted, SetWorkloadState("container-registry", S.PROMOTED)) == []


def test_invalid_transitions_and_unknown_names(example: FleetRegistry) -> None:
    assert check_change(example, SetWorkloadState("state-hub-api", S.MIGRATED)) == [
        "workload state-hub-api: cannot go from running to migrated; from running it may go to "
        "draining, retired, promoted"
    ]
    assert check_change(example, SetWorkloadState("nope", S.MIGRATED)) == [
        "no workload named 'nope' in the fleet registry (workloads: forgejo, woodpecker-ci, "
        "container-registry, state-hub-api, activity-core, legacy-wiki, monitoring, mail-relay, "
        "postgres-main, keycloak, vault, daily-triage)"
    ]
    assert check_change(example, PlaceWorkload("vault", "laptop")) == [
        "no machine named 'laptop' in the fleet registry "
        "(machines: railiance01, coulombcore, workstation, buildbox)"
    ]
    assert check_change(example, SetMachineRole("laptop", MachineRole.BUILD))[0].startswith(
        "no machine named 'laptop'"
    )


def test_a_change_already_reflected_is_allowed(example: FleetRegistry) -> None:
    assert check_change(example, SetWorkloadState("forgejo", S.PROMOTED)) == []
    assert check_change(example, SetMachineRole("workstation", MachineRole.TEMPORARY_DEV)) == []


def test_promotion_needs_a_host_that_accepts_it(example: FleetRegistry) -> None:
    on_lab = apply_to_registry(example, SetMachineRole("buildbox", MachineRole.EXPERIMENTAL))
    placed = apply_to_registry(on_lab, PlaceWorkload("vault", "buildbox"))
    placed = apply_to_registry(placed, SetGateFields("vault", {"exception": "documented"}))
    placed = apply_to_registry(placed, SetWorkloadState("vault", S.DRAINING))
    placed = apply_to_registry(placed, SetWorkloadState("vault", S.MIGRATED))
    assert check_change(placed, SetWorkloadState("vault", S.PROMOTED)) == [
        "workload vault: cannot be promoted on buildbox, a experimental machine"
    ]


def test_role_changes_that_break_a_rule_are_refused(example: FleetRegistry) -> None:
    assert check_change(example, SetMachineRole("railiance01", MachineRole.FROZEN_LEGACY)) == [
        f"workload {name}: target host railiance01 is frozen-legacy: it accepts no new placement"
        for name in (
            "woodpecker-ci",
            "container-registry",
            "state-hub-api",
            "activity-core",
            "monitoring",
            "mail-relay",
            "postgres-main",
            "keycloak",
            "daily-triage",
        )
    ]
    assert check_change(example, SetMachineRole("buildbox", MachineRole.TEMPORARY_DEV)) == [
        "lane forge-to-ci: critical lane ends at buildbox, a temporary-dev machine"
    ]
    assert check_change(example, SetMachineRole("workstation", MachineRole.PRODUCTION_HOME)) == []


def test_withdrawing_evidence_from_a_promoted_workload_is_refused(example: FleetRegistry) -> None:
    assert check_change(example, SetGateFields("forgejo", {"canary_observed": False, "image": None})) == [
        "workload forgejo: promotion gate unmet: canary_observed is not true",
        "workload forgejo: promotion gate unmet: image is not set",
    ]


# sequences of changes ----------------------------------------------------------------------------

_EXAMPLE = EXAMPLE_PATH.read_text(encoding="utf-8")
_START = parse_fleet(_EXAMPLE)
_WORKLOADS = ["woodpecker-ci", "container-registry", "vault", "forgejo", "daily-triage", "ghost"]
"""A few workloads, so that sequences often walk one of them all the way to promotion."""
_MACHINES = [m.name for m in _START.machines] + ["laptop"]

_gate_values = st.fixed_dictionaries(
    {},
    optional={
        "overlay_repo": st.none() | st.sampled_from(["railiance/x", ""]),
        "stages_proven": st.lists(st.sampled_from(REQUIRED_STAGES), unique=True).map(tuple),
        "backup_restore_drill": st.none() | st.just(dt.date(2026, 7, 1)),
        "canary_observed": st.none() | st.booleans(),
        "operator_approval": st.none() | st.sampled_from(["ops-lead", ""]),
        "image": st.none() | st.sampled_from([DIGEST, "forge.example/x:latest"]),
        "exception": st.none() | st.sampled_from(["", "documented, rollback: restore snapshot"]),
    },
).filter(bool)

_FULL_EVIDENCE = {
    "overlay_repo": "railiance/x",
    "stages_proven": REQUIRED_STAGES,
    "backup_restore_drill": dt.date(2026, 7, 1),
    "canary_observed": True,
    "operator_approval": "ops-lead",
    "image": DIGEST,
}

changes: st.SearchStrategy[FleetChange] = st.one_of(
    st.builds(SetWorkloadState, st.sampled_from(_WORKLOADS), st.sampled_from(WorkloadState)),
    st.builds(PlaceWorkload, st.sampled_from(_WORKLOADS), st.sampled_from(_MACHINES)),
    st.builds(SetGateFields, st.sampled_from(_WORKLOADS), _gate_values | st.just(_FULL_EVIDENCE)),
    st.builds(SetMachineRole, st.sampled_from(_MACHINES), st.sampled_from(MachineRole)),
)


def _frozen(registry: FleetRegistry) -> set[str]:
    return {m.name for m in registry.machines if m.role is MachineRole.FROZEN_LEGACY}


@settings(max_examples=150, deadline=None)
@given(st.lists(changes, min_size=1, max_size=40))
def test_no_sequence_promotes_without_evidence_or_places_on_a_frozen_host(
    sequence: list[FleetChange],
) -> None:
    registry, text = _START, _EXAMPLE
    for change in sequence:
        reasons = check_change(registry, change)
        if reasons:
            continue
        if isinstance(change, PlaceWorkload):
            assert change.target_host not in _frozen(registry)
        registry = apply_to_registry(registry, change)
        text = apply_fleet_change(text, change)
        assert parse_fleet(text) == registry  # the file and the model never part ways
        for workload in registry.workloads:
            if workload.state is S.PROMOTED:
                assert unmet_gate_items(workload) == [], workload
            elif workload.state is not S.RETIRED:
                assert workload.target_host not in _frozen(registry), workload
