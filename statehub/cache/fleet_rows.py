"""The rows ``registry/fleet.toml`` becomes in the cache, and its registration as a source kind.

Importing this module registers the fleet file as a source kind, so every
registered repo's fleet registry is indexed, refreshed and reported on like
its workplans (a broken file becomes file errors, never a failed index). It
loads no SQLAlchemy (``statehub.cache.sources``); its tables are
``statehub.cache.fleet_schema``, and reading them back is ``statehub.cache.fleet_index``.
"""

from __future__ import annotations

from typing import Any

from statehub.cache.sources import Rows, SourceKind, json_safe, register_kind
from workplans import FLEET_PATH, Gate, parse_fleet

__all__ = ["FLEET_FILE", "FLEET_LANES", "FLEET_MACHINES", "FLEET_WORKLOADS", "fleet_rows", "gate_json"]

FLEET_MACHINES = "fleet_machine"
FLEET_WORKLOADS = "fleet_workload"
FLEET_LANES = "fleet_lane"
"""The names of the fleet registry's tables (``statehub.cache.fleet_schema``)."""


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
