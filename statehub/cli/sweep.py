"""``statehub sweep``: bring repos in step with their remotes and their pending events.

Exits 11 (``statehub.errors.NEEDS_A_PERSON``) when a repo could not be integrated or pushed, or
its git state stops writes (``in_step`` false): a cron job sees it. The report says why, per repo.
"""

from __future__ import annotations

import click
from msgspec import UnsetType

from statehub.cli._context import handle_errors, open_desk
from statehub.cli._options import json_option
from statehub.cli._output import print_json, progress_bar, say
from statehub.errors import NEEDS_A_PERSON
from statehub.sweep import RepoSweep
from statehub.sweep import sweep as run_sweep


@click.command()
@click.argument("slugs", nargs=-1)
@json_option("the full report")
@handle_errors
def sweep(slugs: tuple[str, ...], as_json: bool) -> None:
    """Pull, re-index, apply pending events and push, per repo; then list what is inconsistent.

    Exits 11 when a repo could not be brought in step with its remote (a person must act).

    Example: statehub sweep the-custodian railiance --json
    """
    with open_desk() as desk:
        for slug in slugs:
            desk.hub.repo(slug)  # an unknown slug is one line (exit 4) before any progress bar shows
        total = len(slugs) if slugs else len(desk.hub.repos())
        with progress_bar("sweeping", total, hidden=as_json) as advance:
            report = run_sweep(desk, slugs or None, progress=advance)
    if as_json:
        print_json(report)
    else:
        for repo in report.repos:
            _print_repo(repo)
        totals = report.totals
        stuck = f", {totals.not_in_step} need a person" if totals.not_in_step else ""
        say(
            f"{totals.repos} repos swept: {totals.commits} commits, {totals.pushed} pushed, "
            f"{totals.findings} findings, {totals.problems} problems{stuck}"
        )
    if report.totals.not_in_step:
        raise click.exceptions.Exit(NEEDS_A_PERSON)


def _print_repo(repo: RepoSweep) -> None:
    if isinstance(repo.error, str):
        say((f"{repo.repo}: {repo.error}", "red"))
        _print_findings(repo)
        return
    events, commits, problems = repo.events, repo.commits, repo.problems
    assert not isinstance(events, UnsetType) and not isinstance(commits, UnsetType)  # set unless error
    assert not isinstance(problems, UnsetType)
    say(
        (repo.repo, "bold"),
        f": pulled {repo.pulled}, applied {events.applied} "
        f"(rejected {events.rejected}, waiting {events.waiting}), {len(commits)} commits, "
        f"push: {repo.push}",
    )
    for problem in problems:
        say("  ", (problem, "red"))
    _print_findings(repo)


def _print_findings(repo: RepoSweep) -> None:
    for finding in repo.findings:
        where = f"{finding.path}:{finding.line}" if finding.line else finding.path
        say("  ", (finding.kind, "yellow"), f" {where}: {finding.message}")
