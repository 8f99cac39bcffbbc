"""Fleet changes as events, and applying one to the text of ``registry/fleet.toml``.

Format level only: which fields an event carries and how the file's text
changes. Whether a change is *allowed* (frozen hosts, the promotion gate,
valid transitions) is decided by ``registry.check_change`` before this runs.
Write-back goes through tomlkit so comments, key order and spacing stay as
the person wrote them, and every untouched line keeps its bytes; a change the
file already reflects returns the text unchanged, byte for byte.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import tomlkit
from tomlkit.items import AoT, Table

from workplans.errors import FleetChangeError
from workplans.fleet import GATE_KEYS
from workplans.fleet_models import MachineRole, WorkloadState
from workplans.lines import BOM, keep_line_endings

__all__ = [
    "FLEET_EVENT_KINDS",
    "FleetChange",
    "FleetChangeError",
    "PlaceWorkload",
    "SetGateFields",
    "SetMachineRole",
    "SetWorkloadState",
    "apply_fleet_change",
    "gate_value",
    "parse_fleet_change",
]


@dataclass(frozen=True, slots=True)
class SetWorkloadState:
    workload: str
    state: WorkloadState
    kind = "fleet.workload.state"


@dataclass(frozen=True, slots=True)
class PlaceWorkload:
    """Give a workload a new target host: where it must move."""

    workload: str
    target_host: str
    kind = "fleet.workload.place"


@dataclass(frozen=True, slots=True)
class SetGateFields:
    """Set (or, with None, clear) fields of a workload's promotion gate."""

    workload: str
    fields: dict[str, Any] = field(default_factory=dict)
    kind = "fleet.workload.gate"


@dataclass(frozen=True, slots=True)
class SetMachineRole:
    machine: str
    role: MachineRole
    kind = "fleet.machine.role"


FleetChange = SetWorkloadState | PlaceWorkload | SetGateFields | SetMachineRole
FLEET_EVENT_KINDS = (SetWorkloadState.kind, PlaceWorkload.kind, SetGateFields.kind, SetMachineRole.kind)


def _text(event: Mapping[str, Any], key: str) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value.strip():
        raise FleetChangeError(f"{event.get('kind')} needs '{key}' as a non-empty string")
    return value


def gate_value(key: str, value: Any) -> Any:
    """Check one gate field's value and give it the type the file holds (None clears it)."""
    if key not in GATE_KEYS:
        raise FleetChangeError(f"unknown gate field {key!r}: valid fields are {', '.join(GATE_KEYS)}")
    if value is None:
        return None
    if key == "stages_proven":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise FleetChangeError("gate field 'stages_proven' must be a list of strings")
        return tuple(value)
    if key == "canary_observed":
        if not isinstance(value, bool):
            raise FleetChangeError("gate field 'canary_observed' must be true or false")
        return value
    if key == "backup_restore_drill":
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise FleetChangeError(
                f"gate field 'backup_restore_drill' must be a date like 2026-07-10, not {value!r}"
            ) from None
    if not isinstance(value, str):
        raise FleetChangeError(f"gate field {key!r} must be a string")
    return value


def parse_fleet_change(event: Mapping[str, Any]) -> FleetChange:
    """Read a fleet event's fields (docs/format.md) into a change; FleetChangeError says what is wrong."""
    kind = event.get("kind")
    if kind == SetWorkloadState.kind:
        workload, state = _text(event, "workload"), _text(event, "state")
        try:
            return SetWorkloadState(workload, WorkloadState(state))
        except ValueError:
            valid = " | ".join(s.value for s in WorkloadState)
            raise FleetChangeError(f"invalid state {state!r}: valid states are {valid}") from None
    if kind == PlaceWorkload.kind:
        return PlaceWorkload(_text(event, "workload"), _text(event, "target_host"))
    if kind == SetGateFields.kind:
        gate = event.get("gate")
        if not isinstance(gate, Mapping) or not gate:
            raise FleetChangeError(f"{kind} needs 'gate' as an object of gate fields to set")
        return SetGateFields(_text(event, "workload"), {k: gate_value(k, v) for k, v in gate.items()})
    if kind == SetMachineRole.kind:
        machine, role = _text(event, "machine"), _text(event, "role")
        try:
            return SetMachineRole(machine, MachineRole(role))
        except ValueError:
            valid = " | ".join(r.value for r in MachineRole)
            raise FleetChangeError(f"invalid role {role!r}: valid roles are {valid}") from None
    raise FleetChangeError(
        f"unknown fleet event kind {kind!r}: valid kinds are {', '.join(FLEET_EVENT_KINDS)}"
    )


def _entry(doc: Any, array: str, name: str, what: str) -> Table:
    tables = doc.get(array)
    if isinstance(tables, AoT | list):
        for table in tables:
            if isinstance(table, Table | dict) and table.get("name") == name:
                return table  # type: ignore[return-value]
    raise FleetChangeError(f"no {what} named {name!r} in the fleet registry")


def _set(table: Any, key: str, value: Any) -> bool:
    """Set ``key`` unless it already holds ``value``; True when the table changed."""
    if value is None:
        if key in table:
            del table[key]
            return True
        return False
    current = table.get(key)
    if hasattr(current, "unwrap"):
        current = current.unwrap()
    if isinstance(current, list) and isinstance(value, tuple):
        same = current == list(value)
    else:
        same = key in table and current == value and type(current) is type(value)
    if same:
        return False
    table[key] = list(value) if isinstance(value, tuple) else value
    return True


def apply_fleet_change(text: str, change: FleetChange) -> str:
    """The file's text with the change made; unchanged text when the file already reflects it.

    A byte order mark and every line the change leaves alone keep their bytes;
    new and changed lines take their neighbourhood's line ending
    (:func:`workplans.lines.keep_line_endings`).
    """
    bom = BOM if text.startswith(BOM) else ""
    doc = tomlkit.parse(text.removeprefix(BOM))
    changed: bool
    if isinstance(change, SetMachineRole):
        changed = _set(_entry(doc, "machines", change.machine, "machine"), "role", change.role.value)
    else:
        workload = _entry(doc, "workloads", change.workload, "workload")
        if isinstance(change, SetWorkloadState):
            changed = _set(workload, "state", change.state.value)
        elif isinstance(change, PlaceWorkload):
            changed = _set(workload, "target_host", change.target_host)
        else:
            changed = _set_gate(workload, change.fields)
    if not changed:
        return text
    return bom + keep_line_endings(text.removeprefix(BOM), tomlkit.dumps(doc))


def _set_gate(workload: Any, fields: Mapping[str, Any]) -> bool:
    gate = workload.get("gate")
    if gate is None:
        if all(v is None for v in fields.values()):
            return False
        gate = tomlkit.table()
        workload["gate"] = gate
        gate = workload["gate"]
    changed = False
    for key, value in fields.items():
        changed = _set(gate, key, value) or changed
    return changed
