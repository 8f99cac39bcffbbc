"""Applying events to text: exact results, idempotence, order independence, untouched bytes."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import workplans
from tests.workplans.shapes import SLOW_DRAW, bodies, oracle_section_items, with_line_endings
from workplans import BrokenTarget, Event, NoLongerApplies, parse_event, parse_workplan, workplan_event_kinds
from workplans.apply import _PARSED, event_marker
from workplans.front_matter import split_front_matter
from workplans.lines import ending, split_lines, strip_ending

KINDS = workplan_event_kinds()


def apply_event(text: str, event: Event) -> str:
    return workplans.apply_event(text, event, KINDS)


BASE = """+++
id = "CUST-WP-0054"   # the plan
title = "Workstation independence"
status = "active"   # draft | active
unknown_key = { nested = [1, 2] }

# first task
[[tasks]]
id = "T01"
title = "Fleet architecture"
status = "done"   # finished

[[tasks]]
id = "T02"
title = "De-hub the network"
depends_on = ["T01"]
estimate = 3

[[tasks]]
id = "T03"
title = "Drain"
status = "blocked"
+++
"""

BODIES = [
    "",
    "\n# Plan\n\nFree   text.\n",
    "\n# Plan\n\n## Progress\n\n- 2026-01-01T00:00:00Z CUST-WP-0054 @a: old <!-- event:OLD -->\n"
    "\n## After\n\nmore\n",
    "\n# Plan\n\n## Progress\n",
    "no trailing newline",
]
TASKS = ["T01", "T02", "T03", "T04"]


def make(kind: str, key: str, **fields: Any) -> Event:
    return parse_event(
        {"key": key, "kind": kind, "workplan": "CUST-WP-0054", "actor": "agt-x", "at": "2026-07-03T22:29:55Z"}
        | fields,
        KINDS,
    )


def fold(text: str, events: list[Event]) -> tuple[str, list[Event]]:
    """Apply in order like the hub: an event that no longer applies is rejected and skipped; one whose
    file cannot take it (a body ending in a block never closed) waits, so it is skipped here too."""
    applied = []
    for event in events:
        try:
            text = apply_event(text, event)
        except (NoLongerApplies, BrokenTarget):
            continue
        applied.append(event)
    return text, applied


# BASE as an editor with tabs and trailing whitespace might leave it
BASE_TABS = (
    BASE.replace('id = "CUST-WP-0054"', 'id\t=\t"CUST-WP-0054"')
    .replace('title = "Fleet architecture"', 'title = "Fleet architecture"  \t')
    .replace('status = "blocked"', 'status\t= "blocked"\t')
    .replace("estimate = 3", "estimate = 3   ")
)


@st.composite
def files(draw: st.DrawFn) -> str:
    """A workplan file of any shape: BASE's front matter, any Markdown body, any line endings, BOM..."""
    front = draw(st.sampled_from([BASE, BASE_TABS]))
    body = draw(st.sampled_from(BODIES) | bodies())
    return draw(with_line_endings(front, body))


@st.composite
def any_event(draw: st.DrawFn) -> Event:
    key = f"K{draw(st.integers(0, 30))}"
    kind = draw(st.sampled_from(["task.status", "task.add", "workplan.status", "progress.note"]))
    if kind == "task.status":
        status = draw(st.sampled_from(["todo", "in-progress", "blocked", "done", "cancelled"]))
        note = draw(
            st.one_of(st.none(), st.text("abcxyz", min_size=1, max_size=8).map(lambda t: t + " done"))
        )
        return make(kind, key, task=draw(st.sampled_from(TASKS)), status=status, note=note)
    if kind == "task.add":
        title = draw(st.sampled_from(["New", "Other", "Drain"]))
        return make(kind, key, task=draw(st.sampled_from(["T03", "T04", "T05"])), title=title)
    if kind == "workplan.status":
        return make(kind, key, status=draw(st.sampled_from(["draft", "active", "done"])))
    task = draw(st.one_of(st.none(), st.sampled_from(TASKS)))
    return make(
        kind, key, task=task, note=draw(st.text("abcxyz", min_size=1, max_size=8).map(lambda t: t + " done"))
    )


def _unique_keys(events: list[Event]) -> list[Event]:
    seen: dict[str, Event] = {}
    for event in events:
        seen.setdefault(event.key, event)
    return list(seen.values())


@settings(max_examples=150, deadline=None, suppress_health_check=SLOW_DRAW)
@given(files(), st.lists(any_event(), max_size=12).map(_unique_keys))
def test_applying_a_sequence_twice_gives_the_file_applying_it_once_gives(
    before: str, events: list[Event]
) -> None:
    once, applied = fold(before, events)
    twice, _ = fold(once, applied)
    assert twice == once
    for event in applied:
        assert apply_event(once, event) == apply_event(apply_event(once, event), event)
    parse_workplan(once, "workplans/x.md")  # still a valid workplan


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([BASE, BASE.replace("\n", "\r\n"), BASE.replace("[[tasks]]", "[[ tasks ]]")]),
    st.lists(any_event(), max_size=12).map(_unique_keys),
)
def test_front_matter_kept_from_an_edit_is_what_a_fresh_parse_reads(base: str, events: list[Event]) -> None:
    """Write-back reuses what an edit knows about the new front matter instead of parsing it again
    (speed): every kept reading equals tomllib's reading of that text, and the file comes out the
    same as with every front matter parsed afresh."""
    _PARSED.data.clear()
    _PARSED.docs.clear()
    kept, _ = fold(base, events)
    for text, data in _PARSED.data.items():
        assert data == tomllib.loads(text)
    fresh = base
    for event in events:  # the same events, every front matter parsed afresh
        _PARSED.data.clear()
        _PARSED.docs.clear()
        try:
            fresh = apply_event(fresh, event)
        except NoLongerApplies:
            continue
    assert kept == fresh


@st.composite
def independent_events(draw: st.DrawFn) -> list[Event]:
    """Events that touch different things: distinct tasks' statuses, the plan status, one note, one add."""
    events: list[Event] = []
    for index, task in enumerate(draw(st.lists(st.sampled_from(TASKS[:3]), unique=True))):
        status = draw(st.sampled_from(["todo", "in-progress", "blocked", "done", "cancelled"]))
        events.append(make("task.status", f"S{index}", task=task, status=status))
    if draw(st.booleans()):
        events.append(make("workplan.status", "W", status=draw(st.sampled_from(["draft", "done"]))))
    if draw(st.booleans()):
        events.append(make("progress.note", "N", note="a note", task=draw(st.sampled_from(TASKS[:3]))))
    if draw(st.booleans()):
        events.append(make("task.add", "A", task="T09", title="Added", owner="codex", depends_on=["T01"]))
    return events


@settings(max_examples=100, deadline=None, suppress_health_check=SLOW_DRAW)
@given(files(), independent_events(), st.randoms(use_true_random=False))
def test_independent_events_in_any_order_give_the_same_file(
    before: str, events: list[Event], rng: Any
) -> None:
    shuffled = list(events)
    rng.shuffle(shuffled)
    assert fold(before, events)[0] == fold(before, shuffled)[0]


def _kept_in_order(old: list[str], new: list[str]) -> list[int] | None:
    """Indexes of ``new`` holding each line of ``old`` byte for byte, in order (the last line of
    ``old`` may have gained a line ending); None when some line is not there."""
    found: list[int] = []
    at = 0
    for index, line in enumerate(old):
        last_without_ending = index == len(old) - 1 and not ending(line)
        while at < len(new) and not (
            new[at] == line or (last_without_ending and strip_ending(new[at]) == line)
        ):
            at += 1
        if at == len(new):
            return None
        found.append(at)
        at += 1
    return found


_TARGETED = re.compile(r"[ \t]*status[ \t]*=")
"""The only front matter lines an event may change: status lines."""


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_DRAW)
@given(files(), st.lists(any_event(), max_size=12).map(_unique_keys))
def test_everything_an_event_does_not_target_is_byte_identical(before: str, events: list[Event]) -> None:
    after, applied = fold(before, events)
    old, new = split_front_matter(before), split_front_matter(after)
    assert old is not None and new is not None
    # the byte order mark and the fences as written; a closing fence at the end of the file may gain an ending
    assert new.opening == old.opening
    assert new.closing == old.closing or (not old.body and new.closing.startswith(old.closing))
    # the front matter: every line but a status line kept byte for byte, ending included, in order
    old_toml, new_toml = split_lines(old.toml), split_lines(new.toml)
    assert _kept_in_order([line for line in old_toml if not _TARGETED.match(line)], new_toml) is not None
    assert len(new_toml) - len(old_toml) <= 6 * len(applied)
    # the body: every line kept byte for byte, in order; the lines added are notes of applied events,
    # the heading of a section the hub made, and blank lines
    old_body, new_body = split_lines(old.body), split_lines(new.body)
    kept = _kept_in_order(old_body, new_body)
    assert kept is not None
    added = [i for i in range(len(new_body)) if i not in set(kept)]
    notes = {event_marker(e.key) for e in applied if getattr(e, "note", None)}
    for index in added:
        text = strip_ending(new_body[index])
        assert text in ("", "## Progress") or text.endswith(tuple(notes)), text
        # a new line takes the ending of the line before it (for the first, the closing fence's)
        before_it = new_body[index - 1] if index else new.closing
        assert ending(new_body[index]) == ending(before_it) or index == len(new_body) - 1
    # no line ending the file did not use
    used = {ending(line) for line in split_lines(before)} - {""}
    assert {ending(line) for line in split_lines(after)} - {""} <= used
    # each note is where a CommonMark reader sees it: a list item of the Progress section, once
    items = oracle_section_items(new.body)
    for marker in notes:
        assert new.body.count(marker) == 1
        assert [item for item in items if item.endswith(marker)], marker
    old_data, new_data = tomllib.loads(old.toml), tomllib.loads(new.toml)
    assert old_data["unknown_key"] == new_data["unknown_key"]
    assert new_data["tasks"][1]["estimate"] == 3
    parse_workplan(after, "workplans/x.md")


def test_a_task_status_sets_only_that_status_and_keeps_its_comment() -> None:
    text = apply_event(BASE, make("task.status", "K", task="T01", status="cancelled"))
    assert text == BASE.replace('status = "done"   # finished', 'status = "cancelled"   # finished')
    added = apply_event(BASE, make("task.status", "K", task="T02", status="done"))
    assert added == BASE.replace("estimate = 3\n", 'estimate = 3\nstatus = "done"\n')


def test_a_progress_note_goes_at_the_end_of_its_section_once() -> None:
    text = BASE + BODIES[2]
    note = make("progress.note", "K7", note="tunnels moved", task="T02")
    once = apply_event(text, note)
    assert once == text.replace(
        "<!-- event:OLD -->\n",
        "<!-- event:OLD -->\n"
        "- 2026-07-03T22:29:55Z CUST-WP-0054-T02 @agt-x: tunnels moved <!-- event:K7 -->\n",
    )
    assert apply_event(once, note) == once
    fresh = apply_event(BASE + BODIES[4], make("progress.note", "K8", note="hello"))
    assert fresh.endswith(
        "no trailing newline\n\n## Progress\n\n"
        "- 2026-07-03T22:29:55Z CUST-WP-0054 @agt-x: hello <!-- event:K8 -->\n"
    )


def test_task_add_appends_a_table_and_refuses_a_taken_id() -> None:
    add = make("task.add", "A", task="T04", title="New one", owner="codex", depends_on=["T01"])
    text = apply_event(BASE, add)
    assert text.endswith(
        'status = "blocked"\n\n[[tasks]]\nid = "T04"\ntitle = "New one"\nstatus = "todo"\n'
        'owner = "codex"\ndepends_on = ["T01"]\n+++\n'
    )
    assert apply_event(text, add) == text
    with pytest.raises(NoLongerApplies, match="already exists with title 'Drain'"):
        apply_event(BASE, make("task.add", "B", task="T03", title="Something else"))


def test_events_that_no_longer_apply_or_cannot_be_read_say_why() -> None:
    with pytest.raises(NoLongerApplies, match="T07 is no longer in the workplan"):
        apply_event(BASE, make("task.status", "K", task="T07", status="done"))
    with pytest.raises(NoLongerApplies, match="now holds workplan 'OTHER-WP-0001'"):
        apply_event(
            BASE.replace("CUST-WP-0054", "OTHER-WP-0001"), make("workplan.status", "K", status="done")
        )
    with pytest.raises(BrokenTarget, match="front matter"):
        apply_event("no front matter\n", make("workplan.status", "K", status="done"))
    with pytest.raises(BrokenTarget, match="not valid TOML"):
        apply_event("+++\nid = \n+++\n", make("workplan.status", "K", status="done"))


def test_a_file_with_windows_line_endings_keeps_them() -> None:
    text = (BASE + BODIES[1]).replace("\n", "\r\n")
    for event in (
        make("task.status", "K1", task="T02", status="done", note="with a note"),
        make("task.add", "K2", task="T04", title="New"),
        make("workplan.status", "K3", status="done"),
    ):
        text = apply_event(text, event)
    assert "\n" not in text.replace("\r\n", "")
    plan = parse_workplan(text, "workplans/x.md")
    assert plan is not None and [t.status.value for t in plan.tasks] == ["done", "done", "blocked", "todo"]
    assert plan.status.value == "done"
