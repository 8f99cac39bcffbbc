"""Forge sync: replicas on different hosts keep their own clones and meet at the forge (canon/ADR-053).

With ``STATEHUB_FORGE_SYNC`` on (:attr:`statehub.settings.Settings.syncs_with_forge`),
the write-back of a repo whose branch has a remote (the sweep's choice,
:func:`statehub.sweep.remote.upstream`: its upstream, else ``origin`` and the same
branch name) talks to that remote around every pass. Nothing here writes a file
or moves a branch on its own: it uses the sweep's fetch, integrate and push
(:mod:`statehub.sweep.remote`: fast-forward or rebase, never force, never reset)
and the write-back's own commit path.

1. **Before applying** (:meth:`ForgeSync.bring_in`): fetch, then integrate the
   forge's branch: fast-forward, or rebase the hub's unpushed commits onto it.
   When it cannot (a person's uncommitted change in the way, a conflicting
   rebase, a shallow clone, no shared history) nothing is changed and the
   events wait with the sweep's sentence; when the forge does not answer
   (``STATEHUB_FORGE_TIMEOUT`` seconds at most) they wait with that. Either way
   the repo is retried with the write-back's backoff (``Applier.failing``).
   Pending events whose ``Statehub-Event`` trailer the integrated commits
   already carry (another replica, or this one before a kill, pushed them) are
   marked applied with that commit, never applied a second time.
2. **Push first** (:meth:`ForgeSync.push_first`): the pass's commits are built
   as objects on the local HEAD (``gitcommit.build_chain``) and pushed to the
   forge *before* the local branch moves. The forge takes them only as a
   fast-forward, so it is the compare and swap between replicas. When it says
   no because its branch moved (another replica pushed), nothing local has
   changed: the pass starts over, which integrates the new tip and applies the
   events again to the new text (``workplans.apply_event``), never a textual
   merge. On the last attempt of a pass, or when the forge refuses for another
   reason (a hook, an unreachable forge), the commits are published locally
   anyway: the events are applied (committed), and left unpushed.
3. **After the pass** (:meth:`ForgeSync.push_rest`): commits still unpushed (a
   pass that gave up pushing, an earlier refusal, a kill) are pushed with the
   sweep's push (fetch, rebase, bounded retries). What stays unpushed is kept in
   :attr:`Forge.unpushed` (``/state/health``'s ``unpushed``, the diagnostics
   problem ``unpushed``, metric ``statehub_forge_unpushed_commits``; writes go
   on, so health stays "ok") and retried with backoff even when no event waits
   (the server's worker asks :meth:`Forge.due`).

Not here yet: commits published locally but never pushed (a long refusal) that
later conflict with other replicas' commits in the same lines are rebased by
git, and a conflict there waits for a person (canon/ADR-053, "Not done").

Exactly once across replicas: an event's commit reaches the forge only as a
fast-forward of the tip the pass applied it to, or by a rebase that keeps its
message (and so its trailer); and a pass never applies an event whose trailer
the integrated history already has.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from statehub.events import gitwork
from statehub.gitcommit import read_head
from statehub.gitrepo import HubRepo
from statehub.sweep.remote import fetch, integrate, push, push_commit, remote_tip, upstream

__all__ = ["FORGE_BACKOFF", "PUSH_ATTEMPTS", "BroughtIn", "Forge", "ForgeSync", "Unpushed"]

log = logging.getLogger(__name__)

PUSH_ATTEMPTS = 3
"""Pushes of leftover commits after a rejection (fetch, rebase, try again), as the sweep's."""

FORGE_BACKOFF = (5.0, 300.0)
"""Seconds before the first retry of a repo left unpushed with no event waiting, and the most
between two retries."""


@dataclass(slots=True)
class Unpushed:
    """Commits of a repo the forge has not taken: how many, why, since when, when tried again."""

    commits: int
    reason: str
    since: float
    attempts: int
    retry_at: float

    def as_dict(self, now: float) -> dict[str, object]:
        return {
            "commits": self.commits,
            "reason": self.reason,
            "unpushed_for_s": round(now - self.since, 1),
            "retry_in_s": round(max(0.0, self.retry_at - now), 1),
        }


class Forge:
    """The forge side of one applier: which repos are left unpushed. Built when forge sync is on."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        """Seconds a fetch or push may take (``STATEHUB_FORGE_TIMEOUT``)."""
        self.unpushed: dict[str, Unpushed] = {}
        """Repos whose local branch holds commits the forge has not taken."""

    def open(self, slug: str, repo: HubRepo) -> ForgeSync | None:
        """The forge work of one pass in ``slug``; None when its branch has no remote."""
        target = upstream(repo)
        if target is None:
            self.unpushed.pop(slug, None)
            return None
        return ForgeSync(self, slug, repo, target[0], target[1])

    def due(self) -> list[str]:
        """Repos left unpushed whose retry time has come."""
        now = time.monotonic()
        return [slug for slug, left in self.unpushed.items() if now >= left.retry_at]

    def _left(self, slug: str, commits: int, reason: str) -> None:
        now = time.monotonic()
        before = self.unpushed.get(slug)
        attempts = before.attempts + 1 if before else 1
        delay = min(FORGE_BACKOFF[1], FORGE_BACKOFF[0] * 2 ** (attempts - 1))
        self.unpushed[slug] = Unpushed(
            commits, reason, before.since if before else now, attempts, now + delay
        )


@dataclass(frozen=True, slots=True)
class BroughtIn:
    """What bringing in the forge's branch did: why the events must wait (None: they may be
    applied), commits pulled, and the event keys those commits carry in ``Statehub-Event``
    trailers, with their commit."""

    problem: str | None = None
    pulled: int = 0
    carried: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class ForgeSync:
    """The forge work of one write-back pass in one repo (see the module docstring)."""

    forge: Forge
    slug: str
    repo: HubRepo
    remote: str
    branch: str
    refused: str | None = None
    """Why the forge did not take this pass's commits (they were published locally), if it did not."""

    @property
    def where(self) -> str:
        return f"{self.remote}/{self.branch}"

    def bring_in(self) -> BroughtIn:
        """Fetch and integrate the forge's branch (step 1 of the module docstring)."""
        problem = fetch(self.repo, self.remote, self.forge.timeout)
        if problem is not None:
            return BroughtIn(f"the forge could not be reached, so the events wait: {problem}")
        before = read_head(self.repo).sha
        merged = integrate(self.repo, self.remote, self.branch)
        if merged.problem is not None:
            return BroughtIn(
                f"the hub could not bring in {self.where} before applying, so the events wait: "
                + merged.problem
            )
        if not merged.pulled or before is None:
            return BroughtIn()
        return BroughtIn(None, merged.pulled, gitwork.trailer_keys(self.repo, before))

    def push_first(self, tip: str) -> bool:
        """Push ``tip`` (commits built on the local HEAD, on no branch yet) to the forge (step 2).

        True when it went through, or when the forge said no for a reason other than a
        moved branch (kept in :attr:`refused`): the commits are to be published locally.
        False when the forge's branch moved since the last fetch: the pass starts over.
        """
        before = remote_tip(self.repo, self.remote, self.branch)
        said = push_commit(self.repo, self.remote, self.branch, tip, self.forge.timeout)
        if said is None:
            return True
        problem = fetch(self.repo, self.remote, self.forge.timeout)
        if problem is None and remote_tip(self.repo, self.remote, self.branch) != before:
            return False
        self.refused = f"push to {self.remote} refused: {said}" + (f"; then {problem}" if problem else "")
        return True

    def push_rest(self) -> bool:
        """Push what the local branch holds beyond the forge's (the sweep's push: rebase and
        retry, never force), and keep the repo's unpushed state (step 3). Whether the local
        branch moved (a rebase onto the forge's tip), so the repo needs re-indexing."""
        head = read_head(self.repo).sha
        ahead = self._ahead()
        refused = self.refused
        if ahead and refused is None:
            outcome = push(self.repo, self.remote, self.branch, PUSH_ATTEMPTS, self.forge.timeout)
            refused = None if outcome.pushed else outcome.reason
            ahead = self._ahead()
        if not ahead:
            self.forge.unpushed.pop(self.slug, None)
        else:
            reason = refused or f"{ahead} commits are not on {self.where} yet"
            log.warning("%s: %d commits left unpushed: %s", self.slug, ahead, reason)
            self.forge._left(self.slug, ahead, reason)
        return read_head(self.repo).sha != head

    def _ahead(self) -> int:
        theirs = remote_tip(self.repo, self.remote, self.branch)
        if read_head(self.repo).sha is None:
            return 0
        return int(self.repo.git.rev_list("--count", f"{theirs}..HEAD" if theirs else "HEAD"))
