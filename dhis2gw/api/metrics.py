"""``GET /metrics``: the Prometheus text of the gateway's own registry (dhis2gw.operations.metrics)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from dhis2gw.api.routing import Call, Response, route
from dhis2gw.operations.metrics import GatewayMetrics


class MetricsApi:
    """``GET /metrics`` (unversioned; public, as Prometheus scrapes without credentials)."""

    def __init__(self, metrics: GatewayMetrics, queue: Any, logs: Any, destinations: Callable[[], list[str]],
                 timeout: float = 2.0) -> None:
        self.metrics = metrics
        self.queue = queue
        self.logs = logs
        self.destinations = destinations
        self.timeout = timeout

    @route("GET", "/metrics", public=True, summary="Prometheus metrics (text exposition format)",
           tags=("health",), response_schema={"type": "string", "contentMediaType": "text/plain"})
    async def metrics_text(self, call: Call) -> Response:
        await self.metrics.refresh(self.queue, self.logs, self.destinations, self.timeout)
        return Response(raw=self.metrics.render(), content_type=CONTENT_TYPE_LATEST)
