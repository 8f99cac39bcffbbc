"""The realistic fleet: drain order, lane risks and readiness, asserted exactly."""

from __future__ import annotations

import pytest

from registry import (
    Blocker,
    DrainStep,
    DrainWave,
    LaneRisk,
    Readiness,
    UnknownMachine,
    drain_plan,
    lane_risks,
    readiness,
    violations,
)
from workplans import FleetRegistry, MachineRole, WorkloadState

S = WorkloadState
R1 = "railiance01"


def _waits(*waves: int) -> str:
    return "waits for earlier waves: " + ", ".join(str(w) for w in waves)


def test_the_frozen_host_drains_in_eight_waves_forge_first_secrets_last(example: FleetRegistry) -> None:
    plan = drain_plan(example, "coulombcore")
    assert plan.machine == "coulombcore"
    assert plan.role is MachineRole.FROZEN_LEGACY
    assert not plan.drained
    assert plan.waves == (
        DrainWave(
            1,
            (
                DrainStep("forgejo", S.PROMOTED, R1, "done"),
                DrainStep("woodpecker-ci", S.MIGRATED, R1, "promote on railiance01"),
            ),
        ),
        DrainWave(
            2,
            (
                DrainStep(
                    "container-registry", S.DRAINING, R1, "finish migrating to railiance01", (_waits(1),)
                ),
            ),
        ),
        DrainWave(
            3, (DrainStep("state-hub-api", S.RUNNING, R1, "start draining to railiance01", (_waits(1, 2),)),)
        ),
        DrainWave(
            4,
            (
                DrainStep(
                    "activity-core", S.RUNNING, R1, "start draining to railiance01", (_waits(1, 2, 3),)
                ),
                DrainStep("legacy-wiki", S.RETIRED, None, "done"),
            ),
        ),
        DrainWave(
            5,
            (DrainStep("monitoring", S.RUNNING, R1, "start draining to railiance01", (_waits(1, 2, 3, 4),)),),
        ),
        DrainWave(
            6,
            (
                DrainStep(
                    "mail-relay", S.RUNNING, R1, "start draining to railiance01", (_waits(1, 2, 3, 4, 5),)
                ),
            ),
        ),
        DrainWave(
            7,
            (
                DrainStep(
                    "postgres-main",
                    S.RUNNING,
                    R1,
                    "start draining to railiance01",
                    (_waits(1, 2, 3, 4, 5, 6),),
                ),
            ),
        ),
        DrainWave(
            8,
            (
                DrainStep(
                    "keycloak", S.RUNNING, R1, "start draining to railiance01", (_waits(1, 2, 3, 4, 5, 6, 7),)
                ),
                DrainStep(
                    "vault",
                    S.RUNNING,
                    None,
                    "choose a target host",
                    (_waits(1, 2, 3, 4, 5, 6, 7), "no target host: statehub fleet place vault --on HOST"),
                ),
            ),
        ),
    )


def test_a_promotion_step_is_blocked_by_every_unmet_gate_item(example: FleetRegistry) -> None:
    workloads = tuple(
        w if w.name != "container-registry" else w.__class__(**{**_fields(w), "state": S.MIGRATED})
        for w in example.workloads
    )
    plan = drain_plan(FleetRegistry(example.machines, workloads, example.lanes), "coulombcore")
    assert plan.waves[1].steps == (
        DrainStep(
            "container-registry",
            S.MIGRATED,
            R1,
            "promote on railiance01",
            (
                _waits(1),
                "gate: stage 'promote' is not in stages_proven",
                "gate: stage 'rollback' is not in stages_proven",
                "gate: canary_observed is not true",
                "gate: operator_approval is not recorded",
                "gate: image 'forge.example/registry:2.8' is not pinned by digest (name@sha256:<64 hex>)",
                "gate: backup_restore_drill is not recorded (required for a stateful workload)",
            ),
        ),
    )


def _fields(workload: object) -> dict[str, object]:
    return {name: getattr(workload, name) for name in workload.__slots__}  # type: ignore[attr-defined]


def test_the_workstation_and_the_production_home_have_plans_too(example: FleetRegistry) -> None:
    assert drain_plan(example, "workstation").waves == (
        DrainWave(1, (DrainStep("daily-triage", S.RUNNING, R1, "start draining to railiance01"),)),
    )
    home = drain_plan(example, R1)
    assert home.waves == (
        DrainWave(
            1,
            (
                DrainStep(
                    "forgejo",
                    S.PROMOTED,
                    R1,
                    "move it again by hand (a promoted workload has no further transition)",
                    ("promoted on railiance01 itself",),
                ),
            ),
        ),
    )
    assert drain_plan(example, "buildbox").waves == ()
    assert drain_plan(example, "buildbox").drained


def test_an_unknown_machine_is_named_with_the_known_ones(example: FleetRegistry) -> None:
    with pytest.raises(UnknownMachine, match=r"no machine named 'laptop'.*railiance01, coulombcore"):
        drain_plan(example, "laptop")


def test_every_critical_lane_through_the_laptop_or_the_frozen_host_is_a_risk(example: FleetRegistry) -> None:
    assert lane_risks(example) == [
        LaneRisk("activity-core-to-state-hub", "workstation", MachineRole.TEMPORARY_DEV, "via"),
        LaneRisk("activity-core-to-state-hub", "coulombcore", MachineRole.FROZEN_LEGACY, "to"),
        LaneRisk("ops-vpn-to-vault", "workstation", MachineRole.TEMPORARY_DEV, "via"),
        LaneRisk("ops-vpn-to-vault", "coulombcore", MachineRole.FROZEN_LEGACY, "to"),
    ]


def test_production_cannot_yet_run_with_the_laptop_off(example: FleetRegistry) -> None:
    assert readiness(example) == Readiness(
        False,
        ("workstation",),
        (
            Blocker("workload", "daily-triage", "workstation", "running on workstation"),
            Blocker(
                "lane",
                "activity-core-to-state-hub",
                "workstation",
                "critical lane passes through workstation",
            ),
            Blocker("lane", "ops-vpn-to-vault", "workstation", "critical lane passes through workstation"),
        ),
    )


def test_readiness_turns_yes_when_the_laptop_carries_nothing(example: FleetRegistry) -> None:
    workloads = tuple(w for w in example.workloads if w.name != "daily-triage")
    lanes = tuple(
        lane if lane.via != ("workstation",) else lane.__class__(lane.name, lane.from_host, lane.to_host)
        for lane in example.lanes
    )
    answer = readiness(FleetRegistry(example.machines, workloads, lanes))
    assert answer == Readiness(True, ("workstation",), ())


def test_a_plan_to_move_onto_the_laptop_blocks_readiness(example: FleetRegistry) -> None:
    workloads = tuple(
        w.__class__(**{**_fields(w), "target_host": "workstation"}) if w.name == "vault" else w
        for w in example.workloads
    )
    blockers = readiness(FleetRegistry(example.machines, workloads, example.lanes)).blockers
    assert Blocker("workload", "vault", "workstation", "planned to move to workstation") in blockers


def test_the_example_breaks_exactly_the_laptop_rules(example: FleetRegistry) -> None:
    assert [str(v) for v in violations(example)] == [
        "workload daily-triage: runs on workstation, a temporary-dev machine, which must host no production",
        "lane activity-core-to-state-hub: critical lane passes through workstation, a temporary-dev machine",
        "lane ops-vpn-to-vault: critical lane passes through workstation, a temporary-dev machine",
    ]
