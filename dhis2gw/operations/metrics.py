"""Prometheus metrics of one gateway: a private registry, the collectors, and ``GET /metrics``.

Each gateway has its own ``CollectorRegistry`` (never the process-global default), so two
gateways in one test process do not share numbers. Three kinds of sources:

* events counted as they happen: delivery attempts, lease expiries and reconciler repairs (observers
  registered on the dispatcher's `DeliveryEvents`), finished HTTP requests (a site finish observer);
* live objects read at collection time without I/O: breaker state, attempts in flight, the
  request-log writer's drop counter;
* numbers that need Redis or PostgreSQL (queue depth, oldest waiting row): refreshed by the
  ``/metrics`` handler just before it renders, each source with a timeout, so a dead Redis
  makes the scrape report ``dhis2gw_scrape_errors_total`` instead of failing.

``GET /metrics`` itself is `dhis2gw.api.metrics.MetricsApi`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

BREAKER_STATES = ("closed", "open", "half_open")
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_IMPORT_KEYS = ("imported", "created", "updated", "ignored", "deleted")


class LiveCollector:
    """Collects breaker state, in-flight attempts and request-log drops from live objects."""

    def __init__(self, dispatcher: Any, request_log: Any) -> None:
        self.dispatcher = dispatcher
        self.request_log = request_log

    def collect(self) -> Iterable[Any]:
        """Called by the registry at each render."""
        breaker = GaugeMetricFamily("dhis2gw_breaker_state", "1 for the current breaker state of a destination",
                                    labels=["destination", "state"])
        opened = CounterMetricFamily("dhis2gw_breaker_opened", "Times a destination's breaker opened",
                                     labels=["destination"])
        in_flight = GaugeMetricFamily("dhis2gw_in_flight", "Delivery attempts running in this process",
                                      labels=["destination"])
        dispatcher = self.dispatcher
        if dispatcher is not None:
            for name, b in sorted(dispatcher.breakers.items()):
                snap = b.snapshot()
                for state in BREAKER_STATES:
                    breaker.add_metric([name, state], 1.0 if snap.state == state else 0.0)
                opened.add_metric([name], snap.opened_count)
            for name, worker in sorted(dispatcher.workers.items()):
                in_flight.add_metric([name], len(worker.in_flight))
        yield breaker
        yield opened
        yield in_flight
        writer = self.request_log
        if writer is not None:
            stats = writer.stats()
            dropped = CounterMetricFamily("dhis2gw_request_log_dropped", "Request-log rows dropped (buffer full"
                                          " or PostgreSQL refused them)")
            dropped.add_metric([], float(stats.get("dropped", 0)))
            yield dropped
            written = CounterMetricFamily("dhis2gw_request_log_written", "Request-log rows written")
            written.add_metric([], float(stats.get("written", 0)))
            yield written

    def describe(self) -> list[Any]:
        """Nothing up front: the label values are only known at collection."""
        return []


class GatewayMetrics:
    """The metrics of one gateway and the observers that feed them."""

    log = Logger()

    def __init__(self, clock: IReactorTime, dispatcher: Any = None, request_log: Any = None) -> None:
        """``dispatcher`` (None on an API-only process) and ``request_log`` are read at each scrape."""
        self.clock = clock
        r = self.registry = CollectorRegistry(auto_describe=False)
        self.attempts = Counter("dhis2gw_delivery_attempts", "Delivery attempts recorded, by outcome",
                                ["destination", "kind", "outcome"], registry=r)
        self.dhis2_latency = Histogram("dhis2gw_dhis2_request_seconds", "Duration of DHIS2 deliveries",
                                       ["destination", "kind"], registry=r,
                                       buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
        self.import_counts = Counter("dhis2gw_dhis2_import_count", "Objects DHIS2 reported per import count",
                                     ["destination", "kind", "count"], registry=r)
        self.conflicts = Counter("dhis2gw_dhis2_conflicts", "Conflicts and error reports returned by DHIS2",
                                 ["destination", "kind"], registry=r)
        self.http_requests = Counter("dhis2gw_http_requests", "HTTP requests answered",
                                     ["method", "route", "status"], registry=r)
        self.http_duration = Histogram("dhis2gw_http_request_duration_seconds", "HTTP request durations",
                                       ["method", "route"], registry=r,
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.lease_expiries = Counter("dhis2gw_lease_expiries", "Claimed submissions whose lease expired",
                                      ["destination"], registry=r)
        self.reconciler_repairs = Counter("dhis2gw_reconciler_repairs", "Repairs made by the reconciler",
                                          ["action"], registry=r)
        self.queue_depth = Gauge("dhis2gw_queue_depth", "Ids in the Redis queue of a destination",
                                 ["destination", "state"], registry=r)
        self.paused = Gauge("dhis2gw_destination_paused", "1 while an operator paused a destination",
                            ["destination"], registry=r)
        self.oldest_age = Gauge("dhis2gw_queue_oldest_waiting_seconds",
                                "Age of the oldest queued or retrying submission (PostgreSQL)",
                                ["destination"], registry=r)
        self.waiting_rows = Gauge("dhis2gw_queue_waiting_rows", "Queued or retrying submissions (PostgreSQL)",
                                  ["destination"], registry=r)
        self.scrape_errors = Counter("dhis2gw_scrape_errors", "Metric sources that did not answer at a scrape",
                                     ["source"], registry=r)
        r.register(LiveCollector(dispatcher, request_log))

    # --- observers ---------------------------------------------------------------------------
    def delivery_recorded(self, destination: str, row: dict[str, Any], outcome: Any, stage: str) -> None:
        """Worker observer: one attempt's outcome was recorded."""
        kind = str(row.get("kind") or "unknown")
        self.attempts.labels(destination, kind, outcome.kind.value).inc()
        if outcome.duration is not None:
            self.dhis2_latency.labels(destination, kind).observe(outcome.duration)
        counts = outcome.import_count or outcome.stats or {}
        for key in _IMPORT_KEYS:
            value = counts.get(key) if hasattr(counts, "get") else None
            if isinstance(value, int) and value > 0:
                self.import_counts.labels(destination, kind, key).inc(value)
        n_conflicts = len(outcome.conflicts) + len(outcome.error_reports)
        if n_conflicts:
            self.conflicts.labels(destination, kind).inc(n_conflicts)

    def request_finished(self, request: Any) -> None:
        """Site finish observer: count a request by route template, method and status."""
        mounted = getattr(request, "route", None)
        route_label = mounted.full_path if mounted is not None else "unmatched"
        method = request.method.decode("latin-1") if isinstance(request.method, bytes) else str(request.method)
        method = method if method in _METHODS else "OTHER"
        self.http_requests.labels(method, route_label, str(request.code)).inc()
        duration = getattr(request, "duration", None)
        if duration is not None:
            self.http_duration.labels(method, route_label).observe(duration)

    def leases_expired(self, recovered: list[tuple[str, int]]) -> None:
        """The reaper recovered these (destination, id) pairs."""
        for dest, _ in recovered:
            self.lease_expiries.labels(dest).inc()

    def reconciled(self, report: Any) -> None:
        """One reconciler pass finished."""
        for action in ("requeued", "rescheduled", "reset"):
            n = getattr(report, action, 0)
            if n:
                self.reconciler_repairs.labels(action).inc(n)

    # --- scrape-time refresh ----------------------------------------------------------------------
    async def _timed(self, source: str, fn: Callable[[], Any], timeout: float) -> Any:
        d = defer.Deferred.fromCoroutine(fn())
        d.addTimeout(timeout, self.clock)
        try:
            return await d
        except Exception as e:  # noqa: BLE001 - a scrape reports what it could
            self.scrape_errors.labels(source).inc()
            self.log.debug("metrics source {source} failed: {error}", source=source, error=e)
            return None

    async def refresh(self, queue: Any, logs: Any, destinations: Callable[[], list[str]],
                      timeout: float = 2.0) -> None:
        """Sample queue depths (Redis) and the oldest waiting rows (PostgreSQL)."""
        names = set(destinations())
        listed = await self._timed("redis", queue.destinations, timeout)
        if listed is not None:
            names.update(listed)
            for name in sorted(names):
                depth = await self._timed("redis", partial(queue.depth, name), timeout)
                if depth is None:
                    break
                for state in ("ready", "processing", "delayed"):
                    self.queue_depth.labels(name, state).set(getattr(depth, state))
                self.paused.labels(name).set(1 if depth.paused else 0)
        waiting = await self._timed("postgresql", logs.oldest_waiting, timeout)
        if waiting is not None:
            now = self.clock.seconds()
            for name in sorted(names | set(waiting)):
                entry = waiting.get(name)
                self.waiting_rows.labels(name).set(entry["waiting"] if entry else 0)
                self.oldest_age.labels(name).set(max(0.0, now - entry["oldest"].timestamp()) if entry else 0)

    def render(self) -> bytes:
        """The Prometheus text exposition of this gateway's registry."""
        return generate_latest(self.registry)
