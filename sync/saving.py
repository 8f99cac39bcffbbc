"""What a room hands to whoever writes its file on a save, and what it gets back.

The room knows who edited and what the text is; it does not know git, TOML
schemas or the cache. The hub passes a :data:`Saver` that validates, writes,
commits and re-indexes, so ``sync`` stays free of ``statehub`` (ADR-002).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Person", "SaveOutcome", "SaveRequest", "Saver"]


@dataclass(frozen=True, slots=True)
class Person:
    """Somebody in a room: the name they gave (``?user=`` or their awareness ``user.name``)."""

    name: str
    email: str | None = None

    @property
    def address(self) -> str:
        """Their email, or a stable made-up one (git needs one for authors and trailers)."""
        if self.email:
            return self.email
        local = "".join(c if c.isalnum() or c in "._-" else "-" for c in self.name.lower()).strip("-.")
        return f"{local or 'someone'}@users.statehub.invalid"

    def signature(self) -> str:
        return f"{self.name} <{self.address}>"


@dataclass(frozen=True, slots=True)
class SaveRequest:
    doc: str
    path: Path
    text: str
    base_text: str
    """What the room last read from or wrote to the file: the write is refused if the file moved since."""
    saver: Person
    coauthors: list[Person]


@dataclass(frozen=True, slots=True)
class SaveOutcome:
    ok: bool
    message: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    """``{"line", "column", "message"}`` for each problem, line and column 1-based or ``None``."""
    commit: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "errors": self.errors, "commit": self.commit}


Saver = Callable[[SaveRequest], Awaitable[SaveOutcome]]
