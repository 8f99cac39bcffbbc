"""``statehub doctor``: why is it stuck? Every problem of the hub and its repos, with a remedy.

The same diagnosis ``GET /state/diagnostics`` answers (``statehub.diagnostics``),
read from this hub home without a server and without loading the web stack. The
cache is read as it is (no re-indexing first), so the last index is the last one
anyone made. Exits 11 (``statehub.errors.NEEDS_A_PERSON``) when a problem stops
writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from statehub.cli._context import handle_errors, open_hub
from statehub.cli._options import json_option
from statehub.cli._output import print_json, say
from statehub.diagnostics import Diagnostics, RepoDiagnosis, diagnose, watcher_of_server
from statehub.errors import NEEDS_A_PERSON
from statehub.events import EventDesk
from statehub.servermark import running_server
from statehub.state_stores import room_store_location
from sync.room_store import RoomStore

if TYPE_CHECKING:
    from statehub.answers import Problem
    from statehub.gitstate import GitState
    from statehub.settings import Settings

__all__ = ["doctor"]


@click.command()
@click.option("--repo", "repos", multiple=True, help="Only this registered repo (slug); repeat for more.")
@json_option("the whole diagnosis")
@handle_errors
def doctor(repos: tuple[str, ...], as_json: bool) -> None:
    """Say what stops writes or needs a person, per repo and for the hub, each with what to do.

    Per repo: git state (branch, detached, operation in progress, lock, dirty
    paths, ahead/behind, whether the remote answers), the last index, file errors,
    events waiting and why, relay events parked, the last sweep, unsaved drafts.
    For the hub: the watcher and the disk. Exits 11 when something stops writes.

    Example: statehub doctor --repo the-custodian
    """
    with open_hub(reconcile=False) as hub, EventDesk(hub) as desk:
        report = diagnose(
            desk,
            repos=list(repos) or None,
            watcher=watcher_of_server(running_server(hub.settings)),
            drafts=_drafts(hub.settings),
        )
    if as_json:
        print_json(report)
    else:
        _print(report)
    if report.stops_writes:
        raise click.exceptions.Exit(NEEDS_A_PERSON)


def _drafts(settings: Settings) -> list[str]:
    """Rooms with unsaved edits (``<slug>/<path>``), from the rooms' store if there is one."""
    where = room_store_location(settings)
    if isinstance(where, Path) and not where.exists():
        return []
    with RoomStore(where) as store:
        return store.drafts()


def _problem(problem: Problem) -> None:
    style = "red" if problem.stops_writes else "yellow"
    say("  ", (problem.kind, style), f" {problem.message}")
    say("    ", ("fix: ", "bold"), problem.remedy)


def _git_line(state: GitState) -> str:
    if state.detached:
        where = f"detached at {(state.head or '')[:10]}"
    elif state.unborn:
        where = f"{state.branch} (no commit yet)"
    else:
        where = f"{state.branch} at {(state.head or '')[:10]}"
    parts = [where]
    if state.operation is not None:
        parts.append(f"{state.operation} in progress")
    if state.upstream is not None:
        counts = f" ({state.ahead} ahead, {state.behind} behind)" if state.ahead is not None else ""
        reach = {True: ", answers", False: ", does not answer", None: ""}[state.remote_reachable]
        parts.append(f"follows {state.upstream}{counts}{reach}")
    else:
        parts.append("no remote" if state.remote is None else f"remote {state.remote}")
    if state.dirty_count:
        parts.append(f"{state.dirty_count} changed files")
    for flag, said in ((state.shallow, "shallow"), (state.linked_worktree, "linked worktree")):
        if flag:
            parts.append(said)
    if state.submodule_of is not None:
        parts.append(f"submodule of {state.submodule_of}")
    return ", ".join(parts)


def _print_repo(repo: RepoDiagnosis) -> None:
    say((repo.repo, "bold"), f" {repo.path}")
    if repo.git is not None:
        say("  git: ", _git_line(repo.git))
    index = repo.last_index
    say("  indexed: ", f"{index.at} at {(index.commit or 'no commit')[:10]}" if index else "never")
    waiting = sum(group.count for group in repo.waiting)
    if waiting:
        say(f"  events waiting: {waiting}")
    if repo.last_sweep is not None:
        sweep = repo.last_sweep
        say("  last sweep: ", f"{sweep.finished_at}, {'in step' if sweep.in_step else 'not in step'}")
    for problem in repo.problems:
        _problem(problem)


def _print(report: Diagnostics) -> None:
    hub = report.hub
    say(("hub", "bold"), f" watcher: {hub.watcher.detail}")
    mib = 1024 * 1024
    say(f"  disk: {hub.disk.free_bytes // mib:,} MiB free of {hub.disk.total_bytes // mib:,} MiB")
    if hub.relay is not None:
        say(f"  relay to {hub.relay.upstream}: {hub.relay.pending} pending, {hub.relay.parked} parked")
    for problem in hub.problems:
        _problem(problem)
    for repo in report.repos:
        _print_repo(repo)
    stopping = f", {report.stops_writes} stop writes" if report.stops_writes else ""
    say((f"{report.status}: {report.problems} problems{stopping}", "red" if report.stops_writes else "bold"))
