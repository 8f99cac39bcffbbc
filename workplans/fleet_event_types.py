"""The four fleet event kinds as typed events: how each is read from JSON and what change it asks for.

They are the fleet kinds of the event table in docs/format.md and ride the same
buffer, applier and commits as workplan events. Their kind table rows are
built by ``registry.event_kinds``, because applying one is allowed only
after the fleet rules say yes, and those rules live in ``registry``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from workplans.events import Event, FieldReader
from workplans.fleet import FLEET_NAME
from workplans.fleet_events import (
    FleetChange,
    FleetChangeError,
    PlaceWorkload,
    SetGateFields,
    SetMachineRole,
    SetWorkloadState,
    gate_value,
)
from workplans.fleet_models import MachineRole, WorkloadState

__all__ = [
    "FLEET_READERS",
    "FleetEvent",
    "MachineRoleEvent",
    "WorkloadGateEvent",
    "WorkloadPlaceEvent",
    "WorkloadStateEvent",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetEvent(Event):
    """A change to ``registry/fleet.toml``; ``rule_field`` is the field a refusal is reported on."""

    note: str | None = None

    @property
    def change(self) -> FleetChange:
        raise NotImplementedError

    @property
    def rule_field(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        """One line for the commit message."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadStateEvent(FleetEvent):
    workload: str
    state: WorkloadState

    @property
    def change(self) -> FleetChange:
        return SetWorkloadState(self.workload, self.state)

    @property
    def rule_field(self) -> str:
        return "state"

    def describe(self) -> str:
        return f"workload {self.workload}: state {self.state}"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadPlaceEvent(FleetEvent):
    workload: str
    target_host: str

    @property
    def change(self) -> FleetChange:
        return PlaceWorkload(self.workload, self.target_host)

    @property
    def rule_field(self) -> str:
        return "target_host"

    def describe(self) -> str:
        return f"workload {self.workload}: target host {self.target_host}"


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadGateEvent(FleetEvent):
    workload: str
    gate: dict[str, Any] = field(default_factory=dict)

    @property
    def change(self) -> FleetChange:
        return SetGateFields(self.workload, dict(self.gate))

    @property
    def rule_field(self) -> str:
        return "gate"

    def describe(self) -> str:
        return f"workload {self.workload}: gate {', '.join(sorted(self.gate))}"

    def to_json(self) -> dict[str, Any]:
        out = Event.to_json(self)  # stringifies the gate; put back its JSON form, nulls included
        out["gate"] = {key: _json_value(value) for key, value in sorted(self.gate.items())}
        return out

    def __hash__(self) -> int:
        return hash((self.key, self.workload))


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineRoleEvent(FleetEvent):
    machine: str
    role: MachineRole

    @property
    def change(self) -> FleetChange:
        return SetMachineRole(self.machine, self.role)

    @property
    def rule_field(self) -> str:
        return "role"

    def describe(self) -> str:
        return f"machine {self.machine}: role {self.role}"


def _name(reader: FieldReader, name: str) -> str | None:
    return reader.matching(name, FLEET_NAME, "state-hub-api", required=True)


def _enum(reader: FieldReader, name: str, enum: type[WorkloadState] | type[MachineRole]) -> Any:
    value = reader.text(name, required=True)
    if value is None:
        return None
    try:
        return enum(value)
    except ValueError:
        reader.problem(name, f"{value!r} is not one of {' | '.join(m.value for m in enum)}")
        return None


def _ready(reader: FieldReader, common: dict[str, Any], **values: Any) -> dict[str, Any] | None:
    values["note"] = reader.note("note", required=False)
    if reader.problems or any(common[name] is None for name in ("key", "actor", "at")):
        return None
    return common | values


def _read_state(reader: FieldReader, common: dict[str, Any]) -> Event | None:
    values = _ready(
        reader, common, workload=_name(reader, "workload"), state=_enum(reader, "state", WorkloadState)
    )
    return WorkloadStateEvent(kind=SetWorkloadState.kind, **values) if values else None


def _read_place(reader: FieldReader, common: dict[str, Any]) -> Event | None:
    values = _ready(
        reader, common, workload=_name(reader, "workload"), target_host=_name(reader, "target_host")
    )
    return WorkloadPlaceEvent(kind=PlaceWorkload.kind, **values) if values else None


def _read_gate(reader: FieldReader, common: dict[str, Any]) -> Event | None:
    workload = _name(reader, "workload")
    reader.read.add("gate")
    raw = reader.data.get("gate")
    gate: dict[str, Any] = {}
    if not isinstance(raw, dict) or not raw:
        reader.problem("gate", "required: an object of gate fields to set (null clears one)")
    else:
        for key, value in raw.items():
            try:
                gate[str(key)] = gate_value(str(key), value)
            except FleetChangeError as error:
                reader.problem("gate", str(error))
    values = _ready(reader, common, workload=workload, gate=gate)
    return WorkloadGateEvent(kind=SetGateFields.kind, **values) if values else None


def _read_role(reader: FieldReader, common: dict[str, Any]) -> Event | None:
    values = _ready(reader, common, machine=_name(reader, "machine"), role=_enum(reader, "role", MachineRole))
    return MachineRoleEvent(kind=SetMachineRole.kind, **values) if values else None


FLEET_READERS = {
    SetWorkloadState.kind: _read_state,
    PlaceWorkload.kind: _read_place,
    SetGateFields.kind: _read_gate,
    SetMachineRole.kind: _read_role,
}
"""kind -> reader, for ``registry.event_kinds`` to pair with its checked applier."""
