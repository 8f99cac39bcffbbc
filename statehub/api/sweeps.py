"""``/sweeps``: run a consistency sweep, and read the last one."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from litestar import Controller, get, post
from litestar.openapi.spec import Operation, RequestBody
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from statehub.api.deps import DeskDep
from statehub.api.errorshape import WRITE_STATUSES, error_responses
from statehub.errors import NotFound
from statehub.sweep import SweepReport, latest_sweep, sweep

__all__ = ["SweepController", "SweepRequest"]


class SweepRequest(msgspec.Struct, frozen=True):
    """``POST /sweeps``' body (optional)."""

    repos: list[str] = []
    """Slugs to sweep; empty means every registered repo."""


@dataclass
class OptionalBody(Operation):
    """The operation of a route whose JSON body may be left out: Litestar marks every body required."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False


class SweepController(Controller):
    path = "/sweeps"
    tags = ["sweeps"]

    @post(
        "/",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        responses=error_responses(404, *WRITE_STATUSES),
        operation_class=OptionalBody,
    )
    def run_sweep(self, desk: DeskDep, data: JSONBody[SweepRequest | None] = None) -> SweepReport:
        """Sweep now and answer with the report (per repo: pulled, events, commits, pushed, findings)."""
        return sweep(desk, (data.repos if data else None) or None)

    @get("/latest", sync_to_thread=True, responses=error_responses(404))
    def last_sweep(self, desk: DeskDep) -> SweepReport:
        """The last sweep's report, whoever ran it; 404 before the first."""
        report = latest_sweep(desk.hub.settings)
        if report is None:
            raise NotFound("no sweep has run yet; POST /sweeps or run 'statehub sweep'")
        return report
