"""What went wrong in a file, said so that a person can go and fix it.

Every parser in this package reports through :class:`FileProblem` and raises
:class:`FormatError` holding all problems found in one file, so a user fixes a
broken file in one pass instead of one error per run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from workplans.errors import FormatError

__all__ = ["FileProblem", "FormatError", "toml_error_line"]


@dataclass(frozen=True, slots=True)
class FileProblem:
    """One problem in one file: repo-relative path, 1-based line when known."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


_AT_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


def toml_error_line(message: str) -> tuple[int | None, int | None, str]:
    """Split tomllib's "... (at line L, column C)" into line, column and the bare message."""
    match = _AT_LINE.search(message)
    if not match:
        return None, None, message
    bare = message[: match.start()].rstrip()
    return int(match.group(1)), int(match.group(2)), bare
