"""The Dispatcher service: one DestinationWorker per destination, plus housekeeping.

Housekeeping loops (any number of gateway processes may run them; every step is atomic):

* the **delayed mover** (every second) moves due retries to their ready lists;
* the **reaper** (every ``request_process_interval`` seconds) returns expired-lease and lease-less
  ids to ready and writes a ``lease_expired`` event for each;
* the **probe** of each open breaker (every ``breaker_probe_interval``) runs the destination's
  health check (``GET /api/me?fields=id``: authenticated, touches DHIS2's database, the delivery
  timeouts) and half-opens the breaker when DHIS2 can do work;
* the **reconciler** (at start-up and from the retry cron) makes Redis agree with PostgreSQL:
  non-final rows missing from Redis are queued again; 'processing' rows that nothing holds are
  reset. ``FLUSHALL`` on Redis loses nothing: the reconciler rebuilds the queue.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.application import service
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from dhis2gw.delivery.breaker import OPEN, CircuitBreaker
from dhis2gw.delivery.observers import DeliveryEvents
from dhis2gw.delivery.retry import RetryPolicy
from dhis2gw.delivery.worker import DestinationWorker
from dhis2gw.dhis2.outcome import OutcomeKind
from dhis2gw.queue.connection import RedisUnavailable
from dhis2gw.queue.feed import SubmissionQueue
from dhis2gw.storage.database import DatabaseUnavailable
from dhis2gw.storage.submissions import SubmissionStore


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconciler pass repaired."""

    scanned: int
    requeued: int
    rescheduled: int
    reset: int


class Dispatcher(service.Service):
    """Delivery for every configured destination."""

    log = Logger()
    name = "dispatcher"

    def __init__(self, clock: IReactorTime, queue: SubmissionQueue, store: SubmissionStore,
                 kinds: dict[str, Any], destinations: dict[str, Any], policy: RetryPolicy, *,
                 breaker_threshold: int = 5, probe_interval: float = 15.0, housekeeping_interval: float = 4.0,
                 heartbeat_seconds: float = 15.0, shutdown_timeout: float = 30.0, save_response: bool = True,
                 max_concurrent: dict[str, int] | None = None, default_concurrency: int = 5,
                 ready: defer.Deferred[Any] | None = None,
                 events: DeliveryEvents | None = None, batching: Any | None = None) -> None:
        self.clock = clock
        self.queue = queue
        self.store = store
        self.kinds = kinds
        self.destinations = destinations  # name -> DHIS2Client
        self.policy = policy
        self.probe_interval = probe_interval
        self.housekeeping_interval = housekeeping_interval
        self.shutdown_timeout = shutdown_timeout
        self.ready = ready
        #: Observers of recorded outcomes, recovered leases and reconciler passes (metrics, plugins).
        self.events = events if events is not None else DeliveryEvents()
        self.breakers: dict[str, CircuitBreaker] = {
            name: CircuitBreaker(clock, breaker_threshold, on_change=self._breaker_changed)
            for name in destinations}
        self.workers: dict[str, DestinationWorker] = {
            name: DestinationWorker(name, clock, client, self.breakers[name], queue, store, kinds, policy,
                                    (max_concurrent or {}).get(name, default_concurrency),
                                    heartbeat_seconds=heartbeat_seconds, save_response=save_response,
                                    observer=self.events.outcomes, batching=batching)
            for name, client in destinations.items()}
        self._worker_options = dict(heartbeat_seconds=heartbeat_seconds, save_response=save_response,
                                    observer=self.events.outcomes)
        self._loops: list[task.LoopingCall] = []
        self._starting: defer.Deferred[None] | None = None
        self._busy: set[defer.Deferred[Any]] = set()
        self._probes: dict[str, Any] = {}
        self.reconciled: defer.Deferred[ReconcileReport] = defer.Deferred()

    # --- lifecycle -----------------------------------------------------------------------
    def startService(self) -> None:  # noqa: N802
        super().startService()
        d = self._starting = defer.Deferred.fromCoroutine(self._start())
        d.addErrback(lambda f: self.log.failure("dispatcher start-up failed", f))

    async def _start(self) -> None:
        if self.ready is not None:
            await self.ready
        if not self.running:
            return
        report = await self._reconcile_quietly()
        try:
            await self.queue.redis.call("SET", f"{self.queue.prefix}:sentinel", "1")
        except RedisUnavailable:
            pass
        if not self.reconciled.called:
            self.reconciled.callback(report)
        if not self.running:
            return
        for loop_fn, interval in ((self.move_due, 1.0), (self.reap, self.housekeeping_interval),
                                  (self.check_redis_lost, self.housekeeping_interval)):
            loop = task.LoopingCall(self._quietly, loop_fn)
            loop.clock = self.clock
            loop.start(interval, now=True)
            self._loops.append(loop)
        for worker in self.workers.values():
            worker.start()
        self.log.info("Dispatcher delivering to {dests}", dests=", ".join(self.workers) or "no destinations")

    def stopService(self) -> defer.Deferred[None]:  # noqa: N802
        super().stopService()
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        # While it still waits for the database nothing has started (``_start`` returns once
        # ``ready`` fires and the service is no longer running); waiting for it here would hold a
        # SIGTERM for as long as PostgreSQL stays unreachable.
        if self._starting is not None and (self.ready is None or self.ready.called):
            await self._starting
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        for call in self._probes.values():
            if call.active():
                call.cancel()
        self._probes.clear()
        if self._busy:
            await defer.DeferredList(list(self._busy), consumeErrors=True)
        await defer.gatherResults([defer.Deferred.fromCoroutine(w.stop(self.shutdown_timeout))
                                   for w in self.workers.values()])

    def add_lane(self, name: str, client: Any, max_concurrent: int) -> DestinationWorker:
        """Deliver the queue ``name`` with its own worker, breaker and concurrency (not a DHIS2 server).

        Used for work that must never take a DHIS2 destination's delivery slots (the callback
        plugin's receivers): ``client`` is handed to the kinds' ``deliver`` and its
        ``health_check`` probes the lane's breaker. Call before the service starts.
        """
        if name in self.workers:
            raise ValueError(f"a destination or lane named {name!r} already exists")
        breaker = self.breakers[name] = CircuitBreaker(self.clock, 10 ** 9, on_change=self._breaker_changed)
        worker = self.workers[name] = DestinationWorker(name, self.clock, client, breaker, self.queue, self.store,
                                                        self.kinds, self.policy, max_concurrent,
                                                        **self._worker_options)  # type: ignore[arg-type]
        return worker

    def wake(self, destination: str) -> None:
        """Ingest queued something for ``destination``: pick it up now."""
        worker = self.workers.get(destination)
        if worker is not None:
            worker.wake()

    # --- housekeeping ----------------------------------------------------------------------
    async def _quietly(self, fn: Callable[[], Any]) -> None:
        d = defer.Deferred.fromCoroutine(fn())
        self._busy.add(d)
        try:
            await d
        except (RedisUnavailable, DatabaseUnavailable) as e:
            self.log.debug("housekeeping skipped: {error}", error=e)
        except Exception:  # noqa: BLE001 - a looping call must survive
            self.log.failure("housekeeping step failed")
        finally:
            self._busy.discard(d)

    async def move_due(self) -> int:
        """Move due delayed ids to ready (and wake the workers concerned)."""
        moved = await self.queue.move_due()
        if moved:
            for worker in self.workers.values():
                worker.wake()
        return moved

    async def reap(self) -> list[tuple[str, int]]:
        """Recover expired leases; record a ``lease_expired`` event for each."""
        recovered = await self.queue.reap()
        if recovered:
            ours = {sid for w in self.workers.values() for sid in w.in_flight}
            self.log.warn("Recovered {n} submissions whose lease expired", n=len(recovered))
            await self.store.add_events([sid for _, sid in recovered if sid not in ours], "lease_expired",
                                        "lease expired; back to ready")
            for dest, _ in recovered:
                self.wake(dest)
            self.events.leases_expired(recovered)
        return recovered

    async def check_redis_lost(self) -> bool:
        """Reconcile at once when Redis lost its data (restart without persistence, FLUSHALL).

        A sentinel key is set after each reconcile; finding it gone means the queue structures
        may be gone too, and waiting for the retry cron would stall delivery for minutes.
        """
        key = f"{self.queue.prefix}:sentinel"
        if await self.queue.redis.call("SET", key, "1", "NX") in (None, False):
            return False
        self.log.warn("Redis lost its data (sentinel missing): rebuilding the queue from PostgreSQL")
        await self.reconcile()
        return True

    async def _reconcile_quietly(self) -> ReconcileReport:
        try:
            return await self.reconcile()
        except (RedisUnavailable, DatabaseUnavailable) as e:
            self.log.warn("reconciler could not run: {error}", error=e)
            return ReconcileReport(0, 0, 0, 0)

    async def reconcile(self, batch: int = 2000) -> ReconcileReport:
        """Make Redis hold every non-final submission (see module docstring)."""
        scanned = requeued = rescheduled = reset = 0
        after = 0
        ours = {sid for w in self.workers.values() for sid in w.in_flight}
        while True:
            rows = await self.store.pending(after, batch)
            if not rows:
                break
            after = rows[-1]["id"]
            scanned += len(rows)
            known = await self.queue.known([(r["destination"], r["id"]) for r in rows])
            missing = [r for r, k in zip(rows, known) if not k and r["id"] not in ours]
            stuck = [r["id"] for r in missing if r["status"] == "processing"]
            reset += len(await self.store.reset_processing(stuck, "lease_expired",
                                                           "reconciler: attempt no longer held"))
            for row in missing:
                if row["status"] == "retrying" and row["next_attempt_at"] is not None:
                    due = row["next_attempt_at"].timestamp()
                    if await self.queue.schedule(row["destination"], row["id"], due):
                        rescheduled += 1
                elif await self.queue.enqueue(row["destination"], row["id"]):
                    requeued += 1
        if requeued or rescheduled or reset:
            self.log.info("Reconciler: {requeued} queued again, {rescheduled} rescheduled, {reset} reset",
                          requeued=requeued, rescheduled=rescheduled, reset=reset)
            for worker in self.workers.values():
                worker.wake()
        report = ReconcileReport(scanned, requeued, rescheduled, reset)
        self.events.reconciled(report)
        return report

    # --- breaker probes ----------------------------------------------------------------------
    def _breaker_changed(self, breaker: CircuitBreaker) -> None:
        name = next((n for n, b in self.breakers.items() if b is breaker), None)
        if name is None:
            return
        # An open breaker is a real problem (deliveries to that DHIS2 stop): a warning; the rest is info.
        emit = self.log.warn if breaker.state == OPEN else self.log.info
        emit("Destination {dest}: breaker {state} ({reason})", dest=name, state=breaker.state, reason=breaker.reason)
        if breaker.state == OPEN and self.running and name not in self._probes:
            self._probes[name] = self.clock.callLater(self.probe_interval, self._probe, name)

    def _probe(self, name: str) -> None:
        self._probes.pop(name, None)
        d = defer.Deferred.fromCoroutine(self._run_probe(name))
        d.addErrback(lambda f: self.log.failure("probe of {dest} failed", f, dest=name))
        self._busy.add(d)
        d.addBoth(lambda _: self._busy.discard(d))

    async def _run_probe(self, name: str) -> None:
        breaker = self.breakers[name]
        if breaker.state != OPEN or not self.running:
            return
        # The health check, not /api/system/ping: a DHIS2 whose database is down answers ping.
        outcome = await self.workers[name].health.check()
        if outcome.kind is OutcomeKind.DELIVERED:
            breaker.probe_succeeded()
        else:
            if outcome.reason == "auth" and breaker.reason != "auth":
                breaker.force_open("auth")
            if self.running and name not in self._probes:
                self._probes[name] = self.clock.callLater(self.probe_interval, self._probe, name)
