"""What a set of changed files can affect beyond themselves: the scope of a derived recompute.

Kept apart from ``statehub.cache.derived`` (which recomputes in SQL) so reading files
(``statehub.cache.reading``) loads no SQLAlchemy (canon/ADR-043).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Scope"]


@dataclass(slots=True)
class Scope:
    """What a set of changed files can affect: ids and refs they held before and after."""

    workplan_ids: set[str] = field(default_factory=set)
    refs: set[str] = field(default_factory=set)
    """Task refs that vanished or changed (refs of current tasks of ``workplan_ids`` are added)."""
    canon: set[tuple[str, str]] = field(default_factory=set)
    """(repo, canon id) pairs."""

    def __bool__(self) -> bool:
        return bool(self.workplan_ids or self.refs or self.canon)

    def merge(self, other: Scope) -> None:
        self.workplan_ids |= other.workplan_ids
        self.refs |= other.refs
        self.canon |= other.canon
