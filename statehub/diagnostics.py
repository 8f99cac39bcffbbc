"""Why is it stuck? Every problem of each repo and of the hub, each with a one-line remedy (ADR-029).

What ``statehub doctor`` and ``GET /state/diagnostics`` answer. Per repo: its git
state (``statehub.gitstate.inspect``: branch, detached, unborn, operation in
progress, lock, dirty paths, ahead/behind, whether the remote answers), when it
was last indexed and at which commit, its file errors, the events waiting and
why, the events the relay parked and why, the last sweep of it, the rooms with
unsaved drafts. For the hub: whether a watcher keeps the cache in step with the
files, the disk space under the data dir, the relay, and (from a server) whether this
replica leads (canon/ADR-052).

A problem that ``stops_writes`` is one events or saves wait on until a person
acts (a git state of :func:`statehub.gitstate.stops`, a repo that cannot be
opened, a write-back git keeps refusing, a full disk); health is ``degraded`` while
there is one, and ``statehub doctor`` exits 11 (``statehub.errors.NEEDS_A_PERSON``).
The others (a file error, a person's uncommitted change holding events, a parked
relay event, a diverged remote, an unsaved draft) are listed with their remedy and
leave the status ``ok``.

Nothing here writes: git runs read-only through ``statehub.gitrepo`` (no code of the
repo runs), the stores are only read.
"""

from __future__ import annotations

import datetime as dt
import shutil
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Literal

import git
import msgspec
from sqlalchemy import select

from statehub.answers import Problem
from statehub.cache import queries
from statehub.cache.answers import FileError
from statehub.cache.indexed import LastIndex, last_indexed
from statehub.cache.schema import FILE_ERRORS, REPOS
from statehub.errors import NotAGitRepo, NotFound
from statehub.events.relaying import relay_status
from statehub.gitrepo import git_dirs, git_said
from statehub.gitstate import PROBE_TIMEOUT, GitState, inspect, stops
from statehub.health import RelayHealth, as_relay_health, not_a_repo
from statehub.sweep import LastSweep, last_sweeps, latest_sweep
from sync.buffer import PendingGroup
from sync.leader import LeaderStatus
from sync.relay_queue import ParkedEvent

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from pathlib import Path

    from statehub.events import EventDesk
    from statehub.hub import Hub
    from statehub.hubfile import RegisteredRepo
    from statehub.servermark import ServerMark

__all__ = [
    "LOW_DISK",
    "Diagnostics",
    "DiskSpace",
    "HubDiagnosis",
    "LastSweep",
    "RepoDiagnosis",
    "WatcherState",
    "diagnose",
    "watcher_of_server",
]

LOW_DISK = 64 * 1024 * 1024
"""Free bytes under the data dir below which the disk is a problem (not yet one that stops writes)."""

_GIT_STOP = ", so writes wait; "
"""How the sentence of a git state that stops writes reads (``statehub.gitstate.stops``): a reason
holding it is listed once, as the git state is now."""

_FILE_PROBLEMS = 20
"""File errors listed as problems one by one; the rest are counted in one more."""


class WatcherState(msgspec.Struct, frozen=True):
    """Whether a watcher keeps the cache in step with the files, and whose (a sentence)."""

    running: bool
    detail: str


class DiskSpace(msgspec.Struct, frozen=True):
    """The file system under the data dir (the write buffer, the rooms' drafts)."""

    path: str
    free_bytes: int
    total_bytes: int


class RepoDiagnosis(msgspec.Struct, frozen=True, kw_only=True):
    """One registered repo (see the module docstring); ``git`` is None when it cannot be read
    (a problem says why)."""

    repo: str
    path: str
    git: GitState | None
    last_index: LastIndex | None
    """When the cache last indexed its files, and HEAD then; None: never."""
    file_errors: list[FileError]
    waiting: list[PendingGroup]
    """Pending events grouped by why they wait, the longest waiting first."""
    parked: list[ParkedEvent]
    """Its events the relay parked (the upstream refused them), with why."""
    last_sweep: LastSweep | None
    drafts: list[str]
    """Files with unsaved edits in the editor's rooms (``statehub.toml``, ``registry/fleet.toml``)."""
    problems: list[Problem]


class HubDiagnosis(msgspec.Struct, frozen=True, kw_only=True):
    watcher: WatcherState
    disk: DiskSpace
    relay: RelayHealth | None
    """None without an upstream."""
    leader: LeaderStatus | None = None
    """Whether the server answering leads the run-once work (canon/ADR-052); None from
    ``statehub doctor``, which is no server."""
    problems: list[Problem]


class Diagnostics(msgspec.Struct, frozen=True, kw_only=True):
    """``statehub doctor --json``, ``GET /state/diagnostics``; times UTC, to the second."""

    status: Literal["ok", "degraded"]
    """``degraded`` while a problem stops writes (as ``/state/health``)."""
    checked_at: str
    problems: int
    """Problems listed, of the hub and of every repo shown."""
    stops_writes: int
    """Of those, the ones that stop writes (``statehub doctor`` exits 11 when there is any)."""
    hub: HubDiagnosis
    repos: list[RepoDiagnosis]


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def watcher_of_server(mark: ServerMark | None) -> WatcherState:
    """What a command outside the server can tell of the watcher, from the server's mark
    (``statehub.servermark.running_server``)."""
    if mark is None:
        return WatcherState(False, "no server runs on this hub home")
    if not mark.watch:
        return WatcherState(
            False, f"the server (pid {mark.pid}, since {mark.started_at}) does not watch files"
        )
    return WatcherState(True, f"the server (pid {mark.pid}, since {mark.started_at}) watches the files")


# per repo ---------------------------------------------------------------------------------------


def _git(repo: RegisteredRepo, tracked: str | None, probe: bool, timeout: float) -> GitState | Problem:
    try:
        return inspect(repo.path, tracked, probe=probe, probe_timeout=timeout)
    except NotAGitRepo as error:
        return not_a_repo(repo.slug, repo.path, error)
    except git.GitCommandError as error:
        if stopped := [p for p in stops(git_dirs(repo.path), tracked) if p.stops_writes]:
            return stopped[0]  # a state git cannot say itself (a reftable repo for an older git)
        return Problem(
            "git-error",
            f"git cannot read {repo.path}: {git_said(error)}; its events wait",
            f"fix what git says (git -C {repo.path} status says the same), and the events apply",
            True,
        )


def _waiting_problem(root: Path, group: PendingGroup) -> Problem:
    """Events waiting for one reason, as a problem: the reason's own remedy where it ends with one."""
    count = f"{group.count} event" + ("s" if group.count > 1 else "")
    wait = "waits" if group.count == 1 else "wait"
    if group.reason is None:
        return Problem(
            "events-waiting",
            f"{count} accepted since {group.oldest_accepted_at} have not been tried yet",
            "a running server applies them within a second; without one, statehub sweep applies them",
            False,
        )
    if group.reason.startswith("write-back failed"):
        return Problem(
            "writeback-failing",
            f"{count} {wait}: {group.reason}",
            f"the hub retries by itself; if it keeps failing, fix what git says (git -C {root} status)",
            True,
        )
    if group.reason.startswith("uncommitted changes in"):
        return Problem(
            "events-waiting",
            f"{count} {wait}: {group.reason}",
            f"commit or revert that change (git -C {root} status shows it), and the events apply",
            False,
        )
    said, _, remedy = group.reason.rpartition("; ")
    return Problem(
        "events-waiting",
        f"{count} {wait}: {said or group.reason}",
        remedy if said else "the events apply once that is fixed",
        False,
    )


_FILE_REMEDIES = {
    "cycle": "remove one depends_on entry along the cycle (its tasks are not ready until then)",
    "duplicate": "give one of the files another id (neither is served until then)",
}
"""The remedy of a file error the file itself reads fine with, by its origin in the cache
(statehub.cache.derived); any other file error is one the file cannot be read with."""


_UNREADABLE = "fix the file (events to it wait until it reads)"


def _file_problems(errors: list[FileError], origins: dict[tuple[str, str], str]) -> list[Problem]:
    found = [
        Problem(
            "file-error",
            f"{error.path}{f':{error.line}' if error.line else ''}: {error.message}",
            _FILE_REMEDIES.get(origins.get((error.path, error.message), ""), _UNREADABLE),
            False,
        )
        for error in errors[:_FILE_PROBLEMS]
    ]
    if len(errors) > _FILE_PROBLEMS:
        found.append(
            Problem(
                "file-error",
                f"and {len(errors) - _FILE_PROBLEMS} more file errors",
                "statehub repos list shows the counts; GET /repos/{slug} lists every one",
                False,
            )
        )
    return found


def _repo(
    repo: RegisteredRepo,
    state: GitState | Problem,
    last_index: LastIndex | None,
    errors: tuple[list[FileError], dict[tuple[str, str], str]],
    waiting: list[PendingGroup],
    parked: list[ParkedEvent],
    sweep: LastSweep | None,
    drafts: list[str],
) -> RepoDiagnosis:
    """``errors``: the repo's file errors, and the origin of each by (path, message)."""
    problems = list(state.problems) if isinstance(state, GitState) else [state]
    stopped = any(p.stops_writes for p in problems)
    for group in waiting:
        if stopped and group.reason is not None and _GIT_STOP in group.reason:
            continue  # waiting on the git state, listed already as it is now
        problems.append(_waiting_problem(repo.path, group))
    problems += _file_problems(*errors)
    for event in parked:
        problems.append(
            Problem(
                "relay-parked",
                f"event {event.key} is parked after {event.attempts} attempts: the upstream refused it "
                f"({event.reason})",
                f"fix the cause, then statehub buffer retry {event.key}; or drop it with statehub buffer "
                f"drop {event.key} --reason TEXT",
                False,
            )
        )
    said = None if sweep is None or sweep.in_step else (sweep.error or next(iter(sweep.problems), ""))
    if sweep is not None and said is not None and not (stopped and _GIT_STOP in said):
        problems.append(
            Problem(
                "sweep",
                f"the last sweep ({sweep.finished_at}) could not bring it in step with its remote: {said}",
                f"fix that, then statehub sweep {repo.slug}",
                False,
            )
        )
    for path in drafts:
        problems.append(
            Problem(
                "unsaved-draft",
                f"{path} has unsaved edits in the editor's room",
                f"open {repo.slug}/{path} in the web UI and save them (or discard them there)",
                False,
            )
        )
    return RepoDiagnosis(
        repo=repo.slug,
        path=str(repo.path),
        git=state if isinstance(state, GitState) else None,
        last_index=last_index,
        file_errors=errors[0],
        waiting=waiting,
        parked=parked,
        last_sweep=sweep,
        drafts=drafts,
        problems=problems,
    )


# the hub ----------------------------------------------------------------------------------------


def _disk(desk: EventDesk) -> tuple[DiskSpace, list[Problem]]:
    data_dir = desk.hub.settings.data_dir
    usage = shutil.disk_usage(data_dir)
    disk = DiskSpace(str(data_dir), usage.free, usage.total)
    stores = [desk.buffer, *([desk.relay_queue] if desk.relay_queue is not None else [])]
    full = next((said for store in stores if (said := store.space_problem()) is not None), None)
    if full is not None:
        return disk, [
            Problem(
                "disk-full",
                f"{full}; events are answered 507 meanwhile",
                f"free space on the file system under {data_dir}; the hub takes events again by itself",
                True,
            )
        ]
    if usage.free < LOW_DISK:
        return disk, [
            Problem(
                "disk-low",
                f"only {usage.free // (1024 * 1024)} MiB are free under {data_dir}",
                "free space there before the write buffer fills it (events are refused with 507 then)",
                False,
            )
        ]
    return disk, []


def _hub_problems(watcher: WatcherState, relay: RelayHealth | None, orphans: dict[str, int]) -> list[Problem]:
    found = []
    if not watcher.running:
        found.append(
            Problem(
                "watcher",
                f"no watcher keeps the cache in step with the files: {watcher.detail}",
                "run statehub serve (it watches unless STATEHUB_WATCH=0), or statehub repos refresh after "
                "changing files",
                False,
            )
        )
    if relay is not None and relay.paused:
        found.append(
            Problem(
                "relay-paused",
                f"relaying to {relay.upstream} is paused: {relay.paused}",
                "give the hub a token the upstream accepts (upstream.token in the config dir); relaying "
                "resumes by itself",
                False,
            )
        )
    elif relay is not None and relay.reachable is False and relay.pending:
        found.append(
            Problem(
                "relay-unreachable",
                f"{relay.pending} events wait to be relayed: {relay.upstream} cannot be reached "
                f"({relay.last_error})",
                "check the upstream's URL (STATEHUB_UPSTREAM) and the network; the relay retries by itself",
                False,
            )
        )
    for slug, count in sorted(orphans.items()):
        events = "1 event waits" if count == 1 else f"{count} events wait"
        found.append(
            Problem(
                "unregistered-repo",
                f"{events} for repo {slug}, which is not registered",
                "register it again (statehub repos add PATH) and the events apply",
                True,
            )
        )
    return found


def _leader_problems(leader: LeaderStatus | None) -> list[Problem]:
    """``leader-unreachable``: this replica cannot reach the database that elects the leader; if no
    replica can, nobody releases run-out leases, relays or queues scheduled sweeps."""
    if leader is None or leader.leader or leader.last_error is None:
        return []
    return [
        Problem(
            "leader-unreachable",
            f"this server cannot take part in electing the leader: {leader.last_error}",
            "check that PostgreSQL runs and this host reaches it (STATEHUB_STATE_URL, "
            "STATEHUB_DATABASE_URL); the server tries again by itself",
            False,
        )
    ]


def _hub_file_problems(hub: Hub) -> list[Problem]:
    """``hub-file``: hub.toml cannot be read now; the repos it last listed are served (statehub.hubfile)."""
    broken = hub.hub_file.broken
    if broken is None:
        return []
    return [
        Problem(
            "hub-file",
            f"{broken}; the hub serves the repos it listed before and refuses to register or remove one",
            f"fix {hub.hub_file.path} (statehub repos list shows what it reads)",
            False,
        )
    ]


# all of it --------------------------------------------------------------------------------------


def diagnose(
    desk: EventDesk,
    *,
    repos: Sequence[str] | None = None,
    watcher: WatcherState,
    drafts: Collection[str] = (),
    probe: bool = True,
    probe_timeout: float = PROBE_TIMEOUT,
    leader: LeaderStatus | None = None,
) -> Diagnostics:
    """The diagnosis of ``repos`` (default: every registered one; NotFound for a slug not
        registered) and of the hub. ``drafts`` are the rooms with unsaved edits
        (``<slug>/<path>``); ``probe`` asks each remote whether it answers (``git ls-remote``, at
        most ``probe_timeout`` seconds, eight repos at a time); ``leader`` is the server's leadership
    (None from the CLI)."""
    hub = desk.hub
    registered = hub.repos()
    targets = registered if repos is None else [hub.repo(slug) for slug in repos]  # NotFound: unknown
    with hub.engine.connect() as conn:
        tracked = {
            row.slug: row.default_branch for row in conn.execute(select(REPOS.c.slug, REPOS.c.default_branch))
        }
        indexed = {repo.slug: last_indexed(conn, repo.slug) for repo in targets}
        errors: dict[str, tuple[list[FileError], dict[tuple[str, str], str]]] = {}
        for repo in targets:
            try:
                listed = queries.get_repo(conn, repo.slug).errors
            except NotFound:  # registered, never indexed (its path is gone)
                listed = []
            origins = {
                (row.path, row.message): row.origin
                for row in conn.execute(
                    select(FILE_ERRORS.c.path, FILE_ERRORS.c.message, FILE_ERRORS.c.origin).where(
                        FILE_ERRORS.c.repo == repo.slug
                    )
                )
            }
            errors[repo.slug] = (listed, origins)
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(targets)))) as pool:
        states = list(pool.map(lambda r: _git(r, tracked.get(r.slug) or None, probe, probe_timeout), targets))
    relay = as_relay_health(relay_status(desk))
    parked: dict[str, list[ParkedEvent]] = {}
    if desk.relay_queue is not None:
        for event in desk.relay_queue.status().parked_events:
            record = desk.buffer.get(event.key)
            parked.setdefault(record.repo if record is not None else "", []).append(event)
    swept = last_sweeps(hub.settings)
    report = latest_sweep(hub.settings)  # a data dir a State Hub without sweeps/repos.json swept
    if report is not None:
        for entry in report.repos:
            if entry.repo not in swept:
                swept[entry.repo] = LastSweep(
                    started_at=report.started_at,
                    finished_at=report.finished_at,
                    in_step=entry.in_step,
                    problems=entry.problems if isinstance(entry.problems, list) else [],
                    error=entry.error if isinstance(entry.error, str) else None,
                    findings=entry.findings[:50],
                    findings_total=len(entry.findings),
                )
    shown = [
        _repo(
            repo,
            state,
            indexed[repo.slug],
            errors[repo.slug],
            desk.buffer.pending_groups(repo.slug),
            parked.get(repo.slug, []),
            swept.get(repo.slug),
            sorted(doc.split("/", 1)[1] for doc in drafts if doc.split("/", 1)[0] == repo.slug),
        )
        for repo, state in zip(targets, states, strict=True)
    ]
    known = {repo.slug for repo in registered}
    orphans = {}
    if repos is None:
        for slug in desk.buffer.pending_repos():
            if slug not in known:
                orphans[slug] = sum(group.count for group in desk.buffer.pending_groups(slug))
    disk, disk_problems = _disk(desk)
    hub_problems = (
        _hub_problems(watcher, relay, orphans)
        + disk_problems
        + _hub_file_problems(desk.hub)
        + _leader_problems(leader)
    )
    every = hub_problems + [p for repo in shown for p in repo.problems]
    stopping = sum(1 for p in every if p.stops_writes)
    return Diagnostics(
        status="degraded" if stopping else "ok",
        checked_at=_now(),
        problems=len(every),
        stops_writes=stopping,
        hub=HubDiagnosis(watcher=watcher, disk=disk, relay=relay, leader=leader, problems=hub_problems),
        repos=shown,
    )
