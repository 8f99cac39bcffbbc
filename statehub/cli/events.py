"""``statehub event ...`` and ``statehub events``: send events, list the write buffer.

A command writes its event to the same buffer file a running server uses, then
applies it at once if no other process is applying (ADR-007); otherwise the
running hub applies it within a second.
"""

from __future__ import annotations

from typing import Any

import click

from statehub.auth.event_policy import LOCAL_COMMAND
from statehub.cli._context import handle_errors, open_hub
from statehub.cli._output import console, print_json, print_table
from statehub.errors import BadRequest
from statehub.events import EventDesk, new_event_key
from statehub.events.intake import default_actor, next_task_id
from workplans import is_workplan_id, split_task_ref

APPLY_WAIT = 5.0
"""Seconds a command waits for another applier (a running server) before leaving the event to it."""

_json = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
_actor = click.option("--actor", help="Who is acting (default: $STATEHUB_ACTOR, else your login name).")
_key = click.option(
    "--key", help="Idempotency key (default: a fresh one). Resend with the same key to retry."
)


@click.group()
def event() -> None:
    """Change workplans by sending events: they land in the files as git commits.

    Example: statehub event status CUST-WP-0054-T02 done --note "tunnels moved"
    """


def _send(body: dict[str, Any], as_json: bool) -> None:
    with open_hub() as hub:
        desk = EventDesk(hub)
        try:
            result = desk.submit(body, authorise=LOCAL_COMMAND)[0]
            applied = desk.apply_pending(timeout=APPLY_WAIT)
            record = desk.buffer.get(body["key"])
        finally:
            desk.close()
    assert record is not None
    out = record.as_dict() | {"result": result["result"], "applied_here": applied is not None}
    if as_json:
        print_json(out)
        return
    line = f"{result['result']} {record.key} ({record.kind}): {record.state.value}"
    if record.commit:
        line += f" in commit {record.commit[:10]}"
    elif record.state.value == "applied":
        line += " (the file already said so; no commit)"
    if record.reason:
        line += f"; {record.reason}"
    if applied is None and record.state.value == "pending":
        line += "; another hub process is applying, it will pick this up"
    console.print(line, soft_wrap=True)


def _task(ref: str) -> tuple[str, str]:
    parts = split_task_ref(ref)
    if parts is None:
        raise BadRequest(f"{ref!r} is not a task reference; write it like CUST-WP-0054-T02")
    return parts


@event.command("status")
@click.argument("ref")
@click.argument("status")
@click.option("--note", help="A progress note to record with the change.")
@_actor
@_key
@_json
@handle_errors
def status(
    ref: str, status: str, note: str | None, actor: str | None, key: str | None, as_json: bool
) -> None:
    """Set a task's status (todo | in-progress | blocked | done | cancelled), or a workplan's
    status when REF is a workplan id (draft | active | blocked | done | cancelled).

    Example: statehub event status CUST-WP-0054-T02 done --note "railiance01 tunnels moved"
    """
    body: dict[str, Any] = {
        "key": key or new_event_key(),
        "actor": actor or default_actor(),
        "status": status,
    }
    if is_workplan_id(ref):
        if note:
            raise BadRequest("--note goes with a task's status; use 'statehub event note' for a workplan")
        body |= {"kind": "workplan.status", "workplan": ref}
    else:
        workplan, task = _task(ref)
        body |= {"kind": "task.status", "workplan": workplan, "task": task}
        if note:
            body["note"] = note
    _send(body, as_json)


@event.command("note")
@click.argument("ref")
@click.argument("text")
@_actor
@_key
@_json
@handle_errors
def note(ref: str, text: str, actor: str | None, key: str | None, as_json: bool) -> None:
    """Append a progress note to a workplan (REF: a workplan id or a task reference).

    Example: statehub event note CUST-WP-0054-T02 "railiance01 tunnels moved"
    """
    body: dict[str, Any] = {
        "key": key or new_event_key(),
        "kind": "progress.note",
        "actor": actor or default_actor(),
    }
    if is_workplan_id(ref):
        body["workplan"] = ref
    else:
        body["workplan"], body["task"] = _task(ref)
    body["note"] = text
    _send(body, as_json)


@event.command("add")
@click.argument("workplan")
@click.argument("title")
@click.option("--owner", help="Who owns the new task.")
@click.option("--depends-on", "depends_on", multiple=True, help="A task id or reference; repeatable.")
@click.option("--task", "task_id", help="The new task's id (default: the next free one).")
@_actor
@_key
@_json
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
        "key": key or new_event_key(),
        "kind": "task.add",
        "workplan": workplan,
        "title": title,
        "actor": actor or default_actor(),
    }
    if owner:
        body["owner"] = owner
    if depends_on:
        body["depends_on"] = list(depends_on)
    if task_id is None:
        with open_hub() as hub:
            desk = EventDesk(hub)
            try:
                task_id = next_task_id(hub, desk.buffer, workplan)
            finally:
                desk.close()
    body["task"] = task_id
    _send(body, as_json)


@click.command()
@click.option(
    "--state", type=click.Choice(["pending", "applied", "rejected"]), help="Only events in this state."
)
@click.option("--repo", help="Only events for this repo (slug).")
@click.option(
    "--limit", default=100, show_default=True, type=click.IntRange(1, 1000), help="At most this many events."
)
@click.option(
    "--offset", default=0, show_default=True, type=click.IntRange(0, 2**31 - 1), help="Skip this many events."
)
@_json
@handle_errors
def events(state: str | None, repo: str | None, limit: int, offset: int, as_json: bool) -> None:
    """List events in the write buffer, oldest first, with their state and reason.

    Example: statehub events --state pending
    """
    with open_hub() as hub:
        desk = EventDesk(hub)
        try:
            items, total = desk.buffer.list_events(state=state, repo=repo, limit=limit, offset=offset)
        finally:
            desk.close()
    if as_json:
        print_json({"items": [item.as_dict() for item in items], "total": total})
        return
    rows = [
        (e.key, e.kind, e.repo, e.state.value, (e.commit or "")[:10], e.reason or "", e.accepted_at)
        for e in items
    ]
    print_table(
        f"Events ({total})", ["key", "kind", "repo", "state", "commit", "reason", "accepted"], rows, total
    )
