"""Every file shape people's editors write, for each kind of file: read it, and write back only the change.

Shapes: a UTF-8 byte order mark, LF / CRLF / mixed / lone-CR line endings,
trailing whitespace (also on the fences), tabs, no final line ending, an empty
body, ``+++`` lines later in the body, a Unicode line separator inside a value.
"""

from __future__ import annotations

import pytest

import workplans
from workplans import (
    BrokenTarget,
    Event,
    FormatError,
    parse_canon,
    parse_event,
    parse_fleet,
    parse_manifest,
    parse_workplan,
    workplan_event_kinds,
)
from workplans.fleet_events import SetWorkloadState, apply_fleet_change
from workplans.fleet_models import WorkloadState
from workplans.front_matter import split_front_matter
from workplans.lines import keep_line_endings, split_lines

KINDS = workplan_event_kinds()
BOM = "\ufeff"

PLAN = (
    "+++\n"
    'id = "CUST-WP-0054"\n'
    'title = "Fleet"\n'
    'status = "active"\n'
    "\n"
    "[[tasks]]\n"
    'id = "T01"\n'
    'title = "First"\n'
    "+++\n"
)


def event(kind: str, key: str, **fields: object) -> Event:
    base = {"key": key, "kind": kind, "workplan": "CUST-WP-0054", "actor": "agt-x"}
    return parse_event(base | {"at": "2026-07-03T22:29:55Z"} | fields, KINDS)


def apply(text: str, *events: Event) -> str:
    for one in events:
        text = workplans.apply_event(text, one, KINDS)
    return text


NOTE = "- 2026-07-03T22:29:55Z CUST-WP-0054 @agt-x: moved <!-- event:N1 -->"


# reading --------------------------------------------------------------------------------------------


def test_a_byte_order_mark_before_the_front_matter_is_read_like_none() -> None:
    plan = parse_workplan(BOM + PLAN + "# Body\n", "workplans/a.md")
    assert plan is not None and plan.id == "CUST-WP-0054" and plan.body == "# Body\n"
    canon = '+++\nid = "ADR-001"\ntitle = "T"\nkind = "adr"\nstatus = "accepted"\n+++\n'
    doc = parse_canon(BOM + canon, "canon/adr-001.md")
    assert doc is not None and doc.id == "ADR-001"
    assert parse_manifest(BOM + '[repo]\nslug = "cust"\n').slug == "cust"
    fleet = parse_fleet(BOM + '[[machines]]\nname = "a"\nrole = "build"\n')
    assert [m.name for m in fleet.machines] == ["a"]


def test_a_byte_order_mark_keeps_problem_lines_right() -> None:
    with pytest.raises(FormatError) as caught:
        parse_fleet(BOM + '[[machines]]\nname = "a"\nrole = "castle"\n')
    assert caught.value.problems[0].line == 3
    with pytest.raises(FormatError) as caught:
        parse_manifest(BOM + '[repo]\nslug = "Not A Slug"\n')
    assert caught.value.problems[0].line == 2


@pytest.mark.parametrize("fence", ["+++ ", "+++\t", "+++  \t "])
def test_fences_with_trailing_whitespace_are_fences(fence: str) -> None:
    text = PLAN.replace("+++\n", fence + "\n")
    plan = parse_workplan(text + "body\n", "workplans/a.md")
    assert plan is not None and plan.body == "body\n"


def test_the_first_fence_after_the_opening_closes_and_later_ones_are_body() -> None:
    body = "text\n+++\nid = 'not front matter'\n+++\n"
    plan = parse_workplan(PLAN + body, "workplans/a.md")
    assert plan is not None and plan.body == body


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("", 1, "the file is empty"),
        ("\n\n", 1, "the file is empty"),
        ("\n" + PLAN, 2, "the '+++' on line 2 is after blank lines"),
        (" " + PLAN, 1, "the '+++' on line 1 is indented"),
        ("---\ntitle: x\n---\n", 1, "'---' opens YAML front matter"),
        ("# Just a title\n", 1, "a workplan must open with TOML front matter between '+++' lines"),
    ],
    ids=["empty", "blank lines only", "blank line first", "indented fence", "yaml", "no front matter"],
)
def test_a_file_without_front_matter_is_told_what_it_has_instead(text: str, line: int, says: str) -> None:
    with pytest.raises(FormatError) as caught:
        parse_workplan(text, "workplans/a.md")
    (problem,) = caught.value.problems
    assert problem.line == line and says in problem.message


def test_line_endings_of_every_kind_are_read() -> None:
    for newline in ("\n", "\r\n"):
        plan = parse_workplan(PLAN.replace("\n", newline) + "body", "workplans/a.md")
        assert plan is not None and plan.tasks[0].id == "T01" and plan.body == "body"
    mixed = '+++\r\nid = "CUST-WP-0054"\ntitle = "Fleet"\r\nstatus = "active"\n+++\r\nbody\rmore\n'
    plan = parse_workplan(mixed, "workplans/a.md")
    assert plan is not None and plan.body == "body\rmore\n"


def test_a_lone_cr_in_toml_is_named_on_its_line() -> None:
    text = PLAN.replace('title = "Fleet"\n', 'title = "Fleet"\r')
    with pytest.raises(FormatError) as caught:
        parse_workplan(text, "workplans/a.md")
    (problem,) = caught.value.problems
    assert problem.line == 3 and "lone carriage return" in problem.message
    with pytest.raises(FormatError, match="lone carriage return"):
        parse_manifest('[repo]\rslug = "x"\n')


def test_a_line_separator_inside_a_value_is_not_a_line_break() -> None:
    text = PLAN.replace('title = "Fleet"', 'title = "Fleet\u2028+++"')
    plan = parse_workplan(text, "workplans/a.md")
    assert plan is not None and plan.title == "Fleet\u2028+++"
    assert split_lines("a\u2028b\x85c\x0cd\n") == ["a\u2028b\x85c\x0cd\n"]


def test_tabs_and_trailing_whitespace_in_toml_are_whitespace() -> None:
    text = PLAN.replace(" = ", "\t=\t").replace('"Fleet"', '"Fleet"  \t')
    plan = parse_workplan(text, "workplans/a.md")
    assert plan is not None and plan.title == "Fleet" and plan.tasks[0].title == "First"


# writing --------------------------------------------------------------------------------------------


def test_a_byte_order_mark_is_kept_on_write_back_and_nothing_else_moves() -> None:
    text = BOM + PLAN + "# Body\n"
    after = apply(text, event("task.status", "K1", task="T01", status="done"))
    assert after == BOM + PLAN.replace('title = "First"\n', 'title = "First"\nstatus = "done"\n') + "# Body\n"
    assert apply(after, event("task.status", "K1", task="T01", status="done")) == after


def test_mixed_line_endings_keep_every_untouched_line_and_new_lines_take_their_neighbours() -> None:
    text = (
        "+++\r\n"
        'id = "CUST-WP-0054"\n'
        'title = "Fleet"\r\n'
        'status = "active"   # the plan\n'
        "\r\n"
        "[[tasks]]\r\n"
        'id = "T01"\r\n'
        'title = "First"\r\n'
        "+++\n"
        "# Body\r\n"
        "\n"
        "## Progress\n"
        "\n"
        "- old <!-- event:OLD -->\r\n"
    )
    after = apply(
        text,
        event("workplan.status", "K1", status="done"),
        event("task.status", "K2", task="T01", status="done"),
        event("progress.note", "N1", note="moved"),
    )
    assert after == (
        "+++\r\n"
        'id = "CUST-WP-0054"\n'
        'title = "Fleet"\r\n'
        'status = "done"   # the plan\n'  # a changed line keeps the ending of the line it replaces
        "\r\n"
        "[[tasks]]\r\n"
        'id = "T01"\r\n'
        'title = "First"\r\n'
        'status = "done"\r\n'  # an added line takes the ending of the line before it
        "+++\n"
        "# Body\r\n"
        "\n"
        "## Progress\n"
        "\n"
        "- old <!-- event:OLD -->\r\n"
        f"{NOTE}\r\n"
    )


def test_a_file_that_ends_at_its_closing_fence_gets_a_line_ending_before_a_new_body() -> None:
    text = PLAN.replace("\n", "\r\n").removesuffix("\r\n")
    after = apply(text, event("progress.note", "N1", note="moved"))
    assert after == PLAN.replace("\n", "\r\n") + f"## Progress\r\n\r\n{NOTE}\r\n"


def test_no_final_line_ending_the_last_line_gets_its_neighbours() -> None:
    text = PLAN.replace("\n", "\r\n") + "# Body\r\n\r\n## Progress\r\n\r\n- old"
    after = apply(text, event("progress.note", "N1", note="moved"))
    assert after == text + f"\r\n{NOTE}\r\n"
    lone = PLAN + "# Body\r\r## Progress\r\r- old"  # a body in old Mac line endings
    assert apply(lone, event("progress.note", "N1", note="moved")) == lone + f"\r{NOTE}\r"


def test_an_empty_body_and_a_body_of_blank_lines() -> None:
    assert apply(PLAN, event("progress.note", "N1", note="moved")) == PLAN + f"## Progress\n\n{NOTE}\n"
    blank = apply(PLAN + "\n\n", event("progress.note", "N1", note="moved"))
    assert blank == PLAN + f"\n\n## Progress\n\n{NOTE}\n"


def test_a_task_added_to_a_crlf_file_is_written_in_crlf() -> None:
    text = PLAN.replace("\n", "\r\n")
    after = apply(text, event("task.add", "A1", task="T02", title="Second"))
    table = '[[tasks]]\r\nid = "T02"\r\ntitle = "Second"\r\nstatus = "todo"\r\n'
    assert after == text.replace('"First"\r\n+++', f'"First"\r\n\r\n{table}+++')


def test_a_body_ending_in_a_fence_never_closed_makes_a_note_wait_with_the_line() -> None:
    text = PLAN + "## Progress\n\n```\nopen\n"
    with pytest.raises(BrokenTarget, match="opened on line 12 that is never closed"):
        apply(text, event("progress.note", "N1", note="moved"))
    assert apply(text, event("task.status", "K1", task="T01", status="done")) != text  # no note: applies


def test_fleet_write_back_keeps_the_byte_order_mark_and_each_line_ending() -> None:
    text = (
        BOM + '[[machines]]\r\nname = "a"\nrole = "production-home"\r\n\r\n'
        '[[workloads]]\nname = "w"\r\ncurrent_host = "a"\nstate = "running"   # now\r\nwave = 1\n'
    )
    after = apply_fleet_change(text, SetWorkloadState("w", WorkloadState.DRAINING))
    assert after == text.replace('state = "running"', 'state = "draining"')
    assert apply_fleet_change(after, SetWorkloadState("w", WorkloadState.DRAINING)) == after


def test_keep_line_endings_rule() -> None:
    assert keep_line_endings("a\r\nb\n", "a\nb\nc\n") == "a\r\nb\nc\n"  # added: the line before's
    assert keep_line_endings("a\r\nb\n", "x\nb\n") == "x\r\nb\n"  # changed: the line it replaces
    assert keep_line_endings("b\r\n", "a\nb\n") == "a\r\nb\r\n"  # added first: the line after's
    assert keep_line_endings("", "a\n", "\r\n") == "a\r\n"  # nothing around: the default
    assert keep_line_endings("a", "a\nb\n", "\r\n") == "a\r\nb\r\n"  # a last line without one gets one
    assert keep_line_endings("a\r\nb", "a\nb") == "a\r\nb"  # still no final line ending


def test_split_front_matter_keeps_fences_as_written() -> None:
    front = split_front_matter(BOM + "+++ \r\nid = 1\n+++\t\nbody")
    assert front is not None
    parts = (front.opening, front.toml, front.closing, front.body)
    assert parts == (BOM + "+++ \r\n", "id = 1\n", "+++\t\n", "body")
