"""Every error the ``registry`` package raises, in one tree.

    RegistryError            the root: catch this to catch anything the fleet rules refuse
    ├── UnknownMachine       a machine name the fleet registry does not hold (also a LookupError)
    ├── FleetFileBroken      registry/fleet.toml no longer parses: a fleet event waits until it is fixed
    └── FleetChangeRefused   the fleet rules refuse a change against the file as it is now

``FleetFileBroken`` and ``FleetChangeRefused`` are raised by the fleet kinds'
appliers, so they are also ``workplans`` apply errors (``BrokenTarget``,
``NoLongerApplies``) and the write-back treats them like a workplan event's.
``details`` is structured data for a client (None when the message says it
all); the hub maps this tree to its own in ``statehub.errors``.
"""

from __future__ import annotations

from typing import Any

from workplans.errors import BrokenTarget, NoLongerApplies

__all__ = ["FleetChangeRefused", "FleetFileBroken", "RegistryError", "UnknownMachine"]


class RegistryError(Exception):
    """The root of the tree; the message tells the person what to change."""

    details: dict[str, Any] | None = None


class UnknownMachine(RegistryError, LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.message = (
            f"no machine named {name!r} in the fleet registry (machines: {', '.join(known) or 'none'})"
        )
        super().__init__(self.message)


class FleetFileBroken(RegistryError, BrokenTarget):
    """registry/fleet.toml does not parse; the message says where, and the event waits."""


class FleetChangeRefused(RegistryError, NoLongerApplies):
    """The rules say no to the change against the fleet file as it is now; the message gives every reason."""
