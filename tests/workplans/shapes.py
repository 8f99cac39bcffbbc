"""Hypothesis strategies for the shapes people's editors give files.

Markdown bodies built from blocks of every kind CommonMark knows (headings
that are, and only look like, ``## Progress``; fenced and indented code, HTML
blocks and comments, lists, block quotes, tables, ``+++`` lines), joined with
or without blank lines; then a file's line endings (LF, CRLF, mixed, a lone
CR in the body), an optional byte order mark, trailing whitespace and tabs,
and an optional final line ending.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypothesis import HealthCheck
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from workplans.lines import split_lines, strip_ending

if TYPE_CHECKING:
    from markdown_it.token import Token

__all__ = [
    "PROGRESS_LOOKALIKES",
    "PROGRESS_SECTIONS",
    "SLOW_DRAW",
    "blocks_of_markdown",
    "bodies",
    "oracle_progress_heading",
    "oracle_section_items",
    "oracle_top_level_items",
    "with_line_endings",
]

PROGRESS_SECTIONS = [
    "## Progress",
    "##   Progress   ##",
    "   ## Progress",
    "##\tProgress\t",
    "## Progress #####  ",
    "Progress\n--------",
    "Progress\n-",
]
"""Headings a CommonMark reader takes for a level-2 ``Progress`` heading."""

PROGRESS_LOOKALIKES = [
    "### Progress",
    "# Progress",
    "#Progress",
    "##Progress",
    "## progress",
    "## Progress#",
    "## *Progress*",
    "\\## Progress",
    "    ## Progress",
    "\t## Progress",
    "> ## Progress",
    "- ## Progress",
    "- item\n\n  ## Progress",
    "Progress\n===",
    "Work\nProgress\n---",
    "| ## Progress |\n| --- |",
    "```\n## Progress\n```",
    "~~~md\n## Progress\n+++\n~~~",
    "````\n```\n## Progress\n````",
    "- a\n\n  ```\n  ## Progress\n  ```",
    "<!--\n## Progress\n-->",
    "<div>\n## Progress\n</div>",
    "<custom-tag>\n## Progress",
]
"""Lines that only look like it: code, HTML, containers, other levels and texts."""

_OTHER_BLOCKS = [
    "# Plan",
    "## After",
    "Next\n----",
    "Free   text.",
    "text with trailing blanks   \t",
    "a paragraph\nover two lines",
    "\tcode after a tab",
    "    indented code\n    ## not a heading",
    "- a\n- b\n  continued",
    "1. one\n2. two",
    "* star\n\n  more",
    "> quoted\n> - item",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "<details>\n<summary>more</summary>",
    "</details>",
    "<!-- a comment -->",
    "```python\nx = 1\n```",
    "+++",
    "+++\nid = 1\n+++",
    "---",
    "- 2026-01-01T00:00:00Z CUST-WP-0054 @a: old <!-- event:OLD1 -->",
    "- 2026-01-02T00:00:00Z CUST-WP-0054-T01 @b: older\tnote <!-- event:OLD2 -->",
]

_OPEN_AT_END = ["```\nnever closed", "<!--\nnever closed", "~~~"]


def blocks_of_markdown(open_end: bool = True) -> st.SearchStrategy[list[str]]:
    """A list of blocks; with ``open_end`` the last may be a block that is never closed."""
    block = st.sampled_from(PROGRESS_SECTIONS + PROGRESS_LOOKALIKES + _OTHER_BLOCKS)
    listed = st.lists(block, max_size=8)
    if not open_end:
        return listed
    return st.tuples(listed, st.none() | st.sampled_from(_OPEN_AT_END)).map(
        lambda pair: pair[0] + ([pair[1]] if pair[1] else [])
    )


@st.composite
def bodies(draw: st.DrawFn, open_end: bool = True) -> str:
    """A body with LF endings: blocks joined by blank lines or directly, maybe with a leading blank."""
    blocks = draw(blocks_of_markdown(open_end))
    text = ""
    for index, block in enumerate(blocks):
        if index:
            text += draw(st.sampled_from(["\n\n", "\n", "\n\n\n"]))
        text += block
    lead = draw(st.sampled_from(["", "\n"]))
    return lead + text + ("\n" if text else "")


_STYLES = {"lf": ["\n"], "crlf": ["\r\n"], "mixed": ["\n", "\r\n"], "mixed-cr": ["\n", "\r\n", "\r"]}


@st.composite
def with_line_endings(draw: st.DrawFn, front: str, body: str) -> str:
    """``front`` (fences and TOML) and ``body``, both written with LF, as an editor might save them.

    One style per file: all LF, all CRLF, mixed LF/CRLF, or mixed with a lone
    CR in the body (TOML allows only LF and CRLF). Maybe a byte order mark,
    trailing whitespace on the fences, and no final line ending.
    """
    style = draw(st.sampled_from(sorted(_STYLES)))
    toml_endings = [e for e in _STYLES[style] if e != "\r"]
    lines = split_lines(front)
    out = []
    for index, line in enumerate(lines):
        text = strip_ending(line)
        if text == "+++" and draw(st.booleans()):
            text += draw(st.sampled_from([" ", "\t", "  \t"]))
        if index == 0 and draw(st.booleans()):
            text = "\ufeff" + text
        out.append(text + draw(st.sampled_from(toml_endings)))
    for line in split_lines(body):
        out.append(strip_ending(line) + draw(st.sampled_from(_STYLES[style])))
    text = "".join(out)
    if draw(st.booleans()):
        text = text.rstrip("\r\n")
    return text


def _parse(body: str) -> list[Token]:
    return MarkdownIt("commonmark").parse(body)


def oracle_progress_heading(body: str) -> int | None:
    """The 0-based line of the first top-level level-2 ``Progress`` heading, by a full CommonMark parse."""
    tokens = _parse(body)
    for index, token in enumerate(tokens):
        top = token.type == "heading_open" and token.level == 0 and token.tag == "h2"
        if top and token.map and tokens[index + 1].content == "Progress":
            return token.map[0]
    return None


def oracle_top_level_items(body: str) -> list[tuple[int, str]]:
    """(line, raw text) of every top-level list item's first line, by a full CommonMark parse."""
    lines = [strip_ending(line) for line in split_lines(body)]
    return [
        (token.map[0], lines[token.map[0]])
        for token in _parse(body)
        if token.type == "list_item_open" and token.level == 1 and token.map
    ]


def oracle_section_items(body: str) -> list[str]:
    """Raw first lines of the top-level list items in the first Progress section, by a full parse."""
    tokens = _parse(body)
    heading = oracle_progress_heading(body)
    if heading is None:
        return []
    lines = [strip_ending(line) for line in split_lines(body)]
    items: list[str] = []
    for token in tokens:
        if not token.map or token.map[0] <= heading:
            continue
        if token.type == "heading_open" and token.level == 0 and token.tag in ("h1", "h2"):
            break
        if token.type == "list_item_open" and token.level == 1:
            items.append(lines[token.map[0]])
    return items


SLOW_DRAW = [HealthCheck.too_slow]
"""Drawing a whole file is slow next to a flag; on a shared, loaded machine hypothesis would call it
too slow and fail a test that found nothing wrong."""
