"""Index ``registry/fleet.toml`` into the cache, and read it back as a ``FleetRegistry``.

Importing this module registers the fleet file as a source kind, so every
registered repo's fleet registry is indexed, refreshed and reported on like
its workplans (a broken file becomes file errors, never a failed index).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, and_, select

from statehub.cache.fleet_schema import FLEET_LANES, FLEET_MACHINES, FLEET_WORKLOADS
from statehub.cache.sources import Rows, SourceKind, json_safe, register_kind
from workplans import (
    FLEET_PATH,
    FleetRegistry,
    Gate,
    Lane,
    Machine,
    MachineRole,
    Workload,
    WorkloadState,
    parse_fleet,
)

__all__ = ["FLEET_FILE", "fleet_rows", "gate_json", "registry_from_rows"]


def gate_json(gate: Gate | None) -> dict[str, Any] | None:
    if gate is None:
        return None
    return {
        "overlay_repo": gate.overlay_repo,
        "stages_proven": list(gate.stages_proven),
        "backup_restore_drill": gate.backup_restore_drill.isoformat() if gate.backup_restore_drill else None,
        "canary_observed": gate.canary_observed,
        "operator_approval": gate.operator_approval,
        "image": gate.image,
        "exception": gate.exception,
        "extra": json_safe(gate.extra),
    }


def fleet_rows(repo: str, path: str, text: str) -> Rows:
    fleet = parse_fleet(text, path)
    key = {"repo": repo, "path": path}
    machines = [
        key
        | {
            "name": m.name,
            "position": i,
            "role": m.role.value,
            "address": m.address,
            "notes": m.notes,
            "extra": json_safe(m.extra),
        }
        for i, m in enumerate(fleet.machines)
    ]
    workloads = [
        key
        | {
            "name": w.name,
            "position": i,
            "current_host": w.current_host,
            "target_host": w.target_host,
            "owner": w.owner,
            "wave": w.wave,
            "stateful": w.stateful,
            "state": w.state.value,
            "gate": gate_json(w.gate),
            "extra": json_safe(w.extra),
        }
        for i, w in enumerate(fleet.workloads)
    ]
    lanes = [
        key
        | {
            "name": lane.name,
            "position": i,
            "from_host": lane.from_host,
            "to_host": lane.to_host,
            "via": list(lane.via),
            "critical": lane.critical,
            "extra": json_safe(lane.extra),
        }
        for i, lane in enumerate(fleet.lanes)
    ]
    return {FLEET_MACHINES: machines, FLEET_WORKLOADS: workloads, FLEET_LANES: lanes}


FLEET_FILE = SourceKind("fleet", (FLEET_MACHINES, FLEET_WORKLOADS, FLEET_LANES), fleet_rows)
register_kind(FLEET_FILE, single_file=FLEET_PATH)


def _gate(data: dict[str, Any] | None) -> Gate | None:
    if data is None:
        return None
    drill = data.get("backup_restore_drill")
    return Gate(
        overlay_repo=data.get("overlay_repo"),
        stages_proven=tuple(data.get("stages_proven") or ()),
        backup_restore_drill=dt.date.fromisoformat(drill) if drill else None,
        canary_observed=bool(data.get("canary_observed")),
        operator_approval=data.get("operator_approval"),
        image=data.get("image"),
        exception=data.get("exception") or "",
        extra=data.get("extra") or {},
    )


def registry_from_rows(conn: Connection, repo: str, path: str = FLEET_PATH) -> FleetRegistry:
    """The fleet registry of one repo as indexed (dates in unknown keys come back as ISO strings)."""

    def rows(table: Any) -> list[Any]:
        where = and_(table.c.repo == repo, table.c.path == path)
        return list(conn.execute(select(table).where(where).order_by(table.c.position)))

    machines = tuple(
        Machine(r.name, MachineRole(r.role), r.address, r.notes, r.extra) for r in rows(FLEET_MACHINES)
    )
    workloads = tuple(
        Workload(
            r.name,
            r.current_host,
            r.target_host,
            r.owner,
            r.wave,
            bool(r.stateful),
            WorkloadState(r.state),
            _gate(r.gate),
            r.extra,
        )
        for r in rows(FLEET_WORKLOADS)
    )
    lanes = tuple(
        Lane(r.name, r.from_host, r.to_host, tuple(r.via), bool(r.critical), r.extra)
        for r in rows(FLEET_LANES)
    )
    return FleetRegistry(machines, workloads, lanes)
