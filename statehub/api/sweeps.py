"""``/sweeps``: run a consistency sweep, and read the last one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from litestar import get, post
from litestar.status_codes import HTTP_200_OK

from statehub.errors import NotFound
from statehub.events import EventDesk
from statehub.sweep import latest_sweep, sweep

__all__ = ["ROUTES"]


@dataclass
class SweepRequest:
    repos: list[str] = field(default_factory=list)
    """Slugs to sweep; empty means every registered repo."""


@post("/sweeps", status_code=HTTP_200_OK, sync_to_thread=True, tags=["sweeps"])
def run_sweep(events: EventDesk, data: SweepRequest | None = None) -> dict[str, Any]:
    """Sweep now and answer with the report (per repo: pulled, events, commits, pushed, findings)."""
    return sweep(events, (data.repos if data else None) or None)


@get("/sweeps/latest", sync_to_thread=True, tags=["sweeps"])
def last_sweep(events: EventDesk) -> dict[str, Any]:
    report = latest_sweep(events.hub.settings)
    if report is None:
        raise NotFound("no sweep has run yet; POST /sweeps or run 'statehub sweep'")
    return report


ROUTES = [run_sweep, last_sweep]
