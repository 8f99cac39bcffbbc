"""Workplan parsing: exact format, every problem with path and line, and the round trip."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workplans import FormatError, Task, TaskStatus, Workplan, WorkplanStatus, parse_workplan, render_workplan

EXAMPLE = """+++
id = "CUST-WP-0054"
title = "Workstation independence and fleet roles"
status = "active"               # draft | active | blocked | done | cancelled
owner = "custodian"
related = ["ADR-001", "RAIL-BS-WP-0006"]

[[tasks]]
id = "T01"
title = "Fleet architecture, de-hub runbook, drain plan"
status = "done"
owner = "codex"

[[tasks]]
id = "T02"
title = "De-hub the network"
status = "in-progress"
depends_on = ["T01", "RAIL-HO-WP-0005-T02"]
+++

# Workstation independence

Free text.
"""


def test_parses_the_format_example() -> None:
    plan = parse_workplan(EXAMPLE, "workplans/CUST-WP-0054.md")
    assert plan is not None
    assert plan.id == "CUST-WP-0054"
    assert plan.status is WorkplanStatus.ACTIVE
    assert plan.related == ("ADR-001", "RAIL-BS-WP-0006")
    assert [t.id for t in plan.tasks] == ["T01", "T02"]
    assert plan.tasks[1].depends_on == ("T01", "RAIL-HO-WP-0005-T02")
    assert [plan.resolve_dependency(d) for d in plan.tasks[1].depends_on] == [
        "CUST-WP-0054-T01",
        "RAIL-HO-WP-0005-T02",
    ]
    assert plan.body.startswith("\n# Workstation independence")


def _problems(text: str, path: str = "workplans/x.md") -> list[str]:
    with pytest.raises(FormatError) as caught:
        parse_workplan(text, path)
    return [str(p) for p in caught.value.problems]


def test_bad_toml_points_at_the_file_line() -> None:
    assert _problems('+++\nid = "CUST-WP-0001"\ntitle = \n+++\n') == [
        "workplans/x.md:3: invalid TOML: a value is missing or not valid here: "
        'text needs quotes ("main") (column 9)'
    ]


def test_every_problem_is_reported_with_its_line() -> None:
    text = EXAMPLE.replace('status = "done"', 'status = "finished"').replace('id = "T02"', 'id = "T01"')
    text = text.replace('id = "CUST-WP-0054"', 'id = "cust-54"')
    problems = _problems(text)
    assert problems == [
        "workplans/x.md:2: 'id' = 'cust-54' does not match ^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*-WP-[0-9]{4}$ "
        "(e.g. CUST-WP-0054)",
        "workplans/x.md:11: task #1 (T01): 'status' = 'finished' is not one of "
        "todo | in-progress | blocked | done | cancelled",
        "workplans/x.md:15: task #2 (T01): duplicate task id T01 (first defined in task #1)",
    ]


def test_missing_keys_and_wrong_types() -> None:
    problems = _problems('+++\ntitle = 3\nstatus = "active"\nrelated = "ADR-001"\n+++\n')
    assert problems == [
        "workplans/x.md: missing required key 'id'",
        "workplans/x.md:2: 'title' must be a string, not an integer",
        "workplans/x.md:4: 'related' must be an array of strings, not a string",
    ]


def test_bad_task_id_and_dependency() -> None:
    text = '+++\nid = "A-WP-0001"\ntitle = "t"\nstatus = "draft"\n[[tasks]]\nid = "1"\ntitle = "x"\n'
    text += '[[tasks]]\nid = "T02"\ntitle = "y"\ndepends_on = ["later"]\n+++\n'
    problems = _problems(text)
    assert problems[0].startswith("workplans/x.md:6: task #1 (1): 'id' = '1' does not match")
    assert problems[1].startswith("workplans/x.md:11: task #2 (T02): depends_on entry 'later'")


def test_readme_without_front_matter_is_skipped_other_files_are_errors() -> None:
    assert parse_workplan("# Workplans\n", "workplans/README.md") is None
    assert parse_workplan("# Index\n", "workplans/sub/index.md") is None
    assert _problems("# Notes\n", "workplans/notes.md") == [
        "workplans/notes.md:1: a workplan must open with TOML front matter between '+++' lines"
    ]
    assert _problems("+++\nid = 1\n", "workplans/open.md") == [
        "workplans/open.md:1: front matter opened with '+++' on line 1 is never closed by a '+++' line"
    ]


def test_unknown_keys_are_kept() -> None:
    plan = parse_workplan(EXAMPLE.replace('owner = "custodian"', 'owner = "custodian"\nsprint = 7'), "w.md")
    assert plan is not None
    assert plan.extra == {"sprint": 7}


# round trip ------------------------------------------------------------------------------------

_words = st.text(
    alphabet=string.ascii_letters + string.digits + " -_.,:'\"\\é→", min_size=1, max_size=30
).filter(lambda s: s.strip() != "")
_upper = st.text(alphabet=string.ascii_uppercase, min_size=1, max_size=5)
_plan_ids = st.builds(lambda p, n: f"{p}-WP-{n:04d}", _upper, st.integers(0, 9999))


@st.composite
def workplans(draw: st.DrawFn) -> Workplan:
    plan_id = draw(_plan_ids)
    numbers = draw(st.lists(st.integers(1, 99), unique=True, max_size=8))
    task_ids = [f"T{n:02d}" for n in numbers]
    tasks = tuple(
        Task(
            id=task_id,
            title=draw(_words),
            status=draw(st.sampled_from(TaskStatus)),
            owner=draw(st.none() | _words),
            depends_on=tuple(draw(st.lists(st.sampled_from(task_ids), unique=True, max_size=3))),
            extra=draw(st.dictionaries(st.sampled_from(["points", "note"]), st.integers(0, 50), max_size=1)),
        )
        for task_id in task_ids
    )
    return Workplan(
        id=plan_id,
        title=draw(_words),
        status=draw(st.sampled_from(WorkplanStatus)),
        owner=draw(st.none() | _words),
        related=tuple(draw(st.lists(_plan_ids, max_size=3))),
        tasks=tasks,
        body=draw(st.text(max_size=200).filter(lambda b: "\r" not in b)),
        extra=draw(st.dictionaries(st.sampled_from(["sprint", "area"]), _words, max_size=2)),
    )


@given(workplans())
def test_round_trip(plan: Workplan) -> None:
    assert parse_workplan(render_workplan(plan), "workplans/p.md") == plan
