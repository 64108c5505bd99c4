"""Installer of the operations feature: logs, requeue, queue control, docs, OpenAPI and metrics.

Mounts (``/api/v2`` unless noted): ``LogsApi`` and ``QueueApi``; unversioned ``/openapi.json``,
``/swagger/``, ``/``, ``/docs/{page}``, ``/static/*`` and ``/metrics``. Adds the requeue job
service, the metrics request observer, and feeds the dispatcher's outcomes into the metrics.
Shared objects go to ``gateway.parts``: ``"logs"`` (LogStore), ``"requeue"`` (RequeueService),
``"metrics"`` (GatewayMetrics).
"""
from __future__ import annotations

import socket
from typing import Any, Optional

from dhis2gw.api.docs import DocsPages, OpenApiArea, SwaggerArea
from dhis2gw import __version__
from dhis2gw.api.logs import LogsApi
from dhis2gw.api.reports import ReportsApi
from dhis2gw.storage.reports import ReportStore
from dhis2gw.api.queue import QueueApi
from dhis2gw.metrics import GatewayMetrics, MetricsApi, observe_dispatcher
from dhis2gw.operations.requeue import RequeueService
from dhis2gw.storage.logs import LogStore


def _request_log_writer(gateway: Any) -> Optional[Any]:
    """The request-log writer, wherever the auth feature put it (looked up at scrape time)."""
    from dhis2gw.api.request_log import RequestLogWriter

    for candidate in [gateway.parts.get("request_log"), gateway.parts.get("request_log_writer"),
                      *(getattr(o, "__self__", o) for o in gateway.observers)]:
        if isinstance(candidate, RequestLogWriter):
            return candidate
    return None


def install(gateway: Any) -> None:
    """Wire the operations feature into ``gateway`` (see module docstring)."""
    config = gateway.config
    logs = gateway.parts.setdefault("logs", LogStore(gateway.db))

    def destination_names() -> list[str]:
        return sorted(gateway.destinations.clients)

    def wake(dest: str) -> None:
        if gateway.dispatcher is not None:
            gateway.dispatcher.wake(dest)

    requeue = RequeueService(gateway.reactor, logs, gateway.store, gateway.queue, wake=wake)
    requeue.setServiceParent(gateway.service)
    gateway.parts["requeue"] = requeue

    metrics = GatewayMetrics(gateway.reactor, dispatcher=lambda: gateway.dispatcher,
                             request_log=lambda: _request_log_writer(gateway))
    gateway.parts["metrics"] = metrics
    gateway.observers.append(metrics.request_finished)
    observe_dispatcher(gateway.dispatcher, metrics)

    gateway.mount(LogsApi(logs, gateway.store, requeue, config.server.tzinfo))
    gateway.mount(ReportsApi(ReportStore(gateway.db)))
    about = {"name": config.api.dhis2_country or socket.gethostname(), "version": __version__,
             "timezone": config.server.timezone}
    urls = {name: entry.base_url for name, entry in config.destinations().items()}
    gateway.mount(QueueApi(gateway.reactor, gateway.queue, logs, destination_names, gateway.dispatcher,
                           about=about, urls=urls))
    gateway.mount(OpenApiArea(lambda: gateway.router.routes if gateway.router is not None else []), prefix="")
    gateway.mount(SwaggerArea(gateway.reactor), prefix="")
    gateway.mount(DocsPages(gateway.reactor, config.server.docs_directory, config.server.templates_directory,
                            config.server.static_directory), prefix="")
    gateway.mount(MetricsApi(metrics, gateway.queue, logs, destination_names), prefix="")
