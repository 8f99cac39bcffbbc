"""``statehub fleet promote | place | set-state | gate | set-role``: fleet changes sent as events.

Each command sends one ``fleet.*`` event to the write buffer, exactly as
``POST /events`` would, and applies it at once unless a running hub is
applying (then the hub does it within a second). A change the fleet rules
refuse is answered with every reason and exit code 6; nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from statehub.cache import fleet_queries
from statehub.cache.fleet_queries import LoadedFleet
from statehub.cli._context import handle_errors
from statehub.cli._options import event_options, fleet_repo_option
from statehub.cli._sending import send_event
from statehub.errors import BadRequest
from workplans import MachineRole, WorkloadState

if TYPE_CHECKING:
    from statehub.events import EventDesk

__all__ = ["gate", "place", "promote", "set_role", "set_state"]

_note = click.option("--note", help="Why, in a few words; kept with the event.")


Change = dict[str, Any] | Callable[[LoadedFleet], dict[str, Any]]
"""The event's fields, or a function of the fleet registry that returns them."""


def _send_change(change: Change, repo: str | None, key: str | None, actor: str | None, as_json: bool) -> None:
    """Send a ``fleet.*`` event to the repo holding registry/fleet.toml (``--repo``, or the only one);
    an event the fleet rules reject when applied exits 6 with every reason."""

    def build(desk: EventDesk) -> dict[str, Any]:
        with desk.hub.engine.connect() as conn:
            fleet = fleet_queries.load_fleet(conn, repo)
        return (change(fleet) if callable(change) else change) | {"repo": fleet.repo}

    send_event(build, actor=actor, key=key, as_json=as_json, refuse_rejected=True)


@click.command()
@click.argument("workload")
@fleet_repo_option
@_note
@event_options
@handle_errors
def promote(
    workload: str, repo: str | None, note: str | None, actor: str | None, key: str | None, as_json: bool
) -> None:
    """Promote WORKLOAD on its target host; refused with every unmet gate item.

    Example: statehub fleet promote woodpecker-ci
    """
    body = {"kind": "fleet.workload.state", "workload": workload, "state": "promoted", "note": note}
    _send_change(body, repo, key, actor, as_json)


@click.command()
@click.argument("workload")
@click.option("--on", "host", required=True, help="The machine WORKLOAD must move to.")
@fleet_repo_option
@_note
@event_options
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
    _send_change(body, repo, key, actor, as_json)


@click.command("set-state")
@click.argument("workload")
@click.argument("state", type=click.Choice([s.value for s in WorkloadState]))
@fleet_repo_option
@_note
@event_options
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
    _send_change(body, repo, key, actor, as_json)


@click.command()
@click.argument("workload")
@click.option("--overlay-repo", help="The overlay repo that deploys WORKLOAD.")
@click.option("--stage", "stages", multiple=True, help="A proven stage (deploy, observe, promote, rollback).")
@click.option("--canary-observed/--no-canary-observed", default=None, help="Was the canary watched?")
@click.option("--operator-approval", help="Who approved the promotion.")
@click.option("--image", help="The image, pinned by digest: name@sha256:<64 hex>.")
@click.option("--backup-restore-drill", help="Date of the last restore drill (YYYY-MM-DD).")
@click.option("--exception", "exception_", help="A documented exception with its rollback.")
@fleet_repo_option
@_note
@event_options
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

    def body(fleet: LoadedFleet) -> dict[str, Any]:
        if stages:  # added to the stages already proven
            found = fleet.registry.workload(workload)
            proven = found.gate.stages_proven if found is not None and found.gate is not None else ()
            given["stages_proven"] = list(dict.fromkeys((*proven, *stages)))
        return {"kind": "fleet.workload.gate", "workload": workload, "gate": given, "note": note}

    _send_change(body, repo, key, actor, as_json)


@click.command("set-role")
@click.argument("machine")
@click.argument("role", type=click.Choice([r.value for r in MachineRole]))
@fleet_repo_option
@_note
@event_options
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
    _send_change(body, repo, key, actor, as_json)
