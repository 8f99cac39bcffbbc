"""What a room asks of the hub: its file's text (a loader) and a save (a saver), and who is asking.

The room knows who edited and what the text is; it does not know git, TOML
schemas, repos or the cache, and it never opens a file itself. The hub passes
a :class:`FileLoader` that reads the manifest inside its repo (refusing
symlinks, paths outside the repo, anything but a regular UTF-8 file and
files over the size limit) and a :data:`Saver` that validates, writes,
commits and re-indexes, so ``sync`` stays free of ``statehub`` (ADR-002,
ADR-022).

Errors (one tree for the room side)::

    RoomError              status 400 unless said otherwise; ``message`` says what to do
    ├── RoomFileError      the room's file may not be read (symlink, outside, not UTF-8, too large)
    └── RoomInputError     a client sent what a room does not take (too large, a bad name)
"""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sync.errors import RoomError, RoomFileError, RoomInputError

__all__ = [
    "NAME_LIMIT",
    "FileLoader",
    "LoadedFile",
    "Person",
    "RoomError",
    "RoomFileError",
    "RoomInputError",
    "SaveOutcome",
    "SaveRequest",
    "Saver",
    "Stamp",
    "identity_problem",
]

NAME_LIMIT = 200
"""Characters in a person's name or email (ADR-022: every input is bounded)."""


def identity_problem(what: str, value: str) -> str | None:
    """Why ``value`` cannot be a git name or email (``what`` names it); None when it can (ADR-022).

    One line of at most :data:`NAME_LIMIT` characters, not blank, with no
    ``<``, ``>`` or control characters: anything else could end the author
    field early or append lines (``Co-authored-by:``, ``Statehub-Event:``) to
    a commit message.
    """
    if not value.strip():
        return f"the {what} is empty"
    if len(value) > NAME_LIMIT:
        return f"the {what} is {len(value)} characters long; at most {NAME_LIMIT} are allowed"
    if "<" in value or ">" in value:
        return f"the {what} {value[:60]!r} contains '<' or '>'; give the {what} alone, one line of text"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
        return (
            f"the {what} {value[:60]!r} contains a line break or a control character; give one line of text"
        )
    return None


@dataclass(frozen=True, slots=True)
class Person:
    """Somebody in a room: a name and maybe an email, both checked by :func:`identity_problem`.

    Raises RoomInputError when either cannot be a git identity.
    """

    name: str
    email: str | None = None

    def __post_init__(self) -> None:
        problem = identity_problem("name", self.name)
        if problem is None and self.email is not None:
            problem = identity_problem("email", self.email)
        if problem is not None:
            raise RoomInputError(problem)

    @property
    def address(self) -> str:
        """Their email, or a stable made-up one (git needs one for authors and trailers)."""
        if self.email:
            return self.email
        local = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in self.name.lower())
        return f"{local.strip('-.') or 'someone'}@users.statehub.invalid"

    def signature(self) -> str:
        return f"{self.name} <{self.address}>"


Stamp = tuple[int, ...]
"""What a file looks like without reading it (mtime, size, inode, ...): a change means read it again."""


@dataclass(frozen=True, slots=True)
class LoadedFile:
    """A room's file as the loader read it: ``text`` None when there is no file yet."""

    text: str | None
    stamp: Stamp | None


class FileLoader(Protocol):
    """The hub's side of reading a room's file; both may block, so the room calls them in a thread."""

    def __call__(self, doc: str) -> LoadedFile:
        """The file's text; RoomFileError (with the reason) when it may not be read."""
        ...

    def stamp(self, doc: str) -> Stamp | None:
        """A cheap look at the file (no content read); None when it is missing."""
        ...


@dataclass(frozen=True, slots=True)
class SaveRequest:
    doc: str
    text: str
    base_text: str
    """What the room last read from or wrote to the file: the write is refused if the file moved since."""
    saver: Person | None
    """Who saves; None lets the hub decide (on an open hub, the repo's git identity)."""
    coauthors: list[Person]


@dataclass(frozen=True, slots=True)
class SaveOutcome:
    ok: bool
    message: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    """``{"line", "column", "message"}`` for each problem, line and column 1-based or ``None``."""
    commit: str | None = None
    status: int | None = None
    """The HTTP status of a refusal when it is not the default (422 with errors, else 409)."""
    by: str | None = None
    """The author the save was (or would have been) committed as."""

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "errors": self.errors, "commit": self.commit}


Saver = Callable[[SaveRequest], Awaitable[SaveOutcome]]
