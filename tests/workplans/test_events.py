"""Reading events: typed models, and one message per bad field."""

from __future__ import annotations

from typing import Any

import pytest

from workplans import (
    InvalidEvent,
    TaskAddEvent,
    TaskStatus,
    TaskStatusEvent,
    parse_event,
    workplan_event_kinds,
)

KINDS = workplan_event_kinds()

GOOD: dict[str, Any] = {
    "key": "01JZ3K7T2Q9",
    "kind": "task.status",
    "repo": "the-custodian",
    "workplan": "CUST-WP-0054",
    "task": "T02",
    "status": "done",
    "actor": "agt-codex",
    "at": "2026-07-03T22:29:55Z",
    "note": "optional",
}


def problems(data: Any) -> dict[str, str]:
    with pytest.raises(InvalidEvent) as caught:
        parse_event(data, KINDS)
    return caught.value.problems


def test_the_format_md_example_reads_as_a_typed_event() -> None:
    event = parse_event(GOOD, KINDS)
    assert isinstance(event, TaskStatusEvent)
    assert event.status is TaskStatus.DONE
    assert event.ref == "CUST-WP-0054-T02"
    assert event.to_json() == GOOD


def test_times_are_normalised_to_utc() -> None:
    assert parse_event(GOOD | {"at": "2026-07-04T00:29:55+02:00"}, KINDS).at == "2026-07-03T22:29:55Z"


def test_task_add_reads_owner_and_dependencies() -> None:
    event = parse_event(
        GOOD
        | {"kind": "task.add", "task": "T03", "title": "Drain", "owner": "codex", "depends_on": ["T01"]}
        | {"status": None, "note": None},
        KINDS,
    )
    assert isinstance(event, TaskAddEvent)
    assert event.depends_on == ("T01",)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"key": None}, "key", "required"),
        ({"key": "has space"}, "key", "is not valid"),
        ({"kind": "task.teleport"}, "kind", "unknown kind 'task.teleport'"),
        ({"status": "finished"}, "status", "is not one of todo | in-progress"),
        ({"workplan": "cust-54"}, "workplan", "is not valid (e.g. CUST-WP-0054)"),
        ({"task": "2"}, "task", "is not valid (e.g. T02)"),
        ({"actor": ""}, "actor", "must not be empty"),
        ({"at": "yesterday"}, "at", "not an ISO 8601 date-time"),
        ({"at": "2026-07-03T22:29:55"}, "at", "has no time zone"),
        ({"note": "two\nlines"}, "note", "single line"),
        ({"note": "sneaky --> end"}, "note", "must not contain '-->'"),
        ({"note": 5}, "note", "must be a string, not int"),
        ({"stauts": "done"}, "stauts", "unknown field"),
    ],
)
def test_each_bad_field_is_named_with_what_is_wrong(change: dict[str, Any], field: str, message: str) -> None:
    data = {k: v for k, v in (GOOD | change).items() if v is not None}
    found = problems(data)
    assert field in found
    assert message in found[field]


def test_every_problem_is_reported_at_once() -> None:
    found = problems({"kind": "progress.note", "workplan": "CUST-WP-0054"})
    assert set(found) == {"key", "actor", "at", "note"}
    assert problems([GOOD]) == {"event": "must be a JSON object, not list"}
