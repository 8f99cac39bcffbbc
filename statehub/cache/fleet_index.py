"""Index ``registry/fleet.toml`` into the cache, and read it back as a ``FleetRegistry``.

Importing this module registers the fleet file as a source kind (``statehub.cache.fleet_rows``,
which makes its rows without SQLAlchemy), so every registered repo's fleet registry is indexed,
refreshed and reported on like its workplans (a broken file becomes file errors, never a failed
index).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, and_, select

from statehub.cache.fleet_rows import FLEET_FILE, fleet_rows, gate_json
from statehub.cache.fleet_schema import FLEET_LANES, FLEET_MACHINES, FLEET_WORKLOADS
from workplans import (
    FLEET_PATH,
    FleetRegistry,
    Gate,
    Lane,
    Machine,
    MachineRole,
    Workload,
    WorkloadState,
)

__all__ = ["FLEET_FILE", "fleet_rows", "gate_json", "registry_from_rows"]


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
