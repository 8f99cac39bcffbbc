"""Register the four fleet event kinds, with an applier that asks the fleet rules first.

Intake already refuses a change the rules forbid (422). The applier asks
again against the file as it is when the event is applied: if someone changed
the file in between so the change no longer holds (a machine frozen since, a
gate field removed), the event is rejected with the reasons instead of
written. Importing this module registers the kinds; ``statehub.events`` does.
"""

from __future__ import annotations

from typing import Any

from registry.changes import check_change
from workplans.apply import BrokenTarget, NoLongerApplies
from workplans.events import EventKind, register_event_kind
from workplans.fleet import parse_fleet
from workplans.fleet_event_types import FLEET_READERS, FleetEvent
from workplans.fleet_events import FleetChangeError, apply_fleet_change
from workplans.fleet_models import FLEET_PATH
from workplans.problems import FormatError

__all__ = ["apply_fleet_event", "install"]


def apply_fleet_event(text: str, event: Any) -> str:
    """(text of registry/fleet.toml, fleet event) -> new text, once the rules allow the change."""
    assert isinstance(event, FleetEvent)
    try:
        fleet = parse_fleet(text)
    except FormatError as error:
        raise BrokenTarget(f"{FLEET_PATH} does not parse ({error}); fix the file") from None
    reasons = check_change(fleet, event.change)
    if reasons:
        raise NoLongerApplies("; ".join(reasons))
    try:
        return apply_fleet_change(text, event.change)
    except FleetChangeError as error:
        raise NoLongerApplies(str(error)) from None


def install() -> None:
    for name, read in FLEET_READERS.items():
        register_event_kind(EventKind(name, read, apply_fleet_event, fixed_path=FLEET_PATH))


install()
