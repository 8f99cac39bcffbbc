"""Cache tables for the fleet registry, ``registry/fleet.toml``: machines, workloads, lanes.

Rows keep the file's order (``position``) so plans and listings read like the
file. Like every cache table they are rebuilt from the file and never edited.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Index, Table
from sqlmodel import Field, SQLModel

__all__ = [
    "FLEET_LANES",
    "FLEET_MACHINES",
    "FLEET_WORKLOADS",
    "FleetLaneRow",
    "FleetMachineRow",
    "FleetWorkloadRow",
]


def _json_dict() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class FleetMachineRow(SQLModel, table=True):
    __tablename__ = "fleet_machine"
    repo: str = Field(primary_key=True)
    path: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    position: int
    role: str = Field(index=True)
    address: str | None = None
    notes: str | None = None
    extra: dict[str, Any] = _json_dict()


class FleetWorkloadRow(SQLModel, table=True):
    __tablename__ = "fleet_workload"
    __table_args__ = (Index("ix_fleet_workload_hosts", "current_host", "target_host"),)
    repo: str = Field(primary_key=True)
    path: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    position: int
    current_host: str
    target_host: str | None = None
    owner: str | None = None
    wave: int | None = Field(default=None, index=True)
    stateful: bool = False
    state: str = Field(index=True)
    gate: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    extra: dict[str, Any] = _json_dict()


class FleetLaneRow(SQLModel, table=True):
    __tablename__ = "fleet_lane"
    repo: str = Field(primary_key=True)
    path: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    position: int
    from_host: str
    to_host: str
    via: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    critical: bool = False
    extra: dict[str, Any] = _json_dict()


def _core(model: type[SQLModel]) -> Table:
    table: Table = model.__table__  # type: ignore[attr-defined]
    return table


FLEET_MACHINES = _core(FleetMachineRow)
FLEET_WORKLOADS = _core(FleetWorkloadRow)
FLEET_LANES = _core(FleetLaneRow)
