"""The ``## Progress`` section of a workplan's body, found the way a CommonMark reader finds it.

The body is Markdown (CommonMark 0.31, https://spec.commonmark.org/0.31.2/)
read on its own, without the front matter. The Progress section starts at the
first **top-level level-2 heading whose text is** ``Progress``: written
``## Progress`` (up to three spaces before it, any spaces or tabs around the
text, an optional closing run of ``#``) or as a setext heading (``Progress``
underlined with ``-``). It runs to the next top-level level-1 or level-2
heading, or to the end of the body. Lines that only look like that heading are
not it: inside a fenced or indented code block, an HTML block or comment, a
block quote or a list item, ``#Progress`` without a space, ``### Progress``,
``## progress`` or ``## *Progress*``. docs/format.md ("The Progress section")
lists the cases; tests/workplans/test_progress.py has one test each.

A note is appended after the section's last non-blank line, and must come out
as a top-level list item there; when the block before it would swallow it (an
HTML block running on), a blank line goes first; when nothing can follow the
section visibly (it ends in a fenced block or HTML comment that is never
closed), :class:`~workplans.errors.BrokenTarget` says so and the event waits.

Speed: most bodies are read with a line scan alone. markdown-it-py (a
CommonMark parser) decides the lines a scan cannot: a candidate heading after
a fence or HTML line, a setext heading, an indented one. Its answer for a
line depends only on the lines before it, and a top-level heading closes
every block, so it is given the fewest lines that decide.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from markdown_it import MarkdownIt

from workplans.errors import BrokenTarget
from workplans.lines import ending, keep_line_endings, line_texts, split_lines, strip_ending

if TYPE_CHECKING:
    from markdown_it.token import Token

__all__ = ["PROGRESS_HEADING", "Section", "add_progress_line", "find_progress"]

PROGRESS_HEADING = "## Progress"
"""The heading the hub writes when a body has no Progress section."""

_TEXT = "Progress"
_ATX_2 = re.compile(r" {0,3}##(?=[ \t]|$)")
_ATX_1_OR_2 = re.compile(r" {0,3}#{1,2}(?:[ \t]|$)")
_UNDERLINE = re.compile(r" {0,3}(?:=+|-+)[ \t]*")
_DASHES = re.compile(r" {0,3}-+[ \t]*")
_OPENER = re.compile(r"[ \t]*(?:```|~~~|<)")
"""Lines that may open a block a later line at column 0 still belongs to: fenced code, HTML."""


@dataclass(frozen=True, slots=True)
class Section:
    """Where the Progress section is, as 0-based indexes into the body's lines."""

    heading: int
    """The heading's first line."""
    start: int
    """The first line after the heading (after the underline of a setext heading)."""
    end: int
    """The first line of the next top-level level-1 or level-2 heading, or the number of lines."""


@cache
def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark")
    parser.core.ruler.disable("inline")  # block structure is all we ask; a heading's text stays raw
    return parser


def _blocks(texts: list[str]) -> list[Token]:
    return _parser().parse("\n".join(texts))


def _atx_text(text: str) -> str | None:
    """The text of a level-2 ATX heading line, as CommonMark strips it; None for other lines."""
    opening = _ATX_2.match(text)
    if opening is None:
        return None
    rest = text[opening.end() :].rstrip(" \t")
    unclosed = rest.rstrip("#")
    if len(unclosed) < len(rest) and (not unclosed or unclosed[-1] in " \t"):
        rest = unclosed
    return rest.strip(" \t")


def _plain(texts: list[str], start: int, stop: int) -> bool:
    """No line in ``texts[start:stop]`` may open a block that swallows a line at column 0."""
    return not any(_OPENER.match(texts[i]) for i in range(start, stop))


def _heading_at(texts: list[str], start: int, line: int, levels: tuple[str, ...]) -> Token | None:
    """The top-level heading whose first line is ``line``, reading from ``start`` (a top-level line)."""
    stop = line + 2 if line + 1 < len(texts) and _UNDERLINE.fullmatch(texts[line + 1]) else line + 1
    tokens = _blocks(texts[start:stop])
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.level == 0 and token.map and token.map[0] == line - start:
            return tokens[index + 1] if token.tag in levels else None  # the inline token: its raw text
    return None


def find_progress(lines: list[str]) -> Section | None:
    """The first top-level ``Progress`` level-2 heading's section in a body's lines (see the module)."""
    return _find([strip_ending(line) for line in lines])


def _find(texts: list[str]) -> Section | None:
    """:func:`find_progress` on the lines' texts.

    One pass and at most two parses of the body, whatever it holds: the first
    line that may be the heading is decided by the scan when it is ``## ...``
    at column 0 with no fence or HTML line before it, else by parsing the
    lines up to it; only when it is not the heading is the whole body parsed.
    """
    opened = False
    for line, text in enumerate(texts):
        if _atx_text(text) == _TEXT:
            if text.startswith("##") and not opened:
                return Section(line, line + 1, _section_end(texts, line, line + 1))
            break
        if text.strip(" \t") == _TEXT and line + 1 < len(texts) and _DASHES.fullmatch(texts[line + 1]):
            break
        opened = opened or _OPENER.match(text) is not None
    else:
        return None
    # the lines up to the candidate decide it; only when it is not the heading is the rest read
    for upto in (line + 2, len(texts)):
        tokens = _blocks(texts[:upto])
        for index, token in enumerate(tokens):
            top = token.type == "heading_open" and token.level == 0 and token.tag == "h2"
            if top and token.map and tokens[index + 1].content == _TEXT:
                heading, after = token.map
                return Section(heading, after, _section_end(texts, heading, after))
    return None


def _section_end(texts: list[str], heading: int, start: int) -> int:
    candidates = [
        i
        for i in range(start, len(texts))
        if _ATX_1_OR_2.match(texts[i]) or (_UNDERLINE.fullmatch(texts[i]) and texts[i - 1].strip(" \t"))
    ]
    if not candidates:
        return len(texts)
    first = candidates[0]
    if texts[first].startswith("#") and _plain(texts, heading, first):
        return first
    for token in _blocks(texts[heading:]):  # the heading is top-level: what follows reads on its own
        top = token.type == "heading_open" and token.level == 0 and token.tag in ("h1", "h2")
        if top and token.map and token.map[0] + heading >= start:
            return token.map[0] + heading
    return len(texts)


def _starts_item(texts: list[str], start: int, line: int) -> bool:
    """Whether ``texts[line]`` (a ``- ...`` line) starts a top-level list item, reading from ``start``."""
    if _plain(texts, start, line):
        return True
    tokens = _blocks(texts[start : line + 1])
    return any(
        t.type == "list_item_open" and t.level == 1 and t.map is not None and t.map[0] == line - start
        for t in tokens
    )


def _swallower(texts: list[str], start: int, line: int) -> tuple[int, str]:
    """(0-based line, what) of the top-level block that holds ``texts[line]``, reading from ``start``."""
    names = {"fence": "a fenced code block", "html_block": "an HTML block", "code_block": "a code block"}
    for token in reversed(_blocks(texts[start : line + 1])):
        if token.level == 0 and token.map and token.map[0] <= line - start < token.map[1]:
            return token.map[0] + start, names.get(token.type, f"a {token.type.removesuffix('_open')}")
    return line, "the block before it"


class _Appended(threading.local):
    """Bodies this thread wrote a note into, and where the next note goes in each.

    Write-back applies runs of events to a file, each call getting the text
    the last one returned; after a note the section's last line is that note,
    a list item, so the next note goes right after it with its line ending.
    Only a byte-identical body is found here, so the answer is the one the
    full reading gives (tests/workplans/test_progress.py checks both ways).
    """

    def __init__(self) -> None:
        self.bodies: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self.chars = 0


_APPENDED = _Appended()
_KEEP, _KEEP_CHARS = 64, 4 << 20


def _remember(body: str, offset: int, line_ending: str) -> None:
    cache = _APPENDED
    if body in cache.bodies:
        return
    cache.bodies[body] = (offset, line_ending)
    cache.chars += len(body)
    while len(cache.bodies) > _KEEP or cache.chars > _KEEP_CHARS:
        cache.chars -= len(cache.bodies.popitem(last=False)[0])


def add_progress_line(body: str, line: str, around: str = "\n", first_line: int = 1) -> str:
    """``body`` with ``line`` (one ``- ...`` progress line, no ending) appended to its Progress section.

    The section is created at the end of the body when there is none. Lines
    the body holds keep their bytes; the added lines (and a last line that
    had no ending) take their neighbourhood's line ending,
    :func:`workplans.lines.keep_line_endings`, ``around`` being the ending of
    the line before the body. ``first_line`` is the file line of the body's
    first line, for messages. Raises BrokenTarget when no place in the
    section lets the line be read as a list item.
    """
    known = _APPENDED.bodies.get(body)
    if known is not None:
        offset, line_ending = known
        result = body[:offset] + line + line_ending + body[offset:]
        _remember(result, offset + len(line) + len(line_ending), line_ending)
        return result
    lines = split_lines(body)
    at, insert = _place(body, lines, line, first_line)
    result = keep_line_endings(body, _insert(lines, at, insert), around)
    start = result.index(line, sum(map(len, lines[: max(at - 1, 0)])))  # past the lines kept as they were
    offset = start + len(line)
    line_ending = "\r\n" if result.startswith("\r\n", offset) else result[offset]
    _remember(result, offset + len(line_ending), line_ending)
    return result


def _place(body: str, lines: list[str], line: str, first_line: int) -> tuple[int, list[str]]:
    """(index of the line to insert before, lines to insert) for a note in ``body``."""
    texts = line_texts(body)
    section = _find(texts)
    if section is None:
        lead = [""] if body.strip() else []
        new = texts + lead + [PROGRESS_HEADING, "", line]
        heading = len(texts) + len(lead)
        if not _plain(new, 0, heading) and _heading_at(new, 0, heading, ("h2",)) is None:
            opened, what = _swallower(new, 0, heading)
            raise BrokenTarget(
                f"the body ends inside {what} opened on line {opened + first_line} that is never closed, "
                f"so a '{PROGRESS_HEADING}' section added after it would be part of it; close the block"
            )
        return len(lines), [*lead, PROGRESS_HEADING, "", line]
    last = max((i for i in range(section.start, section.end) if texts[i].strip(" \t")), default=None)
    at = section.start if last is None else last + 1
    tries = (
        ([line], ["", line], [line, ""], ["", line, ""]) if last is not None else (["", line], ["", line, ""])
    )
    seen = False
    for insert in tries:
        new = texts[:at] + insert + texts[at:]
        if not _starts_item(new, section.heading, at + insert.index(line)):
            continue
        seen = True
        if _keeps_end(new, section.heading, section.end + len(insert)):
            return at, insert
    if seen:
        raise BrokenTarget(
            f"the heading on line {section.end + first_line} that ends the '{_TEXT}' section is indented, "
            "so a note added before it would take it in as part of the note; remove its indentation"
        )
    opened, what = _swallower([*texts[:at], line], section.heading, at)
    raise BrokenTarget(
        f"the '{_TEXT}' section ends inside {what} opened on line {opened + first_line} that is never "
        "closed, so no note added after it can be read as one; close the block"
    )


def _keeps_end(texts: list[str], heading: int, end: int) -> bool:
    """Whether the heading that ended the section, its first line now ``texts[end]``, still does.

    A note is a list item: a line after it indented under its text, or a
    paragraph line right after it, becomes part of it. An ATX heading at
    column 0 never does.
    """
    if end >= len(texts) or (texts[end].startswith("#") and _ATX_1_OR_2.match(texts[end])):
        return True
    return any(  # read to the end: a setext heading's text may run over several lines
        t.type == "heading_open"
        and t.level == 0
        and t.tag in ("h1", "h2")
        and t.map
        and t.map[0] == end - heading
        for t in _blocks(texts[heading:])
    )


def _insert(lines: list[str], at: int, new: list[str]) -> list[str]:
    """``lines`` with ``new`` written at ``at`` with LF: as lines, since an LF after a CR line would merge."""
    head = lines[:at]
    if head and not ending(head[-1]):
        head[-1] += "\n"
    return [*head, *(text + "\n" for text in new), *lines[at:]]
