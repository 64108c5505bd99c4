"""A delivery rig on a task.Clock: the real Dispatcher and AggregateKind, in-memory store and queue, and a
real DHIS2Client talking to the simulator in memory (``dhis2gw.testing``). No PostgreSQL, Redis or socket.

It offers what `tests.support.delivery.DeliveryRig` offers (``make_dispatcher``, ``submit``, ``wait_final``,
``events``, ``sim``, ``server``, ``store``), so one mixin of ``async def`` tests runs on either: here each
test runs to its end synchronously, the waits moving the Clock from one scheduled call to the next.
"""
from __future__ import annotations

import functools
import inspect
import pickle
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from twisted.internet import defer, task
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.delivery.dispatcher import Dispatcher
from dhis2gw.delivery.retry import RetryPolicy
from dhis2gw.dhis2.auth import BasicAuth
from dhis2gw.dhis2.client import DHIS2Client
from dhis2gw.interfaces import IngestRequest
from dhis2gw.kinds.aggregate import AggregateKind
from dhis2gw.sim import Metadata
from dhis2gw.storage.statuses import FINAL_STATES
from dhis2gw.testing import MemorySimulatorServer, MemorySubmissionQueue, MemorySubmissionStore, sim_client

DS_HMIS = "uFaVMlw4qxK"
T_2025_06_15 = 1749988800.0  # 2025-06-15T12:00:00Z: the simulator's "now" is the Clock's


class _Country(Metadata):
    """The bundled metadata, copied by pickling: five times faster than ``copy.deepcopy``, which the
    simulator applies to its metadata when it starts (a third of these tests' time otherwise)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _Country:
        return pickle.loads(pickle.dumps(self))


@functools.lru_cache(maxsize=1)
def _country_pickled() -> bytes:
    metadata = Metadata.load_default()
    metadata.__class__ = _Country
    return pickle.dumps(metadata)


def country() -> Metadata:
    """A copy of the bundled metadata of its own (parsed once per test process, then unpickled)."""
    metadata: Metadata = pickle.loads(_country_pickled())
    return metadata


def _synchronously(test: Callable[[Any], Coroutine[Any, Any, None]]) -> Callable[[Any], None]:
    """Run an ``async def`` test to its end now; it may wait only on the Clock (through the rig)."""

    @functools.wraps(test)
    def run(self: Any) -> None:
        results: list[Any] = []
        defer.Deferred.fromCoroutine(test(self)).addBoth(results.append)
        if not results:
            self.fail("the test waits on something other than the Clock")
        if isinstance(results[0], Failure):
            results[0].raiseException()

    return run


class ClockDeliveryRig(SynchronousTestCase):
    """Base class: ``self.clock``, ``self.sim``, ``self.server``, ``self.client``, ``self.store``, ``self.queue``."""

    version = "2.40"
    max_concurrent = 5
    max_retries = 3
    backoff_base = 0.05
    probe_interval = 1.0  # DeliveryRig probes every 0.2 s to keep real-time tests short; here time is free
    breaker_threshold = 5
    read_timeout = 10.0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, method in inspect.getmembers(cls, inspect.iscoroutinefunction):
            if name.startswith("test"):
                setattr(cls, name, _synchronously(method))

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(T_2025_06_15)
        self.client, self.sim = sim_client(self.version, self.clock, metadata=country(),
                                           read_timeout=self.read_timeout)
        self.server: MemorySimulatorServer = self.sim.server
        self.store = MemorySubmissionStore(self.clock)
        self.queue = MemorySubmissionQueue(self.clock, lease_seconds=60)
        # Native payloads only: the kind never looks a code up in the mapping store.
        self.kind = AggregateKind(None, "CODE", DS_HMIS)  # type: ignore[arg-type]
        self.kinds: dict[str, Any] = {"aggregate": self.kind}

    def client_at(self, path: str) -> DHIS2Client:
        """A client of the same simulator under another base URL (``/dhis``: a wrong one)."""
        return DHIS2Client(self.clock, self.server.base_url + path, BasicAuth("admin", "district"),
                           clock=self.sim.clock, http=self.server, read_timeout=self.read_timeout)

    def make_dispatcher(self, start: bool = True, batching: Any = None) -> Dispatcher:
        """The Dispatcher DeliveryRig makes, on the Clock; stopped (the Clock moving) at cleanup."""
        dispatcher = Dispatcher(
            self.clock, self.queue, self.store, self.kinds, {"main": self.client},  # type: ignore[arg-type]
            RetryPolicy(self.backoff_base, self.backoff_base * 4, self.max_retries),
            breaker_threshold=self.breaker_threshold, probe_interval=self.probe_interval,
            housekeeping_interval=0.5, heartbeat_seconds=5, shutdown_timeout=5,
            max_concurrent={"main": self.max_concurrent}, batching=batching)
        for worker in dispatcher.workers.values():
            # Nothing else polls here: submit() wakes the worker, as ingest does in one process.
            worker.poll_interval = 1.0
        if start:
            dispatcher.startService()
            self.addCleanup(self._stop, dispatcher)
        self.dispatcher = dispatcher
        return dispatcher

    def _stop(self, dispatcher: Dispatcher) -> None:
        if dispatcher.running:
            stopped = dispatcher.stopService()
            self.run_until(lambda: stopped.called, 60)

    async def stop_dispatcher(self, dispatcher: Dispatcher) -> None:
        """Stop ``dispatcher`` (its workers finishing their attempts on the Clock)."""
        self._stop(dispatcher)

    def run_until(self, done: Callable[[], Any], timeout: float) -> None:
        """Move the Clock from one scheduled call to the next until ``done()``; fail after ``timeout`` seconds."""
        deadline = self.clock.seconds() + timeout
        while not done():
            calls = self.clock.getDelayedCalls()
            if not calls or self.clock.seconds() >= deadline:
                self.fail(f"not done after {timeout} s on the Clock" if calls else "nothing left to happen")
            self.clock.advance(max(0.0, min(c.getTime() for c in calls) - self.clock.seconds()))

    async def wait_until(self, done: Callable[[], Any], timeout: float = 20.0) -> None:
        """DeliveryRig's polling wait, on the Clock."""
        self.run_until(done, timeout)

    async def submit(self, body: dict[str, Any], push: bool = True) -> int:
        """Prepare, record and queue one aggregate submission (native payload) like ingest does; its id."""
        prepared = await self.kind.prepare(IngestRequest(body, None, "", "main", "main", {}))
        sid = self.store.add(kind="aggregate", destination="main", endpoint="/api/v2/aggregate", payload=body,
                             dhis2_payload=prepared.dhis2_payload, import_params=prepared.import_params,
                             value_count=prepared.value_count)
        if push:
            await self.queue.enqueue("main", sid)
            if getattr(self, "dispatcher", None) is not None:
                self.dispatcher.wake("main")
        return sid

    async def statuses(self, ids: Iterable[int] | None = None) -> dict[int, str]:
        wanted = set(self.store.rows) if ids is None else set(ids)
        return {i: r["status"] for i, r in sorted(self.store.rows.items()) if i in wanted}

    async def wait_final(self, ids: Iterable[int], timeout: float = 60.0,
                         states: tuple[str, ...] = FINAL_STATES) -> dict[int, str]:
        """Run the Clock until every id is in ``states``."""
        id_list = list(ids)
        self.run_until(lambda: all(self.store.rows[i]["status"] in states for i in id_list), timeout)
        return await self.statuses(id_list)

    async def events(self, sid: int) -> list[str]:
        return [e["event"] for e in await self.store.events(sid)]
