"""Fleet events: reading their fields, and applying them to the file's text with its formatting intact."""

from __future__ import annotations

import datetime as dt
import difflib
from pathlib import Path

import pytest

from workplans import MachineRole, WorkloadState, parse_fleet
from workplans.fleet_events import (
    FleetChangeError,
    PlaceWorkload,
    SetGateFields,
    SetMachineRole,
    SetWorkloadState,
    apply_fleet_change,
    parse_fleet_change,
)

EXAMPLE = (Path(__file__).parent.parent / "registry" / "fleet_example.toml").read_text(encoding="utf-8")
DIGEST = "forge.example/registry@sha256:" + "d" * 64


def _diff(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_reads_each_kind() -> None:
    assert parse_fleet_change(
        {"kind": "fleet.workload.state", "workload": "vault", "state": "draining", "actor": "x"}
    ) == SetWorkloadState("vault", WorkloadState.DRAINING)
    assert parse_fleet_change(
        {"kind": "fleet.workload.place", "workload": "vault", "target_host": "railiance01"}
    ) == PlaceWorkload("vault", "railiance01")
    assert parse_fleet_change(
        {
            "kind": "fleet.workload.gate",
            "workload": "vault",
            "gate": {"stages_proven": ["deploy"], "backup_restore_drill": "2026-07-10", "image": None},
        }
    ) == SetGateFields(
        "vault", {"stages_proven": ("deploy",), "backup_restore_drill": dt.date(2026, 7, 10), "image": None}
    )
    assert parse_fleet_change(
        {"kind": "fleet.machine.role", "machine": "workstation", "role": "build"}
    ) == SetMachineRole("workstation", MachineRole.BUILD)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"kind": "fleet.workload.state", "workload": "vault", "state": "moved"}, "invalid state 'moved'"),
        ({"kind": "fleet.workload.state", "state": "draining"}, "needs 'workload' as a non-empty string"),
        ({"kind": "fleet.workload.place", "workload": "vault"}, "needs 'target_host'"),
        ({"kind": "fleet.workload.gate", "workload": "vault", "gate": {}}, "needs 'gate' as an object"),
        (
            {"kind": "fleet.workload.gate", "workload": "vault", "gate": {"colour": "red"}},
            "unknown gate field",
        ),
        (
            {"kind": "fleet.workload.gate", "workload": "vault", "gate": {"canary_observed": "yes"}},
            "'canary_observed' must be true or false",
        ),
        (
            {"kind": "fleet.workload.gate", "workload": "vault", "gate": {"backup_restore_drill": "soon"}},
            "must be a date like 2026-07-10",
        ),
        (
            {"kind": "fleet.workload.gate", "workload": "vault", "gate": {"stages_proven": "deploy"}},
            "must be a list of strings",
        ),
        ({"kind": "fleet.workload.gate", "workload": "vault", "gate": {"image": 3}}, "must be a string"),
        ({"kind": "fleet.machine.role", "machine": "x", "role": "prod"}, "invalid role 'prod'"),
        ({"kind": "fleet.machine.rename"}, "unknown fleet event kind"),
    ],
)
def test_bad_events_say_what_is_wrong(event: dict[str, object], message: str) -> None:
    with pytest.raises(FleetChangeError, match=message):
        parse_fleet_change(event)


def test_a_state_change_touches_one_value_and_keeps_its_comment() -> None:
    after = apply_fleet_change(EXAMPLE, SetWorkloadState("vault", WorkloadState.DRAINING))
    assert _diff(EXAMPLE, after) == [
        '-state = "running"               # target not decided yet',
        '+state = "draining"               # target not decided yet',
    ]


def test_placement_adds_the_key_inside_its_workload() -> None:
    after = apply_fleet_change(EXAMPLE, PlaceWorkload("vault", "railiance01"))
    assert _diff(EXAMPLE, after) == ['+target_host = "railiance01"']
    assert parse_fleet(after).workload("vault").target_host == "railiance01"  # type: ignore[union-attr]


def test_gate_fields_are_set_in_the_right_gate_and_a_gate_is_created_when_missing() -> None:
    after = apply_fleet_change(
        EXAMPLE,
        SetGateFields("container-registry", {"image": DIGEST, "canary_observed": True, "overlay_repo": None}),
    )
    assert _diff(EXAMPLE, after) == [
        '-overlay_repo = "railiance/registry"',
        '-image = "forge.example/registry:2.8"    # still a tag, not a digest',
        f'+image = "{DIGEST}"    # still a tag, not a digest',
        "+canary_observed = true",
    ]
    created = apply_fleet_change(
        EXAMPLE, SetGateFields("vault", {"backup_restore_drill": dt.date(2026, 7, 1)})
    )
    assert _diff(EXAMPLE, created) == ["+[workloads.gate]", "+backup_restore_drill = 2026-07-01"]
    vault = parse_fleet(created).workload("vault")
    assert vault is not None and vault.gate is not None
    assert vault.gate.backup_restore_drill == dt.date(2026, 7, 1)
    assert parse_fleet(created).workload("daily-triage").gate is None  # type: ignore[union-attr]


def test_role_change() -> None:
    after = apply_fleet_change(EXAMPLE, SetMachineRole("workstation", MachineRole.EXPERIMENTAL))
    assert _diff(EXAMPLE, after) == [
        '-role = "temporary-dev"          # the laptop; it reboots whenever it likes',
        '+role = "experimental"          # the laptop; it reboots whenever it likes',
    ]


@pytest.mark.parametrize(
    "change",
    [
        SetWorkloadState("forgejo", WorkloadState.PROMOTED),
        PlaceWorkload("keycloak", "railiance01"),
        SetGateFields("woodpecker-ci", {"canary_observed": True, "exception": None}),
        SetGateFields("vault", {"image": None}),
        SetMachineRole("buildbox", MachineRole.BUILD),
    ],
)
def test_a_change_the_file_already_reflects_leaves_it_byte_for_byte(change: object) -> None:
    assert apply_fleet_change(EXAMPLE, change) is EXAMPLE  # type: ignore[arg-type]


def test_applying_twice_equals_applying_once() -> None:
    change = SetGateFields("container-registry", {"stages_proven": ("deploy", "observe", "promote")})
    once = apply_fleet_change(EXAMPLE, change)
    assert apply_fleet_change(once, change) == once


def test_unknown_names_are_refused() -> None:
    with pytest.raises(FleetChangeError, match="no workload named 'ghost'"):
        apply_fleet_change(EXAMPLE, SetWorkloadState("ghost", WorkloadState.RETIRED))
    with pytest.raises(FleetChangeError, match="no machine named 'laptop'"):
        apply_fleet_change(EXAMPLE, SetMachineRole("laptop", MachineRole.BUILD))
