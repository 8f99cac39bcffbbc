"""Every kind of event survives its canonical JSON: ``parse_event(e.to_json()) == e`` (STYLE.md, habit 10).

Events are generated as typed values, one strategy per kind in the hub's kind
table, with field values drawn from the same patterns the reader checks. The
JSON form is also sent through ``json.dumps``/``json.loads``, as the buffer and
the relay do, and must come back as the same dict.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.event_kinds import hub_event_kinds
from workplans.events import (
    ACTOR,
    EVENT_KEY,
    RELEASE_STATUSES,
    Event,
    InvalidEvent,
    ProgressNoteEvent,
    TaskAddEvent,
    TaskClaimEvent,
    TaskReleaseEvent,
    TaskStatusEvent,
    WorkplanStatusEvent,
    format_at,
    parse_event,
)
from workplans.fleet import FLEET_NAME, GATE_KEYS, parse_fleet
from workplans.fleet_event_types import (
    MachineRoleEvent,
    WorkloadGateEvent,
    WorkloadPlaceEvent,
    WorkloadStateEvent,
)
from workplans.fleet_models import MachineRole, WorkloadState
from workplans.ids import (
    TASK_ID,
    TASK_REF,
    WORKPLAN_ID,
    is_task_id,
    is_task_ref,
    is_workplan_id,
    split_task_ref,
)
from workplans.models import TaskStatus, WorkplanStatus
from workplans.problems import FormatError

if TYPE_CHECKING:
    from collections.abc import Callable

# One line of any text (surrogates cannot be encoded); the reader refuses "\n" and "\r".
one_line = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=40)
filled_line = one_line.filter(lambda text: bool(text.strip()))
note_text = filled_line.filter(lambda text: "-->" not in text)
workplan_ids = st.from_regex(WORKPLAN_ID, fullmatch=True)
task_ids = st.from_regex(TASK_ID, fullmatch=True)
names = st.from_regex(FLEET_NAME, fullmatch=True)

KINDS = hub_event_kinds()
"""Every kind the hub accepts, built once as the hub builds it."""


@st.composite
def common(draw: st.DrawFn) -> dict[str, Any]:
    """What every event carries; ``at`` in its one canonical spelling."""
    moment = draw(st.datetimes(timezones=st.just(dt.UTC)))
    return {
        "key": draw(st.from_regex(EVENT_KEY, fullmatch=True)),
        "actor": draw(st.from_regex(ACTOR, fullmatch=True)),
        "at": format_at(moment),
        "repo": draw(st.none() | one_line),
    }


def _task_status(draw: st.DrawFn, base: dict[str, Any]) -> Event:
    return TaskStatusEvent(
        **base,
        kind="task.status",
        workplan=draw(workplan_ids),
        task=draw(task_ids),
        status=draw(st.sampled_from(TaskStatus)),
        note=draw(st.none() | note_text),
    )


def _task_add(draw: st.DrawFn, base: dict[str, Any]) -> Event:
    dependencies = st.lists(task_ids | st.from_regex(TASK_REF, fullmatch=True), max_size=4)
    return TaskAddEvent(
        **base,
        kind="task.add",
        workplan=draw(workplan_ids),
        task=draw(task_ids),
        title=draw(filled_line),
        owner=draw(st.none() | one_line),
        depends_on=tuple(draw(dependencies)),
    )


def _task_claim(draw: st.DrawFn, base: dict[str, Any]) -> Event:
    return TaskClaimEvent(**base, kind="task.claim", workplan=draw(workplan_ids), task=draw(task_ids))


def _task_release(draw: st.DrawFn, base: dict[str, Any]) -> Event:
    return TaskReleaseEvent(
        **base,
        kind="task.release",
        workplan=draw(workplan_ids),
        task=draw(task_ids),
        claim=draw(st.from_regex(EVENT_KEY, fullmatch=True)),
        status=draw(st.sampled_from(RELEASE_STATUSES)),
        owner=draw(st.none() | filled_line),
        note=draw(st.none() | note_text),
    )


def _workplan_status(draw: st.DrawFn, base: dict[str, Any]) -> Event:
    return WorkplanStatusEvent(
        **base,
        kind="workplan.status",
        workplan=draw(workplan_ids),
        status=draw(st.sampled_from(WorkplanStatus)),
    )


def _progress_note(draw: st.DrawFn, base: dict[str, Any]) -> Event:
    return ProgressNoteEvent(
        **base,
        kind="progress.note",
        workplan=draw(workplan_ids),
        task=draw(st.none() | task_ids),
        note=draw(note_text),
    )


def _workload_state(draw: st.DrawFn, base: dict[str, Any]) -> Event:
    return WorkloadStateEvent(
        **base,
        kind="fleet.workload.state",
        workload=draw(names),
        state=draw(st.sampled_from(WorkloadState)),
        note=draw(st.none() | note_text),
    )


def _workload_place(draw: st.DrawFn, base: dict[str, Any]) -> Event:
    return WorkloadPlaceEvent(
        **base,
        kind="fleet.workload.place",
        workload=draw(names),
        target_host=draw(names),
        note=draw(st.none() | note_text),
    )


GATE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "stages_proven": st.lists(one_line, max_size=4).map(tuple),
    "canary_observed": st.booleans(),
    "backup_restore_drill": st.dates(),
}
"""The typed gate fields; every other gate field is a string. Any of them may be None (clear it)."""


def _workload_gate(draw: st.DrawFn, base: dict[str, Any]) -> Event:
    keys = draw(st.lists(st.sampled_from(GATE_KEYS), min_size=1, unique=True))
    gate = {key: draw(st.none() | GATE_VALUES.get(key, one_line)) for key in keys}
    return WorkloadGateEvent(
        **base,
        kind="fleet.workload.gate",
        workload=draw(names),
        gate=gate,
        note=draw(st.none() | note_text),
    )


def _machine_role(draw: st.DrawFn, base: dict[str, Any]) -> Event:
    return MachineRoleEvent(
        **base,
        kind="fleet.machine.role",
        machine=draw(names),
        role=draw(st.sampled_from(MachineRole)),
        note=draw(st.none() | note_text),
    )


BUILDERS: dict[str, Callable[[st.DrawFn, dict[str, Any]], Event]] = {
    "task.status": _task_status,
    "task.add": _task_add,
    "task.claim": _task_claim,
    "task.release": _task_release,
    "workplan.status": _workplan_status,
    "progress.note": _progress_note,
    "fleet.workload.state": _workload_state,
    "fleet.workload.place": _workload_place,
    "fleet.workload.gate": _workload_gate,
    "fleet.machine.role": _machine_role,
}


@st.composite
def events(draw: st.DrawFn) -> Event:
    kind = draw(st.sampled_from(sorted(BUILDERS)))
    return BUILDERS[kind](draw, draw(common()))


def test_every_kind_in_the_table_has_a_generator() -> None:
    assert set(BUILDERS) == set(KINDS.names())


@settings(max_examples=300, deadline=None)
@given(events())
def test_an_event_comes_back_from_its_json(event: Event) -> None:
    assert parse_event(event.to_json(), KINDS) == event


@settings(max_examples=200, deadline=None)
@given(events())
def test_the_json_form_survives_the_wire_and_is_canonical(event: Event) -> None:
    sent = json.loads(json.dumps(event.to_json()))
    assert sent == event.to_json()
    again = parse_event(sent, KINDS)
    assert again == event
    assert again.to_json() == event.to_json()


@given(common(), st.datetimes(timezones=st.timezones(), allow_imaginary=False))
def test_any_moment_with_a_zone_reads_as_its_utc_second(base: dict[str, Any], moment: dt.datetime) -> None:
    sent = {**base, "kind": "workplan.status", "workplan": "CUST-WP-0001", "status": "done"}
    sent["at"] = moment.isoformat()
    try:
        utc = moment.astimezone(dt.UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00: refused as a field problem, not a crash
        with pytest.raises(InvalidEvent, match="out of range"):
            parse_event(sent, KINDS)
        return
    assert parse_event(sent, KINDS).at == format_at(utc)
    assert parse_event({**sent, "at": format_at(utc)}, KINDS).at == format_at(utc)


@given(workplan_ids, task_ids, names)
def test_ids_and_names_hold_for_the_whole_value(workplan: str, task: str, name: str) -> None:
    """``$`` also matches before a final newline; an id or name with one is not an id or name."""
    assert is_workplan_id(workplan) and is_task_id(task) and is_task_ref(f"{workplan}-{task}")
    assert not is_workplan_id(workplan + "\n")
    assert not is_task_id(task + "\n")
    assert not is_task_ref(f"{workplan}-{task}\n")
    assert split_task_ref(f"{workplan}-{task}\n") is None
    with pytest.raises(FormatError):
        parse_fleet(f'[[machines]]\nname = "{name}\\n"\nrole = "build"\n')
