"""``/fleet/...``: the fleet registry and the plans drawn from it (read side)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get
from litestar.params import Parameter, QueryParameter
from sqlalchemy import Connection

from statehub.api.inputbounds import MAX_QUERY_INT
from statehub.cache import fleet_queries


class FleetController(Controller):
    path = "/fleet"
    tags = ["fleet"]

    @get("/machines", sync_to_thread=False)
    def machines(self, conn: Connection, repo: str | None = None) -> dict[str, Any]:
        return fleet_queries.list_machines(conn, repo)

    @get("/workloads", sync_to_thread=False)
    def workloads(
        self,
        conn: Connection,
        repo: str | None = None,
        host: str | None = None,
        wave: int | None = Parameter(ge=0, le=MAX_QUERY_INT, default=None),
        state_: Annotated[str | None, QueryParameter(name="state")] = None,  # "state" is a reserved name
    ) -> dict[str, Any]:
        return fleet_queries.list_workloads(conn, repo, host=host, state=state_, wave=wave)

    @get("/lanes", sync_to_thread=False)
    def lanes(self, conn: Connection, repo: str | None = None) -> dict[str, Any]:
        return fleet_queries.list_lanes(conn, repo)

    @get("/drain-plan", sync_to_thread=False)
    def drain_plan(self, conn: Connection, machine: str, repo: str | None = None) -> dict[str, Any]:
        return fleet_queries.drain_plan(conn, machine, repo)

    @get("/readiness", sync_to_thread=False)
    def readiness(self, conn: Connection, repo: str | None = None) -> dict[str, Any]:
        return fleet_queries.fleet_readiness(conn, repo)
