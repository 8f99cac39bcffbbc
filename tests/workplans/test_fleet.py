"""Fleet registry parsing: the format example, every problem with its line, and the round trip."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workplans import (
    FleetRegistry,
    FormatError,
    Gate,
    Lane,
    Machine,
    MachineRole,
    Workload,
    WorkloadState,
    parse_fleet,
    render_fleet,
)

EXAMPLE = (Path(__file__).parent.parent / "registry" / "fleet_example.toml").read_text(encoding="utf-8")

SMALL = """[[machines]]
name = "railiance01"
role = "production-home"

[[machines]]
name = "coulombcore"
role = "frozen-legacy"

[[workloads]]
name = "state-hub-api"
current_host = "coulombcore"
target_host = "railiance01"
wave = 2
stateful = true
state = "draining"

[workloads.gate]
stages_proven = ["deploy"]
canary_observed = true

[[lanes]]
name = "tunnel"
from = "railiance01"
to = "coulombcore"
critical = true
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(FormatError) as caught:
        parse_fleet(text)
    return [str(p) for p in caught.value.problems]


def test_parses_a_small_registry() -> None:
    fleet = parse_fleet(SMALL)
    assert fleet.machines == (
        Machine("railiance01", MachineRole.PRODUCTION_HOME),
        Machine("coulombcore", MachineRole.FROZEN_LEGACY),
    )
    assert fleet.workloads == (
        Workload(
            "state-hub-api",
            "coulombcore",
            "railiance01",
            wave=2,
            stateful=True,
            state=WorkloadState.DRAINING,
            gate=Gate(stages_proven=("deploy",), canary_observed=True),
        ),
    )
    assert fleet.lanes == (Lane("tunnel", "railiance01", "coulombcore", critical=True),)


def test_parses_the_realistic_example() -> None:
    fleet = parse_fleet(EXAMPLE)
    assert [m.name for m in fleet.machines] == ["railiance01", "coulombcore", "workstation", "buildbox"]
    assert len(fleet.workloads) == 12
    forgejo = fleet.workload("forgejo")
    assert forgejo is not None and forgejo.gate is not None
    assert forgejo.gate.backup_restore_drill == dt.date(2026, 6, 20)
    assert fleet.workload("activity-core") == Workload(
        "activity-core", "coulombcore", "railiance01", wave=4, state=WorkloadState.RUNNING
    )
    assert fleet.lanes[0].via == ("workstation",)


def test_unknown_machines_are_reported_on_their_lines() -> None:
    text = SMALL.replace('target_host = "railiance01"', 'target_host = "railiance02"').replace(
        'to = "coulombcore"', 'to = "laptop"\nvia = ["coulombcore", "vpn-box"]'
    )
    assert _problems(text) == [
        "registry/fleet.toml:12: workload #1 (state-hub-api): 'target_host' = 'railiance02' is not a "
        "machine in this file (machines: coulombcore, railiance01)",
        "registry/fleet.toml:24: lane #1 (tunnel): 'to' = 'laptop' is not a machine in this file "
        "(machines: coulombcore, railiance01)",
        "registry/fleet.toml:25: lane #1 (tunnel): 'via' = 'vpn-box' is not a machine in this file "
        "(machines: coulombcore, railiance01)",
    ]


def test_duplicates_bad_roles_and_states() -> None:
    text = SMALL.replace('name = "coulombcore"', 'name = "railiance01"').replace(
        'state = "draining"', 'state = "moving"'
    )
    text = text.replace('role = "production-home"', 'role = "prod"')
    assert _problems(text) == [
        "registry/fleet.toml:3: machine #1 (railiance01): 'role' = 'prod' is not one of "
        "production-home | frozen-legacy | temporary-dev | build | experimental",
        "registry/fleet.toml:6: machine #2 (railiance01): duplicate machine name 'railiance01' "
        "(first defined in machine #1)",
        "registry/fleet.toml:11: workload #1 (state-hub-api): 'current_host' = 'coulombcore' is not a "
        "machine in this file (machines: railiance01)",
        "registry/fleet.toml:15: workload #1 (state-hub-api): 'state' = 'moving' is not one of "
        "running | draining | migrated | promoted | retired",
        "registry/fleet.toml:24: lane #1 (tunnel): 'to' = 'coulombcore' is not a machine in this file "
        "(machines: railiance01)",
    ]


def test_wrong_types_point_at_their_lines() -> None:
    text = (
        SMALL.replace("wave = 2", 'wave = "two"')
        .replace("stateful = true", 'stateful = "yes"')
        .replace("canary_observed = true", 'canary_observed = 1\nbackup_restore_drill = "soon"')
        .replace("critical = true", "critical = 1")
    )
    text += '\n[[lanes]]\nname = "tunnel"\nfrom = "railiance01"\nto = "railiance01"\n'
    assert _problems(text) == [
        "registry/fleet.toml:13: workload #1 (state-hub-api): 'wave' must be an integer, not a string",
        "registry/fleet.toml:14: workload #1 (state-hub-api): 'stateful' must be true or false, not a string",
        "registry/fleet.toml:20: workload #1 (state-hub-api) gate: 'backup_restore_drill' must be a TOML "
        "date like 2026-05-02, not a string",
        "registry/fleet.toml:19: workload #1 (state-hub-api) gate: 'canary_observed' must be true or "
        "false, not an integer",
        "registry/fleet.toml:26: lane #1 (tunnel): 'critical' must be true or false, not an integer",
        "registry/fleet.toml:29: lane #2 (tunnel): duplicate lane name 'tunnel' (first defined in lane #1)",
    ]


def test_gate_problems_point_into_the_right_workloads_gate() -> None:
    text = SMALL + (
        '\n[[workloads]]\nname = "vault"\ncurrent_host = "coulombcore"\n\n[workloads.gate]\nimage = 3\n'
    )
    assert _problems(text) == [
        "registry/fleet.toml:32: workload #2 (vault) gate: 'image' must be a string, not an integer"
    ]


def test_an_inline_gate_is_read_and_its_problems_have_lines() -> None:
    text = '[[machines]]\nname = "a"\nrole = "build"\n\n[[workloads]]\nname = "w"\ncurrent_host = "a"\n'
    fleet = parse_fleet(text + 'gate = { image = "x", canary_observed = true }\n')
    assert fleet.workloads[0].gate == Gate(image="x", canary_observed=True)
    assert _problems(text + "gate = { image = 3 }\n") == [
        "registry/fleet.toml:8: workload #1 (w) gate: 'image' must be a string, not an integer"
    ]


def test_shapes_and_bad_toml() -> None:
    assert _problems('machines = "railiance01"\n') == [
        "registry/fleet.toml:1: 'machines' must be an array of tables written as [[machines]]"
    ]
    assert _problems("[[machines]\n") == [
        "registry/fleet.toml:1: invalid TOML: Expected ']]' at the end of an array declaration (column 11)"
    ]
    assert _problems('[[workloads]]\nname = "x y"\ncurrent_host = "a"\ngate = 3\n') == [
        "registry/fleet.toml:2: workload #1 (x y): 'name' = 'x y' must be letters, digits, '.', '_' or '-'",
        "registry/fleet.toml:3: workload #1 (x y): 'current_host' = 'a' is not a machine in this file "
        "(machines: none declared)",
        "registry/fleet.toml:4: workload #1 (x y): 'gate' must be a table written as [workloads.gate], "
        "not an integer",
    ]


def test_unknown_keys_are_kept() -> None:
    fleet = parse_fleet('owner_team = "ops"\n' + SMALL.replace("wave = 2", 'wave = 2\nsla = "99.9"'))
    assert fleet.extra == {"owner_team": "ops"}
    assert fleet.workloads[0].extra == {"sla": "99.9"}
    assert parse_fleet(render_fleet(fleet)) == fleet


# round trip --------------------------------------------------------------------------------------

_names = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)


@st.composite
def registries(draw: st.DrawFn) -> FleetRegistry:
    machine_names = draw(st.lists(_names, min_size=1, max_size=4, unique=True))
    machines = tuple(
        Machine(
            name,
            draw(st.sampled_from(MachineRole)),
            draw(st.none() | _text),
            draw(st.none() | _text),
        )
        for name in machine_names
    )
    host = st.sampled_from(machine_names)
    gates = st.builds(
        Gate,
        overlay_repo=st.none() | _text,
        stages_proven=st.lists(_text, max_size=4).map(tuple),
        backup_restore_drill=st.none() | st.dates(),
        canary_observed=st.booleans(),
        operator_approval=st.none() | _text,
        image=st.none() | _text,
        exception=_text,
    )
    workload_names = draw(st.lists(_names, max_size=4, unique=True))
    workloads = tuple(
        Workload(
            name,
            draw(host),
            draw(st.none() | host),
            draw(st.none() | _text),
            draw(st.none() | st.integers(0, 20)),
            draw(st.booleans()),
            draw(st.sampled_from(WorkloadState)),
            draw(st.none() | gates),
        )
        for name in workload_names
    )
    lane_names = draw(st.lists(_names, max_size=3, unique=True))
    lanes = tuple(
        Lane(name, draw(host), draw(host), tuple(draw(st.lists(host, max_size=3))), draw(st.booleans()))
        for name in lane_names
    )
    return FleetRegistry(machines, workloads, lanes)


@given(registries())
def test_round_trip(fleet: FleetRegistry) -> None:
    assert parse_fleet(render_fleet(fleet)) == fleet
