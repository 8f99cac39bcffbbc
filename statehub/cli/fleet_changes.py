"""``statehub fleet promote | place | set-state | gate | set-role``: fleet changes sent as events.

Each command sends one ``fleet.*`` event to the write buffer, exactly as
``POST /events`` would, and applies it at once unless a running hub is
applying (then the hub does it within a second). A change the fleet rules
refuse is answered with every reason and exit code 6; nothing is written.
"""

from __future__ import annotations

from typing import Any

import click

from statehub.auth.event_policy import LOCAL_COMMAND
from statehub.cache import fleet_queries
from statehub.cli._context import handle_errors, open_hub
from statehub.cli._output import console, print_json
from statehub.errors import BadRequest, Unprocessable
from statehub.events import EventDesk, new_event_key
from statehub.events.intake import default_actor
from workplans import MachineRole, WorkloadState

__all__ = ["gate", "place", "promote", "set_role", "set_state"]

APPLY_WAIT = 5.0
"""Seconds to wait for another applier (a running server) before leaving the event to it."""

_repo = click.option("--repo", help="The repo holding registry/fleet.toml, when more than one does.")
_json = click.option("--json", "as_json", is_flag=True, help="Print the stored event as JSON.")
_actor = click.option("--actor", help="Who is acting (default: $STATEHUB_ACTOR, else your login name).")
_key = click.option(
    "--key", help="Idempotency key (default: a fresh one). Resend with the same key to retry."
)
_note = click.option("--note", help="Why, in a few words; kept with the event.")


def _send(body: dict[str, Any], repo: str | None, key: str | None, actor: str | None, as_json: bool) -> None:
    with open_hub() as hub:
        with hub.engine.connect() as conn:
            slug = fleet_queries.load_fleet(conn, repo).repo
        body = {k: v for k, v in body.items() if v is not None}
        body |= {"key": key or new_event_key(), "actor": actor or default_actor(), "repo": slug}
        desk = EventDesk(hub)
        try:
            result = desk.submit(body, authorise=LOCAL_COMMAND)[0]
            applied = desk.apply_pending([slug], timeout=APPLY_WAIT)
            record = desk.buffer.get(body["key"])
        finally:
            desk.close()
    assert record is not None
    if as_json:
        print_json(record.as_dict() | {"result": result["result"], "applied_here": applied is not None})
    else:
        line = f"{result['result']} {record.key} ({record.kind}): {record.state.value}"
        if record.commit:
            line += f" in commit {record.commit[:10]}"
        elif record.state.value == "applied":
            line += " (the file already said so; no commit)"
        if applied is None and record.state.value == "pending":
            line += "; another hub process is applying, it will pick this up"
        console.print(line)
    if record.state.value == "rejected":
        raise Unprocessable(f"the change was rejected when applied: {record.reason}")


@click.command()
@click.argument("workload")
@_repo
@_note
@_actor
@_key
@_json
@handle_errors
def promote(
    workload: str, repo: str | None, note: str | None, actor: str | None, key: str | None, as_json: bool
) -> None:
    """Promote WORKLOAD on its target host; refused with every unmet gate item.

    Example: statehub fleet promote woodpecker-ci
    """
    body = {"kind": "fleet.workload.state", "workload": workload, "state": "promoted", "note": note}
    _send(body, repo, key, actor, as_json)


@click.command()
@click.argument("workload")
@click.option("--on", "host", required=True, help="The machine WORKLOAD must move to.")
@_repo
@_note
@_actor
@_key
@_json
@handle_errors
def place(
    workload: str,
    host: str,
    repo: str | None,
    note: str | None,
    actor: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Give WORKLOAD a new target host; refused on a frozen-legacy or temporary-dev machine.

    Example: statehub fleet place vault --on railiance01
    """
    body = {"kind": "fleet.workload.place", "workload": workload, "target_host": host, "note": note}
    _send(body, repo, key, actor, as_json)


@click.command("set-state")
@click.argument("workload")
@click.argument("state", type=click.Choice([s.value for s in WorkloadState]))
@_repo
@_note
@_actor
@_key
@_json
@handle_errors
def set_state(
    workload: str,
    state: str,
    repo: str | None,
    note: str | None,
    actor: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Move WORKLOAD to STATE (running -> draining -> migrated -> promoted -> retired).

    Example: statehub fleet set-state container-registry migrated
    """
    body = {"kind": "fleet.workload.state", "workload": workload, "state": state, "note": note}
    _send(body, repo, key, actor, as_json)


@click.command()
@click.argument("workload")
@click.option("--overlay-repo", help="The overlay repo that deploys WORKLOAD.")
@click.option("--stage", "stages", multiple=True, help="A proven stage (deploy, observe, promote, rollback).")
@click.option("--canary-observed/--no-canary-observed", default=None, help="Was the canary watched?")
@click.option("--operator-approval", help="Who approved the promotion.")
@click.option("--image", help="The image, pinned by digest: name@sha256:<64 hex>.")
@click.option("--backup-restore-drill", help="Date of the last restore drill (YYYY-MM-DD).")
@click.option("--exception", "exception_", help="A documented exception with its rollback.")
@_repo
@_note
@_actor
@_key
@_json
@handle_errors
def gate(
    workload: str,
    overlay_repo: str | None,
    stages: tuple[str, ...],
    canary_observed: bool | None,
    operator_approval: str | None,
    image: str | None,
    backup_restore_drill: str | None,
    exception_: str | None,
    repo: str | None,
    note: str | None,
    actor: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Record promotion evidence for WORKLOAD: only the options given are set; --stage adds to the
    stages already proven.

    Example: statehub fleet gate container-registry --canary-observed --stage promote --stage rollback
    """
    if stages:
        with open_hub() as hub, hub.engine.connect() as conn:
            found = fleet_queries.load_fleet(conn, repo).registry.workload(workload)
        proven = found.gate.stages_proven if found is not None and found.gate is not None else ()
        stages = tuple(dict.fromkeys((*proven, *stages)))
    fields: dict[str, Any] = {
        "overlay_repo": overlay_repo,
        "stages_proven": list(stages) or None,
        "canary_observed": canary_observed,
        "operator_approval": operator_approval,
        "image": image,
        "backup_restore_drill": backup_restore_drill,
        "exception": exception_,
    }
    given = {k: v for k, v in fields.items() if v is not None}
    if not given:
        raise BadRequest("say what to record, e.g. --canary-observed or --image NAME@sha256:...")
    body = {"kind": "fleet.workload.gate", "workload": workload, "gate": given, "note": note}
    _send(body, repo, key, actor, as_json)


@click.command("set-role")
@click.argument("machine")
@click.argument("role", type=click.Choice([r.value for r in MachineRole]))
@_repo
@_note
@_actor
@_key
@_json
@handle_errors
def set_role(
    machine: str,
    role: str,
    repo: str | None,
    note: str | None,
    actor: str | None,
    key: str | None,
    as_json: bool,
) -> None:
    """Give MACHINE a new role; refused when that would break a rule (e.g. freezing a planned target).

    Example: statehub fleet set-role coulombcore frozen-legacy
    """
    body = {"kind": "fleet.machine.role", "machine": machine, "role": role, "note": note}
    _send(body, repo, key, actor, as_json)
