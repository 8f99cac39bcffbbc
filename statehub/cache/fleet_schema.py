"""Cache tables for the fleet registry, ``registry/fleet.toml``: machines, workloads, lanes.

Rows keep the file's order (``position``) so plans and listings read like the
file. Like every cache table they are rebuilt from the file and never edited.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Index, Integer, String, Table

from statehub.cache.schema import metadata

__all__ = ["FLEET_LANES", "FLEET_MACHINES", "FLEET_WORKLOADS"]


def _keys() -> tuple[Column[str], ...]:
    return tuple(Column(name, String, primary_key=True) for name in ("repo", "path", "name"))


def _text(name: str, *, nullable: bool = False, index: bool = False) -> Column[str]:
    return Column(name, String, nullable=nullable, index=index)


def _extra() -> Column[object]:
    return Column("extra", JSON, nullable=False)


FLEET_MACHINES = Table(
    "fleet_machine",
    metadata,
    *_keys(),
    Column("position", Integer, nullable=False),
    _text("role", index=True),
    _text("address", nullable=True),
    _text("notes", nullable=True),
    _extra(),
)

FLEET_WORKLOADS = Table(
    "fleet_workload",
    metadata,
    *_keys(),
    Column("position", Integer, nullable=False),
    _text("current_host"),
    _text("target_host", nullable=True),
    _text("owner", nullable=True),
    Column("wave", Integer, nullable=True, index=True),
    Column("stateful", Boolean, nullable=False, default=False),
    _text("state", index=True),
    Column("gate", JSON, nullable=True),
    _extra(),
    Index("ix_fleet_workload_hosts", "current_host", "target_host"),
)

FLEET_LANES = Table(
    "fleet_lane",
    metadata,
    *_keys(),
    Column("position", Integer, nullable=False),
    _text("from_host"),
    _text("to_host"),
    Column("via", JSON, nullable=False),
    Column("critical", Boolean, nullable=False, default=False),
    _extra(),
)
