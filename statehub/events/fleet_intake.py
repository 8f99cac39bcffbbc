"""Intake checks for fleet events: the fleet rules, asked before anything is stored.

Each fleet event in a batch is checked against the registry as it will be
when its turn comes: the indexed file, then the fleet events already pending
in the write buffer, then the earlier events of the same batch. A refusal is
a 422 with every reason; nothing of the batch is stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry import apply_to_registry, check_change
from statehub.cache.fleet_queries import load_fleet
from statehub.errors import HubError
from workplans import FleetRegistry, InvalidEvent, parse_event
from workplans.fleet_event_types import FleetEvent

if TYPE_CHECKING:
    from statehub.hub import Hub
    from sync.buffer import WriteBuffer

__all__ = ["FleetIntake"]


class FleetIntake:
    def __init__(self, hub: Hub, buffer: WriteBuffer) -> None:
        self.hub = hub
        self.buffer = buffer
        self._working: dict[str, FleetRegistry | str] = {}
        """repo -> the registry as pending events leave it, or why it cannot be read."""

    def refusals(self, event: FleetEvent, repo: str) -> list[str]:
        """Why the rules refuse ``event``; empty when it may be stored (it then counts for the next)."""
        if self.buffer.get(event.key) is not None:
            return []  # a resend: the buffer tells a duplicate from a reused key
        fleet = self._registry(repo)
        if isinstance(fleet, str):
            return [fleet]
        reasons = check_change(fleet, event.change)
        if not reasons:
            self._working[repo] = apply_to_registry(fleet, event.change)
        return reasons

    def _registry(self, repo: str) -> FleetRegistry | str:
        if repo not in self._working:
            try:
                with self.hub.engine.connect() as conn:
                    fleet = load_fleet(conn, repo).registry
            except HubError as error:
                self._working[repo] = error.message
                return error.message
            for record in self.buffer.pending(repo):
                try:
                    pending = parse_event(record.event, self.hub.event_kinds)
                except InvalidEvent:
                    continue
                if isinstance(pending, FleetEvent) and not check_change(fleet, pending.change):
                    fleet = apply_to_registry(fleet, pending.change)
            self._working[repo] = fleet
        return self._working[repo]
