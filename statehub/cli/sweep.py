"""``statehub sweep``: bring repos in step with their remotes and their pending events."""

from __future__ import annotations

from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from statehub.cli._context import handle_errors, open_hub
from statehub.cli._output import console, print_json
from statehub.events import EventDesk
from statehub.sweep import sweep as run_sweep


@click.command()
@click.argument("slugs", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@handle_errors
def sweep(slugs: tuple[str, ...], as_json: bool) -> None:
    """Pull, re-index, apply pending events and push, per repo; then list what is inconsistent.

    Example: statehub sweep the-custodian railiance --json
    """
    with open_hub() as hub:
        desk = EventDesk(hub)
        try:
            total = len(slugs) if slugs else len(hub.repos())
            with Progress(
                TextColumn("sweeping"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                disable=as_json,
            ) as bar:
                task = bar.add_task("sweep", total=total)
                report = run_sweep(desk, slugs or None, progress=lambda _slug: bar.advance(task))
        finally:
            desk.close()
    if as_json:
        print_json(report)
        return
    for repo in report["repos"]:
        _print_repo(repo)
    totals = report["totals"]
    console.print(
        f"{totals['repos']} repos swept: {totals['commits']} commits, {totals['pushed']} pushed, "
        f"{totals['findings']} findings, {totals['problems']} problems"
    )


def _print_repo(repo: dict[str, Any]) -> None:
    if "error" in repo:
        console.print(f"[red]{repo['repo']}: {repo['error']}[/red]")
        return
    events = repo["events"]
    console.print(
        f"[bold]{repo['repo']}[/bold]: pulled {repo['pulled']}, applied {events['applied']} "
        f"(rejected {events['rejected']}, waiting {events['waiting']}), {len(repo['commits'])} commits, "
        f"push: {repo['push']}"
    )
    for problem in repo["problems"]:
        console.print(f"  [red]{problem}[/red]")
    for finding in repo["findings"]:
        where = f"{finding['path']}:{finding['line']}" if finding["line"] else finding["path"]
        console.print(f"  [yellow]{finding['kind']}[/yellow] {where}: {finding['message']}")
