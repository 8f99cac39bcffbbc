"""Forge sync: replicas on different hosts keep their own clones and meet at the forge (canon/ADR-053).

With ``STATEHUB_FORGE_SYNC`` on (:attr:`statehub.settings.Settings.syncs_with_forge`),
the write-back of a repo whose branch has a remote (the sweep's choice,
:func:`statehub.sweep.remote.upstream`: its upstream, else ``origin`` and the same
branch name) talks to that remote around every pass. Nothing here writes a file
or moves a branch on its own: it uses the sweep's fetch, integrate and push
(:mod:`statehub.sweep.remote`: fast-forward or rebase, never force, never reset)
and the write-back's own commit path.

1. **Before applying** (:meth:`ForgeSync.bring_in`): fetch, then integrate the
   forge's branch: fast-forward, or rebase the hub's unpushed commits onto it
   (or apply their events again, below).
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

When the rebase of step 1 conflicts and the local branch holds beyond the
forge's only the hub's own event commits (published while the forge refused,
say), :func:`replay_leftovers` applies their events again to the forge's text
instead, as step 2 does for a pass's commits; a person's commit is never
rewritten, and then the sweep's refusal stands.

Exactly once across replicas: an event's commit reaches the forge only as a
fast-forward of the tip the pass applied it to, or by a rebase that keeps its
message (and so its trailer); and a pass never applies an event whose trailer
the integrated history already has.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import git

from statehub.atomic import FileChanged
from statehub.events import gitwork
from statehub.gitcommit import (
    HUB,
    Blob,
    Chain,
    FileWrite,
    Head,
    HeadMoved,
    IndexBusy,
    NewCommit,
    WritesStopped,
    blob_bytes,
    build_chain,
    publish,
    read_head,
)
from statehub.gitrepo import HubRepo
from statehub.repofiles import RepoPathError, TooManyTasks
from statehub.sweep.remote import fetch, integrate, push, push_commit, remote_tip, upstream
from sync.buffer import Writeback
from sync.saving import Person
from workplans import BrokenTarget, Event, NoLongerApplies, apply_event

if TYPE_CHECKING:
    from pathlib import Path

    from statehub.events.writeback import Applier

__all__ = [
    "FORGE_BACKOFF",
    "PUSH_ATTEMPTS",
    "BroughtIn",
    "Forge",
    "ForgeSync",
    "Unpushed",
    "replay_leftovers",
]

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
    conflicts: list[str] = field(default_factory=list)
    """The files a rebase (or uncommitted changes) stopped the integration on."""


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
                + merged.problem,
                conflicts=merged.conflicts,
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


_FILE_MODES = ("100644", "100755")


def replay_leftovers(
    applier: Applier, slug: str, root: Path, repo: HubRepo, sync: ForgeSync, tracked: str | None
) -> bool:
    """Bring the hub's own unpushed commits onto the forge's tip by applying their events again.

    For when integration failed on a rebase conflict (``BroughtIn.conflicts``) and every
    commit the local branch holds beyond the forge's is one of the hub's event commits
    (committer :data:`statehub.gitcommit.HUB`, ``Statehub-Event`` trailers, no merge),
    with each event in the write buffer. Their events (those the forge's history does not
    carry already) are applied to the forge's text (``workplans.apply_event``), committed
    on the forge's tip (``gitcommit.build_chain``, authored by each actor as before),
    pushed (fast-forward only), and then the local branch moves from its commits to the
    new tip by the one commit path (``gitcommit.publish``: each file replaced only if it
    holds exactly the bytes of the local commit, the index updated where it held them,
    the branch moved by compare and swap), recorded as a write-back so a kill is
    resolved like any other (``Applier.recover``).

    True when the local branch now is the forge's tip; False when any condition does not
    hold or any step says no (the work tree is not clean, an event no longer applies to
    the forge's text, a file the switch would delete, the forge refused or moved, a
    person's change landed): nothing local was changed, and the integration's refusal
    stands. The replayed events keep the commit the buffer recorded for them (the local
    commit, now replaced): the buffer changes only pending events.
    """
    from statehub.events.writeback import RepoApplied, _commits  # (writeback imports this module)

    theirs = remote_tip(repo, sync.remote, sync.branch)
    local = read_head(repo)
    if theirs is None or local.sha is None or local.ref is None:
        return False
    try:
        if repo.git.status("--porcelain", "--untracked-files=no", "--ignore-submodules=all"):
            return False
        base = repo.git.merge_base(local.sha, theirs).strip()
        if repo.git.rev_list("--merges", f"{theirs}..{local.sha}").strip():
            return False
        listed = repo.git.log("--reverse", "--format=%H%x00%ce%x00", f"{theirs}..{local.sha}")
    except git.GitCommandError:
        return False
    mine = gitwork.trailer_keys(repo, theirs, local.sha)
    fields = [part.strip() for part in listed.split("\0")]
    commits = fields[0:-1:2]
    if not commits or any(email != HUB.email for email in fields[1::2]):
        return False
    if any(sha not in mine.values() for sha in commits):
        return False  # a hub commit with no event trailer (a save): not the hub's own events
    on_forge = gitwork.trailer_keys(repo, base, theirs)
    order = {sha: at for at, sha in enumerate(commits)}
    keys = sorted((key for key in mine if key not in on_forge), key=lambda key: order[mine[key]])
    records = [applier.buffer.get(key) for key in keys]
    if any(record is None for record in records):
        return False
    forge_head = Head(local.ref, theirs)
    scratch = RepoApplied(slug)
    targets, blobs = applier._targets(
        slug, root, repo, forge_head, [r for r in records if r is not None], scratch
    )
    if scratch.refused or len(targets) != len(keys):
        return False
    contents = blob_bytes(repo, [blob.sha for blob in blobs.values()])
    text: dict[str, str] = {}
    steps: list[tuple[Event, str, str | None]] = []
    try:
        for event, path in targets:
            if path not in text:
                text[path] = applier._text(path, contents[blobs[path].sha])
            after = apply_event(text[path], event, applier.hub.event_kinds)
            applier._check_growth(path, text[path], after)
            steps.append((event, path, after if after != text[path] else None))
            text[path] = after
    except (KeyError, UnicodeDecodeError, TooManyTasks, NoLongerApplies, BrokenTarget):
        return False
    made, _ = _commits(steps)
    made += _kept_trailers([event for event, _, after in steps if after is None])
    final = {path for _, path, after in steps if after is not None}
    target = build_chain(repo, forge_head, made, {p: blobs[p] for p in final}).tip if made else theirs
    switch = _switch(repo, local, target)
    if switch is None:
        return False
    here = gitwork.checkout_of(repo, mint=True)  # before anything leaves: it may say why it cannot
    applier.check(slug)  # nothing leaves a replica that lost the repo's lock (canon/ADR-054)
    if (
        target != theirs
        and push_commit(repo, sync.remote, sync.branch, target, sync.forge.timeout) is not None
    ):
        fetch(repo, sync.remote, sync.forge.timeout)
        return False
    chain, writes = switch
    record = applier.buffer.begin_writeback(
        Writeback(
            slug,
            local.sha,
            keys,
            [
                {"path": p, "before": (chain.before[p] or NO_BLOB).sha, "after": chain.after[p].sha}
                for p in chain.after
            ],
            checkout=here.id or "",
            place=here.place,
        )
    )
    try:
        publish(repo, chain, writes, tracked=tracked)
    except (
        FileChanged,
        HeadMoved,
        WritesStopped,
        IndexBusy,
        RepoPathError,
        OSError,
        git.GitCommandError,
    ) as error:
        log.warning("%s: not moving to the forge's tip after replaying: %s", slug, error)
        return False
    finally:
        applier.buffer.finish({}, {}, [record])
    log.info("%s: applied %d events again on %s and moved there", slug, len(keys), sync.where)
    return True


def _kept_trailers(events: list[Event]) -> list[NewCommit]:
    """Commits that change no file and carry the trailers of ``events``: a replayed event the
    forge's text already reflects had a commit of its own, which the switch drops; its trailer
    stays in the history this way (one commit per actor, at most ``MAX_EVENTS_PER_COMMIT`` each)."""
    from statehub.events.writeback import MAX_EVENTS_PER_COMMIT, commit_message

    by_actor: dict[str, list[Event]] = {}
    for event in events:
        by_actor.setdefault(event.actor, []).append(event)
    return [
        NewCommit(Person(actor), commit_message(mine[at : at + MAX_EVENTS_PER_COMMIT]), {})
        for actor, mine in by_actor.items()
        for at in range(0, len(mine), MAX_EVENTS_PER_COMMIT)
    ]


NO_BLOB = Blob("100644", "0" * 40)
"""Stands for "no file" in a write-back record's ``before`` (a file the switch adds)."""


def _switch(repo: HubRepo, local: Head, target: str) -> tuple[Chain, list[FileWrite]] | None:
    """What moving the branch from ``local`` to ``target`` writes: each file that differs, as
    ``local`` holds it (the bytes the work tree must still hold) and as ``target`` does. None
    when the move would delete a file, change a mode, or touch anything but a regular file."""
    assert local.sha is not None
    out = repo.git.diff_tree("-r", "--no-renames", "-z", local.sha, target)
    parts = out.split("\0")
    before: dict[str, Blob | None] = {}
    after: dict[str, Blob] = {}
    for meta, path in zip(parts[0::2], parts[1::2], strict=False):
        fields = meta.lstrip(":").split()
        if len(fields) != 5:
            continue
        old_mode, new_mode, old_sha, new_sha, status = fields
        if status not in ("M", "A") or new_mode not in _FILE_MODES:
            return None
        if status == "M" and old_mode != new_mode:
            return None
        before[path] = Blob(old_mode, old_sha) if status == "M" else None
        after[path] = Blob(new_mode, new_sha)
    data = blob_bytes(
        repo, [b.sha for b in after.values()] + [b.sha for b in before.values() if b is not None]
    )
    writes = [
        FileWrite(path, data[old.sha] if (old := before[path]) is not None else None, data[blob.sha])
        for path, blob in after.items()
    ]
    chain = Chain(local, [target], before, after)
    return chain, writes
