"""``statehub event ...`` and ``statehub events``: send events, list the write buffer.

A command writes its event to the same buffer file a running server uses, then
applies it at once if no other process is applying (ADR-007); otherwise the
running hub applies it within a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from statehub.answers import Page
from statehub.cli._context import handle_errors, open_desk
from statehub.cli._options import event_options, json_option, page_options
from statehub.cli._output import print_json, print_table
from statehub.cli._sending import send_event
from statehub.errors import BadRequest
from statehub.events.intake import next_task_id
from sync.buffer import EventState
from workplans import is_workplan_id, split_task_ref

if TYPE_CHECKING:
    from statehub.events import EventDesk


@click.group()
def event() -> None:
    """Change workplans by sending events: they land in the files as git commits.

    Example: statehub event status CUST-WP-0054-T02 done --note "tunnels moved"
    """


def _task(ref: str) -> tuple[str, str]:
    parts = split_task_ref(ref)
    if parts is None:
        raise BadRequest(f"{ref!r} is not a task reference; write it like CUST-WP-0054-T02")
    return parts


@event.command("status")
@click.argument("ref")
@click.argument("status")
@click.option("--note", help="A progress note to record with the change.")
@event_options
@handle_errors
def status(
    ref: str, status: str, note: str | None, actor: str | None, key: str | None, as_json: bool
) -> None:
    """Set a task's status (todo | in-progress | blocked | done | cancelled), or a workplan's
    status when REF is a workplan id (draft | active | blocked | done | cancelled).

    Example: statehub event status CUST-WP-0054-T02 done --note "railiance01 tunnels moved"
    """
    body: dict[str, Any] = {"status": status}
    if is_workplan_id(ref):
        if note:
            raise BadRequest("--note goes with a task's status; use 'statehub event note' for a workplan")
        body |= {"kind": "workplan.status", "workplan": ref}
    else:
        workplan, task = _task(ref)
        body |= {"kind": "task.status", "workplan": workplan, "task": task}
        body["note"] = note or None
    send_event(body, actor=actor, key=key, as_json=as_json)


@event.command("note")
@click.argument("ref")
@click.argument("text")
@event_options
@handle_errors
def note(ref: str, text: str, actor: str | None, key: str | None, as_json: bool) -> None:
    """Append a progress note to a workplan (REF: a workplan id or a task reference).

    Example: statehub event note CUST-WP-0054-T02 "railiance01 tunnels moved"
    """
    body: dict[str, Any] = {"kind": "progress.note", "note": text}
    if is_workplan_id(ref):
        body["workplan"] = ref
    else:
        body["workplan"], body["task"] = _task(ref)
    send_event(body, actor=actor, key=key, as_json=as_json)


@event.command("add")
@click.argument("workplan")
@click.argument("title")
@click.option("--owner", help="Who owns the new task.")
@click.option("--depends-on", "depends_on", multiple=True, help="A task id or reference; repeatable.")
@click.option("--task", "task_id", help="The new task's id (default: the next free one).")
@event_options
@handle_errors
def add(
    workplan: str,
    title: str,
    owner: str | None,
    depends_on: tuple[str, ...],
    task_id: str | None,
    actor: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Add a task to a workplan.

    Example: statehub event add CUST-WP-0054 "Drain coulombcore" --owner codex --depends-on T02
    """
    if not is_workplan_id(workplan):
        raise BadRequest(f"{workplan!r} is not a workplan id; write it like CUST-WP-0054")
    body: dict[str, Any] = {
        "kind": "task.add",
        "workplan": workplan,
        "title": title,
        "owner": owner or None,
        "depends_on": list(depends_on) or None,
    }

    def with_task_id(desk: EventDesk) -> dict[str, Any]:
        return body | {
            "task": task_id if task_id is not None else next_task_id(desk.hub, desk.buffer, workplan)
        }

    send_event(with_task_id, actor=actor, key=key, as_json=as_json)


@click.command()
@click.option("--state", type=click.Choice([s.value for s in EventState]), help="Only events in this state.")
@click.option("--repo", help="Only events for this repo (slug).")
@page_options("events")
@json_option("{items, total}")
@handle_errors
def events(state: str | None, repo: str | None, limit: int, offset: int, as_json: bool) -> None:
    """List events in the write buffer, oldest first, with their state and reason.

    Example: statehub events --state pending
    """
    with open_desk() as desk:
        if repo is not None:
            desk.known_repo(repo)  # NotFound (exit 4), as the API's 404: not an empty list
        items, total = desk.buffer.list_events(
            state=EventState(state) if state else None, repo=repo, limit=limit, offset=offset
        )
    if as_json:
        print_json(Page(items, total))
        return
    rows = [
        (e.key, e.kind, e.repo, e.state.value, (e.commit or "")[:10], e.reason or "", e.accepted_at)
        for e in items
    ]
    print_table(
        f"Events ({total})", ["key", "kind", "repo", "state", "commit", "reason", "accepted"], rows, total
    )
