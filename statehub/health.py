"""The hub's health: up, which profile, how many repos, the cache, the write buffer, the relay.

``status`` is ``"ok"``, or ``"degraded"`` while anything stops writes: write-back
fails in some repo, a repo's git state stops writes there (an operation in
progress, a detached HEAD, another branch, a busy index lock, ...:
``statehub.gitstate.stops``, read from files only, every time), events wait for a
repo no longer registered, or the disk under the write buffer is full (events are
answered 507 then). ``problems`` then holds
one sentence per cause, ``writeback`` the details of failing write-backs (reason,
attempts, seconds failing, seconds to the next retry) and ``writes_stopped`` each
repo's git problems with their remedies. What ``GET /state/health`` answers;
``statehub doctor`` and ``GET /state/diagnostics`` say more.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

import msgspec
from msgspec import UnsetType
from sqlalchemy import func, select

from statehub.answers import Problem
from statehub.cache import SCHEMA_VERSION
from statehub.cache.schema import REPOS
from statehub.errors import NotAGitRepo, SetupError
from statehub.events.relaying import relay_status
from statehub.gitrepo import git_dirs
from statehub.gitstate import stops
from sync.buffer import BufferCounts
from sync.relay_queue import RelayCounts, RelayStatus

if TYPE_CHECKING:
    from pathlib import Path

    from statehub.events import EventDesk
    from statehub.hub import Hub
    from statehub.hubfile import RegisteredRepo

__all__ = [
    "CacheInfo",
    "Health",
    "RelayHealth",
    "UnpushedCommits",
    "WritebackFailure",
    "as_relay_health",
    "health",
    "not_a_repo",
    "writes_stopped",
]


class WritebackFailure(msgspec.Struct, frozen=True):
    """A repo whose write-back fails (``statehub.events.writeback.Failing``)."""

    reason: str
    attempts: int
    failing_for_s: float
    """Seconds since the first failure, to 0.1 s."""
    retry_in_s: float
    """Seconds to the next attempt, to 0.1 s."""


class UnpushedCommits(msgspec.Struct, frozen=True):
    """A repo whose commits the forge has not taken yet (forge sync: ``statehub.events.forge.Unpushed``)."""

    commits: int
    reason: str
    unpushed_for_s: float
    """Seconds since the forge first did not take them, to 0.1 s."""
    retry_in_s: float
    """Seconds to the next push, to 0.1 s."""


class CacheInfo(msgspec.Struct, frozen=True):
    backend: str
    """``sqlite`` or ``postgresql``."""
    schema_version: int


class RelayHealth(msgspec.Struct, frozen=True):
    """The relay to the upstream hub (``sync.relay``); reachable None until it has tried."""

    upstream: str | None
    reachable: bool | None
    paused: str | None
    """Why relaying is paused (the upstream refused the token), else None."""
    last_error: str | None
    pending: int
    """Queued plus sent, not yet confirmed."""
    parked: int
    oldest_pending_age_s: float | None
    counts: RelayCounts


class Health(msgspec.Struct, frozen=True):
    status: Literal["ok", "degraded"]
    problems: list[str]
    writeback: dict[str, WritebackFailure]
    """By repo slug, the repos whose write-back fails."""
    writes_stopped: dict[str, list[Problem]]
    """By repo slug, what in each repo's git state stops writes, with the remedy."""
    profile: str
    """``dev`` or ``fleet``."""
    repos: int
    """Registered repos."""
    cache: CacheInfo
    buffer: BufferCounts
    relay: RelayHealth | None
    """None without an upstream."""
    unpushed: dict[str, UnpushedCommits] = msgspec.field(default_factory=dict)
    """By repo slug, with forge sync on, the repos whose commits the forge has not taken yet
    (events applied and committed here; pushed again with backoff, canon/ADR-053). Writes go on,
    so they do not make the status "degraded"; diagnostics lists them as ``unpushed``."""


def health(desk: EventDesk) -> Health:
    """The hub's health now (reads the cache once and the buffer's counts)."""
    hub = desk.hub
    with hub.engine.connect() as conn:
        repos = int(conn.execute(select(func.count()).select_from(REPOS)).scalar_one())
    now = time.monotonic()
    failing = sorted(dict(desk.applier.failing).items())
    problems = [f"{slug}: {f.reason}" for slug, f in failing]
    forge = desk.applier.forge
    unpushed = sorted(dict(forge.unpushed).items()) if forge is not None else []
    try:
        listed = hub.repos()
    except SetupError as error:  # hub.toml half-saved or mistyped: no event can be taken or applied
        listed = []
        problems.append(
            f"{error.message}; no event is accepted or applied until it reads: fix {hub.settings.hub_file}"
        )
    stopped = writes_stopped(hub, listed)
    problems += [f"{slug}: {problem.sentence()}" for slug, found in stopped.items() for problem in found]
    registered = {repo.slug for repo in listed}
    if hub.hub_file.broken is not None:
        problems.append(
            f"{hub.hub_file.broken}; serving the repos it listed before, no repo can be added or "
            f"removed: fix {hub.settings.hub_file}"
        )
    problems += [
        f"{slug}: events wait for this repo, which is not registered; register it again "
        "(statehub repos add PATH) and they apply"
        for slug in desk.buffer.pending_repos()
        if slug not in registered
    ]
    stores = [desk.buffer, *([desk.relay_queue] if desk.relay_queue is not None else [])]
    problems += list(dict.fromkeys(p for store in stores if (p := store.space_problem()) is not None))
    return Health(
        status="degraded" if problems else "ok",
        problems=problems,
        writeback={slug: msgspec.convert(f.as_dict(now), WritebackFailure) for slug, f in failing},
        writes_stopped=stopped,
        profile=hub.settings.profile,
        repos=repos,
        cache=CacheInfo(backend=hub.engine.dialect.name, schema_version=SCHEMA_VERSION),
        buffer=desk.buffer.counts(),
        relay=as_relay_health(relay_status(desk)),
        unpushed={slug: msgspec.convert(left.as_dict(now), UnpushedCommits) for slug, left in unpushed},
    )


def writes_stopped(hub: Hub, repos: list[RegisteredRepo] | None = None) -> dict[str, list[Problem]]:
    """By slug, the registered repos (``repos``, default ``hub.repos()``) whose git state stops
    writes now, and what stops them (``statehub.gitstate.stops``; a path that is no work tree any
    more stops them too). Reads files under each ``.git`` only, no git process; one cache query for
    the tracked branches."""
    with hub.engine.connect() as conn:
        tracked = {
            row.slug: row.default_branch or None
            for row in conn.execute(select(REPOS.c.slug, REPOS.c.default_branch))
        }
    found: dict[str, list[Problem]] = {}
    for repo in hub.repos() if repos is None else repos:
        try:
            problems = stops(git_dirs(repo.path), tracked.get(repo.slug))
        except NotAGitRepo as error:
            problems = [not_a_repo(repo.slug, repo.path, error)]
        if problems:
            found[repo.slug] = problems
    return found


def not_a_repo(slug: str, path: Path, error: NotAGitRepo) -> Problem:
    """A registered repo whose path is no (usable) git work tree any more, as a problem."""
    return Problem(
        "not-a-repo",
        f"repo {slug} cannot be opened: {error.message}; its events wait",
        f"put the work tree back at {path} (or fix what the message names), or register it where it "
        f"is now (statehub repos add PATH) and remove this one (statehub repos remove {slug})",
        True,
    )


def as_relay_health(status: RelayStatus | None) -> RelayHealth | None:
    """The relay as health shows it (None without an upstream)."""
    if status is None:
        return None
    return RelayHealth(
        upstream=status.upstream,
        reachable=status.reachable,
        paused=status.paused,
        last_error=None if isinstance(status.last_error, UnsetType) else status.last_error,
        pending=status.pending,
        parked=status.parked,
        oldest_pending_age_s=status.oldest_pending_age_s,
        counts=status.counts,
    )
