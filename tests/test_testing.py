"""The fakes of dhis2gw.testing are the real classes' doubles: same signatures, same rules, and
sim_client drives every fault mode of the simulator on a task.Clock.

Signatures are compared like buildbot's ``verifyFakeMethods``; the behaviour is one contract suite
run against the fake and against the real class on real PostgreSQL and Redis.
"""
from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import SynchronousTestCase, TestCase

from dhis2gw.delivery import dispatcher, worker
from dhis2gw.dhis2.auth import BasicAuth
from dhis2gw.dhis2.client import DHIS2Client, TreqLike
from dhis2gw.dhis2.outcome import Outcome
from dhis2gw.dhis2.outcome import OutcomeKind as K
from dhis2gw.dhis2.uids import generate_uid
from dhis2gw.kinds.aggregate import AggregateKind
from dhis2gw.queue.connection import RedisConnections
from dhis2gw.queue.feed import SubmissionQueue
from dhis2gw.sim import SimulatorServer
from dhis2gw.storage.database import Database
from dhis2gw.storage.submissions import NewSubmission, SubmissionStore
from dhis2gw.testing import (
    MemorySimulatorServer,
    MemorySubmissionQueue,
    MemorySubmissionStore,
    ScriptedHealthCheck,
    ScriptedKind,
    fake_helper,
    signature_mismatches,
    sim_client,
)
from tests.support.clock_rig import T_2025_06_15, country
from tests.support.services import delete_redis_prefix, migrated_database, redis_prefix, services

# The contract mixins are test cases for the type checker only (the runner collects their subclasses).
if TYPE_CHECKING:
    _Case = TestCase
else:
    _Case = object

DS_HMIS, DE_OPD, DE_WEIGHT, FAC = "uFaVMlw4qxK", "Re46C6Apebu", "fBMbkOwHQxP", "ty5AJ6ZU5f7"


def dvs(period: str = "202401", de: str = DE_OPD) -> dict[str, Any]:
    return {"dataSet": DS_HMIS, "period": period, "orgUnit": FAC, "dataValues": [{"dataElement": de, "value": "3"}]}


def _used_on(module: Any, attribute: str) -> set[str]:
    """Names used as ``self.<attribute>.<name>`` in a module's source (what it needs of a collaborator)."""
    tree = ast.parse(Path(inspect.getfile(module)).read_text())
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == attribute
            and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"}


class SignatureTests(SynchronousTestCase):
    """Every public method of a fake is declared like the real one; the fakes cover what delivery uses."""

    def test_fakes_match_the_real_classes(self) -> None:
        """No fake method is missing from its real class or declared differently."""
        for fake, real in ((MemorySubmissionStore, SubmissionStore), (MemorySubmissionQueue, SubmissionQueue),
                           (ScriptedKind, AggregateKind), (ScriptedHealthCheck, DHIS2Client)):
            self.assertEqual(signature_mismatches(fake, real), [], fake.__name__)

    def test_memory_server_is_treq_like_and_a_simulator_server(self) -> None:
        """The in-memory server's ``request`` is the client's HTTP seam; ``outage`` is SimulatorServer's."""
        self.assertEqual(inspect.signature(MemorySimulatorServer.request), inspect.signature(TreqLike.request))
        self.assertEqual(inspect.signature(MemorySimulatorServer.outage), inspect.signature(SimulatorServer.outage))

    def test_fakes_cover_what_the_worker_and_dispatcher_use(self) -> None:
        """Every ``self.store.X`` and ``self.queue.X`` of the worker and the dispatcher exists on the fakes."""
        clock = task.Clock()
        for fake, attribute in ((MemorySubmissionStore(clock), "store"), (MemorySubmissionQueue(clock), "queue")):
            used = _used_on(worker, attribute) | _used_on(dispatcher, attribute)
            self.assertTrue(used)
            self.assertEqual(sorted(n for n in used if not hasattr(fake, n)), [], attribute)
        self.assertTrue(callable(MemorySubmissionQueue(clock).redis.call))  # the dispatcher's sentinel

    def test_mismatches_are_reported(self) -> None:
        """A wrong parameter, an unknown method or a sync method faking an async one is reported;
        a method marked fake_helper is not."""

        class Wrong:
            async def claim(self, destination: str) -> int | None:
                return None

            async def launch(self) -> None:
                pass

            def ack(self, dest: str, submission_id: int) -> None:
                pass

            @fake_helper
            def seed(self) -> None:
                pass

        problems = signature_mismatches(Wrong, SubmissionQueue)
        self.assertEqual(len(problems), 3, problems)
        self.assertEqual([p.split("(")[0].split(":")[0] for p in problems],
                         ["Wrong.ack", "Wrong.claim", "Wrong.launch"])


class StoreContract(_Case):
    """What the delivery engine relies on from a submission store; run on the fake and on PostgreSQL."""

    store: Any

    async def new_row(self, job_failures: int = 0) -> int:
        raise NotImplementedError

    async def test_lease_token_guards_the_outcome(self) -> None:
        """Only the latest attempt's token records; a final row is never taken again."""
        sid = await self.new_row()
        first = await self.store.start_attempt(sid, "t1", "main")
        self.assertEqual((first["status"], first["attempts"], first["dhis2_payload"]), ("processing", 1, dvs()))
        second = await self.store.start_attempt(sid, "t2", "main")  # the first lease expired
        self.assertEqual(second["attempts"], 2)
        self.assertFalse(await self.store.record(sid, "t1", "delivered", event="delivered"))
        self.assertFalse(await self.store.save_job(sid, "t1", "job1"))
        self.assertTrue(await self.store.save_job(sid, "t2", "job1"))
        self.assertTrue(await self.store.record(sid, "t2", "delivered", event="delivered", http_status=200,
                                                import_count={"imported": 1}))
        row = await self.store.get(sid)
        self.assertEqual((row["status"], row["lease_owner"], row["dhis2_job_id"], row["http_status"]),
                         ("delivered", None, None, 200))
        self.assertIsNotNone(row["finished_at"])
        self.assertIsNone(await self.store.start_attempt(sid, "t3", "main"))
        self.assertEqual(await self.store.start_attempts([sid], "t3", "main"), [])
        self.assertEqual([e["event"] for e in await self.store.events(sid)],
                         ["queued", "processing", "processing", "delivered"])

    async def test_retrying_spends_and_stays_pending(self) -> None:
        """A retry adds to job_failures; the row is pending for the reconciler; reset touches processing only."""
        a, b = await self.new_row(job_failures=1), await self.new_row()
        rows = await self.store.start_attempts([b, a], "t", "main")
        self.assertEqual([r["id"] for r in rows], [a, b])
        self.assertTrue(await self.store.record(a, "t", "retrying", event="retrying", spent_retry=True,
                                                error="HTTP 500", detail="backoff"))
        self.assertEqual((await self.store.get(a))["job_failures"], 2)
        pending = await self.store.pending(0, 10)
        self.assertEqual([(r["id"], r["status"]) for r in pending], [(a, "retrying"), (b, "processing")])
        self.assertEqual(await self.store.pending(a, 10), pending[1:])
        self.assertEqual(await self.store.reset_processing([a, b], "lease_expired", "gone"), [b])
        self.assertEqual(((await self.store.get(b))["status"], (await self.store.get(b))["lease_owner"]),
                         ("queued", None))
        await self.store.add_events([a], "lease_expired", "back to ready")
        events = await self.store.events(a)
        self.assertEqual([(e["event"], e["detail"]) for e in events[-2:]],
                         [("retrying", "backoff"), ("lease_expired", "back to ready")])


class MemoryStoreContractTests(StoreContract, TestCase):
    """The contract on MemorySubmissionStore."""

    def setUp(self) -> None:
        self.store = MemorySubmissionStore(task.Clock())

    async def new_row(self, job_failures: int = 0) -> int:
        return int(self.store.add(dhis2_payload=dvs(), job_failures=job_failures))


class PostgresStoreContractTests(StoreContract, TestCase):
    """The contract on SubmissionStore and PostgreSQL."""

    async def _start(self) -> None:
        self.db = Database(reactor, migrated_database(), size=2)
        self.db.startService()
        await self.db.started
        self.addCleanup(self.db.stopService)
        self.store = SubmissionStore(self.db)

    def setUp(self) -> defer.Deferred[None]:  # type: ignore[override]  # trial waits for it
        return defer.Deferred.fromCoroutine(self._start())

    async def new_row(self, job_failures: int = 0) -> int:
        created = await self.store.create(NewSubmission(
            uid=generate_uid(), kind="aggregate", destination="main", submitter_id=None,
            endpoint="/api/v2/aggregate", payload=dvs(), dhis2_payload=dvs(), import_params={}, value_count=1))
        sid = int(created.row["id"])
        await self.db.execute("t", "UPDATE submissions SET job_failures = %s WHERE id = %s", (job_failures, sid))
        return sid


class QueueContract(_Case):
    """What the worker and the dispatcher rely on from the queue; run on the fake and on Redis."""

    queue: Any
    clock: task.Clock

    async def test_fifo_release_and_ack(self) -> None:
        """Ids come out in arrival order; a released id is claimed next; an acked one is forgotten."""
        for i in (1, 2, 3):
            self.assertTrue(await self.queue.enqueue("main", i))
        self.assertFalse(await self.queue.enqueue("main", 1))
        self.assertEqual(await self.queue.claim_many("main", 2), [1, 2])
        await self.queue.release("main", 1)
        self.assertEqual(await self.queue.claim("main"), 1)
        await self.queue.ack("main", 2)
        self.assertEqual(await self.queue.known([("main", 1), ("main", 2), ("main", 3)]), [True, False, True])
        self.assertEqual(await self.queue.claim("other"), None)

    async def test_delay_schedule_and_move_due(self) -> None:
        """A delayed id is not claimable before it is due; move_due makes it the next one."""
        await self.queue.enqueue("main", 1)
        await self.queue.enqueue("main", 2)
        self.assertEqual(await self.queue.claim("main"), 1)
        await self.queue.delay("main", 1, self.clock.seconds() + 30)
        self.assertTrue(await self.queue.schedule("main", 7, self.clock.seconds() + 10))
        self.assertFalse(await self.queue.schedule("main", 2, self.clock.seconds()))
        self.assertEqual(await self.queue.move_due(), 0)
        self.clock.advance(30)
        self.assertEqual(await self.queue.move_due(), 2)
        self.assertEqual(await self.queue.claim_many("main", 3), [1, 7, 2])  # due ones next, latest due first

    async def test_leases_heartbeat_and_reap(self) -> None:
        """A lease not renewed for longer than its length is reaped back to ready; one renewed is not."""
        for i in (1, 2):
            await self.queue.enqueue("main", i)
        self.assertEqual(await self.queue.claim_many("main", 2), [1, 2])
        self.clock.advance(45)
        self.assertTrue(await self.queue.heartbeat("main", 2))
        self.clock.advance(1)  # (Redis counts a lease renewed to the same millisecond as unchanged)
        self.assertEqual(await self.queue.heartbeat_many("main", [2]), 1)
        self.assertEqual(await self.queue.reap(), [])
        self.clock.advance(19)
        self.assertEqual(await self.queue.reap(), [("main", 1)])
        self.assertFalse(await self.queue.heartbeat("main", 1))
        self.assertEqual(await self.queue.claim("main"), 1)

    async def test_sentinel(self) -> None:
        """The dispatcher's sentinel: SET, then SET NX answers nothing while the key is there."""
        key = f"{self.queue.prefix}:sentinel"
        await self.queue.redis.call("SET", key, "1")
        self.assertIn(await self.queue.redis.call("SET", key, "1", "NX"), (None, False))


class MemoryQueueContractTests(QueueContract, TestCase):
    """The contract on MemorySubmissionQueue."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.queue = MemorySubmissionQueue(self.clock, lease_seconds=60)


class RedisQueueContractTests(QueueContract, TestCase):
    """The contract on SubmissionQueue and Redis."""

    def setUp(self) -> None:
        svc = services()
        self.redis = RedisConnections(reactor, svc.redis_host, svc.redis_port, timeout=5)
        self.redis.startService()
        self.addCleanup(self.redis.stopService)
        prefix = redis_prefix()
        self.addCleanup(delete_redis_prefix, prefix)
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.queue = SubmissionQueue(self.redis, self.clock, prefix, lease_seconds=60)


class SimClientTests(SynchronousTestCase):
    """A real DHIS2Client and the real simulator in memory: each fault mode gives the table's outcome."""

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(T_2025_06_15)
        self.client, self.sim = sim_client("2.40", self.clock, metadata=country(), read_timeout=30)

    def outcome(self, d: Any, seconds: float = 0.0) -> Outcome:
        """The Outcome of a client call, after the Clock moved ``seconds`` (none before)."""
        d = defer.Deferred.fromCoroutine(d)
        if seconds:
            self.assertNoResult(d)
            self.clock.advance(seconds)
        result: Outcome = self.successResultOf(d)
        return result

    def test_fault_modes(self) -> None:
        """The outage shapes, poison payloads and injected statuses, with what DHIS2 stored."""
        faults = self.sim.faults
        # (fault, data element sent, seconds until the answer, kind, reason, values stored)
        cases = [
            (lambda: None, DE_OPD, 0, K.DELIVERED, None, 1),
            (lambda: faults.shape("db_down", 60), DE_OPD, 0, K.SUSPECT, "server_error", 0),
            (lambda: faults.shape("tomcat_starting", 60), DE_OPD, 0, K.DESTINATION_FAILURE, "not_found", 0),
            (lambda: faults.shape("reset_after_send", 60), DE_OPD, 0, K.SUSPECT, "connection_lost", 0),
            (lambda: faults.shape("hang", 60), DE_OPD, 30, K.SUSPECT, "timeout", 0),
            (lambda: faults.poison(DE_WEIGHT, "hang"), DE_WEIGHT, 30, K.SUSPECT, "timeout", 0),
            (lambda: faults.poison(DE_WEIGHT, "reset"), DE_WEIGHT, 0, K.SUSPECT, "connection_lost", 0),
            (lambda: faults.poison(DE_WEIGHT, "500"), DE_WEIGHT, 0, K.SUSPECT, "server_error", 0),
            (lambda: faults.poison(DE_WEIGHT, "500"), DE_OPD, 0, K.DELIVERED, None, 1),
            (lambda: faults.fail_next(1, 503), DE_OPD, 0, K.DESTINATION_FAILURE, "http_503", 0),
            (lambda: faults.fail_next(1, 429, retry_after=7), DE_OPD, 0, K.RATE_LIMITED, "rate_limited", 0),
            (lambda: faults.commit_then_drop(1), DE_OPD, 0, K.SUSPECT, "connection_lost", 1),
            (lambda: faults.latency(2.0), DE_OPD, 2, K.DELIVERED, None, 1),
        ]
        for n, (arrange, element, seconds, kind, reason, stored) in enumerate(cases):
            faults.clear()
            self.sim.store.data_values.clear()
            arrange()
            outcome = self.outcome(self.client.post_data_value_set(dvs(de=element)), seconds)
            self.assertEqual((outcome.kind, outcome.reason, len(self.sim.store.data_values)), (kind, reason, stored), n)
            self.assertEqual(self.sim.in_flight_requests, 0, "the simulator saw the client give up")

    def test_health_check_while_the_database_is_down(self) -> None:
        """db_down: ping answers, the health check (GET /api/me) does not, until the shape ends."""
        self.sim.faults.shape("db_down", 5)
        self.assertEqual(self.outcome(self.client.ping()).kind, K.DELIVERED)
        self.assertEqual(self.outcome(self.client.health_check()).reason, "server_error")
        self.clock.advance(5)
        self.assertEqual(self.outcome(self.client.health_check()).kind, K.DELIVERED)

    def test_outage_refuses_connections(self) -> None:
        """During ``sim.server.outage`` connections are refused; afterwards the import goes through."""
        back = self.sim.server.outage(10)
        self.assertEqual(self.outcome(self.client.post_data_value_set(dvs())).reason, "connection_refused")
        self.clock.advance(10)
        self.successResultOf(back)
        self.assertEqual(self.outcome(self.client.post_data_value_set(dvs())).kind, K.DELIVERED)

    def test_slow_body_and_async_job_on_the_clock(self) -> None:
        """A body trickling past the read timeout is a timeout with the status kept; an async import's
        job finishes when the Clock has moved past the simulator's job delay."""
        self.sim.faults.slow_body(chunk_size=8, chunk_delay=20, paths=["dataValueSets"])
        slow = self.outcome(self.client.post_data_value_set(dvs()), 60)
        self.assertEqual((slow.kind, slow.reason, slow.http_status), (K.SUSPECT, "timeout", 200))
        self.sim.faults.clear()
        accepted = self.outcome(self.client.post_data_value_set(dvs("202402"), {"async": "true"}))
        self.assertEqual(accepted.kind, K.ACCEPTED_ASYNC)
        assert accepted.job is not None
        self.assertEqual(self.outcome(self.client.get_data_value_task(accepted.job.id)).kind, K.PENDING)
        self.clock.advance(1)
        self.assertEqual(self.outcome(self.client.get_data_value_task(accepted.job.id)).kind, K.DELIVERED)

    def test_injected_client_has_nothing_to_close(self) -> None:
        """close() of a client built on an injected HTTP layer fires at once."""
        self.successResultOf(self.client.close())
        other = DHIS2Client(self.clock, "http://x", BasicAuth("a", "b"), http=self.sim.server)
        self.successResultOf(other.close())
