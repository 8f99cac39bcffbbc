"""The fleet registry file, ``registry/fleet.toml``: parse with every problem and its line, and write.

Validation here is about the file: types, known roles and states, unique
names, and references to machines the file declares. Whether a placement or a
promotion is *allowed* is the ``registry`` package's business.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from workplans._fields import KeyLines, Reader, type_name
from workplans._toml import load_toml
from workplans.fleet_models import (
    FLEET_PATH,
    FleetRegistry,
    Gate,
    Lane,
    Machine,
    MachineRole,
    Workload,
    WorkloadState,
)
from workplans.lines import BOM
from workplans.problems import FileProblem, FormatError

__all__ = ["FLEET_NAME", "GATE_KEYS", "parse_fleet", "render_fleet"]

FLEET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
"""Machine, workload and lane names: what a person would type on a command line."""

_TOP_KEYS = ("machines", "workloads", "lanes")
_MACHINE_KEYS = ("name", "role", "address", "notes")
_WORKLOAD_KEYS = ("name", "current_host", "target_host", "owner", "wave", "stateful", "state", "gate")
GATE_KEYS = (
    "overlay_repo",
    "stages_proven",
    "backup_restore_drill",
    "canary_observed",
    "operator_approval",
    "image",
    "exception",
)
_LANE_KEYS = ("name", "from", "to", "via", "critical")


def _boolean(reader: Reader, key: str) -> bool:
    value = reader.data.get(key, False)
    if not isinstance(value, bool):
        reader.problem(key, f"'{key}' must be true or false, not {type_name(value)}")
        return False
    return value


def _wave(reader: Reader) -> int | None:
    value = reader.data.get("wave")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        reader.problem("wave", f"'wave' must be an integer, not {type_name(value)}")
        return None
    if value < 0:
        reader.problem("wave", f"'wave' = {value} must be 0 or more")
        return None
    return value


def _tables(data: dict[str, Any], key: str, top: Reader) -> list[dict[str, Any]]:
    raw = data.get(key, [])
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        top.problem(key, f"'{key}' must be an array of tables written as [[{key}]]")
        return []
    return raw


def _name(reader: Reader, seen: dict[str, int], what: str) -> str | None:
    name = reader.string("name", required=True)
    if name is None:
        return None
    if not FLEET_NAME.fullmatch(name):
        reader.problem("name", f"'name' = {name!r} must be letters, digits, '.', '_' or '-'")
        return None
    if name in seen:
        reader.problem("name", f"duplicate {what} name {name!r} (first defined in {what} #{seen[name]})")
        return None
    seen[name] = reader.index + 1
    return name


def _label(what: str, index: int, table: dict[str, Any]) -> str:
    name = table.get("name")
    return f"{what} #{index + 1}" + (f" ({name})" if isinstance(name, str) else "")


class _Parse:
    """One parse of one file: the readers share its lines, problems and machine names."""

    def __init__(self, text: str, path: str) -> None:
        text = text.removeprefix(BOM)  # an editor's byte order mark (docs/format.md)
        self.path = path
        self.data = load_toml(text, path)
        self.lines = KeyLines(text, 1)
        self.problems: list[FileProblem] = []
        self.top = Reader(self.data, path, self.lines, self.problems)
        self.machine_names: set[str] = set()

    def reader(self, data: dict[str, Any], table: str, index: int, label: str) -> Reader:
        return Reader(data, self.path, self.lines, self.problems, table, index, label)

    def host(self, reader: Reader, key: str, value: str | None) -> str | None:
        if value is None or value in self.machine_names:
            return value
        known = ", ".join(sorted(self.machine_names)) or "none declared"
        reader.problem(key, f"'{key}' = {value!r} is not a machine in this file (machines: {known})")
        return None

    def machines(self) -> tuple[Machine, ...]:
        machines: list[Machine] = []
        seen: dict[str, int] = {}
        for index, table in enumerate(_tables(self.data, "machines", self.top)):
            reader = self.reader(table, "machines", index, _label("machine", index, table))
            name = _name(reader, seen, "machine")
            role = reader.choice("role", MachineRole)
            address = reader.string("address", required=False)
            notes = reader.string("notes", required=False)
            if name is not None:
                self.machine_names.add(name)
            if name is None or role is None:
                continue
            extra = reader.extra(_MACHINE_KEYS)
            machines.append(Machine(name, role, address, notes, extra))
        return tuple(machines)

    def workloads(self) -> tuple[Workload, ...]:
        workloads: list[Workload] = []
        seen: dict[str, int] = {}
        for index, table in enumerate(_tables(self.data, "workloads", self.top)):
            reader = self.reader(table, "workloads", index, _label("workload", index, table))
            name = _name(reader, seen, "workload")
            current = self.host(reader, "current_host", reader.string("current_host", required=True))
            target = self.host(reader, "target_host", reader.string("target_host", required=False))
            owner = reader.string("owner", required=False)
            wave = _wave(reader)
            stateful = _boolean(reader, "stateful")
            state = reader.choice("state", WorkloadState, default=WorkloadState.RUNNING)
            gate = self.gate(table, index, reader)
            if name is None or current is None or state is None:
                continue
            if "target_host" in table and target is None:
                continue
            extra = reader.extra(_WORKLOAD_KEYS)
            workloads.append(Workload(name, current, target, owner, wave, stateful, state, gate, extra))
        return tuple(workloads)

    def gate(self, table: dict[str, Any], index: int, parent: Reader) -> Gate | None:
        raw = table.get("gate")
        if raw is None:
            return None
        if not isinstance(raw, dict):
            parent.problem(
                "gate", f"'gate' must be a table written as [workloads.gate], not {type_name(raw)}"
            )
            return None
        reader = self.reader(raw, "workloads.gate", index, f"{parent.label} gate")
        first = len(self.problems)
        gate = Gate(
            overlay_repo=reader.string("overlay_repo", required=False),
            stages_proven=reader.strings("stages_proven"),
            backup_restore_drill=reader.date("backup_restore_drill"),
            canary_observed=_boolean(reader, "canary_observed"),
            operator_approval=reader.string("operator_approval", required=False),
            image=reader.string("image", required=False),
            exception=reader.string("exception", required=False) or "",
            extra=reader.extra(GATE_KEYS),
        )
        inline_line = self.lines.key("gate", "workloads", index)  # gate = { ... } has no header of its own
        for at in range(first, len(self.problems)):
            if self.problems[at].line is None:
                self.problems[at] = replace(self.problems[at], line=inline_line)
        return gate

    def lanes(self) -> tuple[Lane, ...]:
        lanes: list[Lane] = []
        seen: dict[str, int] = {}
        for index, table in enumerate(_tables(self.data, "lanes", self.top)):
            reader = self.reader(table, "lanes", index, _label("lane", index, table))
            name = _name(reader, seen, "lane")
            start = self.host(reader, "from", reader.string("from", required=True))
            end = self.host(reader, "to", reader.string("to", required=True))
            via = reader.strings("via")
            hops_known = all(self.host(reader, "via", hop) is not None for hop in via)
            critical = _boolean(reader, "critical")
            if name is None or start is None or end is None or not hops_known:
                continue
            lanes.append(Lane(name, start, end, via, critical, reader.extra(_LANE_KEYS)))
        return tuple(lanes)


def parse_fleet(text: str, path: str = FLEET_PATH) -> FleetRegistry:
    """Parse a fleet registry; raises FormatError listing every problem with its line."""
    parse = _Parse(text, path)
    machines = parse.machines()
    workloads = parse.workloads()
    lanes = parse.lanes()
    if parse.problems:
        raise FormatError(parse.problems)
    return FleetRegistry(machines, workloads, lanes, parse.top.extra(_TOP_KEYS))


def _machine_table(machine: Machine) -> Any:
    import tomlkit  # only to write (canon/ADR-033)

    table = tomlkit.table()
    table["name"] = machine.name
    if machine.address is not None:
        table["address"] = machine.address
    table["role"] = machine.role.value
    if machine.notes is not None:
        table["notes"] = machine.notes
    for key, value in machine.extra.items():
        table[key] = value
    return table


def _gate_table(gate: Gate) -> Any:
    import tomlkit  # only to write (canon/ADR-033)

    table = tomlkit.table()
    if gate.overlay_repo is not None:
        table["overlay_repo"] = gate.overlay_repo
    table["stages_proven"] = list(gate.stages_proven)
    if gate.backup_restore_drill is not None:
        table["backup_restore_drill"] = gate.backup_restore_drill
    table["canary_observed"] = gate.canary_observed
    if gate.operator_approval is not None:
        table["operator_approval"] = gate.operator_approval
    if gate.image is not None:
        table["image"] = gate.image
    table["exception"] = gate.exception
    for key, value in gate.extra.items():
        table[key] = value
    return table


def _workload_table(workload: Workload) -> Any:
    import tomlkit  # only to write (canon/ADR-033)

    table = tomlkit.table()
    table["name"] = workload.name
    table["current_host"] = workload.current_host
    if workload.target_host is not None:
        table["target_host"] = workload.target_host
    if workload.owner is not None:
        table["owner"] = workload.owner
    if workload.wave is not None:
        table["wave"] = workload.wave
    table["stateful"] = workload.stateful
    table["state"] = workload.state.value
    for key, value in workload.extra.items():
        table[key] = value
    if workload.gate is not None:
        table["gate"] = _gate_table(workload.gate)
    return table


def _lane_table(lane: Lane) -> Any:
    import tomlkit  # only to write (canon/ADR-033)

    table = tomlkit.table()
    table["name"] = lane.name
    table["from"] = lane.from_host
    table["to"] = lane.to_host
    table["via"] = list(lane.via)
    table["critical"] = lane.critical
    for key, value in lane.extra.items():
        table[key] = value
    return table


def render_fleet(registry: FleetRegistry) -> str:
    """Write a fleet registry as a file; ``parse_fleet(render_fleet(r)) == r``."""
    import tomlkit  # only to write (canon/ADR-033)

    doc = tomlkit.document()
    for key, value in registry.extra.items():
        doc[key] = value
    arrays = {
        "machines": [_machine_table(m) for m in registry.machines],
        "workloads": [_workload_table(w) for w in registry.workloads],
        "lanes": [_lane_table(lane) for lane in registry.lanes],
    }
    for key, tables in arrays.items():
        if tables:
            array = tomlkit.aot()
            for table in tables:
                array.append(table)
            doc[key] = array
    return tomlkit.dumps(doc)
