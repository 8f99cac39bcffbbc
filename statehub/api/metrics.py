"""``GET /metrics``: the hub's metrics in the Prometheus text format (``statehub.metrics``, ADR-035).

Open on a dev hub; a fleet hub asks for a read token, which Prometheus sends as
``Authorization: Bearer`` (``authorization`` in its scrape config). Every family
is listed in docs/architecture.md "Metrics".
"""

from __future__ import annotations

from litestar import Controller, Response, get

from statehub.api.deps import HubDep
from statehub.api.errorshape import error_responses
from statehub.metrics import CONTENT_TYPE

__all__ = ["MetricsController"]


class MetricsController(Controller):
    path = "/metrics"
    tags = ["health"]

    @get(
        "/",
        sync_to_thread=True,
        media_type="text/plain",
        response_description="Every metric family in the Prometheus text exposition format 0.0.4",
        responses=error_responses(),
    )
    def metrics(self, hub: HubDep) -> Response[str]:
        """Counters and histograms since the hub started, gauges read now (a few cache queries, and
        each registered repo's git state from its files): a scrape costs a few milliseconds."""
        metrics = hub.metrics
        assert metrics is not None, "create_app gives its hub the app's metrics"
        return Response(metrics.exposition().decode("utf-8"), media_type=CONTENT_TYPE)
