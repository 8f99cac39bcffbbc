"""``statehub buffer ...``: the relay of accepted events to the upstream hub, and decisions on it.

``status`` shows what is waiting and what the upstream refused; ``retry``
re-queues a parked event after its cause was fixed; ``drop`` is the one way an
event stops being relayed unconfirmed, an explicit decision logged with the
event and its reason (ADR-020).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import click

from statehub.cli._context import handle_errors, open_desk
from statehub.cli._options import actor_option, json_option
from statehub.cli._output import print_json, print_table, say
from statehub.errors import BadRequest
from statehub.events.intake import default_actor
from statehub.events.relaying import relay_status

if TYPE_CHECKING:
    from statehub.events import EventDesk
    from sync.relay_queue import RelayQueue

__all__ = ["buffer"]

log = logging.getLogger("statehub.relay.decisions")


@click.group()
def buffer() -> None:
    """The write buffer's relay to the upstream hub: what waits, what was refused.

    Example: statehub buffer status
    """


def _queue(desk: EventDesk) -> RelayQueue:
    if desk.relay_queue is None:
        raise BadRequest("this hub has no upstream: set STATEHUB_UPSTREAM to the upstream hub's URL")
    return desk.relay_queue


@buffer.command("status")
@json_option()
@handle_errors
def status(as_json: bool) -> None:
    """Show the buffer's counts and the relay: upstream, pending, oldest pending, parked events.

    Example: statehub buffer status --json
    """
    with open_desk() as desk:
        events, relay = desk.buffer.counts(), relay_status(desk)
    if as_json:
        print_json({"events": events, "relay": relay})
        return
    say(f"events: {events.pending} pending, {events.applied} applied, {events.rejected} rejected here")
    if relay is None:
        say("relay: no upstream configured (set STATEHUB_UPSTREAM to relay events)")
        return
    reachable = {True: "reachable", False: "unreachable", None: "not contacted yet"}[relay.reachable]
    say(f"upstream: {relay.upstream} ({reachable})")
    if relay.paused:
        say(("PAUSED", "bold"), f": {relay.paused}")
    elif isinstance(relay.last_error, str) and relay.last_error:
        say(f"last error: {relay.last_error}")
    counts, age = relay.counts, relay.oldest_pending_age_s
    oldest = f", oldest waiting {age:.0f} s" if age is not None else ""
    say(
        f"relay: {relay.pending} pending ({counts.queued} queued, {counts.sent} sent){oldest}, "
        f"{counts.confirmed} confirmed, {counts.parked} parked"
    )
    if relay.parked_events:
        rows = [(p.key, p.reason) for p in relay.parked_events]
        print_table("parked (statehub buffer retry KEY | drop KEY --reason TEXT)", ["key", "reason"], rows)


@buffer.command("retry")
@click.argument("key")
@actor_option
@json_option()
@handle_errors
def retry(key: str, actor: str | None, as_json: bool) -> None:
    """Queue a parked event again, once what the upstream refused is fixed.

    Example: statehub buffer retry 01JZ3ABCDEF0123456789XYZAB
    """
    who = actor or default_actor()
    with open_desk() as desk:
        _queue(desk).retry(key, who)  # an UnknownRelayKey exits 4 (as_hub_error)
    log.warning("relay decision: %s re-queued parked event %s", who, key)
    if as_json:
        print_json({"key": key, "state": "queued", "actor": who})
        return
    say(f"queued {key} again; a running hub relays it within a second")


@buffer.command("drop")
@click.argument("key")
@click.option("--reason", required=True, help="Why this event must never reach the upstream (logged).")
@actor_option
@json_option()
@handle_errors
def drop(key: str, reason: str, actor: str | None, as_json: bool) -> None:
    """Stop relaying one event: an explicit decision, logged with the event and your reason.

    The event's local record stays; nothing else ever removes an event from the relay.

    Example: statehub buffer drop 01JZ3ABCDEF0123456789XYZAB --reason "task was deleted upstream on purpose"
    """
    who = actor or default_actor()
    if not reason.strip():
        raise BadRequest("--reason must say why the event is dropped")
    with open_desk() as desk:
        dropped = _queue(desk).drop(key, reason, who)  # an UnknownRelayKey exits 4 (as_hub_error)
    log.warning("relay decision: %s dropped event %s (was %s): %s", who, key, dropped.was.value, reason)
    if as_json:
        print_json(dropped)
        return
    say(f"dropped {key} (was {dropped.was.value}) from the relay: {reason}")
