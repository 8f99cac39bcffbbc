"""Answers shared by several resources: ``Page[T]``, ``{"items": [T, ...], "total": N}``, ``Removed``,
``Problem``, and how fresh an answer is: ``Freshness`` (canon/ADR-033).

The hub's answers are msgspec Structs (ADR-025), built by the library where the
data is read (``statehub.cache.queries``, ``statehub.cache.fleet_queries``,
``sync.buffer``, ...), returned as they are by the HTTP controllers (Litestar
encodes Structs natively) and rendered by the CLI (``statehub.cli._output``).
"""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

__all__ = ["Freshness", "LastIndex", "Page", "Problem", "Removed", "RepoFreshness", "with_freshness"]

T = TypeVar("T")


class LastIndex(msgspec.Struct, frozen=True):
    """The last time a repo's files were indexed (UTC, to the second) and HEAD's commit then (None:
    an unborn branch, or no git work tree there). Written by every index of the repo, a refresh
    that found nothing changed too (``statehub.cache.indexed``)."""

    at: str
    commit: str | None


class RepoFreshness(msgspec.Struct, frozen=True):
    """How current the cache is for one repo an answer draws on.

    ``indexed_at`` and ``commit``: when the hub last compared the repo's files with
    the cache (re-reading those that changed) and HEAD's commit then; None when it
    never has. ``changed_since``: a stat walk of the repo's indexable files now
    finds one added, removed, or with another size or modification time than the
    cache recorded, so the answer may not show it yet (None: the work tree cannot
    be read). ``statehub.cache.freshness`` computes it.
    """

    repo: str
    indexed_at: str | None
    commit: str | None
    changed_since: bool | None


class Freshness(msgspec.Struct, frozen=True):
    """How fresh an answer is: carried by the read answers of the HTTP API (``Page.freshness``,
    the details' ``freshness``) and by every ``--json`` envelope of the CLI that reads the cache.

    ``checked_at``: when this was checked (UTC, to the second). ``watching``: a file
    watcher keeps the cache in step with the files (a server on this hub home runs
    one); false means changes wait for the next read command, refresh or sweep.
    ``stale``: some repo the answer draws on has changes not yet indexed (or was
    never indexed, or cannot be read). ``repos``: each repo the answer draws on, by slug.
    """

    checked_at: str
    watching: bool
    stale: bool
    repos: list[RepoFreshness]


class Page(msgspec.Struct, Generic[T], frozen=True, omit_defaults=True):
    """One page of a list: ``items`` in the list's order, ``total`` matching items over all pages.

    ``total`` counts every item the filters match, so a client pages with
    ``limit`` / ``offset`` until it has ``total``; a list that is never paged
    (repos, rooms) has ``total == len(items)``.
    """

    items: list[T]
    total: int
    freshness: Freshness | None = None
    """How fresh the cache was for the repos the list draws on (the lists read from the cache
    over HTTP); left out of the JSON when None (lists that do not come from the cache, and
    the CLI, whose ``--json`` envelope carries it instead)."""


def with_freshness(page: Page[T], freshness: Freshness) -> Page[T]:
    """``page`` carrying ``freshness`` (the HTTP list answers read from the cache)."""
    return Page(page.items, page.total, freshness)


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
