"""The Progress section is where a CommonMark reader sees it: one test per case of docs/format.md.

Each case is a body and the line of the heading that starts the section (None:
there is none, so the hub adds ``## Progress`` at the end). Every result is
checked against a full CommonMark parse (markdown-it-py with inline parsing,
no shortcuts): the note is a top-level list item of the section.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.workplans.shapes import SLOW_DRAW, bodies, oracle_progress_heading, oracle_top_level_items
from workplans.errors import BrokenTarget
from workplans.lines import split_lines
from workplans.progress import _APPENDED, add_progress_line, find_progress

NOTE = "- 2026-07-03T22:29:55Z CUST-WP-0054 @a: a note <!-- event:NEW -->"

# (case, body, line of the Progress heading or None), decided by the CommonMark spec 0.31.2
CASES = [
    ("atx heading", "## Progress\n\n- a\n", 0),
    ("up to three spaces before it", "   ## Progress\n", 0),
    ("four spaces make indented code", "    ## Progress\n", None),
    ("a tab makes indented code", "\t## Progress\n", None),
    ("closing #s", "## Progress ##\n", 0),
    ("a long closing run and trailing blanks", "## Progress #####   \n", 0),
    ("a # glued to the text is text", "## Progress#\n", None),
    ("extra spaces around the text", "##   Progress   \n", 0),
    ("tabs around the text", "##\tProgress\t\n", 0),
    ("trailing whitespace", "## Progress \t \n", 0),
    ("no space after ##", "##Progress\n", None),
    ("level 3", "### Progress\n", None),
    ("level 1", "# Progress\n", None),
    ("another case of the word", "## progress\n", None),
    ("emphasis", "## *Progress*\n", None),
    ("an escaped #", "\\## Progress\n", None),
    ("setext level 2", "Progress\n--------\n\n- a\n", 0),
    ("setext with one dash", "Progress\n-\n", 0),
    ("setext level 1", "Progress\n===\n", None),
    ("setext over two lines", "Work\nProgress\n---\n", None),
    ("in a backtick fence", "```\n## Progress\n```\n", None),
    ("in a tilde fence with an info string", "~~~md\n## Progress\n~~~\n", None),
    ("a shorter fence does not close a longer one", "````\n```\n## Progress\n````\n", None),
    ("in a fence in a list item", "- a\n\n  ```\n  ## Progress\n  ```\n", None),
    ("after the fence closes", "```\ncode\n```\n## Progress\n", 3),
    ("a paragraph's continuation line", "para\n    ## Progress\n", None),
    ("in a multi-line HTML comment", "<!--\n## Progress\n-->\n", None),
    ("after a one-line HTML comment", "<!-- note -->\n## Progress\n", 1),
    ("in an HTML block that runs to a blank line", "<div>\n## Progress\n</div>\n", None),
    ("after an HTML block's blank line", "<details>\n\n## Progress\n\n- a\n\n</details>\n", 2),
    ("in an HTML block of a custom tag", "<custom-tag>\n## Progress\n", None),
    ("in a block quote", "> ## Progress\n", None),
    ("in a list item", "- ## Progress\n", None),
    ("in a list item's continuation", "- a\n\n  ## Progress\n", None),
    ("at column 0 after a list", "- a\n## Progress\n", 1),
    ("in a table row", "| ## Progress |\n| --- |\n", None),
    ("between +++ lines of the body", "+++\n## Progress\n+++\n", 1),
    ("the first of two", "## Progress\n\n- a\n\n## Progress\n\n- b\n", 0),
    ("CRLF", "## Progress\r\n\r\n- a\r\n", 0),
    ("lone CR", "## Progress\r\r- a\r", 0),
    ("no final line ending", "# Plan\n\n## Progress\n\n- a", 2),
]


@pytest.mark.parametrize(("body", "heading"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_section_is_where_a_commonmark_reader_sees_it(body: str, heading: int | None) -> None:
    assert oracle_progress_heading(body) == heading  # the case table itself agrees with CommonMark
    section = find_progress(split_lines(body))
    assert (section.heading if section else None) == heading
    after = add_progress_line(body, NOTE)
    _assert_note_is_an_item_of_the_section(after)
    if heading is None:
        assert after.startswith(body if body.endswith(("\n", "\r")) else body + "\n")
        assert after.endswith("\n## Progress\n\n" + NOTE + "\n")


def _assert_note_is_an_item_of_the_section(body: str) -> None:
    heading = oracle_progress_heading(body)
    assert heading is not None
    items = [line for line, text in oracle_top_level_items(body) if text == NOTE]
    assert len(items) == 1 and items[0] > heading
    lines = split_lines(body)
    section = find_progress(lines)
    assert section is not None and section.heading == heading and section.start <= items[0] < section.end


def test_the_section_ends_at_the_next_top_level_level_1_or_2_heading() -> None:
    body = "## Progress\n\n- a\n\n### Older\n\n- b\n\n```\n## not this\n```\n\nNext\n----\n\nmore\n"
    after = add_progress_line(body, NOTE)
    assert after == body.replace("```\n\nNext", f"```\n{NOTE}\n\nNext")
    section = find_progress(split_lines(body))
    assert section is not None and section.end == 12  # the setext heading's text line
    hr = "## Progress\n\n- a\n\n---\n\n- b\n"  # a thematic break is no heading
    assert add_progress_line(hr, NOTE) == hr + NOTE + "\n"


def test_a_note_never_takes_in_the_heading_after_it() -> None:
    # a paragraph line right after a list item would be its lazy continuation: a blank line goes between
    body = "## Progress\n\n```\nx\n```\nNext\n---\n"
    after = add_progress_line(body, NOTE)
    assert after == body.replace("```\nNext", f"```\n{NOTE}\n\nNext")
    _assert_note_is_an_item_of_the_section(after)
    # a heading indented under the note's text would become part of it: the note waits
    with pytest.raises(BrokenTarget, match="heading on line 3 that ends the 'Progress' section is indented"):
        add_progress_line("## Progress\n\n   ## Next\n", NOTE)


def test_a_note_after_a_running_html_block_gets_a_blank_line_first() -> None:
    body = "## Progress\n\n<div>x</div>\n"
    after = add_progress_line(body, NOTE)
    assert after == body + "\n" + NOTE + "\n"
    _assert_note_is_an_item_of_the_section(after)


def test_a_section_with_nothing_in_it_gets_a_blank_line_then_the_note() -> None:
    assert add_progress_line("## Progress\n\n## After\n", NOTE) == f"## Progress\n\n{NOTE}\n\n## After\n"
    assert add_progress_line("## Progress", NOTE) == f"## Progress\n\n{NOTE}\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("## Progress\n\n- a\n\n```\nnever closed\n", "fenced code block opened on line 12"),
        ("## Progress\n\n<!--\n- a\n", "HTML block opened on line 10"),
        ("# Plan\n\n```\ncode\n", "the body ends inside a fenced code block opened on line 10"),
    ],
    ids=["section ends in an open fence", "section ends in an open comment", "body ends in an open fence"],
)
def test_a_body_that_ends_inside_a_block_never_closed_waits_with_the_reason(body: str, message: str) -> None:
    with pytest.raises(BrokenTarget, match=message):
        add_progress_line(body, NOTE, first_line=8)


@settings(max_examples=400, deadline=None, suppress_health_check=SLOW_DRAW)
@given(bodies())
def test_the_line_scan_agrees_with_a_full_commonmark_parse(body: str) -> None:
    section = find_progress(split_lines(body))
    assert (section.heading if section else None) == oracle_progress_heading(body)
    try:
        after = add_progress_line(body, NOTE)
    except BrokenTarget as error:
        if "never closed" in str(error):  # nothing added at the end could be an item
            assert not any(text == NOTE for _, text in oracle_top_level_items(body + "\n\n" + NOTE + "\n"))
        else:  # the heading that ends the section is indented: a note before it would take it in
            line = int(str(error).split("on line ")[1].split()[0]) - 1
            assert section is not None and section.end == line and body.splitlines()[line].startswith(" ")
        return
    _assert_note_is_an_item_of_the_section(after)


@settings(max_examples=150, deadline=None, suppress_health_check=SLOW_DRAW)
@given(bodies(open_end=False), st.sampled_from(["\n", "\r\n"]))
def test_a_run_of_notes_gives_what_reading_each_body_afresh_gives(body: str, around: str) -> None:
    """The thread's memory of where the last note went (a run of events to one file) changes nothing."""
    remembered = fresh = body.replace("\n", around)
    for number in range(3):
        note = NOTE.replace("NEW", f"N{number}")
        try:
            remembered = add_progress_line(remembered, note, around)
        except BrokenTarget:  # a body that takes no note (tested above)
            return
        _APPENDED.bodies.clear()
        fresh = add_progress_line(fresh, note, around)
        assert fresh == remembered
