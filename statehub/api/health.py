"""``GET /state/health``: is the hub up, which profile, how many repos, cache, buffer and relay state."""

from __future__ import annotations

from litestar import Controller, get

from statehub.api.deps import DeskDep
from statehub.api.errorshape import error_responses
from statehub.health import Health, health

__all__ = ["HealthController"]


class HealthController(Controller):
    path = "/state"
    tags = ["health"]

    @get("/health", sync_to_thread=False, responses=error_responses())
    def get_health(self, desk: DeskDep) -> Health:
        """``status`` ok, or degraded with ``problems`` while write-back fails in some repo."""
        return health(desk)
