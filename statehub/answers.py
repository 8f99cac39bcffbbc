"""Answers shared by several resources: ``Page[T]``, ``{"items": [T, ...], "total": N}``, ``Removed``
and ``Problem``.

The hub's answers are msgspec Structs (ADR-025), built by the library where the
data is read (``statehub.cache.queries``, ``statehub.cache.fleet_queries``,
``sync.buffer``, ...), returned as they are by the HTTP controllers (Litestar
encodes Structs natively) and rendered by the CLI (``statehub.cli._output``).
"""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

__all__ = ["Page", "Problem", "Removed"]

T = TypeVar("T")


class Page(msgspec.Struct, Generic[T], frozen=True):
    """One page of a list: ``items`` in the list's order, ``total`` matching items over all pages.

    ``total`` counts every item the filters match, so a client pages with
    ``limit`` / ``offset`` until it has ``total``; a list that is never paged
    (repos, rooms) has ``total == len(items)``.
    """

    items: list[T]
    total: int


class Removed(msgspec.Struct, frozen=True):
    """``DELETE /repos/{slug}``: the slug that is no longer registered."""

    removed: str


class Problem(msgspec.Struct, frozen=True):
    """Something a person has to act on, with the one-line remedy (``statehub doctor``,
    ``GET /state/diagnostics``, ``GET /state/health``).

    ``kind`` names the problem (``detached-head``, ``operation``, ``index-lock``, ... listed in
    docs/architecture.md, "Diagnostics"); ``message`` says what is wrong and what it stops;
    ``remedy`` is what to do, commands included; ``stops_writes`` is true when events or saves wait
    until it is fixed (health is ``degraded`` meanwhile, ``statehub doctor`` exits 11).
    """

    kind: str
    message: str
    remedy: str
    stops_writes: bool

    def sentence(self) -> str:
        """``message; remedy``: the reason a waiting event carries."""
        return f"{self.message}; {self.remedy}"
