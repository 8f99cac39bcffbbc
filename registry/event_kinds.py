"""The fleet event kinds, with an applier that asks the fleet rules first, and the hub's whole table.

Intake already refuses a change the rules forbid (422). The applier asks
again against the file as it is when the event is applied: if someone changed
the file in between so the change no longer holds (a machine frozen since, a
gate field removed), the event is rejected with the reasons instead of
written. :func:`hub_event_kinds` builds every kind the hub accepts, once; the
hub passes that table to intake and write-back. Importing registers nothing.
"""

from __future__ import annotations

from typing import Any

from registry.changes import check_change
from registry.errors import FleetChangeRefused, FleetFileBroken
from workplans.errors import FleetChangeError, FormatError
from workplans.event_kinds import workplan_event_kinds
from workplans.events import EventKind, EventKinds
from workplans.fleet import parse_fleet
from workplans.fleet_event_types import FLEET_READERS, FleetEvent
from workplans.fleet_events import apply_fleet_change
from workplans.fleet_models import FLEET_PATH

__all__ = ["apply_fleet_event", "fleet_event_kinds", "hub_event_kinds"]


def apply_fleet_event(text: str, event: Any) -> str:
    """(text of registry/fleet.toml, fleet event) -> new text, once the rules allow the change."""
    assert isinstance(event, FleetEvent)
    try:
        fleet = parse_fleet(text)
    except FormatError as error:
        raise FleetFileBroken(f"{FLEET_PATH} does not parse ({error}); fix the file") from None
    reasons = check_change(fleet, event.change)
    if reasons:
        raise FleetChangeRefused("; ".join(reasons))
    try:
        return apply_fleet_change(text, event.change)
    except FleetChangeError as error:
        raise FleetChangeRefused(str(error)) from None


def fleet_event_kinds() -> tuple[EventKind, ...]:
    """The four fleet kinds: each changes ``registry/fleet.toml`` once the rules say yes."""
    return tuple(
        EventKind(name, read, apply_fleet_event, fixed_path=FLEET_PATH)
        for name, read in FLEET_READERS.items()
    )


def hub_event_kinds() -> EventKinds:
    """Every kind the hub accepts: the workplan kinds and the fleet kinds, built once per hub."""
    return EventKinds([*workplan_event_kinds().values(), *fleet_event_kinds()])
