"""Claims and releases edit a plainly written task table by its lines (workplans.apply
._splice_task_fields) instead of through tomlkit: the text must be exactly what tomlkit writes, for
every file shape, and odd tables must go to tomlkit."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import workplans.apply
from tests.workplans.shapes import SLOW_DRAW
from tests.workplans.test_apply import BASE, TASKS, apply_event, files, make
from workplans import Event, NoLongerApplies

PLAIN = """+++
id = "CUST-WP-0054"
title = "Plain"
status = "active"

[[tasks]]
id = "T01"
title = "task 1"
status = "todo"

[[tasks]]
  id   =   "T02"
  title = "task 2"
  status = "todo"
  owner = "ppl-ann"
  depends_on = ["T01"]
  estimate = 3


[[tasks]]
id = "T03"
title = "task 3"
status = "todo"
+++

# Plan
"""


def _both(monkeypatch: pytest.MonkeyPatch, text: str, events: list[Event]) -> tuple[str, str, list[bool]]:
    """``events`` folded over ``text`` with the line edit (and whether it was taken each time), and
    with tomlkit only; an event that no longer applies is skipped in both."""
    taken: list[bool] = []
    splice = workplans.apply._splice_task_fields

    def spy(*args: Any) -> bool:
        taken.append(splice(*args))
        return taken[-1]

    def fold() -> str:
        result = text
        for event in events:
            try:
                result = apply_event(result, event)
            except NoLongerApplies:
                continue
        return result

    with monkeypatch.context() as patch:
        patch.setattr(workplans.apply, "_splice_task_fields", spy)
        spliced = fold()
    with monkeypatch.context() as patch:
        patch.setattr(workplans.apply, "_splice_task_fields", lambda *_: False)
        edited = fold()
    return spliced, edited, taken


def _claim(task: str, actor: str = "agt-x", key: str = "C1") -> Event:
    return make("task.claim", key, task=task, actor=actor)


def _release(task: str, status: str = "todo", owner: str | None = None, key: str = "R1") -> Event:
    fields: dict[str, Any] = {"task": task, "claim": "C1", "status": status}
    if owner is not None:
        fields["owner"] = owner
    return make("task.release", key, **fields)


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_claims_and_releases_of_plain_tables_are_line_edits_giving_tomlkits_text(
    monkeypatch: pytest.MonkeyPatch, ending: str
) -> None:
    text = PLAIN.replace("\n", ending)
    events = [
        _claim("T01"),  # owner added after the last key line
        _claim("T02", "agt-y", "C2"),  # owner replaced, odd spacing and indent kept
        _release("T01", "done", key="R1"),  # owner removed (it had none before the claim)
        _release("T02", "todo", owner="ppl-ann", key="R2"),  # owner restored
        _claim("T03", "agt-z", "C3"),  # the last table, before the closing fence
    ]
    spliced, edited, taken = _both(monkeypatch, text, events)
    assert spliced == edited
    assert taken == [True] * 5
    assert 'id = "T03"' + ending + 'title = "task 3"' + ending + 'status = "in-progress"' in spliced
    assert 'owner = "agt-z"' + ending + "+++" in spliced


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('status = "todo"\n\n[[tasks]]\n  id', 'status = "todo"  # to do\n\n[[tasks]]\n  id'),  # comment
        ('title = "task 1"', "# a comment line\ntitle = 'task 1'"),  # a comment line in the table
        ('title = "task 1"', 'title = """task\n1"""'),  # a value over lines
        ('status = "todo"\n\n[[tasks]]\n  id', "status = 'todo'\n\n[[tasks]]\n  id"),  # literal string
    ],
)
def test_odd_tables_go_to_tomlkit(monkeypatch: pytest.MonkeyPatch, old: str, new: str) -> None:
    text = PLAIN.replace(old, new, 1)
    spliced, edited, taken = _both(monkeypatch, text, [_claim("T01")])
    assert spliced == edited
    assert taken == [False]


def test_an_actor_that_would_need_escaping_goes_to_tomlkit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not workplans.apply._PLAIN_VALUE.fullmatch('a"b')
    spliced, edited, _ = _both(monkeypatch, BASE, [_claim("T02")])
    assert spliced == edited


@st.composite
def claim_runs(draw: st.DrawFn) -> list[Event]:
    events: list[Event] = []
    for number in range(draw(st.integers(1, 6))):
        task = draw(st.sampled_from(TASKS))
        if draw(st.booleans()):
            events.append(_claim(task, draw(st.sampled_from(["agt-x", "agt-y"])), f"C{number}"))
        else:
            status = draw(st.sampled_from(["todo", "done", "blocked"]))
            owner = draw(st.sampled_from([None, "ppl-ann"]))
            events.append(_release(task, status, owner, f"R{number}"))
    return events


@settings(max_examples=60, deadline=None, suppress_health_check=SLOW_DRAW)
@given(text=files(), events=claim_runs())
def test_any_file_any_claims_give_tomlkits_text(text: str, events: list[Event]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        spliced, edited, _ = _both(monkeypatch, text, events)
    assert spliced == edited
