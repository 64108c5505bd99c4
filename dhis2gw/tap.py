"""``twistd dhis2gw``: command-line options and the composition root.

``makeService`` is the one place that touches the global reactor; everything below it gets
the reactor (or a clock) passed in. ``build_gateway`` wires the services of DESIGN.md §3 for
one configuration and role, and is what tests use to run a whole gateway in-process.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from twisted.application import service
from twisted.python import usage

ROLES = ("all", "api", "worker")


class Options(usage.Options):
    """Options of ``twistd dhis2gw`` (the console script ``dhis2gw`` takes the same)."""

    optParameters = [
        ["config", "c", None, "Path of the YAML configuration file (e.g. /etc/dhis2gw/dhis2gw.yml)."],
        ["role", "r", "all", "Which parts to run: all, api (HTTP only) or worker (delivery only)."],
    ]

    def postOptions(self) -> None:  # noqa: N802
        if self["role"] not in ROLES:
            raise usage.UsageError(f"--role must be one of {', '.join(ROLES)}")


@dataclass
class Gateway:
    """The wired gateway: the service tree plus the handles features and tests use.

    Feature installers (see ``INSTALLERS`` in ``build_gateway``) receive this object while it is
    being built: they add services to ``service``, kinds to ``kinds``, API areas with
    ``mount(area)``, request observers to ``observers`` and readiness checks to ``checks``.
    """

    config: Any
    reactor: Any
    role: str
    service: service.MultiService
    db: Any
    redis: Any
    queue: Any = None
    store: Any = None
    kinds: dict[str, Any] = field(default_factory=dict)
    destinations: Any = None
    dispatcher: Any = None
    router: Any = None
    site: Any = None
    listener: Optional[Any] = None
    authenticator: Any = None
    observers: list[Any] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    areas: list[tuple[str, Any]] = field(default_factory=list)
    parts: dict[str, Any] = field(default_factory=dict)

    def mount(self, area: Any, prefix: str = "/api/v2") -> None:
        """Serve the ``@route`` methods of ``area`` under ``prefix``."""
        self.areas.append((prefix, area))

    @property
    def runs_api(self) -> bool:
        return self.role in ("all", "api")

    @property
    def runs_worker(self) -> bool:
        return self.role in ("all", "worker")


def start_embedded(config: Any, exclusive: bool = True) -> tuple[Any, list[Any]]:
    """Start embedded PostgreSQL/Redis where the config says ``embedded`` (blocking).

    Returns the config with real addresses filled in, and the started servers (the state
    directory's lock first). A gateway (``exclusive``) takes the lock on ``state_dir`` or raises
    ``StateDirBusy`` naming the holder's pid; a one-off command (migrate, createuser) uses the
    running gateway's servers when the lock is held, and never stops what it did not start.
    """
    from dataclasses import replace

    from dhis2gw.runtime.embedded import EmbeddedPostgres, EmbeddedRedis, StateDirBusy, StateDirLock, ensure_database

    servers: list[Any] = []
    state_dir = config.server.state_dir
    os.makedirs(state_dir, exist_ok=True)
    if "embedded" in (config.database.uri, config.server.redis_address):
        lock = StateDirLock(state_dir)
        try:
            lock.acquire()
            servers.append(lock)
        except StateDirBusy:
            if exclusive:
                raise
    if config.database.uri == "embedded":
        pg = EmbeddedPostgres(state_dir)
        pg.start()
        servers.append(pg)
        ensure_database(pg.uri, "dhis2gw")
        config = replace(config, database=replace(config.database, uri=pg.uri.rsplit("/", 1)[0] + "/dhis2gw"))
    if config.server.redis_address == "embedded":
        redis = EmbeddedRedis(state_dir)
        redis.start()
        servers.append(redis)
        config = replace(config, server=replace(config.server, redis_address=redis.address))
    return config, servers


def build_gateway(config: Any, reactor: Any, role: str = "all",
                  embedded: Optional[list[Any]] = None, listen_fd: Optional[int] = None) -> Gateway:
    """Wire the gateway's services for ``config`` and ``role`` (see DESIGN.md §3)."""
    from dhis2gw.api.health import HealthApi
    from dhis2gw.api.routing import Router
    from dhis2gw.api.site import GatewaySite
    from dhis2gw.runtime.lifecycle import ApiListener, EmbeddedServers, OrderedServices, stop_reactor
    from dhis2gw.queue.connection import RedisConnections
    from dhis2gw.storage.database import Database
    from dhis2gw.storage.migrations import MigrationError, migrate

    root = OrderedServices()
    if embedded:
        EmbeddedServers(reactor, embedded).setServiceParent(root)

    dsn = config.database.dsn()

    async def run_migrations(db: Database) -> None:
        try:
            report = await migrate(dsn, config.server.migrations_path, reactor)
        except MigrationError as e:
            stop_reactor(reactor, str(e))
            raise
        if report.applied:
            Database.log.info("Database schema now at version {v}", v=report.current)

    db = Database(reactor, dsn, size=6,
                  on_started=run_migrations)
    db.setServiceParent(root)

    redis = RedisConnections(reactor, config.server.redis_host, config.server.redis_port,
                             config.server.redis_db, timeout=config.queue.redis_timeout)
    redis.setServiceParent(root)

    from dhis2gw.delivery.dispatcher import Dispatcher
    from dhis2gw.delivery.retry import RetryPolicy
    from dhis2gw.dhis2.destinations import Destinations
    from dhis2gw.queue.feed import SubmissionQueue
    from dhis2gw.storage.submissions import SubmissionStore

    gateway = Gateway(config=config, reactor=reactor, role=role, service=root, db=db, redis=redis)
    gateway.destinations = Destinations(reactor, config)
    gateway.destinations.setServiceParent(root)
    gateway.queue = SubmissionQueue(redis, reactor, config.queue.prefix, config.queue.lease_seconds)
    gateway.store = SubmissionStore(db)

    if gateway.runs_worker:
        gateway.dispatcher = Dispatcher(
            reactor, gateway.queue, gateway.store, gateway.kinds, gateway.destinations.clients,
            RetryPolicy(config.delivery.backoff_base, config.delivery.backoff_cap, config.server.max_retries),
            breaker_threshold=config.delivery.breaker_threshold,
            probe_interval=config.delivery.breaker_probe_interval,
            housekeeping_interval=config.server.request_process_interval,
            heartbeat_seconds=config.queue.heartbeat_seconds, shutdown_timeout=config.server.shutdown_timeout,
            save_response=config.api.save_response,
            max_concurrent={n: e.max_concurrent for n, e in config.destinations().items()},
            default_concurrency=config.server.max_concurrent, ready=db.started,
            batching=_batch_settings(config))

    async def check_db() -> dict[str, Any]:
        return {"ok": await db.ping()}

    async def check_redis() -> dict[str, Any]:
        return {"ok": await redis.ping()}

    gateway.checks.update({"postgresql": check_db, "redis": check_redis,
                           "destinations": gateway.destinations.readiness(gateway.dispatcher)})

    for install in _installers():
        install(gateway)

    if gateway.dispatcher is not None:
        # Added after the installers so it stops before the services they own (stop order is reverse).
        gateway.dispatcher.setServiceParent(root)
    router = gateway.router = Router(gateway.authenticator)
    router.mount("", HealthApi(reactor, gateway.checks, required={"postgresql", "redis"}))
    for prefix, area in gateway.areas:
        router.mount(prefix, area)
    site = gateway.site = GatewaySite(router.resource(), max_body_bytes=config.server.max_body_bytes,
                                      access_log=config.server.access_log, finish_observers=gateway.observers,
                                      trusted_proxies=config.server.trusted_proxies,
                                      header_timeout=config.server.header_timeout,
                                      body_timeout=config.server.body_timeout,
                                      min_body_rate=config.server.min_body_rate,
                                      max_connections_per_address=config.server.max_connections_per_address,
                                      reactor=reactor)
    if role in ("all", "api"):
        host = config.server.host
        endpoint = f"tcp:{config.server.port}:interface={_endpoint_host(host)}"
        gateway.listener = ApiListener(reactor, endpoint, site, db.started, adopt_fd=listen_fd)
        gateway.listener.setServiceParent(root)
    return gateway


def _batch_settings(config: Any) -> Any:
    """Aggregate batching limits from ``delivery.batch_*`` (None when batching is off)."""
    from dhis2gw.delivery.batching import BatchSettings

    d = config.delivery
    if not d.batch_enabled:
        return None
    return BatchSettings(max_values=d.batch_max_values, max_bytes=d.batch_max_bytes,
                         linger=d.batch_linger_ms / 1000.0, max_submissions=max(1, min(d.batch_max_values, 500)))


def _installers() -> list[Callable[[Gateway], None]]:
    """Feature installers, in order. Each is ``install(gateway)`` in its feature's package.

    One line per feature, so parallel work on features does not collide here.
    """
    from dhis2gw.kinds.aggregate import install as install_aggregate
    from dhis2gw.api.submissions import install as install_ingest

    installers: list[Callable[[Gateway], None]] = [install_aggregate]
    installers.append(_optional("dhis2gw.auth.wiring"))        # [auth] users, tokens, request log
    installers.append(_optional("dhis2gw.kinds.tracker"))      # [tracker]
    installers.append(_optional("dhis2gw.mapping.wiring"))     # [mappings] import/export, metadata cache
    installers.append(_optional("dhis2gw.operations.wiring"))  # [operations] logs, queue, docs, metrics
    installers.append(_optional("dhis2gw.sync.wiring"))        # [sync] org units, CC servers, cron
    installers.append(_optional("dhis2gw.plugins_loader"))     # [plugins]
    installers.append(install_ingest)
    return installers


def _optional(module: str) -> Callable[[Gateway], None]:
    """The ``install`` function of ``module``, or a no-op while that feature does not exist."""
    import importlib

    try:
        return importlib.import_module(module).install  # type: ignore[no-any-return]
    except ModuleNotFoundError as e:
        if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
            raise
        return lambda gateway: None


def _endpoint_host(host: str) -> str:
    """Escape a host for an endpoint string (IPv6 colons)."""
    if host == "localhost":
        return "127.0.0.1"
    return host.replace(":", "\\:")


def load(options: Options | dict[str, Any]) -> Any:
    """Load and check the configuration named by the options (exits with one line on error)."""
    from dhis2gw.config import ConfigError, ensure_dev_secret, load_config

    try:
        config = ensure_dev_secret(load_config(options["config"], os.environ))
        if config.ignored_keys:
            from twisted.logger import Logger

            Logger().warn("Ignoring keys of the original dhis2gw that have no effect here: {keys}",
                          keys=", ".join(config.ignored_keys))
        return config
    except ConfigError as e:
        sys.stderr.write(f"dhis2gw: configuration error: {e}\n")
        raise SystemExit(2) from None


def makeService(options: Options | dict[str, Any]) -> service.IService:  # noqa: N802
    """Build the gateway's service tree (twistd entry point)."""
    from twisted.internet import reactor

    from dhis2gw.runtime.embedded import StateDirBusy

    config = load(options)
    try:
        config, embedded = start_embedded(config)
    except StateDirBusy as e:
        sys.stderr.write(f"{e}\n")
        raise SystemExit(1) from None
    return build_gateway(config, reactor, options.get("role") or "all", embedded).service
