"""Builders of the gateway's features, each from explicit arguments to typed objects.

`dhis2gw.wiring.root.build_gateway` calls them in one order; nothing here looks anything up
in a shared bag or changes an object after it is built.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from twisted.internet.interfaces import IReactorTime

from dhis2gw.api.request_log import RequestLogWriter
from dhis2gw.config import Config
from dhis2gw.delivery.batching import BatchSettings
from dhis2gw.delivery.dispatcher import Dispatcher
from dhis2gw.delivery.observers import DeliveryEvents
from dhis2gw.delivery.retry import RetryPolicy
from dhis2gw.kinds.aggregate import AggregateKind
from dhis2gw.kinds.orgunit import OrgUnitKind
from dhis2gw.kinds.tracker import TrackerKind
from dhis2gw.mapping.lookup import CachedMappings, SharedVersion
from dhis2gw.mapping.metadata_cache import MetadataCache
from dhis2gw.mapping.prevalidation import PreValidator
from dhis2gw.queue.connection import RedisConnections
from dhis2gw.queue.feed import SubmissionQueue
from dhis2gw.runtime.cron import CronJob
from dhis2gw.storage.database import Database
from dhis2gw.storage.orgunit_propagation import PropagationStore
from dhis2gw.storage.orgunit_tree import OrgUnitStore
from dhis2gw.storage.request_log import RequestLogStore
from dhis2gw.storage.submissions import SubmissionStore
from dhis2gw.storage.uid_map import UidMapStore
from dhis2gw.sync.hierarchy import HierarchySync
from dhis2gw.sync.planner import CCRoles, PropagationPlanner

#: How often every destination's metadata is fetched again (the cron job ``metadata_refresh``),
#: and when a snapshot counts as stale for pre-validation.
METADATA_REFRESH_CRON = "0 */6 * * *"
METADATA_MAX_AGE_SECONDS = 48 * 3600.0


@dataclass(frozen=True)
class Mappings:
    """The mapping lookups every process uses, and the metadata cache of API processes."""

    cached: CachedMappings
    metadata: MetadataCache


def build_mappings(config: Config, reactor: Any, db: Database, redis: RedisConnections,
                   clients: dict[str, Any]) -> Mappings:
    """Mapping lookups invalidated across processes through ``<prefix>:mappings:version``, and the
    metadata cache (``<prefix>:metadata:version``; refreshed by the ``metadata_refresh`` cron job)."""
    prefix = config.queue.prefix
    cached = CachedMappings(db, SharedVersion(redis, reactor, f"{prefix}:mappings:version"))
    metadata = MetadataCache(db, clients, reactor, SharedVersion(redis, reactor, f"{prefix}:metadata:version", 5.0),
                             max_age=METADATA_MAX_AGE_SECONDS, started=db.started)
    return Mappings(cached, metadata)


def build_kinds(config: Config, db: Database, mappings: Mappings, serves_api: bool) -> dict[str, Any]:
    """The built-in submission kinds: aggregate, tracker and the internal ``orgunit``."""
    aggregate = AggregateKind.from_config(config, mappings.cached,
                                          PreValidator(mappings.metadata) if serves_api else None)
    tracker = TrackerKind(UidMapStore(db), config.delivery.tracker_async_threshold_bytes)
    return {"aggregate": aggregate, "tracker": tracker, "orgunit": OrgUnitKind(PropagationStore(db))}


def batch_settings(config: Config) -> BatchSettings | None:
    """Aggregate batching limits from ``delivery.batch_*`` (None when batching is off)."""
    d = config.delivery
    if not d.batch_enabled:
        return None
    return BatchSettings(max_values=d.batch_max_values, max_bytes=d.batch_max_bytes,
                         linger=d.batch_linger_ms / 1000.0, max_submissions=max(1, min(d.batch_max_values, 500)))


def build_dispatcher(config: Config, reactor: IReactorTime, queue: SubmissionQueue, store: SubmissionStore,
                     kinds: dict[str, Any], clients: dict[str, Any], events: DeliveryEvents,
                     db: Database) -> Dispatcher:
    """Delivery to every destination (DESIGN.md §4)."""
    return Dispatcher(
        reactor, queue, store, kinds, clients,
        RetryPolicy(config.delivery.backoff_base, config.delivery.backoff_cap, config.server.max_retries),
        breaker_threshold=config.delivery.breaker_threshold,
        probe_interval=config.delivery.breaker_probe_interval,
        housekeeping_interval=config.server.request_process_interval,
        heartbeat_seconds=config.queue.heartbeat_seconds, shutdown_timeout=config.server.shutdown_timeout,
        save_response=config.api.save_response,
        max_concurrent={n: e.max_concurrent for n, e in config.destinations().items()},
        default_concurrency=config.server.max_concurrent, ready=db.started,
        events=events, batching=batch_settings(config))


def build_request_log(config: Config, reactor: IReactorTime, store: RequestLogStore) -> RequestLogWriter:
    """The writer that records every API request (``request_log`` settings)."""
    rl = config.request_log
    return RequestLogWriter(reactor, store, enabled=rl.enabled, flush_interval=rl.flush_interval,
                            batch_size=rl.batch_size, max_buffer=rl.max_buffer,
                            body_excerpt_bytes=rl.body_excerpt_bytes, retention_days=rl.retention_days)


def build_sync(config: Config, db: Database, clients: dict[str, Any], store: SubmissionStore,
               queue: SubmissionQueue, dispatcher: Dispatcher | None) -> HierarchySync | None:
    """The org-unit sync from the main DHIS2, or None when no main DHIS2 is configured."""
    client = clients.get("main")
    if client is None:
        return None
    units = OrgUnitStore(db)
    roles = CCRoles.from_config(config.api, list(clients))
    planner = PropagationPlanner(units, PropagationStore(db), store, queue, roles, config.api.dhis2_facility_level,
                                 wake=dispatcher.wake if dispatcher is not None else None)
    return HierarchySync(client, units, planner, tuple(config.api.dhis2_tree_i_ds), config.api.dhis2_facility_level)


def sync_job(config: Config, sync: HierarchySync | None, trigger: str) -> CronJob | None:
    """The ``orgunit_sync`` job (``trigger``: "cron" or "manual"; one name, so the ``cron_runs``
    claim keeps a manual run and a scheduled one from overlapping)."""
    if sync is None:
        return None

    async def run() -> Any:
        return await sync.run(trigger)

    return CronJob("orgunit_sync", config.api.sync_cron_expression, run)


def reconcile_job(config: Config, dispatcher: Dispatcher | None) -> CronJob:
    """The ``retry_reconcile`` job: Redis made to agree with PostgreSQL (DESIGN.md §4). Listed on
    every role (``GET /cron`` shows what the deployment schedules); it runs where the cron runs,
    which always has a dispatcher."""

    async def run() -> Any:
        if dispatcher is None:
            raise RuntimeError("retry_reconcile runs on processes that deliver (role all or worker)")
        return asdict(await dispatcher.reconcile())

    return CronJob("retry_reconcile", config.api.retry_cron_expression, run, stale_after=3600.0)


def metadata_job(metadata: MetadataCache) -> CronJob:
    """The ``metadata_refresh`` job: every destination's metadata fetched again; API processes of
    every host follow through the shared version key."""

    async def run() -> dict[str, Any]:
        refreshed, failed = [], {}
        for name in sorted(metadata.clients):
            try:
                await metadata.refresh(name)
                refreshed.append(name)
            except Exception as e:  # noqa: BLE001 - recorded per destination; the others still refresh
                failed[name] = str(e) or type(e).__name__
        if failed and not refreshed:
            raise RuntimeError("; ".join(f"{n}: {m}" for n, m in failed.items()))
        return {"refreshed": refreshed, "failed": failed}

    return CronJob("metadata_refresh", METADATA_REFRESH_CRON, run)


def plugin_job(plugin: Any, context: Any) -> CronJob:
    """A plugin's ``ICronJob`` as a cron job (``plugin.run(context)``)."""

    async def run() -> Any:
        return await plugin.run(context)

    return CronJob(str(plugin.name), str(plugin.cron_expression), run)
