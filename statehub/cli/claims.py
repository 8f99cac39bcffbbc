"""``statehub claim | heartbeat | release``: take a task under a lease, keep it, give it back (ADR-032).

The commands decide in the same lease store a running server uses (the buffer
file in the data dir), so a command and the server never both win a task. A won
claim or a release is an event: the command applies it at once unless another
process is applying (ADR-007), then that process does within a second.
Exit 5 when the claim is lost (the line says why), 4 for an unknown task.
"""

from __future__ import annotations

import click

from statehub import claims
from statehub.auth.event_policy import LOCAL_COMMAND
from statehub.cli._context import handle_errors, open_desk
from statehub.cli._options import actor_option, json_option
from statehub.cli._output import print_json, say
from statehub.cli._sending import APPLY_WAIT
from statehub.events.intake import default_actor
from workplans.events import RELEASE_STATUSES
from workplans.models import TaskStatus

__all__ = ["claim", "heartbeat", "release"]

lease_option = click.option(
    "--lease-s",
    "lease_s",
    type=click.IntRange(1, claims.MAX_LEASE_S),
    help=f"Seconds the lease lasts (1-{claims.MAX_LEASE_S}).",
)


@click.command()
@click.argument("ref")
@lease_option
@actor_option
@json_option("the claim")
@handle_errors
def claim(ref: str, lease_s: int | None, actor: str | None, as_json: bool) -> None:
    """Claim a task: nobody else can until you release it or the lease runs out.

    Claiming a task you hold renews the lease. Exit 5 (and why) when someone
    else holds it, a dependency is open, or it is not todo.

    Example: statehub claim CUST-WP-0054-T02 --lease-s 1800
    """
    with open_desk() as desk:
        won = claims.claim(
            desk, ref, actor or default_actor(), lease_s or claims.DEFAULT_LEASE_S, authorise=LOCAL_COMMAND
        )
        desk.apply_pending(timeout=APPLY_WAIT)
    if as_json:
        print_json(won)
    else:
        say(f"claimed {won.ref} as {won.actor} until {won.lease_expires_at} (claim {won.key})")


@click.command()
@click.argument("ref")
@lease_option
@actor_option
@json_option("the claim")
@handle_errors
def heartbeat(ref: str, lease_s: int | None, actor: str | None, as_json: bool) -> None:
    """Extend your lease on a task (by its own length unless --lease-s says); nothing is committed.

    Example: statehub heartbeat CUST-WP-0054-T02
    """
    with open_desk() as desk:
        beat = claims.heartbeat(desk, ref, actor or default_actor(), lease_s, authorise=LOCAL_COMMAND)
    if as_json:
        print_json(beat)
    else:
        say(f"{beat.ref} is yours until {beat.lease_expires_at}")


@click.command()
@click.argument("ref")
@click.option(
    "--status",
    required=True,
    type=click.Choice([s.value for s in RELEASE_STATUSES]),
    help="What the task becomes.",
)
@click.option("--note", help="A progress note to record with the release.")
@actor_option
@json_option("the release")
@handle_errors
def release(ref: str, status: str, note: str | None, actor: str | None, as_json: bool) -> None:
    """Release a task you claimed: it gets the status given and its owner from before the claim.

    Example: statehub release CUST-WP-0054-T02 --status done --note "tunnels moved"
    """
    with open_desk() as desk:
        done = claims.release(
            desk, ref, actor or default_actor(), TaskStatus(status), note, authorise=LOCAL_COMMAND
        )
        desk.apply_pending(timeout=APPLY_WAIT)
    if as_json:
        print_json(done)
    else:
        say(f"released {done.ref}: {done.status.value} (event {done.key})")
