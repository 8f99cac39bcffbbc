"""Split a Markdown file into its TOML front matter and its body.

Front matter sits between two fence lines: ``+++``, optionally followed by
spaces or tabs (an editor's trailing whitespace), with any line ending
(:mod:`workplans.lines`). The opening fence is the first line of the file and
may follow a UTF-8 byte order mark; the first fence line after it closes the
front matter, so ``+++`` lines further down the body are body text. Nothing
else may come before the opening fence: the convention Hugo and other
front-matter readers share, and docs/format.md ("Front matter").

The fence lines are kept exactly as written (byte order mark, trailing
whitespace, line ending), so write-back can put them back byte for byte; the
line number where the TOML starts lets TOML errors point at the file's line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workplans.errors import UnclosedFrontMatter
from workplans.lines import BOM, split_lines, strip_ending

__all__ = ["FENCE", "FrontMatter", "is_fence", "missing_front_matter", "split_front_matter"]

FENCE = "+++"


@dataclass(frozen=True, slots=True)
class FrontMatter:
    opening: str
    """The opening fence line as written: byte order mark, trailing whitespace and line ending included."""
    toml: str
    closing: str
    """The closing fence line as written (no line ending when the file ends there)."""
    body: str
    first_line: int = 2
    """1-based file line of the first TOML line (the line after the opening fence)."""


def is_fence(line: str, *, first: bool = False) -> bool:
    """Whether one line (with or without its ending) is a fence; ``first`` allows a byte order mark."""
    text = strip_ending(line)
    if first:
        text = text.removeprefix(BOM)
    return text.rstrip(" \t") == FENCE


_OPENING = re.compile(r"\ufeff?\+\+\+[ \t]*(?:\r\n|\r|\n|\Z)")
_CLOSING = re.compile(r"^\+\+\+[ \t]*(?:\r\n|\r(?!\n)|\n|\Z)", re.MULTILINE)
"""A fence line after an LF: found in C. A fence after a lone CR (never valid TOML) takes the line walk."""


def split_front_matter(text: str) -> FrontMatter | None:
    """Return the front matter, or None when the file does not open with a ``+++`` fence.

    Raises UnclosedFrontMatter (a ValueError) when the opening fence has no closing fence.
    """
    opening = _OPENING.match(text)
    if opening is None:
        return None
    start = opening.end()
    closing = _CLOSING.search(text, start) if text[start - 1 : start] == "\n" else None
    if closing is None and "\r" in text:
        lines = split_lines(text[start:])
        index = next((i for i, line in enumerate(lines) if is_fence(line)), None)
        if index is not None:
            toml, fence = "".join(lines[:index]), lines[index]
            return FrontMatter(text[:start], toml, fence, text[start + len(toml) + len(fence) :])
    if closing is None:
        raise UnclosedFrontMatter("front matter opened with '+++' on line 1 is never closed by a '+++' line")
    return FrontMatter(
        opening=text[:start],
        toml=text[start : closing.start()],
        closing=closing.group(),
        body=text[closing.end() :],
    )


def missing_front_matter(text: str, what: str) -> tuple[int, str]:
    """(line, message) saying why ``text`` does not open with front matter; ``what`` is "a workplan"...

    For a file :func:`split_front_matter` found no front matter in: the message
    names what is there instead (an empty file, blank lines or indentation
    before the fence, YAML's ``---``), so the person knows what to change.
    """
    lines = split_lines(text.removeprefix(BOM))
    opens = f"{what} must open with TOML front matter between '+++' lines"
    first = next((i for i, line in enumerate(lines) if strip_ending(line).strip()), None)
    if first is None:
        return 1, f"the file is empty; {opens}"
    found = strip_ending(lines[first]).strip()
    if found == FENCE:
        where = "after blank lines" if first else "indented"
        return first + 1, f"{opens}; the '+++' on line {first + 1} is {where}: put it at the start of line 1"
    if found == "---":
        return first + 1, f"{opens}; '---' opens YAML front matter, which the hub does not read"
    return 1, opens
