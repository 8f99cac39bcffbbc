"""``/fleet/...``: the fleet registry and the plans drawn from it (read side).

Every route takes ``?repo=`` for when several registered repos hold a
``registry/fleet.toml``: 404 when none does, 409 when several do and ``repo``
does not say which, 422 while the file has errors.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import QueryParameter

from statehub.api.deps import HubDep, NameQuery, RepoFilter, RequiredName
from statehub.api.errorshape import error_responses
from statehub.api.inputbounds import MAX_QUERY_INT
from statehub.cache import fleet_queries
from statehub.cache.answers import DrainPlan, FleetList, LaneList, MachineItem, Readiness, WorkloadItem
from workplans import WorkloadState

__all__ = ["FleetController"]

_FLEET_ERRORS = error_responses(404, 409, 422)

Wave = Annotated[
    int | None,
    # Litestar leaves a falsy bound (ge=0) out of an optional parameter's schema; schema_extra states it.
    QueryParameter(ge=0, le=MAX_QUERY_INT, schema_extra={"minimum": 0}, description="Only this wave."),
]
StateFilter = Annotated[
    WorkloadState | None, QueryParameter(name="state", description="Only workloads in this state.")
]
"""``?state=``: ``state`` is reserved by Litestar, so the handler calls it ``state_``."""


class FleetController(Controller):
    path = "/fleet"
    tags = ["fleet"]

    @get("/machines", sync_to_thread=False, responses=_FLEET_ERRORS)
    def machines(self, hub: HubDep, repo: RepoFilter = None) -> FleetList[MachineItem]:
        """Machines in file order: role, what the role allows, what runs there."""
        with hub.reads.connect() as conn:
            return fleet_queries.list_machines(conn, repo)

    @get("/workloads", sync_to_thread=False, responses=_FLEET_ERRORS)
    def workloads(
        self,
        hub: HubDep,
        repo: RepoFilter = None,
        host: NameQuery = None,
        wave: Wave = None,
        state_: StateFilter = None,
    ) -> FleetList[WorkloadItem]:
        """Workloads in file order; ``host`` matches the current or the target host."""
        with hub.reads.connect() as conn:
            return fleet_queries.list_workloads(conn, repo, host=host, state=state_, wave=wave)

    @get("/lanes", sync_to_thread=False, responses=_FLEET_ERRORS)
    def lanes(self, hub: HubDep, repo: RepoFilter = None) -> LaneList:
        """Lanes with their hops, and the machines on critical lanes whose role must not carry them."""
        with hub.reads.connect() as conn:
            return fleet_queries.list_lanes(conn, repo)

    @get("/drain-plan", sync_to_thread=False, responses=_FLEET_ERRORS)
    def drain_plan(self, hub: HubDep, machine: RequiredName, repo: RepoFilter = None) -> DrainPlan:
        """What must leave ``machine``, wave by wave, with each next step and its blockers."""
        with hub.reads.connect() as conn:
            return fleet_queries.drain_plan(conn, machine, repo)

    @get("/readiness", sync_to_thread=False, responses=_FLEET_ERRORS)
    def readiness(self, hub: HubDep, repo: RepoFilter = None) -> Readiness:
        """Can production run with every temporary-dev machine switched off, and what stands in the way."""
        with hub.reads.connect() as conn:
            return fleet_queries.fleet_readiness(conn, repo)
