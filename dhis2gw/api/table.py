"""The route table: every HTTP area of the gateway and the prefix it is mounted under.

The composition root builds the areas (each a class of this package whose methods carry
``@route`` declarations) and `route_table` lists them, so the whole API surface is read here in
one place. ``/api/v2`` is the versioned API; health, metrics, the OpenAPI document and the
documentation pages are unversioned.
"""
from __future__ import annotations

from dataclasses import dataclass

from dhis2gw.api.docs import DocsPages, OpenApiArea, SwaggerArea
from dhis2gw.api.health import HealthApi
from dhis2gw.api.logs import LogsApi
from dhis2gw.api.mappings import MappingsApi, MetadataApi
from dhis2gw.api.metrics import MetricsApi
from dhis2gw.api.plugins import PluginsApi
from dhis2gw.api.queue import QueueApi
from dhis2gw.api.reports import ReportsApi
from dhis2gw.api.request_log import RequestsApi
from dhis2gw.api.routing import Router
from dhis2gw.api.submissions import IngestApi
from dhis2gw.api.sync import CronApi, OrgUnitsApi
from dhis2gw.api.users import UsersApi

V2 = "/api/v2"


@dataclass(frozen=True)
class ApiAreas:
    """The gateway's HTTP areas, built by the composition root."""

    health: HealthApi
    users: UsersApi
    requests: RequestsApi
    ingest: IngestApi
    mappings: MappingsApi
    metadata: MetadataApi
    logs: LogsApi
    reports: ReportsApi
    queue: QueueApi
    orgunits: OrgUnitsApi
    cron: CronApi
    plugins: PluginsApi
    openapi: OpenApiArea
    swagger: SwaggerArea
    docs: DocsPages
    metrics: MetricsApi
    #: ``(prefix, area)`` of plugins' IApiExtension areas (``/api/v2/ext/<name>``).
    extensions: tuple[tuple[str, object], ...] = ()


def route_table(areas: ApiAreas) -> list[tuple[str, object]]:
    """Every area with its prefix, in mounting order."""
    table: list[tuple[str, object]] = [
        ("", areas.health),
        (V2, areas.users),
        (V2, areas.requests),
        (V2, areas.ingest),
        (V2, areas.mappings),
        (V2, areas.metadata),
        (V2, areas.logs),
        (V2, areas.reports),
        (V2, areas.queue),
        (V2, areas.orgunits),
        (V2, areas.cron),
        (V2, areas.plugins),
        ("", areas.openapi),
        ("", areas.swagger),
        ("", areas.docs),
        ("", areas.metrics),
    ]
    table.extend(areas.extensions)
    return table


def mount(router: Router, areas: ApiAreas) -> list[tuple[str, object]]:
    """Mount the route table on ``router``, then each kind's ingest route (``IngestApi.kind_routes``);
    returns the areas mounted."""
    table = route_table(areas)
    for prefix, area in table:
        router.mount(prefix, area)
    add_kind_routes(router, areas.ingest)
    return table


def add_kind_routes(router: Router, ingest: IngestApi, prefix: str = V2) -> None:
    """Every kind's own ingest route (``IngestApi.kind_routes``)."""
    for spec, handler, name in ingest.kind_routes():
        router.add_route(prefix, spec, handler, name)


def mount_ingest(router: Router, ingest: IngestApi, prefix: str = V2) -> None:
    """The ingest area (``/submissions…``) and every kind's ingest route: what tests of ingest mount."""
    router.mount(prefix, ingest)
    add_kind_routes(router, ingest, prefix)
