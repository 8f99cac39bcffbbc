"""A consistency sweep: per repo, pull, re-index, apply pending events, push, report.

The sweep holds a repo's applier lock (``EventDesk.locks``, canon/ADR-054) for
that repo only, one repo at a time, so the server's applier and CLI commands can
keep working on the other repos meanwhile (and two sweeps, or a sweep and an
applier, never work in one repo at once). The last report is kept in the data dir
(``sweeps/latest.json``) so the API shows a sweep the CLI ran and the other way
round; each repo's last sweep is kept too (``statehub.sweep.record``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any, Protocol

import git
import msgspec
from msgspec import UNSET, UnsetType
from sqlalchemy.exc import DBAPIError

from statehub.atomic import atomic_write
from statehub.cache import queries
from statehub.cache.answers import RepoCounts
from statehub.errors import HubError, NotFound
from statehub.gitcommit import dirs_of
from statehub.gitrepo import git_said, open_repo
from statehub.gitstate import stops
from statehub.sweep.findings import Finding, find_problems
from statehub.sweep.record import MAX_RECORDED_FINDINGS, LastSweep, record_sweep
from statehub.sweep.remote import fetch, integrate, push, upstream
from sync.errors import ApplierLockLost

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from statehub.changes import Change
    from statehub.events import EventDesk
    from statehub.gitrepo import HubRepo
    from statehub.settings import Settings

__all__ = [
    "Follower",
    "RepoSweep",
    "SweepReport",
    "SweepTotals",
    "SweptEvents",
    "latest_sweep",
    "new_sweep_id",
    "sweep",
    "sweep_repo",
    "totals_of",
]

log = logging.getLogger(__name__)


class SweptEvents(msgspec.Struct, frozen=True):
    """Pending events the sweep's write-back pass decided: applied, already so, rejected, left waiting."""

    applied: int
    unchanged: int
    rejected: int
    waiting: int


class RepoSweep(msgspec.Struct, frozen=True, kw_only=True):
    """What the sweep did in one repo; or, when it failed unexpectedly, ``error``, ``in_step``
    (false) and the findings.

    The fields a failed sweep has no value for are ``UNSET`` and left out of the JSON.
    ``remote`` is ``<remote>/<branch>`` or None without an upstream; ``push`` says
    what became of the push in words (``pushed``, ``no remote``, ``nothing to push``,
    ``pushed after N attempts``, ``not pushed: ...`` when the repo could not be brought in
    step or its git state stops the sweep, or why the remote refused); ``problems`` are
    sentences, each with what a person does about it.
    """

    repo: str
    error: str | UnsetType = UNSET
    """Why the sweep of this repo failed (an unexpected error); the sweep went on with the others."""
    in_step: bool
    """Whether the repo is in step with its remote after the sweep (integrated and pushed, or no
    remote to be in step with) and nothing in its git state stops writes. False: a person must act
    (``problems`` says what), and ``statehub sweep`` exits 11."""
    remote: str | UnsetType | None = UNSET
    pulled: int | UnsetType = UNSET
    """Commits brought in from the remote."""
    rebased: bool | UnsetType = UNSET
    conflicts: list[str] | UnsetType = UNSET
    """Files that stopped the integration (a rebase's conflicts, uncommitted changes in the way)."""
    events: SweptEvents | UnsetType = UNSET
    commits: list[str] | UnsetType = UNSET
    """Shas of the commits the write-back made."""
    pushed: bool | UnsetType = UNSET
    push: str | UnsetType = UNSET
    problems: list[str] | UnsetType = UNSET
    findings: list[Finding]
    counts: RepoCounts | UnsetType = UNSET


class SweepTotals(msgspec.Struct, frozen=True):
    repos: int
    findings: int
    commits: int
    pushed: int
    """Repos pushed to."""
    problems: int
    """Problem sentences, plus one per repo whose sweep failed."""
    not_in_step: int
    """Repos a person must act on (``in_step`` false, failed sweeps included); ``statehub sweep``
    exits 11 when there is any."""


class SweepReport(msgspec.Struct, frozen=True):
    """``GET /sweeps/latest``, ``statehub sweep --json``; times UTC, to the second. ``id`` is the
    sweep's (None in a report an older State Hub kept)."""

    started_at: str
    finished_at: str
    repos: list[RepoSweep]
    totals: SweepTotals
    id: str | None = None


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _latest_path(settings: Settings) -> Path:
    return settings.data_dir / "sweeps" / "latest.json"


def _replayed(desk: EventDesk, slug: str, root: Path, repo: HubRepo) -> bool:
    """With forge sync on, the hub's own leftover commits that conflict with the forge applied
    again on its tip, as the write-back's pass does (canon/ADR-053, step 3): a sweep is the only
    pass a repo gets when no event for it arrives (a replica killed with unpushed commits and
    restarted). Whether the local branch is now the forge's tip."""
    from statehub.events.forge import replay_leftovers  # (statehub.events imports the sweep's modules)

    forge = desk.applier.forge
    sync = forge.open(slug, repo) if forge is not None else None
    if sync is None:
        return False
    return replay_leftovers(desk.applier, slug, root, repo, sync, desk.applier.tracked_branch(slug))


def sweep_repo(desk: EventDesk, slug: str) -> RepoSweep:
    """Sweep one registered repo; the caller holds the applier lock.

    A git state that stops writes (``statehub.gitstate.stops``) stops the sweep's own git
    work too: nothing is recovered, fetched, integrated or pushed, the problem is listed
    with its remedy, and the repo is not in step. The repo is still re-indexed, its events
    get their reasons and its findings are listed.
    """
    hub = desk.hub
    root = hub.repo(slug).path
    remote_name: str | None = None
    pulled, rebased, pushed, push_said = 0, False, False, "no remote"
    problems: list[str] = []
    conflicts: list[str] = []
    in_step = True
    repo = open_repo(root)
    try:
        target = upstream(repo)
        if target is not None:
            remote_name = f"{target[0]}/{target[1]}"
        stopped = stops(dirs_of(repo), desk.applier.tracked_branch(slug))
        problem: str | None = None
        if stopped:
            problem = stopped[0].sentence()
            problems.append(problem)
            if repo.remotes:  # (a detached HEAD follows no upstream, yet the repo has a remote)
                push_said = "not pushed: the repo's git state stops the sweep (see problems)"
        else:
            desk.applier.recover(slug, repo)
            if target is not None:
                remote, branch = target
                problem = fetch(repo, remote)
                if problem is None:
                    merged = integrate(repo, remote, branch)
                    if merged.conflicts and _replayed(desk, slug, root, repo):
                        merged = integrate(repo, remote, branch)  # now at the forge's tip
                    pulled, rebased, problem = merged.pulled, merged.rebased, merged.problem
                    conflicts = merged.conflicts
                if problem:
                    problems.append(problem)
        hub.refresh(slug, cause="sweep")
        done = desk.apply_locked([slug])
        if not done:  # the repo's lock was lost (its session ended): nothing more here (ADR-054)
            raise ApplierLockLost(slug, "the session holding it ended")
        applied = done[0]
        problems.extend(reason for reason in applied.reasons if reason not in problems)
        if target is not None and problem is None:
            remote, branch = target
            desk.locks.check(slug)
            outcome = push(repo, remote, branch)
            # Not pushed always comes with a reason (statehub.sweep.remote.push).
            pushed, push_said = outcome.pushed, outcome.reason or "pushed"
            conflicts = conflicts or outcome.conflicts
            if outcome.pushed and outcome.attempts > 1:
                push_said = f"pushed after {outcome.attempts} attempts"
            if not outcome.pushed and push_said != "nothing to push":
                problems.append(push_said)
                in_step = False
            hub.refresh(slug, cause="sweep")
        elif problem is not None:
            in_step = False
            if target is not None and not stopped:
                push_said = "not pushed: the repo could not be brought in step with its remote"
    finally:
        repo.close()
    findings, counts = _findings(desk, slug)
    return RepoSweep(
        repo=slug,
        in_step=in_step,
        remote=remote_name,
        pulled=pulled,
        rebased=rebased,
        conflicts=conflicts,
        events=SweptEvents(applied.applied, applied.unchanged, applied.rejected, applied.waiting),
        commits=list(applied.commits),
        pushed=pushed,
        push=push_said,
        problems=problems,
        findings=findings,
        counts=counts if counts is not None else UNSET,
    )


def _findings(desk: EventDesk, slug: str) -> tuple[list[Finding], RepoCounts | None]:
    """The repo's findings and counts as the cache holds them (empty when the cache has no row for
    it: it could not be indexed)."""
    with desk.hub.engine.connect() as conn:
        findings = find_problems(conn, slug)
        try:
            counts: RepoCounts | None = queries.get_repo(conn, slug).counts
        except NotFound:
            counts = None
    return findings, counts


def _failure(error: Exception) -> str:
    """An unexpected failure of one repo's sweep in a sentence: git's own words, never a command
    line or a traceback."""
    if isinstance(error, HubError):
        return error.message
    if isinstance(error, git.GitCommandError):
        return f"git failed: {git_said(error)}"
    if isinstance(error, DBAPIError):  # the driver's first line: SQLAlchemy's text adds the SQL, parameters
        said = str(error.orig).strip().splitlines()
        return f"the database failed: {said[0] if said else type(error.orig).__name__}"[:500]
    return f"{type(error).__name__}: {error}"[:500]


def new_sweep_id() -> str:
    """A sweep's id: its UTC time to the second and 8 random hex digits, so ids sort by time."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(4)


class Follower(Protocol):
    """Follows a sweep repo by repo (the server's sweep scheduler, ``statehub.sweep.scheduler``)."""

    def starting(self, slug: str) -> bool:
        """Called before ``slug`` is swept; False stops the sweep there (the hub is stopping)."""
        ...

    def swept(self, result: RepoSweep) -> None:
        """Called once ``result``'s repo is swept (the applier lock released)."""
        ...

    def stopping(self) -> bool:
        """Whether to give up waiting for the applier lock (checked every second while it waits)."""
        ...


def totals_of(repos: Sequence[RepoSweep]) -> SweepTotals:
    return SweepTotals(
        repos=len(repos),
        findings=sum(len(r.findings) for r in repos),
        commits=sum(len(r.commits) for r in repos if not isinstance(r.commits, UnsetType)),
        pushed=sum(1 for r in repos if r.pushed is True),
        problems=sum(len(r.problems) if not isinstance(r.problems, UnsetType) else 1 for r in repos),
        not_in_step=sum(1 for r in repos if not r.in_step),
    )


def sweep(
    desk: EventDesk,
    slugs: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
    *,
    sweep_id: str | None = None,
    follower: Follower | None = None,
) -> SweepReport:
    """Sweep the named repos (default: all registered), one at a time, and keep the report.

    Each repo's sweep announces ``sweep.started`` and ``sweep.finished`` (canon/ADR-038) and
    keeps the repo's entry in ``sweeps/repos.json`` (``statehub.sweep.record``). ``follower``
    hears of each repo and may stop the sweep before the next one.
    """
    hub = desk.hub
    targets = list(slugs) if slugs else [r.slug for r in hub.repos()]
    if follower is None:  # (a follower's sweep was asked for earlier: a repo removed since is its error)
        for slug in targets:
            hub.repo(slug)  # unknown slugs fail before anything is done
    sweep_id = sweep_id or new_sweep_id()
    started = _now()
    repos: list[RepoSweep] = []
    stopped = False
    for slug in targets:
        if follower is not None and not follower.starting(slug):
            stopped = True
            break
        swept = _sweep_one(desk, slug, sweep_id, follower)
        if swept is None:
            stopped = True
            break
        repos.append(swept)
        if follower is not None:
            follower.swept(swept)
        if progress:
            progress(slug)
    finished = _now()
    report = SweepReport(
        started_at=started, finished_at=finished, repos=repos, totals=totals_of(repos), id=sweep_id
    )
    if repos or not stopped:  # (a sweep stopped before its first repo did nothing to report)
        atomic_write(_latest_path(hub.settings), json.dumps(msgspec.to_builtins(report), indent=2))
    return report


def _sweep_one(desk: EventDesk, slug: str, sweep_id: str, follower: Follower | None) -> RepoSweep | None:
    """Sweep one repo holding the applier lock: announced, recorded, counted; an unexpected failure
    is this repo's ``error``, never the end of the sweep. None: the follower stopped the wait for
    the lock (the hub is stopping), and the repo was not swept."""
    hub = desk.hub
    if follower is None:
        desk.locks.acquire(slug)
    else:
        while not desk.locks.acquire(slug, timeout=1.0):
            if follower.stopping():
                return None
    try:
        started = _now()
        hub.announce([_started(slug, sweep_id, started)])
        try:
            swept = sweep_repo(desk, slug)
        except Exception as error:  # noqa: BLE001 - one broken repo, whatever the bug, must not stop the others
            try:  # ... nor hide what the cache knows about it
                findings, counts = _findings(desk, slug)
            except Exception:
                log.exception("listing the findings of %s after its sweep failed", slug)
                findings, counts = [], None
            swept = RepoSweep(
                repo=slug,
                error=_failure(error),
                in_step=False,
                problems=[_failure(error)],
                findings=findings,
                counts=counts if counts is not None else UNSET,
            )
        finished = _now()
        try:
            record_sweep(hub.settings, slug, _entry(swept, sweep_id, started, finished))
        except OSError:  # a full disk must not lose the sweep's report or its stream message
            log.exception("keeping the last sweep of %s failed", slug)
        hub.announce([_finished(swept, sweep_id, started, finished)])
        if (metrics := hub.metrics) is not None:
            metrics.count_repo_sweep(swept)
    finally:
        desk.locks.release(slug)
    return swept


def _given(value: Any) -> Any:
    return None if isinstance(value, UnsetType) else value


def _entry(swept: RepoSweep, sweep_id: str, started: str, finished: str) -> LastSweep:
    return LastSweep(
        sweep=sweep_id,
        started_at=started,
        finished_at=finished,
        in_step=swept.in_step,
        problems=_given(swept.problems) or [],
        error=_given(swept.error),
        findings=swept.findings[:MAX_RECORDED_FINDINGS],
        findings_total=len(swept.findings),
    )


def _started(slug: str, sweep_id: str, started: str) -> Change:
    """The ``sweep.started`` of one repo, as its sweep takes the applier lock."""
    from statehub.changes import Change

    return Change("sweep.started", {"sweep": sweep_id, "started_at": started}, repo=slug)


def _finished(swept: RepoSweep, sweep_id: str, started: str, finished: str) -> Change:
    """The ``sweep.finished`` of one repo (one per repo, so a repo-scoped stream sees its own)."""
    from statehub.changes import Change

    problems = _given(swept.problems) or []
    data = {
        "sweep": sweep_id,
        "started_at": started,
        "finished_at": finished,
        "in_step": swept.in_step,
        "pulled": _given(swept.pulled),
        "pushed": _given(swept.pushed),
        "push": _given(swept.push),
        "commits": _given(swept.commits) or [],
        "problems": problems[:50],
        "findings": len(swept.findings),
        "error": _given(swept.error),
    }
    return Change("sweep.finished", data, repo=swept.repo)


def latest_sweep(settings: Settings) -> SweepReport | None:
    """The last sweep's report (whoever ran it: the API or the CLI), None before the first (or when
    the kept one has another shape: a State Hub of another version wrote it)."""
    path = _latest_path(settings)
    try:
        return msgspec.json.decode(path.read_bytes(), type=SweepReport)
    except FileNotFoundError:
        return None
    except msgspec.ValidationError as error:  # written by a State Hub with another report shape
        log.warning("not showing %s: %s; the next sweep replaces it", path, error)
        return None
