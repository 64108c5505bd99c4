"""``twistd dhis2gw``: command-line options and the composition root.

``makeService`` is the one place that touches the global reactor; everything below it gets
the reactor (or a clock) passed in. ``build_gateway`` wires the services of DESIGN.md §3 for
one configuration and role, and is what tests use to run a whole gateway in-process.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Optional

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
    """The wired gateway: the service tree plus handles tests and the CLI use."""

    config: Any
    service: service.MultiService
    db: Any
    redis: Any
    router: Any
    site: Any
    listener: Optional[Any] = None
    parts: dict[str, Any] = field(default_factory=dict)


def start_embedded(config: Any) -> tuple[Any, list[Any]]:
    """Start embedded PostgreSQL/Redis where the config says ``embedded`` (blocking).

    Returns the config with real addresses filled in, and the started servers.
    """
    from dataclasses import replace

    from dhis2gw.embedded import EmbeddedPostgres, EmbeddedRedis

    servers: list[Any] = []
    state_dir = config.server.state_dir
    os.makedirs(state_dir, exist_ok=True)
    if config.database.uri == "embedded":
        pg = EmbeddedPostgres(state_dir)
        pg.start()
        servers.append(pg)
        _ensure_database(pg.uri, "dhis2gw")
        config = replace(config, database=replace(config.database, uri=pg.uri.rsplit("/", 1)[0] + "/dhis2gw"))
    if config.server.redis_address == "embedded":
        redis = EmbeddedRedis(state_dir)
        redis.start()
        servers.append(redis)
        config = replace(config, server=replace(config.server, redis_address=redis.address))
    return config, servers


def _ensure_database(admin_uri: str, name: str) -> None:
    """Create database ``name`` if missing (blocking; start-up only)."""
    import psycopg2

    conn = psycopg2.connect(admin_uri)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        conn.close()


def build_gateway(config: Any, reactor: Any, role: str = "all",
                  embedded: Optional[list[Any]] = None) -> Gateway:
    """Wire the gateway's services for ``config`` and ``role`` (see DESIGN.md §3)."""
    from dhis2gw.api.health import HealthApi
    from dhis2gw.api.routing import Router
    from dhis2gw.api.site import GatewaySite
    from dhis2gw.lifecycle import ApiListener, EmbeddedServers, OrderedServices, stop_reactor
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

    from dhis2gw.api.submissions import IngestApi
    from dhis2gw.delivery.dispatcher import Dispatcher
    from dhis2gw.delivery.retry import RetryPolicy
    from dhis2gw.destinations import Destinations
    from dhis2gw.kinds.aggregate import AggregateKind, default_kind_options
    from dhis2gw.queue.feed import SubmissionQueue
    from dhis2gw.storage.mappings import MappingStore
    from dhis2gw.storage.submissions import SubmissionStore

    destinations = Destinations(reactor, config)
    destinations.setServiceParent(root)
    queue = SubmissionQueue(redis, reactor, config.queue.prefix, config.queue.lease_seconds)
    store = SubmissionStore(db)
    mappings = MappingStore(db)
    kinds: dict[str, Any] = {"aggregate": AggregateKind(mappings, **default_kind_options(config))}

    dispatcher = None
    if role in ("all", "worker"):
        dispatcher = Dispatcher(
            reactor, queue, store, kinds, destinations.clients,
            RetryPolicy(config.delivery.backoff_base, config.delivery.backoff_cap, config.server.max_retries),
            breaker_threshold=config.delivery.breaker_threshold,
            probe_interval=config.delivery.breaker_probe_interval,
            housekeeping_interval=config.server.request_process_interval,
            heartbeat_seconds=config.queue.heartbeat_seconds, shutdown_timeout=config.server.shutdown_timeout,
            save_response=config.api.save_response,
            max_concurrent={n: e.max_concurrent for n, e in config.destinations().items()},
            default_concurrency=config.server.max_concurrent, ready=db.started)
        dispatcher.setServiceParent(root)

    authenticator, observers, extra_areas = _build_auth(config, db, reactor, root)
    router = Router(authenticator)

    async def check_db() -> dict[str, Any]:
        return {"ok": await db.ping()}

    async def check_redis() -> dict[str, Any]:
        return {"ok": await redis.ping()}

    health = HealthApi(reactor, {"postgresql": check_db, "redis": check_redis,
                                 "destinations": destinations.readiness(dispatcher)},
                       required={"postgresql", "redis"})
    router.mount("", health)
    router.mount("/api/v2", IngestApi(kinds, store, queue, config.destinations(),
                                      wake=dispatcher.wake if dispatcher is not None else None))
    for area in extra_areas:
        router.mount("/api/v2", area)

    site = GatewaySite(router.resource(), max_body_bytes=config.server.max_body_bytes,
                       access_log=config.server.access_log, finish_observers=observers)
    gateway = Gateway(config=config, service=root, db=db, redis=redis, router=router, site=site,
                      parts={"queue": queue, "store": store, "kinds": kinds, "dispatcher": dispatcher,
                             "destinations": destinations, "mappings": mappings})
    if role in ("all", "api"):
        host = config.server.host
        endpoint = f"tcp:{config.server.port}:interface={_endpoint_host(host)}"
        gateway.listener = ApiListener(reactor, endpoint, site, db.started)
        gateway.listener.setServiceParent(root)
    return gateway


def _build_auth(config: Any, db: Any, reactor: Any, root: Any) -> tuple[Any, list[Any], list[Any]]:
    """The authenticator, request finish observers and user-management API areas."""
    try:
        from dhis2gw.auth.wiring import build_auth
    except ImportError:
        return None, [], []
    return build_auth(config, db, reactor, root)


def _endpoint_host(host: str) -> str:
    """Escape a host for an endpoint string (IPv6 colons)."""
    if host == "localhost":
        return "127.0.0.1"
    return host.replace(":", "\\:")


def load(options: Options | dict[str, Any]) -> Any:
    """Load and check the configuration named by the options (exits with one line on error)."""
    from dhis2gw.config import ConfigError, ensure_dev_secret, load_config

    try:
        config = load_config(options["config"], os.environ)
        return ensure_dev_secret(config)
    except ConfigError as e:
        sys.stderr.write(f"dhis2gw: configuration error: {e}\n")
        raise SystemExit(2) from None


def makeService(options: Options | dict[str, Any]) -> service.IService:  # noqa: N802
    """Build the gateway's service tree (twistd entry point)."""
    from twisted.internet import reactor

    config = load(options)
    config, embedded = start_embedded(config)
    return build_gateway(config, reactor, options.get("role") or "all", embedded).service
