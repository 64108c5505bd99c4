"""The composition root: the one place that builds the gateway's service tree.

`build_gateway` wires every service of DESIGN.md §3 for one configuration and role, in one
explicit order, from typed parts (`dhis2gw.wiring.features`). Both entry points —
``twistd dhis2gw`` (`dhis2gw.tap`) and the console script ``dhis2gw run`` (`dhis2gw.cli`) —
reach it through `dhis2gw.wiring.entry.make_service`, so every option behaves the same under
both. Tests call `build_gateway` to run a whole gateway in-process.

Parts are built in this order: storage and the feed, kinds and delivery, auth and the request
log, plugins, sync and cron, operations, the API. Services start in this order and stop in the
reverse one, one by one: embedded servers → the demo's simulator → PostgreSQL (migrations at
start) → Redis → DHIS2 clients → request log → metadata cache → plugins' services → cron →
requeue jobs → dispatcher → API listener → API helper processes → the demo's users and mappings.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from twisted.application.service import IService

from dhis2gw import __version__
from dhis2gw.api import table
from dhis2gw.api.docs import DocsPages, OpenApiArea, SwaggerArea
from dhis2gw.api.health import HealthApi
from dhis2gw.api.logs import LogsApi
from dhis2gw.api.mappings import MappingsApi, MetadataApi
from dhis2gw.api.metrics import MetricsApi
from dhis2gw.api.plugins import PluginsApi
from dhis2gw.api.queue import QueueApi
from dhis2gw.api.reports import ReportsApi
from dhis2gw.api.request_log import RequestLogWriter, RequestsApi
from dhis2gw.api.routing import Router
from dhis2gw.api.scoping import SubmitterScope
from dhis2gw.api.site import GatewaySite
from dhis2gw.api.submissions import IngestApi
from dhis2gw.api.sync import CronApi, OrgUnitsApi
from dhis2gw.api.users import UsersApi
from dhis2gw.auth.sessions import AuthServices, build_auth
from dhis2gw.config import Config
from dhis2gw.delivery.dispatcher import Dispatcher
from dhis2gw.delivery.observers import DeliveryEvents
from dhis2gw.dhis2.destinations import Destinations
from dhis2gw.mapping.importer import MappingImporter
from dhis2gw.mapping.sheet_process import SubprocessSheetParser
from dhis2gw.operations.metrics import GatewayMetrics
from dhis2gw.operations.requeue import RequeueService
from dhis2gw.queue.connection import RedisConnections
from dhis2gw.queue.feed import SubmissionQueue
from dhis2gw.runtime.cron import Cron, CronJob, JobRunner
from dhis2gw.runtime.devmode import DemoBootstrap, DemoSimulator
from dhis2gw.runtime.lifecycle import ApiListener, EmbeddedServers, OrderedServices, stop_reactor
from dhis2gw.storage.cron_runs import CronRunStore
from dhis2gw.storage.database import Database
from dhis2gw.storage.logs import LogStore
from dhis2gw.storage.mappings import MappingAdminStore
from dhis2gw.storage.migrations import MigrationError, migrate
from dhis2gw.storage.orgunit_propagation import PropagationStore
from dhis2gw.storage.orgunit_tree import OrgUnitStore
from dhis2gw.storage.reports import ReportStore
from dhis2gw.storage.request_log import RequestLogStore
from dhis2gw.storage.scope import ScopeStore
from dhis2gw.storage.submissions import SubmissionStore
from dhis2gw.sync.hierarchy import HierarchySync
from dhis2gw.wiring import features
from dhis2gw.wiring.context import PluginContext, QueueOperations
from dhis2gw.wiring.plugins import PluginLoad, load_plugins

ROLES = ("all", "api", "worker")


@dataclass
class Gateway:
    """The wired gateway: its service tree and the typed parts tests and the demo use."""

    config: Config
    reactor: Any
    role: str
    service: OrderedServices
    db: Database
    redis: RedisConnections
    destinations: Destinations
    queue: SubmissionQueue
    store: SubmissionStore
    events: DeliveryEvents
    kinds: dict[str, Any]
    dispatcher: Dispatcher | None
    auth: AuthServices
    request_log: RequestLogWriter
    mappings: features.Mappings
    context: PluginContext
    plugins: PluginLoad
    orgunit_sync: HierarchySync | None
    cron_jobs: list[CronJob]
    cron: Cron | None
    logs: LogStore
    requeue: RequeueService
    metrics: GatewayMetrics
    router: Router
    areas: list[tuple[str, object]]
    site: GatewaySite
    listener: ApiListener | None

    @property
    def runs_api(self) -> bool:
        return self.role in ("all", "api")

    @property
    def runs_worker(self) -> bool:
        return self.role in ("all", "worker")

    @property
    def authenticator(self) -> Any:
        return self.auth.authenticator


def build_gateway(config: Config, reactor: Any, role: str = "all", embedded: list[Any] | None = None,
                  listen_fd: int | None = None, *, demo: bool = False, helpers: IService | None = None) -> Gateway:
    """Wire the gateway's services for ``config`` and ``role`` (see the module docstring).

    ``demo``: the DHIS2 simulator first (up before everything, down after) and the demo users and
    mappings last; ``helpers``: the API helper processes (`dhis2gw.runtime.workers`), stopped first.
    """
    runs_api, runs_worker = role in ("all", "api"), role in ("all", "worker")
    root = OrderedServices()
    if embedded:
        EmbeddedServers(reactor, embedded).setServiceParent(root)
    if demo:
        DemoSimulator(reactor, config).setServiceParent(root)

    # --- storage and the feed ----------------------------------------------------------------
    dsn = config.database.dsn()

    async def run_migrations(db: Database) -> None:
        try:
            report = await migrate(dsn, config.server.migrations_path, reactor)
        except MigrationError as e:
            stop_reactor(reactor, str(e))
            raise
        if report.applied:
            Database.log.info("Database schema now at version {v}", v=report.current)

    db = Database(reactor, dsn, size=6, on_started=run_migrations)
    db.setServiceParent(root)
    redis = RedisConnections(reactor, config.server.redis_host, config.server.redis_port,
                             config.server.redis_db, timeout=config.queue.redis_timeout)
    redis.setServiceParent(root)
    destinations = Destinations(reactor, config)
    destinations.setServiceParent(root)
    clients = destinations.clients
    queue = SubmissionQueue(redis, reactor, config.queue.prefix, config.queue.lease_seconds)
    store = SubmissionStore(db)

    # --- kinds and delivery ----------------------------------------------------------------------
    mappings = features.build_mappings(config, reactor, db, redis, clients)
    kinds = features.build_kinds(config, db, mappings, serves_api=runs_api)
    events = DeliveryEvents()
    dispatcher = (features.build_dispatcher(config, reactor, queue, store, kinds, clients, events, db)
                  if runs_worker else None)

    # --- auth and the request log -----------------------------------------------------------------
    auth = build_auth(reactor, db, config.auth, redis=redis, redis_prefix=config.queue.prefix)
    request_log_store = RequestLogStore(db)
    request_log = features.build_request_log(config, reactor, request_log_store)
    request_log.setServiceParent(root)
    if runs_api:
        mappings.metadata.setServiceParent(root)

    # --- plugins: their kinds, lanes, observers, body checks, services, areas and jobs ------------
    ingest_checks: list[Any] = []
    context = PluginContext(reactor=reactor, config=config, role=role, environ=os.environ, submissions=store,
                            users=auth.users, dhis2=MappingProxyType(clients), queue=QueueOperations(queue, dispatcher),
                            outcomes=events.outcomes, ingest_checks=ingest_checks,
                            add_service=lambda s: s.setServiceParent(root))
    plugins = load_plugins(context, kinds, config.server.plugins_directory)

    # --- org-unit sync and cron -------------------------------------------------------------------
    sync = features.build_sync(config, db, clients, store, queue, dispatcher)
    scheduled_sync = features.sync_job(config, sync, "cron")
    cron_jobs = [scheduled_sync] if scheduled_sync is not None else []
    cron_jobs += [features.reconcile_job(config, dispatcher), features.metadata_job(mappings.metadata)]
    cron_jobs += [features.plugin_job(p, context) for p in plugins.cron_jobs]
    runs = CronRunStore(db)
    runner = JobRunner(runs)
    cron = None
    if runs_worker:
        cron = Cron(reactor, runner, cron_jobs, config.server.tzinfo, ready=db.started,
                    shutdown_timeout=config.server.shutdown_timeout)
        cron.setServiceParent(root)

    # --- operations -------------------------------------------------------------------------------
    logs = LogStore(db)

    def wake(destination: str) -> None:
        if dispatcher is not None:
            dispatcher.wake(destination)

    requeue = RequeueService(reactor, logs, store, queue, wake=wake)
    requeue.setServiceParent(root)
    metrics = GatewayMetrics(reactor, dispatcher=dispatcher, request_log=request_log)
    events.outcomes.add(metrics.delivery_recorded)
    events.leases_expired.add(metrics.leases_expired)
    events.reconciled.add(metrics.reconciled)
    if dispatcher is not None:
        # Last of the workers' services: it stops first and lets attempts in flight finish.
        dispatcher.setServiceParent(root)

    # --- the API ------------------------------------------------------------------------------------
    router = Router(auth.authenticator)
    areas = _api_areas(config, reactor, role, db, redis, destinations, queue, store, kinds, dispatcher, auth,
                       request_log_store, mappings, plugins, sync, runner, cron_jobs, cron, logs, requeue,
                       metrics, router, ingest_checks)
    mounted = table.mount(router, areas)
    site = GatewaySite(router.resource(), max_body_bytes=config.server.max_body_bytes,
                       access_log=config.server.access_log, finish_observers=[request_log.observe,
                                                                              metrics.request_finished],
                       trusted_proxies=config.server.trusted_proxies, header_timeout=config.server.header_timeout,
                       body_timeout=config.server.body_timeout, min_body_rate=config.server.min_body_rate,
                       max_connections_per_address=config.server.max_connections_per_address, reactor=reactor)
    listener = None
    if runs_api:
        endpoint = f"tcp:{config.server.port}:interface={_endpoint_host(config.server.host)}"
        listener = ApiListener(reactor, endpoint, site, db.started, adopt_fd=listen_fd)
        listener.setServiceParent(root)
    gateway = Gateway(config=config, reactor=reactor, role=role, service=root, db=db, redis=redis,
                      destinations=destinations, queue=queue, store=store, events=events, kinds=kinds,
                      dispatcher=dispatcher, auth=auth, request_log=request_log, mappings=mappings,
                      context=context, plugins=plugins, orgunit_sync=sync, cron_jobs=cron_jobs, cron=cron,
                      logs=logs, requeue=requeue, metrics=metrics, router=router, areas=mounted, site=site,
                      listener=listener)
    if helpers is not None:
        helpers.setServiceParent(root)
    if demo:
        DemoBootstrap(gateway).setServiceParent(root)
    return gateway


def _api_areas(config: Config, reactor: Any, role: str, db: Database, redis: RedisConnections,
               destinations: Destinations, queue: SubmissionQueue, store: SubmissionStore, kinds: dict[str, Any],
               dispatcher: Dispatcher | None, auth: AuthServices, request_log_store: RequestLogStore,
               mappings: features.Mappings, plugins: PluginLoad, sync: HierarchySync | None, runner: JobRunner,
               cron_jobs: list[CronJob], cron: Cron | None, logs: LogStore, requeue: RequeueService,
               metrics: GatewayMetrics, router: Router, ingest_checks: list[Any]) -> table.ApiAreas:
    """Every HTTP area of the gateway (mounted by `dhis2gw.api.table`)."""
    async def check_db() -> dict[str, Any]:
        return {"ok": await db.ping()}

    async def check_redis() -> dict[str, Any]:
        return {"ok": await redis.ping()}

    def destination_names() -> list[str]:
        return sorted(destinations.clients)

    checks = {"postgresql": check_db, "redis": check_redis, "destinations": destinations.readiness(dispatcher)}
    ingest = IngestApi(kinds, store, queue, config.destinations(),
                       wake=dispatcher.wake if dispatcher is not None else None,
                       scope=SubmitterScope(ScopeStore(db)), body_checks=ingest_checks)
    cached = mappings.cached
    importer = MappingImporter(db, reactor, redis, config.queue.prefix, on_change=cached.changed)
    about = {"name": config.api.dhis2_country or socket.gethostname(), "version": __version__,
             "timezone": config.server.timezone}
    urls = {name: entry.base_url for name, entry in config.destinations().items()}
    return table.ApiAreas(
        health=HealthApi(reactor, checks, required={"postgresql", "redis"}),
        users=UsersApi(auth),
        requests=RequestsApi(request_log_store),
        ingest=ingest,
        mappings=MappingsApi(MappingAdminStore(db), importer, cached.changed, parser=SubprocessSheetParser(reactor)),
        metadata=MetadataApi(mappings.metadata),
        logs=LogsApi(logs, store, requeue, config.server.tzinfo),
        reports=ReportsApi(ReportStore(db)),
        queue=QueueApi(reactor, queue, logs, destination_names, dispatcher, about=about, urls=urls),
        orgunits=OrgUnitsApi(OrgUnitStore(db), PropagationStore(db), runner, features.sync_job(config, sync, "manual"),
                             config.api.dhis2_district_oulevel_name),
        cron=CronApi(CronRunStore(db), cron_jobs, config.server.tzinfo, reactor, cron, role),
        plugins=PluginsApi(plugins.report),
        openapi=OpenApiArea(lambda: router.routes),
        swagger=SwaggerArea(reactor),
        docs=DocsPages(reactor, config.server.docs_directory, config.server.templates_directory,
                       config.server.static_directory),
        metrics=MetricsApi(metrics, queue, logs, destination_names),
        extensions=tuple(plugins.areas),
    )


def _endpoint_host(host: str) -> str:
    """Escape a host for an endpoint string (IPv6 colons)."""
    if host == "localhost":
        return "127.0.0.1"
    return host.replace(":", "\\:")
