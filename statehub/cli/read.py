"""``statehub tasks | workplans | canon`` and ``statehub repos list``: the questions people ask,
from the cache, answered at once (``statehub.cli._reading``, canon/ADR-033)."""

from __future__ import annotations

import click

from statehub.cli._context import handle_errors
from statehub.cli._options import json_option, page_options
from statehub.cli._output import print_json, print_table
from statehub.cli._reading import open_reader
from statehub.errors import parse_choice
from workplans.enums import CanonKind, CanonStatus, TaskStatus, WorkplanStatus


@click.command()
@click.option("--status", help="todo | in-progress | blocked | done | cancelled")
@click.option("--owner", help="Only tasks owned by this actor.")
@click.option("--repo", help="Only tasks in this repo (slug).")
@click.option("--workplan", help="Only tasks of this workplan id.")
@click.option("--ready", is_flag=True, help="Only tasks that can start now: open, every dependency done.")
@page_options()
@json_option("{items, total}")
@handle_errors
def tasks(
    status: str | None,
    owner: str | None,
    repo: str | None,
    workplan: str | None,
    ready: bool,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List tasks across every registered repo.

    Example: statehub tasks --ready --owner codex
    """
    chosen = parse_choice(TaskStatus, "status", status)
    with open_reader() as reading:
        reading.require_repo(repo)
        page = reading.reader.list_tasks(
            status=chosen,
            owner=owner,
            repo=repo,
            workplan=workplan,
            ready=True if ready else None,
            limit=limit,
            offset=offset,
        )
        fresh = reading.freshness([repo] if repo else None)
    if as_json:
        print_json(page, fresh)
        return
    rows = [(t.ref, t.status.value, t.owner, "yes" if t.ready else "", t.title) for t in page.items]
    print_table(f"Tasks ({page.total})", ["ref", "status", "owner", "ready", "title"], rows, page.total)


@click.command()
@click.option("--status", help="draft | active | blocked | done | cancelled")
@click.option("--owner", help="Only workplans owned by this actor.")
@click.option("--repo", help="Only workplans in this repo (slug).")
@page_options()
@json_option("{items, total}")
@handle_errors
def workplans(
    status: str | None, owner: str | None, repo: str | None, limit: int, offset: int, as_json: bool
) -> None:
    """List workplans across every registered repo.

    Example: statehub workplans --status active
    """
    chosen = parse_choice(WorkplanStatus, "status", status)
    with open_reader() as reading:
        reading.require_repo(repo)
        page = reading.reader.list_workplans(
            status=chosen, owner=owner, repo=repo, limit=limit, offset=offset
        )
        fresh = reading.freshness([repo] if repo else None)
    if as_json:
        print_json(page, fresh)
        return
    rows = [(w.id, w.status.value, w.owner, w.task_count, w.title) for w in page.items]
    print_table(f"Workplans ({page.total})", ["id", "status", "owner", "tasks", "title"], rows, page.total)


@click.command()
@click.option("--kind", help="adr | standard | runbook | note")
@click.option("--status", help="proposed | accepted | superseded | deprecated")
@click.option("--repo", help="Only documents in this repo (slug).")
@page_options()
@json_option("{items, total}")
@handle_errors
def canon(
    kind: str | None, status: str | None, repo: str | None, limit: int, offset: int, as_json: bool
) -> None:
    """List canon documents: ADRs, standards, runbooks, notes.

    Example: statehub canon --kind adr --status accepted
    """
    kind_ = parse_choice(CanonKind, "kind", kind)
    status_ = parse_choice(CanonStatus, "status", status)
    with open_reader() as reading:
        reading.require_repo(repo)
        page = reading.reader.list_canon(kind=kind_, status=status_, repo=repo, limit=limit, offset=offset)
        fresh = reading.freshness([repo] if repo else None)
    if as_json:
        print_json(page, fresh)
        return
    rows = [(d.id, d.repo, d.kind.value, d.status.value, d.title) for d in page.items]
    print_table(f"Canon ({page.total})", ["id", "repo", "kind", "status", "title"], rows, page.total)


@click.command("list")
@json_option("the repos")
@handle_errors
def repos_list(as_json: bool) -> None:
    """List registered repos with their error counts.

    Example: statehub repos list --json
    """
    with open_reader() as reading:
        page = reading.reader.list_repos()
        fresh = reading.freshness()
    if as_json:
        print_json(page.items, fresh)
        return
    rows = [(r.slug, r.workplan_count, r.error_count, r.path) for r in page.items]
    print_table("Repos", ["slug", "workplans", "errors", "path"], rows)
