"""Split a Markdown file into its TOML front matter and its body.

Front matter sits between two lines that hold exactly ``+++``. We keep the
line number where the TOML starts so TOML errors point at the real file line.
"""

from __future__ import annotations

from dataclasses import dataclass

from workplans.errors import UnclosedFrontMatter

__all__ = ["FENCE", "FrontMatter", "split_front_matter"]

FENCE = "+++"


@dataclass(frozen=True, slots=True)
class FrontMatter:
    toml: str
    body: str
    first_line: int
    """1-based file line of the first TOML line (the line after the opening fence)."""


def split_front_matter(text: str) -> FrontMatter | None:
    """Return the front matter, or None when the file does not open with a ``+++`` fence.

    Raises ValueError when the opening fence has no closing fence.
    """
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != FENCE:
        return None
    for index in range(1, len(lines)):
        if lines[index].rstrip("\r\n") == FENCE:
            return FrontMatter(
                toml="".join(lines[1:index]),
                body="".join(lines[index + 1 :]),
                first_line=2,
            )
    raise UnclosedFrontMatter("front matter opened with '+++' on line 1 is never closed by a '+++' line")
