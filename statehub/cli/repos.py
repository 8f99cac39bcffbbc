"""``statehub repos ...`` and ``statehub rebuild``: registration and the cache (``repos list`` is a
read command, in ``statehub.cli.read``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
import msgspec

from statehub.cli._context import handle_errors, load_settings, open_hub
from statehub.cli._options import json_option
from statehub.cli._output import print_json, progress_bar, say
from statehub.cli.read import repos_list

if TYPE_CHECKING:
    from statehub.cache.answers import FileError
    from statehub.cache.indexer import IndexReport


class RepoFileError(msgspec.Struct, frozen=True):
    """A file error of ``statehub rebuild --json``: which repo, where, what."""

    repo: str
    path: str
    line: int | None
    message: str


class RebuildSummary(msgspec.Struct, frozen=True):
    """What ``statehub rebuild --json`` prints: what the cache holds now, and every file error."""

    repos: int
    workplans: int
    tasks: int
    canon: int
    errors: list[RepoFileError]


@click.group()
def repos() -> None:
    """Register, list, refresh and remove repos.

    Example: statehub repos add ~/src/the-custodian
    """


def _report_line(report: IndexReport, errors_now: int | None = None) -> str:
    """One repo's pass; ``errors_now`` (the repo's file errors after it) replaces the count of new ones."""
    if errors_now is not None:
        errors = f", {errors_now} file error{'s' if errors_now > 1 else ''}" if errors_now else ""
    else:
        errors = f", {len(report.errors)} new file errors" if report.errors else ""
    return f"{report.repo}: {report.files} files, {report.parsed} parsed, {report.removed} removed{errors}"


@repos.command("add")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@json_option()
@handle_errors
def add(paths: tuple[Path, ...], as_json: bool) -> None:
    """Register git work trees and index them.

    Example: statehub repos add ~/src/the-custodian ~/src/railiance
    """
    from statehub.cache import queries

    with open_hub() as hub:
        reports = [hub.register(path) for path in paths]
        with hub.engine.connect() as conn:
            details = [queries.get_repo(conn, r.repo) for r in reports]
    if as_json:
        print_json(details)
        return
    # The repo's errors as the cache holds them after the whole pass, not the parse errors alone:
    # a duplicate id or a dependency cycle is found across files, after each file parsed.
    for report, detail in zip(reports, details, strict=True):
        say(f"registered {_report_line(report, len(detail.errors))}")
        for error in detail.errors:
            say("  ", (f"{_where(error)}: {error.message}", "red"))


repos.add_command(repos_list)


@repos.command("remove")
@click.argument("slug")
@handle_errors
def remove(slug: str) -> None:
    """Unregister a repo and drop its rows from the cache (its files are untouched).

    Example: statehub repos remove the-custodian
    """
    with open_hub() as hub:
        hub.remove(slug)
    say(f"removed {slug}")


@repos.command("refresh")
@click.argument("slug", required=False)
@json_option()
@handle_errors
def refresh(slug: str | None, as_json: bool) -> None:
    """Re-index files that changed, in one repo or in all.

    Example: statehub repos refresh the-custodian
    """
    from statehub.cache import queries

    with open_hub(reconcile=False) as hub:
        reports = hub.refresh(slug)
        with hub.engine.connect() as conn:
            details = [queries.get_repo(conn, r.repo) for r in reports]
    if as_json:
        print_json(details)
        return
    for report, detail in zip(reports, details, strict=True):
        say(_report_line(report))
        for error in detail.errors:
            say("  ", (f"{_where(error)}: {error.message}", "red"))


@click.command()
@json_option("the summary")
@handle_errors
def rebuild(as_json: bool) -> None:
    """Drop the cache and index every registered repo from its files.

    Example: statehub rebuild
    """
    import gc

    from statehub.cache.gathering import gathered
    from statehub.hubfile import HubFile

    # One short process: the cyclic collector would only walk every row read (Hub.rebuild pauses it
    # for the rebuild; re-enabled, it would walk them all once more), and the exit frees them anyway.
    gc.disable()
    settings = load_settings()
    repos_ = [(r.slug, r.path) for r in HubFile(settings.hub_file).repos()]
    # The worker forks before the hub and SQLAlchemy load, and gathers meanwhile (canon/ADR-043).
    sqlite = settings.database_url.startswith("sqlite")  # as statehub.cache.database.open_cache tells
    with (
        gathered(repos_, settings.file_limits, worker=True, for_sqlite=sqlite) as found,
        open_hub(reconcile=False) as hub,
    ):
        with progress_bar("indexing", len(repos_), hidden=as_json) as advance:
            reports = hub.rebuild(progress=advance, found=found)
        from statehub.cache import queries

        with hub.engine.connect() as conn:
            counts, errors = queries.repos_summary(conn, [r.repo for r in reports])
    summary = RebuildSummary(
        repos=len(reports),
        workplans=counts.workplans,
        tasks=counts.tasks,
        canon=counts.canon,
        errors=[RepoFileError(slug, e.path, e.line, e.message) for slug, e in errors],
    )
    if as_json:
        print_json(summary)
        return
    say(
        f"{summary.repos} repos: {summary.workplans} workplans, {summary.tasks} tasks, "
        f"{summary.canon} canon documents, {len(summary.errors)} file errors"
    )
    for error in summary.errors:
        say("  ", (f"{error.repo}/{_where(error)}: {error.message}", "red"))


def _where(error: FileError | RepoFileError) -> str:
    return f"{error.path}:{error.line}" if error.line else error.path
