"""Write-back: apply pending events to the files, commit them, re-index, mark them applied.

Per repo, in acceptance order, in passes. Each step is safe to repeat, which is
how a hub killed at any moment comes back without losing or doubling an event:

1. Each event's target file is found: the cache's path for its workplan, else the
   committed file (HEAD) that declares it. An event is rejected only when the
   committed files say its target is gone (no committed file declares the
   workplan; the committed file has no such task), and the reason says so.
2. A target is read; it must hold exactly its HEAD blob. Otherwise (a person's
   uncommitted change, a half-saved file, a file missing from the work tree) its
   events wait with the reason and apply on a later pass; so does an event whose
   file cannot be read as a workplan ("fix the file and the events apply").
3. Events are applied to the text read (``workplans.apply_event``); an event the
   file already reflects changes nothing (applied, ``commit = null``).
4. Every run of consecutive events by one actor that changed a file becomes one
   commit (at most :data:`MAX_EVENTS_PER_COMMIT` events each), authored by the
   actor, with one ``Statehub-Event: <key>`` trailer per event: an event that a
   later one reverts still has its commit. The commits of the pass are built in
   one go from the hub's own text (:func:`statehub.gitcommit.build_chain`).
5. The write-back is recorded in the buffer (the files, with the git blob sha of
   the text read and of the text to write), then published
   (:func:`statehub.gitcommit.publish`): under the index lock each file is
   replaced only if it still holds the bytes read, the index follows where it held
   the old HEAD blob, and the branch moves by compare and swap. A person's change
   or commit that lands meanwhile stops it with nothing written; the pass starts
   over (:data:`PASS_ATTEMPTS`), then the events wait for the next pass.
6. The repo is re-indexed; then the events are marked applied (with their commit)
   and the records are closed, in one buffer transaction (:meth:`Applier.settle`).
   So "applied" means: in the file, committed, and visible in the cache.

On restart leftover records are resolved first (:meth:`Applier.recover`): if a
commit after the recorded HEAD carries the trailers, the events are marked
applied with it (and the index entries it left behind are brought up to HEAD);
otherwise a file that holds exactly what the hub wrote, not committed, gets back
the bytes it held. A lock or half-built index a killed hub left in ``.git`` is
removed (``statehub.gitcommit.clear_stale``).

Before any of this, the repo's git state is read (``statehub.gitstate.stops``,
files under ``.git`` only, ADR-029): where a commit could be lost (an operation
in progress, a detached HEAD, a branch other than the tracked one, the branch
checked out in another worktree, someone else's ``index.lock`` held for
:data:`statehub.gitstate.LOCK_BUSY_AFTER` seconds or more) nothing is touched,
not even a killed pass's leftovers, and every pending event of the repo waits
with the problem's sentence (what is wrong; the remedy). The commit path checks
again under the index lock (``gitcommit.WritesStopped``, ``gitcommit.IndexBusy``:
the same waiting). Each pass looks again, so the events apply as soon as the
person is done.

When git fails in a repo otherwise (a read-only ``.git``, config the hub
refuses), every pending event of the repo waits with that reason, the repo is
listed in :attr:`Applier.failing` (``/state/health`` says "degraded" with it)
and the server's worker retries it with exponential backoff (:data:`BACKOFF`,
:meth:`Applier.due`) rather than on every pass; an explicit apply (CLI) tries at
once. The first pass that gets through clears it.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import git
from sqlalchemy import and_, select

from statehub import gitcommit, gitstate
from statehub.atomic import FileChanged, content_sha
from statehub.cache import blob_sha
from statehub.cache.schema import REPOS, WORKPLANS
from statehub.errors import HubError, NotFound
from statehub.events import gitwork
from statehub.events.forge import Forge, ForgeSync, replay_leftovers
from statehub.gitcommit import Blob, FileWrite, Head, HeadMoved, NewCommit
from statehub.gitrepo import HubRepo, git_said
from statehub.repofiles import (
    RepoPathError,
    TooManyTasks,
    count_task_tables,
    read_repo_file,
    remove_stale_repo_temps,
    write_repo_file,
)
from sync.buffer import EventRecord, Writeback, WriteBuffer
from sync.saving import Person, identity_problem
from workplans import (
    FLEET_PATH,
    BrokenTarget,
    Event,
    FormatError,
    InvalidEvent,
    NoLongerApplies,
    apply_event,
    parse_event,
    parse_workplan,
)
from workplans.fleet_event_types import FleetEvent

if TYPE_CHECKING:
    from collections.abc import Callable

    from statehub.hub import Hub

__all__ = [
    "BACKOFF",
    "CRASH_ENV",
    "MAX_EVENTS_PER_COMMIT",
    "PASS_ATTEMPTS",
    "Applier",
    "Failing",
    "RepoApplied",
]

log = logging.getLogger(__name__)

MAX_EVENTS_PER_COMMIT = 200
"""A run of events by one actor is committed in chunks of at most this many (message size bound)."""

PASS_ATTEMPTS = 3
"""A pass that finds a person's change or commit landing under it starts over at most this often."""

BACKOFF = (1.0, 60.0)
"""Seconds before the first retry of a failing repo, and the most it waits between retries."""

CRASH_ENV = "STATEHUB_TEST_CRASH_AT"
"""Fault injection for the crash tests: the hub SIGKILLs itself at this step ("written", "committed")."""


@dataclass(slots=True)
class RepoApplied:
    """What one write-back pass did in one repo."""

    repo: str
    applied: int = 0
    unchanged: int = 0
    rejected: int = 0
    waiting: int = 0
    commits: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    pulled: int = 0
    """Commits brought in from the forge (forge sync, :mod:`statehub.events.forge`)."""
    decided: dict[str, str | None] = field(default_factory=dict)
    """Events to mark applied, with their commit (None: the file already said so)."""
    refused: dict[str, str] = field(default_factory=dict)
    """Events to mark rejected, with the reason."""
    writebacks: list[int] = field(default_factory=list)
    """Write-back records to close once the events are marked."""

    def merge(self, other: RepoApplied) -> None:
        """Add what ``other`` (a pass over the same repo) did."""
        self.applied += other.applied
        self.unchanged += other.unchanged
        self.rejected += other.rejected
        self.waiting += other.waiting
        self.pulled += other.pulled
        self.commits += other.commits
        self.reasons += other.reasons
        self.decided |= other.decided
        self.refused |= other.refused
        self.writebacks += other.writebacks

    @property
    def changed(self) -> bool:
        """Whether the repo's files or events moved, so its cache rows need a refresh."""
        return bool(self.commits or self.applied or self.rejected or self.pulled)

    def as_dict(self) -> dict[str, object]:
        return {
            "repo": self.repo,
            "applied": self.applied,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "waiting": self.waiting,
            "commits": self.commits,
            "reasons": self.reasons,
        }


class _Retry(Exception):
    """A person's change or commit landed while the pass was publishing: nothing was written."""


class _ForgeWait(Exception):
    """The forge's branch could not be brought in (forge sync): the events wait, the repo backs off."""


@dataclass(slots=True)
class Failing:
    """A repo whose write-back fails: why, since when, how often, and when it is tried again."""

    reason: str
    since: float
    attempts: int
    retry_at: float

    def as_dict(self, now: float) -> dict[str, object]:
        return {
            "reason": self.reason,
            "attempts": self.attempts,
            "failing_for_s": round(now - self.since, 1),
            "retry_in_s": round(max(0.0, self.retry_at - now), 1),
        }


def _git_detail(error: Exception) -> str:
    """A short account of a git failure: git's own words, never the command line."""
    if isinstance(error, HubError):
        return error.message
    if isinstance(error, git.GitCommandError):
        return git_said(error)
    return f"{type(error).__name__}: {error}"[:400]


def _crash_point(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


class Applier:
    """Applies a buffer's pending events. The caller holds each repo's applier lock; ``check(slug)``
    raises ``sync.errors.ApplierLockLost`` when it no longer does (``sync.applier_lock``), and is
    asked before anything of a pass leaves the process (canon/ADR-054)."""

    def __init__(self, hub: Hub, buffer: WriteBuffer, check: Callable[[str], None]) -> None:
        self.hub = hub
        self.buffer = buffer
        self.check = check
        self.failing: dict[str, Failing] = {}
        """Repos whose last write-back failed (shown by ``/state/health``)."""
        settings = hub.settings
        self.forge = Forge(settings.forge_timeout_s) if settings.syncs_with_forge else None
        """With forge sync on, the repos left unpushed (:mod:`statehub.events.forge`, canon/ADR-053)."""
        self.left_to_others: dict[str, tuple[dict[str, Path], dict[str, Path]]] = {}
        """Per repo, the paths and the event keys a killed pass's record left to another registered clone
        names, with that clone's work tree (:meth:`recover`): its events wait (they may be in a
        commit this copy carries too) and an event waiting on one of its files says so."""

    def apply_repo(self, slug: str, root: Path | None = None, *, reindex: bool = True) -> RepoApplied:
        """Apply the repo's pending events; ``reindex=False`` leaves re-indexing to the caller
        (a pass over many repos re-indexes them together, see ``EventDesk.apply_locked``)."""
        result = RepoApplied(slug)
        try:
            root = root or self.hub.repo(slug).path
        except NotFound:
            events = self.buffer.pending(slug)
            reason = f"repo {slug!r} is not registered; register it again and the events apply"
            self.buffer.wait([e.key for e in events], reason)
            result.waiting = len(events)
            result.reasons.append(reason)
            if self.forge is not None:  # (its clone is no longer the hub's to push)
                self.forge.unpushed.pop(slug, None)
            return result
        try:
            repo = gitwork.open_repo(root)
            try:
                for name in gitcommit.clear_stale(repo):
                    log.warning("removed .git/%s in %s: a killed State Hub process left it", name, slug)
                tracked = self.tracked_branch(slug)
                stopped = gitstate.stops(gitcommit.dirs_of(repo), tracked)
                if stopped:  # nothing is touched, not even a killed pass's leftovers (ADR-029)
                    self._wait_all(slug, stopped[0].sentence(), result)
                else:
                    result.applied += self.recover(slug, repo)
                    forge = self.forge.open(slug, repo) if self.forge is not None else None
                    self._apply(slug, root, repo, result, tracked, forge)
                    if forge is not None and forge.push_rest():
                        result.pulled += 1
            finally:
                repo.close()
        except _ForgeWait as wait:
            self._failed(slug, str(wait), result)
        except (git.GitCommandError, HubError, OSError) as error:
            self._failed(slug, _git_detail(error), result)
        else:
            self.failing.pop(slug, None)
        if reindex:
            if result.changed:
                self.hub.refresh(slug, cause="event")
            self.settle(result)
        return result

    def tracked_branch(self, slug: str) -> str | None:
        """The branch ``slug`` tracks: ``default_branch`` in its statehub.toml as the cache holds it
        (None: the branch HEAD names)."""
        with self.hub.engine.connect() as conn:
            found = conn.execute(select(REPOS.c.default_branch).where(REPOS.c.slug == slug)).scalar()
        return found if isinstance(found, str) and found else None

    def due(self, slug: str) -> bool:
        """Whether ``slug`` may be tried now: it is not failing, or its backoff has run out."""
        failing = self.failing.get(slug)
        return failing is None or time.monotonic() >= failing.retry_at

    def hold(self, slug: str) -> None:
        """Give the pending events of a failing repo, new ones too, its reason until its retry."""
        failing = self.failing.get(slug)
        if failing is not None:
            self._wait_all(slug, failing.reason, RepoApplied(slug))

    def _failed(self, slug: str, detail: str, result: RepoApplied) -> None:
        """Git failed in ``slug``: back off, and give every pending event there the reason."""
        now = time.monotonic()
        before = self.failing.get(slug)
        attempts = before.attempts + 1 if before else 1
        delay = min(BACKOFF[1], BACKOFF[0] * 2 ** (attempts - 1))
        since = before.since if before else now
        reason = f"write-back failed, will retry in {delay:.0f} s: {detail}"
        self.failing[slug] = Failing(reason, since, attempts, now + delay)
        self._wait_all(slug, reason, result)

    def _wait_all(self, slug: str, reason: str, result: RepoApplied) -> None:
        undecided = set(result.decided) | set(result.refused)
        keys = [e.key for e in self.buffer.pending(slug) if e.key not in undecided]
        self.buffer.wait(keys, reason)
        result.waiting += len(keys)
        result.reasons.append(reason)

    def settle(self, result: RepoApplied) -> None:
        """Mark the pass's events applied or rejected, after the cache shows their files.

        Marking comes last so that "applied" means "in the file, committed and
        visible in the cache"; a crash before it is resolved by :meth:`recover`.
        """
        self.buffer.finish(result.decided, result.refused, result.writebacks)
        result.decided, result.refused, result.writebacks = {}, {}, []

    # recovery ----------------------------------------------------------------------------------

    def recover(self, slug: str, repo: HubRepo) -> int:
        """Resolve write-backs a killed hub left behind (see the module docstring).

        Returns how many events turned out to be committed already.
        """
        here = gitwork.checkout_of(repo)
        registered = [known.path for known in self.hub.repos()]
        records: list[Writeback] = []
        files: dict[str, Path] = {}
        keys: dict[str, Path] = {}
        for record in self.buffer.writebacks(slug, *here.names):
            other = here.left_to(record.checkout, record.place, registered)
            if other is None:
                records.append(record)
            else:  # a registered copy of this clone made it: it is that one's (its reason says so)
                files.update(dict.fromkeys((entry["path"] for entry in record.files), other))
                keys.update(dict.fromkeys(record.keys, other))
        self.left_to_others[slug] = (files, keys)
        if not records:
            return 0
        root = Path(repo.working_tree_dir or ".")
        for path in {entry["path"] for record in records for entry in record.files}:
            for temp in remove_stale_repo_temps(root, path):  # a kill mid-write left it (ADR-022)
                log.info("removed %s in %s: a temp file a killed write-back left behind", temp, slug)
        head = gitcommit.read_head(repo)
        committed: dict[str, str] | None = None
        found = 0
        for record in records:
            assert record.id is not None
            changes = {entry["path"]: (entry["before"], entry["after"]) for entry in record.files}
            if head.sha != record.head:
                if committed is None:
                    committed = gitwork.trailer_keys(repo, records[0].head)
                done: dict[str, str | None] = {k: committed[k] for k in record.keys if k in committed}
                if done:  # published; the kill may have come before the index followed
                    gitcommit.repair_index(repo, changes)
                    self.buffer.finish(done, {}, [record.id])
                    found += len(done)
                    continue
            self._put_back(root, repo, head, changes)
            self.buffer.finish({}, {}, [record.id])
        return found

    def _put_back(self, root: Path, repo: HubRepo, head: Head, changes: dict[str, tuple[str, str]]) -> None:
        """Files that hold exactly what an unpublished write-back wrote get back what they held."""
        now = gitcommit.committed_blobs(repo, head, changes)
        restore: dict[str, bytes] = {}
        for path, (before, after) in changes.items():
            committed = now.get(path)
            if before == after or (committed is not None and committed.sha == after):
                continue  # nothing written, or a commit holds it: it is no longer only the hub's
            try:
                data = self._read(root, path)
            except (OSError, RepoPathError):
                continue
            if blob_sha(data) == after:
                restore[path] = data
        old = gitcommit.blob_bytes(repo, [changes[p][0] for p in restore])
        for path, data in restore.items():
            if changes[path][0] not in old:
                continue
            try:
                write_repo_file(root, path, old[changes[path][0]], expected_sha=content_sha(data))
            except (FileChanged, OSError, RepoPathError) as error:
                log.warning("not putting %s back: %s", path, error)

    # applying ----------------------------------------------------------------------------------

    def _apply(
        self,
        slug: str,
        root: Path,
        repo: HubRepo,
        result: RepoApplied,
        tracked: str | None,
        forge: ForgeSync | None = None,
    ) -> None:
        """One pass, started over when a person's change or commit lands while it publishes.

        When the git state stops the commit (someone's index lock held past the wait, an
        operation started meanwhile: ``gitcommit.IndexBusy``, ``gitcommit.WritesStopped``),
        nothing was written and every pending event waits with the reason.

        With ``forge`` (forge sync), each attempt first brings in the forge's branch
        (_ForgeWait when it cannot), and pushes its commits before publishing them; the
        forge's branch moving meanwhile starts the pass over (the last attempt publishes
        without pushing first: :mod:`statehub.events.forge`).
        """
        for attempt in range(1, PASS_ATTEMPTS + 1):
            attempt_result = RepoApplied(slug)
            if forge is not None:
                brought = forge.bring_in()
                if brought.conflicts and replay_leftovers(self, slug, root, repo, forge, tracked):
                    brought = forge.bring_in()  # the hub's own commits were applied again on the tip
                if brought.problem is not None:
                    raise _ForgeWait(brought.problem)
                result.pulled += brought.pulled
                if brought.carried:  # another replica (or this one, before a kill) applied them
                    for record in self.buffer.pending(slug):
                        if record.key in brought.carried and record.key not in result.decided:
                            result.decided[record.key] = brought.carried[record.key]
                            result.applied += 1
            first = forge if attempt < PASS_ATTEMPTS else None
            try:
                self._pass(slug, root, repo, attempt_result, tracked, set(result.decided), first)
            except _Retry as retry:
                if attempt == PASS_ATTEMPTS:
                    self._wait_all(slug, str(retry), result)
                continue
            except (gitcommit.IndexBusy, gitcommit.WritesStopped) as stopped:
                self._wait_all(slug, stopped.message, result)
                return
            result.merge(attempt_result)
            return

    def _pass(
        self,
        slug: str,
        root: Path,
        repo: HubRepo,
        result: RepoApplied,
        tracked: str | None,
        done: set[str],
        forge: ForgeSync | None,
    ) -> None:
        """Apply the pending events not in ``done``; with ``forge``, push the commits to the forge
        before publishing them (``ForgeSync.push_first``)."""
        records = [record for record in self.buffer.pending(slug) if record.key not in done]
        left_files, left_keys = self.left_to_others.get(slug, ({}, {}))
        held: dict[str, list[str]] = {}
        for pending in records:
            if (other := left_keys.get(pending.key)) is not None:
                held.setdefault(_pass_left_to(other), []).append(pending.key)
        for reason, keys in held.items():
            self.buffer.wait(keys, reason)
            result.waiting += len(keys)
            result.reasons.append(reason)
        records = [pending for pending in records if pending.key not in left_keys]
        if not records:
            return
        head = gitcommit.read_head(repo)
        targets, blobs = self._targets(slug, root, repo, head, records, result)
        deliver = self.hub.changes.let_deliver  # the change stream's fan-out goes first (ADR-038)
        deliver()
        read: dict[str, bytes] = {}
        text: dict[str, str] = {}
        stuck: dict[str, str] = {}
        for path in dict.fromkeys(path for _, path in targets):
            problem = self._load(root, path, blobs.get(path), read, text, unborn=head.sha is None)
            other = left_files.get(path)
            if problem is not None and other is not None and problem.startswith("uncommitted changes"):
                problem = _left_to_other(problem, other)
            if problem is not None:
                stuck[path] = problem
        deliver()
        steps: list[tuple[Event, str, str | None]] = []
        """(event, path, the file's text after it; None: it changed nothing)."""
        refused: dict[str, str] = {}
        for event, path in targets:
            if path in stuck:
                continue
            try:
                after = apply_event(text[path], event, self.hub.event_kinds)
            except NoLongerApplies as error:  # the file holds its HEAD blob: the commit says so
                refused[event.key] = f"{error} (the committed {path} says so)"
                continue
            except BrokenTarget as error:
                stuck[path] = f"{path}: {error}; fix the file and the events apply"
                continue
            try:
                self._check_growth(path, text[path], after)
            except NoLongerApplies as error:
                refused[event.key] = str(error)
                continue
            steps.append((event, path, after if after != text[path] else None))
            text[path] = after
        waiting: dict[str, list[str]] = {}
        for event, path in targets:
            if path in stuck and event.key not in refused:
                waiting.setdefault(stuck[path], []).append(event.key)
        steps = [step for step in steps if step[1] not in stuck]
        commits, runs = _commits(steps)
        deliver()
        if commits:
            shas, record = self._publish(slug, repo, head, commits, runs, blobs, read, steps, tracked, forge)
            result.writebacks.append(record)
            for run, sha in zip(runs, shas, strict=True):
                result.decided.update(dict.fromkeys((event.key for event in run), sha))
            result.commits += shas
        unchanged = [event.key for event, _, after in steps if after is None]
        result.decided.update(dict.fromkeys(unchanged))
        result.applied += sum(len(run) for run in runs)
        result.unchanged += len(unchanged)
        result.refused.update(refused)
        result.rejected += len(refused)
        for reason, keys in waiting.items():
            self.buffer.wait(keys, reason)
            result.waiting += len(keys)
            result.reasons.append(reason)

    def _publish(
        self,
        slug: str,
        repo: HubRepo,
        head: Head,
        commits: list[NewCommit],
        runs: list[list[Event]],
        blobs: dict[str, Blob],
        read: dict[str, bytes],
        steps: list[tuple[Event, str, str | None]],
        tracked: str | None,
        forge: ForgeSync | None = None,
    ) -> tuple[list[str], int]:
        """Build the pass's commits, record the write-back, write and publish; the commit shas and
        the write-back record. With ``forge``, the commits go to the forge first.

        Raises _Retry when a person's change or commit got there first, or another replica's
        push (nothing written).
        """
        here = gitwork.checkout_of(repo, mint=True)  # first: it says why a .git cannot be written
        final: dict[str, bytes] = {}
        for _, path, after in steps:
            if after is not None:
                final[path] = after.encode("utf-8")
        chain = gitcommit.build_chain(repo, head, commits, {path: blobs[path] for path in final})
        self.check(slug)  # a replica whose lock's session ended writes nothing (ApplierLockLost)
        record = self.buffer.begin_writeback(
            Writeback(
                slug,
                head.sha,
                [event.key for run in runs for event in run],
                [{"path": p, "before": blobs[p].sha, "after": blob_sha(data)} for p, data in final.items()],
                checkout=here.id or "",
                place=here.place,
            )
        )
        writes = [FileWrite(path, read[path], data) for path, data in final.items() if data != read[path]]
        if forge is not None and not forge.push_first(chain.tip):
            self.buffer.finish({}, {}, [record])
            raise _Retry(f"{forge.where} moved while the hub was applying events; they apply to its new tip")
        try:
            gitcommit.publish(
                repo, chain, writes, tracked=tracked, on_written=lambda: _crash_point("written")
            )
        except FileChanged as error:
            self.buffer.finish({}, {}, [record])
            raise _Retry(f"{error.path} changed while the hub was applying events; they will retry") from None
        except HeadMoved as error:
            self.buffer.finish({}, {}, [record])
            raise _Retry(f"{error.message} while the hub was applying events; they will retry") from None
        except BaseException:
            self.buffer.finish({}, {}, [record])
            raise
        _crash_point("committed")
        return chain.commits, record

    def _targets(
        self,
        slug: str,
        root: Path,
        repo: HubRepo,
        head: Head,
        records: list[EventRecord],
        result: RepoApplied,
    ) -> tuple[list[tuple[Event, str]], dict[str, Blob]]:
        """Each pending event with its target path, and the HEAD blob of each target.

        The path is the cache's; when HEAD has no file there (renamed, or the cache
        lost the workplan to a broken file), the committed file declaring the
        workplan. An event is rejected into ``result`` when it cannot be applied at
        all, or when no committed file declares its workplan and none is in the work
        tree at the cache's path either (an uncommitted new file waits).
        """
        parsed: list[Event] = []
        for record in records:
            try:
                event = parse_event(record.event, self.hub.event_kinds)
            except InvalidEvent as error:
                result.refused[record.key] = f"the stored event is not valid any more: {error}"
                continue
            problem = identity_problem("name", event.actor)
            if problem:
                result.refused[record.key] = f"actor {event.actor!r} cannot author a commit: {problem}"
                continue
            parsed.append(event)
        cached = self._cached_paths(slug, {e.workplan_id for e in parsed if e.workplan_id is not None})
        found: list[tuple[Event, str | None]] = [
            (event, self.hub.event_kinds[event.kind].fixed_path or cached.get(event.workplan_id or ""))
            for event in parsed
        ]
        blobs = gitcommit.committed_blobs(repo, head, {path for _, path in found if path is not None})
        committed: _CommittedPlans | None = None
        targets: list[tuple[Event, str]] = []
        for event, path in found:
            if self.hub.event_kinds[event.kind].fixed_path is None and (path is None or path not in blobs):
                committed = committed or _CommittedPlans(repo, head)
                moved = committed.path_of(event.workplan_id)
                if moved is not None:
                    path = moved
                    blobs.setdefault(moved, committed.tree[moved])
                elif path is None or not os.path.lexists(root / path):
                    where = f"HEAD {head.sha[:10]}" if head.sha else "an unborn branch"
                    result.refused[event.key] = (
                        f"workplan {event.workplan_id} is in no committed file of repo {slug} ({where}): "
                        "it was removed or renamed there"
                    )
                    continue
            assert path is not None
            targets.append((event, path))
        result.rejected += len(result.refused)
        return targets, blobs

    def _cached_paths(self, slug: str, workplans: set[str]) -> dict[str, str]:
        """The path the cache holds for each of ``workplans`` in ``slug`` (one query per 500)."""
        found: dict[str, str] = {}
        wanted = sorted(workplans)
        with self.hub.engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                rows = conn.execute(
                    select(WORKPLANS.c.id, WORKPLANS.c.path).where(
                        and_(WORKPLANS.c.repo == slug, WORKPLANS.c.id.in_(wanted[start : start + 500]))
                    )
                )
                found.update({row.id: row.path for row in rows})
        return found

    def _load(
        self,
        root: Path,
        path: str,
        blob: Blob | None,
        read: dict[str, bytes],
        text: dict[str, str],
        *,
        unborn: bool = False,
    ) -> str | None:
        """Read ``path`` into ``read``/``text`` when it holds exactly its HEAD blob; else why its
        events wait (``unborn``: HEAD's branch has no commit yet, so no file is committed)."""
        try:
            data = self._read(root, path)
        except RepoPathError as error:  # a link, outside the repo, too large (ADR-022)
            return f"{error}; the hub does not read or write it; fix the file and the events apply"
        except FileNotFoundError:
            if blob is None:
                return f"{path} cannot be read: it is not in the work tree; the events apply once it is"
            return f"uncommitted changes in {path} (it is missing from the work tree)"
        except OSError as error:
            return f"cannot read {path}: {error.strerror or error}; the events will retry"
        if blob is None and (nested := _nested_repo(root, path)) is not None:
            return (
                f"{path} is inside {nested}, a git repo of its own (a submodule): the hub writes only the "
                f"files of the repo itself; register {root / nested} as a repo of its own to send it events"
            )
        if blob is None and unborn:
            return (
                f"{path} is not committed yet: the branch has no commit, and the hub commits only over "
                "committed files; commit it and the events apply"
            )
        if blob is None:
            return (
                f"{path} is not committed yet: the hub commits only over committed files; commit it "
                f"(git -C {root} add {path}, then git commit) and the events apply"
            )
        if blob_sha(data) != blob.sha:
            return f"uncommitted changes in {path}"
        try:
            text[path] = self._text(path, data)
        except (UnicodeDecodeError, TooManyTasks) as error:
            return f"{path} cannot be read as a workplan ({error}); fix the file and the events apply"
        read[path] = data
        return None

    # reading and writing inside the repo (ADR-022) ----------------------------------------------

    def _read(self, root: Path, path: str) -> bytes:
        """The bytes of ``path``: never through a link, never outside ``root``, never over the limit.

        Raises RepoPathError (FileTooLarge) or OSError.
        """
        return read_repo_file(root, path, self.hub.settings.file_limits.bytes_for(_kind_of(path)))

    def _text(self, path: str, data: bytes) -> str:
        """``data`` as text; TooManyTasks for a workplan over the task limit, UnicodeDecodeError for
        bytes that are not UTF-8."""
        text = data.decode("utf-8")
        limit = self.hub.settings.file_limits.workplan_tasks
        if _kind_of(path) == "workplan" and (count := count_task_tables(text)) > limit:
            raise TooManyTasks(path, count, limit)
        return text

    def _check_growth(self, path: str, old: str, new: str) -> None:
        """NoLongerApplies when applying an event would take ``path`` past its size or task limit."""
        limits = self.hub.settings.file_limits
        limit = limits.bytes_for(_kind_of(path))
        size = len(new.encode("utf-8"))
        if size > limit and size > len(old.encode("utf-8")):
            raise NoLongerApplies(
                f"{path} would grow to {size:,} bytes, over the limit of {limit:,} bytes; "
                "the hub does not grow a file past its limit: split it, then send the event again"
            )
        if _kind_of(path) == "workplan" and len(new) > len(old):
            count = count_task_tables(new)
            if count > limits.workplan_tasks and count > count_task_tables(old):
                raise NoLongerApplies(
                    f"{path} would hold {count:,} tasks, over the limit of {limits.workplan_tasks:,} "
                    "tasks; split the workplan, then send the event again"
                )


def _pass_left_to(other: Path) -> str:
    """Why an event a killed pass's record left to ``other`` names waits (canon/ADR-053)."""
    return (
        f"a State Hub pass killed in {other} was applying it, and {other} is a copy of this clone (the "
        "same .git/statehub-checkout) registered in this hub too, so the pass is left to it; remove that "
        "repo from the hub (statehub repos remove) and this clone takes the pass over"
    )


def _left_to_other(problem: str, other: Path) -> str:
    """Why an event waits on a file a killed pass's record left to ``other`` names (canon/ADR-053)."""
    return (
        f"{problem}: a State Hub pass killed in {other} may have written them, and {other} is a copy of "
        "this clone (the same .git/statehub-checkout) registered in this hub too, so the pass is left to "
        "it; remove that repo from the hub (statehub repos remove) and this clone takes the pass over, "
        "or commit or restore the file here by hand"
    )


def _commits(steps: list[tuple[Event, str, str | None]]) -> tuple[list[NewCommit], list[list[Event]]]:
    """The commits of a pass: one per run of consecutive events by one actor that changed a file
    (at most :data:`MAX_EVENTS_PER_COMMIT` each), each holding its files as they are after the run;
    and the events of each."""
    commits: list[NewCommit] = []
    runs: list[list[Event]] = []
    files: dict[str, bytes] = {}
    for event, path, after in steps:
        if after is None:
            continue
        if not runs or runs[-1][0].actor != event.actor or len(runs[-1]) >= MAX_EVENTS_PER_COMMIT:
            if runs:
                commits.append(NewCommit(Person(runs[-1][0].actor), commit_message(runs[-1]), files))
            runs.append([])
            files = {}
        runs[-1].append(event)
        files[path] = after.encode("utf-8")
    if runs:
        commits.append(NewCommit(Person(runs[-1][0].actor), commit_message(runs[-1]), files))
    return commits, runs


class _CommittedPlans:
    """Which committed file (in HEAD) declares each workplan id: read once, when the cache does
    not know a workplan (its file is broken, missing or moved in the work tree)."""

    def __init__(self, repo: HubRepo, head: Head) -> None:
        self.paths: dict[str, str] = {}
        self.unreadable: dict[str, bytes] = {}
        tree = gitcommit.committed_tree(repo, head, "workplans")
        self.tree = {path: blob for path, blob in tree.items() if path.endswith(".md")}
        contents = gitcommit.blob_bytes(repo, [blob.sha for blob in self.tree.values()])
        for path, blob in sorted(self.tree.items()):
            data = contents.get(blob.sha, b"")
            try:
                plan = parse_workplan(data.decode("utf-8"), path)
            except (FormatError, UnicodeDecodeError):
                self.unreadable[path] = data
                continue
            if plan is not None:
                self.paths.setdefault(plan.id, path)

    def path_of(self, workplan: str | None) -> str | None:
        """The committed file declaring ``workplan``, or one that cannot be parsed but names it
        (it may declare it: its events wait for a fix rather than being rejected); else None."""
        if workplan is None:
            return None
        if workplan in self.paths:
            return self.paths[workplan]
        needle = workplan.encode()
        return next((path for path, data in self.unreadable.items() if needle in data), None)


def _nested_repo(root: Path, path: str) -> str | None:
    """The directory above ``path`` (repo-relative) that is a git repo of its own (it holds a
    ``.git``: a submodule or a repo cloned inside), or None."""
    parts = path.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        if os.path.lexists(root.joinpath(*parts[:depth], ".git")):
            return "/".join(parts[:depth])
    return None


def _kind_of(path: str) -> str:
    """The limits kind of a write-back target: the fleet registry or a workplan."""
    return "fleet" if path == FLEET_PATH else "workplan"


def _describe(event: Event) -> str:
    if isinstance(event, FleetEvent):
        return event.describe()
    data = event.to_json()
    target = data.get("workplan", "")
    if "task" in data:
        target = f"{target}-{data['task']}"
    if event.kind in ("task.status", "workplan.status"):
        return f"{target}: status {data['status']}"
    if event.kind == "task.add":
        return f"{target}: add task {data['title']!r}"
    if event.kind == "progress.note":
        return f"{target}: progress note"
    if event.kind == "task.claim":
        return f"{target}: claimed"
    if event.kind == "task.release":
        return f"{target}: released, status {data['status']}"
    return f"{event.kind} {target}".strip()


def commit_message(events: list[Event]) -> str:
    """Subject, one line per event, then one ``Statehub-Event`` trailer per event."""
    if len(events) == 1:
        subject = f"statehub: {_describe(events[0])}"
    else:
        kinds = Counter(event.kind for event in events)
        subject = (
            f"statehub: apply {len(events)} events ("
            + ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
            + ")"
        )
    lines = [f"- {_describe(event)} @{event.actor}" for event in events]
    trailers = [f"{gitwork.TRAILER}: {event.key}" for event in events]
    return "\n".join([subject, "", *lines, "", *trailers]) + "\n"
