"""Every error the ``workplans`` package raises, in one tree.

    WorkplansError            the root: catch this to catch anything the file formats refuse
    ├── FormatError           a file does not follow the files contract; ``problems`` lists each
    ├── UnclosedFrontMatter   ``+++`` front matter never closed (parsers report it as a FormatError)
    ├── InvalidEvent          an event does not follow the format; ``problems`` says what, per field
    ├── FleetChangeError      a fleet change that cannot be read or cannot apply to this fleet file
    ├── DuplicateEventKind    a table of event kinds names one kind twice: a mistake in the code
    └── ApplyError            an event could not be applied to a file's text
        ├── NoLongerApplies   the file moved on (task removed, id taken): the event is rejected
        └── BrokenTarget      the file cannot be read as its format says: the event waits for a fix

``InvalidEvent``, ``FleetChangeError``, ``UnclosedFrontMatter`` and
``DuplicateEventKind`` are also ``ValueError``s, as the first three always
were. ``details`` is structured data for a client (None when the message says
it all); the hub maps this tree to its own in ``statehub.errors``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workplans.problems import FileProblem

__all__ = [
    "ApplyError",
    "BrokenTarget",
    "DuplicateEventKind",
    "FleetChangeError",
    "FormatError",
    "InvalidEvent",
    "NoLongerApplies",
    "UnclosedFrontMatter",
    "WorkplansError",
]


class WorkplansError(Exception):
    """The root of the tree; the message tells the person what to fix."""

    details: dict[str, Any] | None = None


class FormatError(WorkplansError):
    """A file does not follow the files contract (docs/format.md): every problem found in one file."""

    def __init__(self, problems: list[FileProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class UnclosedFrontMatter(WorkplansError, ValueError):
    """The file opens with ``+++`` on line 1 and no ``+++`` line closes the front matter."""


class DuplicateEventKind(WorkplansError, ValueError):
    """An :class:`~workplans.events.EventKinds` table was given one kind twice."""


class InvalidEvent(WorkplansError, ValueError):
    """An event that does not follow docs/format.md; ``problems`` maps each field to what is wrong."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{name}: {message}" for name, message in problems.items()))


class FleetChangeError(WorkplansError, ValueError):
    """A fleet change that cannot be read or cannot apply to this file; the message says why."""


class ApplyError(WorkplansError):
    """An event could not be applied to a file; the message says why."""


class NoLongerApplies(ApplyError):
    """The file moved on (task removed, id taken by another task): the event is rejected."""


class BrokenTarget(ApplyError):
    """The file cannot be read as its format says; the event waits until someone fixes it."""
