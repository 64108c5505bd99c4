"""A delivery rig: real PostgreSQL, real Redis, a real simulator on a port, and a Dispatcher.

Submissions are created through the same kind + store + queue calls the ingest API uses, so
engine tests do not depend on authentication. ``wait_final`` polls PostgreSQL until every
submission is in a final state.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from dhis2gw.delivery.dispatcher import Dispatcher
from dhis2gw.delivery.retry import RetryPolicy
from dhis2gw.dhis2.auth import BasicAuth
from dhis2gw.dhis2.client import DHIS2Client
from dhis2gw.dhis2.uids import generate_uid
from dhis2gw.interfaces import IngestRequest, Prepared
from dhis2gw.kinds.aggregate import AggregateKind
from dhis2gw.queue.feed import SubmissionQueue
from dhis2gw.sim import Metadata, Simulator, SimulatorServer
from dhis2gw.storage.mappings import MappingStore
from dhis2gw.storage.submissions import FINAL_STATES, NewSubmission, SubmissionStore
from tests.support.backends import open_database, open_redis

DS_HMIS = "uFaVMlw4qxK"
DE_OPD = "Re46C6Apebu"
DE_ANC1 = "sHyMCqP5u8T"
DE_WEIGHT = "fBMbkOwHQxP"
DE_OPEN = "V7Jxd1RvrjG"
DE_HIV = "mr3nbJiajRl"
FACILITIES = ["ty5AJ6ZU5f7", "a0BQ4umzjN4", "FkZt56rK3mv", "IxdeiQmFwPy", "NCzSd6iw6PU", "jkPfkYcBi3Q",
              "PYSHWP0MyjR", "k9KIoOOULH2"]

# code -> (data element, category option combo or "")
SAMPLE_MAPPINGS = {
    "OPD": (DE_OPD, ""), "ANC1": (DE_ANC1, ""), "WEIGHT": (DE_WEIGHT, ""), "OPEN": (DE_OPEN, ""),
}


class DeliveryRig(TestCase):
    """Base class: ``self.sim``, ``self.server``, ``self.store``, ``self.queue``, ``self.dispatcher``."""

    timeout = 120
    version = "2.40"
    max_concurrent = 5
    max_retries = 3
    backoff_base = 0.05
    probe_interval = 0.2
    breaker_threshold = 5
    read_timeout = 10.0

    async def rig_setup(self) -> None:
        self.dsn, self.db = await open_database(self)
        self.redis, self.prefix = open_redis(self)
        self.sim = Simulator(self.version, clock=reactor, metadata=Metadata.load_default())
        self.server = SimulatorServer(self.sim, reactor)
        await self.server.start(0)
        self.addCleanup(self.server.stop)
        self.client = DHIS2Client(reactor, self.server.base_url, self.client_auth(), read_timeout=self.read_timeout,
                                  connect_timeout=2)
        self.addCleanup(self.client.close)
        self.store = SubmissionStore(self.db)
        self.mappings = MappingStore(self.db)
        self.queue = SubmissionQueue(self.redis, reactor, self.prefix, lease_seconds=60)
        self.kind = AggregateKind(self.mappings, "CODE", DS_HMIS)
        self.kinds: dict[str, Any] = {"aggregate": self.kind}
        await self.insert_mappings(SAMPLE_MAPPINGS)

    def client_auth(self) -> Any:
        return BasicAuth("admin", "district")

    def setUp(self) -> defer.Deferred[Any]:
        return defer.Deferred.fromCoroutine(self.rig_setup())

    def make_dispatcher(self, start: bool = True, batching: Any = None, events: Any = None) -> Dispatcher:
        dispatcher = Dispatcher(
            reactor, self.queue, self.store, self.kinds, {"main": self.client},
            RetryPolicy(self.backoff_base, self.backoff_base * 4, self.max_retries),
            breaker_threshold=self.breaker_threshold, probe_interval=self.probe_interval,
            housekeeping_interval=0.5, heartbeat_seconds=5, shutdown_timeout=5,
            max_concurrent={"main": self.max_concurrent}, batching=batching, events=events)
        if start:
            dispatcher.startService()
            self.addCleanup(dispatcher.stopService)
        self.dispatcher = dispatcher
        return dispatcher

    async def insert_mappings(self, mapping: dict[str, tuple[str, str]], source: str = "") -> None:
        for code, (de, coc) in mapping.items():
            await self.db.execute(
                "test.mapping",
                "INSERT INTO dhis2_mappings (uid, code, what, dataelement, category_option_combo, source_name)"
                " VALUES (%s, %s, 'de', %s, %s, %s)", (generate_uid(), code, de, coc, source))

    async def submit(self, body: dict[str, Any], push: bool = True) -> int:
        """Prepare, record and queue one aggregate submission like ingest does; return its id."""
        prepared = await self.kind.prepare(IngestRequest(body, None, "", "main", "main", {}))
        return await self.record("aggregate", body, prepared, push)

    async def record(self, kind: str, body: dict[str, Any], prepared: Prepared, push: bool = True) -> int:
        """Record a prepared submission of ``kind`` for ``main`` like ingest does and queue it (unless
        ``push`` is false); return its id."""
        created = await self.store.create(NewSubmission(
            uid=generate_uid(), kind=kind, destination="main", submitter_id=None, endpoint=f"/api/v2/{kind}",
            payload=body, dhis2_payload=prepared.dhis2_payload, import_params=prepared.import_params,
            value_count=prepared.value_count))
        if push:
            await self.queue.enqueue("main", created.row["id"])
        return int(created.row["id"])

    async def submit_many(self, n: int, period: str = "202401") -> list[int]:
        """n submissions with distinct natural keys (facility × period × value)."""
        ids = []
        for i in range(n):
            body = {"orgUnit": FACILITIES[i % len(FACILITIES)], "period": _month(period, i // len(FACILITIES)),
                    "dataValues": {"OPD": i + 1}}
            ids.append(await self.submit(body))
        return ids

    async def statuses(self, ids: Iterable[int] | None = None) -> dict[int, str]:
        rows = await self.db.fetch("test.statuses", "SELECT id, status FROM submissions ORDER BY id")
        wanted = set(ids) if ids is not None else None
        return {r["id"]: r["status"] for r in rows if wanted is None or r["id"] in wanted}

    async def wait_final(self, ids: Iterable[int], timeout: float = 60.0,
                         states: tuple[str, ...] = FINAL_STATES) -> dict[int, str]:
        """Poll until every id is in ``states``; fail the test after ``timeout`` seconds."""
        id_list = list(ids)
        deadline = reactor.seconds() + timeout
        while True:
            current = await self.statuses(id_list)
            if all(current.get(i) in states for i in id_list):
                return current
            if reactor.seconds() > deadline:
                waiting = {i: s for i, s in current.items() if s not in states}
                self.fail(f"not final after {timeout}s: {len(waiting)} e.g. {list(waiting.items())[:5]}")
            await deferLater(reactor, 0.05, lambda: None)

    async def events(self, sid: int) -> list[str]:
        return [e["event"] for e in await self.store.events(sid)]


def _month(start: str, offset: int) -> str:
    year, month = int(start[:4]), int(start[4:6])
    total = year * 12 + (month - 1) - offset
    return f"{total // 12:04d}{total % 12 + 1:02d}"
