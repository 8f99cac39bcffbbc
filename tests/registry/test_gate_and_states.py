"""The promotion gate lists every unmet item; state transitions refuse with the reason."""

from __future__ import annotations

import datetime as dt

import pytest

from registry import is_pinned_by_digest, transition_refusal, unmet_gate_items
from workplans import Gate, Workload, WorkloadState

DIGEST = "forge.example/app@sha256:" + "ab" * 32
FULL = Gate(
    overlay_repo="railiance/app",
    stages_proven=("deploy", "observe", "promote", "rollback"),
    backup_restore_drill=dt.date(2026, 7, 10),
    canary_observed=True,
    operator_approval="ops-lead",
    image=DIGEST,
)


def _workload(gate: Gate | None, *, stateful: bool = True, **kw: object) -> Workload:
    return Workload("app", "old", "new", stateful=stateful, gate=gate, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        (DIGEST, True),
        ("app@sha256:" + "a" * 64, True),
        ("app:1.2@sha256:" + "0" * 64, True),
        ("app@sha256:" + "a" * 63, False),
        ("app@sha256:" + "a" * 65, False),
        ("app@sha256:" + "A" * 64, False),
        ("app@sha256:…", False),
        ("app:latest", False),
        ("sha256:" + "a" * 64, False),
        (None, False),
    ],
)
def test_digest_pinning(image: str | None, pinned: bool) -> None:
    assert is_pinned_by_digest(image) is pinned


def test_a_full_gate_is_met() -> None:
    assert unmet_gate_items(_workload(FULL)) == []


def test_every_missing_item_is_listed() -> None:
    assert unmet_gate_items(_workload(None)) == [
        "overlay_repo is not set",
        "stage 'deploy' is not in stages_proven",
        "stage 'observe' is not in stages_proven",
        "stage 'promote' is not in stages_proven",
        "stage 'rollback' is not in stages_proven",
        "canary_observed is not true",
        "operator_approval is not recorded",
        "image is not set",
        "backup_restore_drill is not recorded (required for a stateful workload)",
    ]


def test_partial_gate_names_what_is_missing() -> None:
    gate = Gate(
        overlay_repo="railiance/app",
        stages_proven=("deploy", "observe"),
        canary_observed=True,
        operator_approval=" ",
        image="forge.example/app:2.8",
    )
    assert unmet_gate_items(_workload(gate)) == [
        "stage 'promote' is not in stages_proven",
        "stage 'rollback' is not in stages_proven",
        "operator_approval is not recorded",
        "image 'forge.example/app:2.8' is not pinned by digest (name@sha256:<64 hex>)",
        "backup_restore_drill is not recorded (required for a stateful workload)",
    ]
    assert "backup_restore_drill" not in " ".join(unmet_gate_items(_workload(gate, stateful=False)))


def test_a_documented_exception_stands_in_for_the_gate() -> None:
    assert (
        unmet_gate_items(_workload(Gate(exception="vendor appliance; rollback: restore VM snapshot"))) == []
    )
    assert len(unmet_gate_items(_workload(Gate(exception="   ")))) == 9


S = WorkloadState


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.RUNNING, S.DRAINING),
        (S.RUNNING, S.RETIRED),
        (S.DRAINING, S.MIGRATED),
        (S.MIGRATED, S.PROMOTED),
        (S.PROMOTED, S.RETIRED),
        (S.DRAINING, S.DRAINING),
    ],
)
def test_allowed_transitions(old: WorkloadState, new: WorkloadState) -> None:
    assert transition_refusal(_workload(None, state=old), new) is None


def test_refused_transitions_say_why() -> None:
    assert transition_refusal(_workload(None, state=S.RUNNING), S.MIGRATED) == (
        "workload app: cannot go from running to migrated; "
        "from running it may go to draining, retired, promoted"
    )
    assert transition_refusal(_workload(None, state=S.MIGRATED), S.RUNNING) == (
        "workload app: cannot go from migrated to running; from migrated it may go to promoted"
    )
    assert transition_refusal(_workload(None, state=S.RETIRED), S.RUNNING) == (
        "workload app: retired is final; it cannot become running"
    )
    assert transition_refusal(_workload(None, state=S.RUNNING), S.PROMOTED) == (
        "workload app: running -> promoted is only for a workload already on its target host; it runs on "
        "old and its target host is new, so drain and migrate it first"
    )
    in_place = Workload("app", "home", "home")
    assert transition_refusal(in_place, S.PROMOTED) is None
    assert "its target host is not set" in (transition_refusal(Workload("app", "home"), S.PROMOTED) or "")
