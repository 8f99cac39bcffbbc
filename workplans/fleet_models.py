"""Typed models of the fleet registry, ``registry/fleet.toml`` (FORMAT.md).

Plain frozen dataclasses like the other format models: structural equality for
round-trip tests, unknown keys kept in ``extra`` so write-back leaves them be.
The rules over these models (what a role allows, which transitions are valid,
what the promotion gate needs) live in the ``registry`` package, not here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from workplans.enums import MachineRole, WorkloadState

__all__ = [
    "FLEET_PATH",
    "FleetRegistry",
    "Gate",
    "Lane",
    "Machine",
    "MachineRole",
    "Workload",
    "WorkloadState",
]

FLEET_PATH = "registry/fleet.toml"


@dataclass(frozen=True, slots=True)
class Machine:
    name: str
    role: MachineRole
    address: str | None = None
    notes: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Gate:
    """The evidence a workload needs before it may be ``promoted``."""

    overlay_repo: str | None = None
    stages_proven: tuple[str, ...] = ()
    backup_restore_drill: dt.date | None = None
    canary_observed: bool = False
    operator_approval: str | None = None
    image: str | None = None
    exception: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    current_host: str
    target_host: str | None = None
    owner: str | None = None
    wave: int | None = None
    stateful: bool = False
    state: WorkloadState = WorkloadState.RUNNING
    gate: Gate | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def runs_on(self) -> str | None:
        """The machine production depends on for this workload right now.

        Until promotion the old host still serves; a promoted workload serves
        from its target; a retired one runs nowhere.
        """
        if self.state is WorkloadState.RETIRED:
            return None
        if self.state is WorkloadState.PROMOTED:
            return self.target_host or self.current_host
        return self.current_host


@dataclass(frozen=True, slots=True)
class Lane:
    """A network path production depends on: ``from`` -> ``via``... -> ``to``."""

    name: str
    from_host: str
    to_host: str
    via: tuple[str, ...] = ()
    critical: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hops(self) -> tuple[tuple[str, str], ...]:
        """Every machine on the lane with where it sits: ("from"|"via"|"to", name)."""
        return (("from", self.from_host), *(("via", v) for v in self.via), ("to", self.to_host))


@dataclass(frozen=True, slots=True)
class FleetRegistry:
    machines: tuple[Machine, ...] = ()
    workloads: tuple[Workload, ...] = ()
    lanes: tuple[Lane, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def machine(self, name: str) -> Machine | None:
        return next((m for m in self.machines if m.name == name), None)

    def workload(self, name: str) -> Workload | None:
        return next((w for w in self.workloads if w.name == name), None)
