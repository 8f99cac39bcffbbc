"""``statehub tasks | workplans | canon``: the questions people ask, from the cache."""

from __future__ import annotations

import click

from statehub.cache import queries
from statehub.cli._context import handle_errors, open_hub
from statehub.cli._options import json_option, page_options
from statehub.cli._output import print_json, print_table
from statehub.errors import parse_choice
from workplans import CanonKind, CanonStatus, TaskStatus, WorkplanStatus


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
    with open_hub() as hub, hub.engine.connect() as conn:
        if repo is not None:
            hub.repo(repo)  # NotFound (exit 4), as the API's 404: not an empty list
        page = queries.list_tasks(
            conn,
            status=chosen,
            owner=owner,
            repo=repo,
            workplan=workplan,
            ready=True if ready else None,
            limit=limit,
            offset=offset,
        )
    if as_json:
        print_json(page)
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
    with open_hub() as hub, hub.engine.connect() as conn:
        if repo is not None:
            hub.repo(repo)  # NotFound (exit 4), as the API's 404: not an empty list
        page = queries.list_workplans(conn, status=chosen, owner=owner, repo=repo, limit=limit, offset=offset)
    if as_json:
        print_json(page)
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
    with open_hub() as hub, hub.engine.connect() as conn:
        if repo is not None:
            hub.repo(repo)  # NotFound (exit 4), as the API's 404: not an empty list
        page = queries.list_canon(conn, kind=kind_, status=status_, repo=repo, limit=limit, offset=offset)
    if as_json:
        print_json(page)
        return
    rows = [(d.id, d.repo, d.kind.value, d.status.value, d.title) for d in page.items]
    print_table(f"Canon ({page.total})", ["id", "repo", "kind", "status", "title"], rows, page.total)
