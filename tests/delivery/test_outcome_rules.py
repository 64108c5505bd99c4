"""The outcome-rules table (DESIGN.md §4, the README) end to end: one submission through the dispatcher,
the kind, the client and a simulated DHIS2, checked by what is recorded and what DHIS2 holds.

The table (`OutcomeRules`) runs at every DHIS2 version the simulator answers as, on a task.Clock with
the in-memory store, queue and simulator (`tests.support.clock_rig`): each test takes milliseconds. It
runs once more in real time against PostgreSQL, Redis and the simulator on a port, at 2.40
(`OutcomeRulesEndToEndTests`).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest

from dhis2gw.delivery.dispatcher import Dispatcher
from dhis2gw.dhis2.client import DHIS2Client
from dhis2gw.dhis2.versions import data_entry_pipeline, parse_version, partial_success_is_200
from dhis2gw.sim import Version
from tests.support.clock_rig import ClockDeliveryRig
from tests.support.delivery import DE_OPD, DE_WEIGHT, DS_HMIS, FACILITIES, DeliveryRig
from tests.support.versions import SIMULATED_VERSIONS, per_version


def values(org_unit: str, period: str = "202401", **by_element: str) -> dict[str, Any]:
    """A native dataValueSet of the HMIS data set for one org unit and period."""
    return {"dataSet": DS_HMIS, "period": period, "orgUnit": org_unit,
            "dataValues": [{"dataElement": de, "value": v} for de, v in by_element.items()]}


OK_VALUE = values(FACILITIES[0], **{DE_OPD: "3"})

# The table is a test case for the type checker only (the runner collects the classes made from it).
if TYPE_CHECKING:
    _Rig = ClockDeliveryRig
else:
    _Rig = object


@per_version(ClockDeliveryRig, *SIMULATED_VERSIONS)
class OutcomeRules(_Rig):
    """The outcome-rules table, one test per row; mixed into a delivery rig with a fixed DHIS2 version."""

    @property
    def stored_count(self) -> str:
        """The import count a first write lands in: ``updated`` from 2.43 (``imported`` is always 0)."""
        return "updated" if data_entry_pipeline(parse_version(self.version)) else "imported"

    @property
    def warning_http_status(self) -> int:
        """HTTP code of a mixed import: 200 on 2.36-2.37 and from 2.43.1, 409 on 2.38-2.43.0."""
        v = parse_version(self.version)
        assert v is not None
        return 200 if v < (2, 38, 0) or partial_success_is_200(v) else 409

    def stored(self) -> dict[str, Any]:
        """What DHIS2 holds: org unit -> value."""
        return {k[2]: v.value for k, v in self.sim.store.data_values.items()}

    async def row(self, sid: int) -> dict[str, Any]:
        """The submission's row as the store has it."""
        row: dict[str, Any] | None = await self.store.get(sid)
        assert row is not None, sid
        return row

    # --- DHIS2 answered -----------------------------------------------------------------------
    async def test_success_is_delivered(self) -> None:
        """SUCCESS → delivered, with import counts and no error."""
        self.make_dispatcher()
        sid = await self.submit(OK_VALUE)
        await self.wait_final([sid])
        row = await self.row(sid)
        self.assertEqual((row["status"], row["error"]), ("delivered", None))
        self.assertEqual(row["import_count"][self.stored_count], 1)

    async def test_warning_is_partial(self) -> None:
        """WARNING (one value rejected, one stored) → partial with the conflict recorded."""
        self.make_dispatcher()
        sid = await self.submit(values(FACILITIES[0], **{DE_OPD: "4", "UnknownDE01": "1"}))
        await self.wait_final([sid])
        row = await self.row(sid)
        self.assertEqual(row["status"], "partial")
        self.assertEqual(row["import_count"][self.stored_count], 1)
        self.assertTrue(row["conflicts"])
        self.assertEqual(row["http_status"], self.warning_http_status)
        self.assertEqual(row["job_failures"], 0)

    async def test_error_is_rejected(self) -> None:
        """ERROR (unknown data set: nothing stored) → rejected, no retry."""
        self.make_dispatcher()
        sid = await self.submit(dict(values(FACILITIES[0], **{DE_OPD: "4"}), dataSet="NoSuchDSet1"))
        await self.wait_final([sid])
        row = await self.row(sid)
        self.assertEqual((row["status"], row["attempts"]), ("rejected", 1))
        self.assertEqual(self.sim.store.data_values, {})

    async def test_only_value_ignored_is_rejected(self) -> None:
        """The only value is ignored (a period beyond the data set's open future periods, E7641 or
        2.43's E8030): nothing stored, so ``rejected`` — never ``partial`` — and no retry spent."""
        if Version.parse(self.version).superuser_skips_future_periods:
            raise SkipTest("a superuser (the simulator's account) may write future periods from 2.43.1")
        self.make_dispatcher()
        sid = await self.submit(values(FACILITIES[0], "203001", **{DE_OPD: "4"}))
        await self.wait_final([sid])
        row = await self.row(sid)
        self.assertEqual((row["status"], row["job_failures"]), ("rejected", 0))
        self.assertTrue(row["conflicts"])
        self.assertEqual(self.sim.store.data_values, {})

    # --- suspect: judged by DHIS2's health ----------------------------------------------------------
    async def test_server_error_retries_then_fails(self) -> None:
        """HTTP 500 with a DHIS2 body, DHIS2 healthy otherwise: retries with backoff, then failed."""
        self.sim.faults.error_rate(1.0, status=500, paths=["dataValueSets"])
        self.make_dispatcher()
        sid = await self.submit(OK_VALUE)
        await self.wait_final([sid])
        row = await self.row(sid)
        self.assertEqual((row["status"], row["attempts"], row["job_failures"]),
                         ("failed", self.max_retries + 1, self.max_retries + 1))
        events = await self.events(sid)
        self.assertEqual((events.count("retrying"), events[-1]), (self.max_retries, "failed"))

    async def test_server_error_then_success(self) -> None:
        """One 500 then success: retrying, then delivered, one retry spent."""
        self.sim.faults.fail_next(1, status=500, paths=["dataValueSets"])
        self.make_dispatcher()
        sid = await self.submit(OK_VALUE)
        await self.wait_final([sid])
        row = await self.row(sid)
        self.assertEqual((row["status"], row["job_failures"], row["attempts"]), ("delivered", 1, 2))

    async def test_db_down_spends_nothing(self) -> None:
        """DHIS2 up, its database down (ping answers, everything else 500): the breaker opens with
        server_error, nothing is spent or failed, everything is delivered once the database is back."""
        self.sim.faults.shape("db_down", 2.0)
        dispatcher = self.make_dispatcher()
        ids = [await self.submit(values(f, **{DE_OPD: "5"})) for f in FACILITIES]
        breaker = dispatcher.breakers["main"]
        await self.wait_until(lambda: breaker.state == "open", 2.0)
        self.assertEqual(breaker.reason, "server_error")
        self.assertEqual(set((await self.wait_final(ids, timeout=60)).values()), {"delivered"})
        self.assertEqual({(await self.row(i))["job_failures"] for i in ids}, {0})
        self.assertEqual(self.stored(), {f: "5" for f in FACILITIES})
        self.assertIn("destination_suspect", await self.events(ids[0]))

    async def _poison(self, mode: str, with_others: bool) -> None:
        """One payload always breaks DHIS2 (a 500, a reset or a hang for it alone): it fails after
        max_retries, the others are delivered, the breaker stays closed (delivery.outcome_rules)."""
        self.client.read_timeout = 0.5  # a hang ends within seconds
        self.sim.faults.poison(DE_WEIGHT, mode)
        dispatcher = self.make_dispatcher()
        poison = await self.submit(values(FACILITIES[1], **{DE_WEIGHT: "7"}))
        others = [await self.submit(values(f, **{DE_OPD: "3"})) for f in (FACILITIES[2:6] if with_others else [])]
        started = self.sim.epoch()
        statuses = await self.wait_final([poison, *others], timeout=90)
        self.assertEqual((statuses[poison], {statuses[o] for o in others}),
                         ("failed", {"delivered"} if others else set()))
        row = await self.row(poison)
        self.assertEqual((row["attempts"], row["job_failures"]), (self.max_retries + 1, self.max_retries + 1))
        events = await self.events(poison)
        self.assertEqual((events.count("retrying"), events[-1]), (self.max_retries, "failed"))
        self.assertNotIn("destination_suspect", events)
        # Bounded: max_retries + 1 attempts of at most read_timeout each (plus a read-back and a health
        # check for a hang), with backoff capped at 4 × backoff_base — seconds, never an outage's wait.
        self.assertLess(self.sim.epoch() - started, 30)
        for other in others:
            self.assertEqual((await self.row(other))["job_failures"], 0)
        breaker = dispatcher.breakers["main"]
        self.assertEqual((breaker.state, breaker.opened_count), ("closed", 0))
        self.assertEqual(self.stored(), {f: "3" for f in FACILITIES[2:6]} if others else {})

    async def test_poison_500_with_others(self) -> None:
        """A 500 for one payload, others flowing: it fails after max_retries, the others are delivered."""
        await self._poison("500", True)

    async def test_poison_reset_with_others(self) -> None:
        """A reset after sending for one payload, others flowing: it fails, the others are delivered."""
        await self._poison("reset", True)

    async def test_poison_hang_with_others(self) -> None:
        """No answer for one payload, others flowing: it fails after max_retries, the others delivered."""
        await self._poison("hang", True)

    async def test_poison_500_alone(self) -> None:
        """A 500 for the one payload in an otherwise empty queue: the health check passes, it fails."""
        await self._poison("500", False)

    async def test_poison_reset_alone(self) -> None:
        """A reset for the one payload in an otherwise empty queue: the health check passes, it fails."""
        await self._poison("reset", False)

    async def test_poison_hang_alone(self) -> None:
        """No answer for the one payload in an otherwise empty queue: the health check passes, it fails."""
        await self._poison("hang", False)

    # --- the destination's fault: nothing spent ------------------------------------------------------
    async def _destination_failure(self, status: int) -> None:
        self.sim.faults.fail_next(3, status=status, paths=["dataValueSets"])
        self.make_dispatcher()
        sid = await self.submit(OK_VALUE)
        await self.wait_final([sid])
        row = await self.row(sid)
        self.assertEqual((row["status"], row["job_failures"]), ("delivered", 0))
        self.assertEqual((await self.events(sid)).count("destination_unavailable"), 3)

    async def test_502_is_destination_failure(self) -> None:
        """502 from a proxy: back to ready, no retry spent."""
        await self._destination_failure(502)

    async def test_503_is_destination_failure(self) -> None:
        """503: back to ready, no retry spent."""
        await self._destination_failure(503)

    async def test_504_is_destination_failure(self) -> None:
        """504: back to ready, no retry spent."""
        await self._destination_failure(504)

    async def test_connection_refused_is_destination_failure(self) -> None:
        """Connection refused (DHIS2 down): the breaker opens, probes, closes; nothing spent."""
        dispatcher = self.make_dispatcher()
        self.server.outage(2.5)
        sid = await self.submit(OK_VALUE)
        await self.wait_final([sid])
        row = await self.row(sid)
        self.assertEqual((row["status"], row["job_failures"]), ("delivered", 0))
        self.assertGreaterEqual(dispatcher.breakers["main"].opened_count, 1)
        self.assertEqual(dispatcher.breakers["main"].state, "closed")

    async def test_wrong_base_url_rejects_nothing(self) -> None:
        """A base URL that misses DHIS2 (an HTML 404 for every import): nothing rejected, no retry spent,
        the breaker opens with reason not_found; with the right URL the same submission is delivered."""
        right = self.client
        self.client = self.client_at("/dhis")
        dispatcher = self.make_dispatcher()
        sid = await self.submit(OK_VALUE)
        breaker = dispatcher.breakers["main"]
        await self.wait_until(lambda: breaker.opened_count, 5.0)
        await self.wait_final([sid], timeout=5, states=("queued",))  # the breaker opens before the commit
        self.assertEqual((breaker.state, breaker.reason), ("open", "not_found"))
        row = await self.row(sid)
        self.assertEqual((row["status"], row["job_failures"]), ("queued", 0))
        self.assertIn("destination_unavailable", await self.events(sid))
        self.assertEqual(self.sim.store.data_values, {})
        await self.stop_dispatcher(dispatcher)
        self.client = right
        self.make_dispatcher()
        await self.wait_final([sid])
        self.assertEqual((await self.row(sid))["status"], "delivered")

    async def test_429_is_delayed_by_retry_after(self) -> None:
        """429 with Retry-After: delayed at least that long, no retry spent."""
        self.sim.faults.fail_next(1, status=429, paths=["dataValueSets"], retry_after=1)
        self.make_dispatcher()
        start = self.sim.epoch()
        sid = await self.submit(OK_VALUE)
        await self.wait_final([sid])
        row = await self.row(sid)
        self.assertEqual((row["status"], row["job_failures"]), ("delivered", 0))
        self.assertIn("rate_limited", await self.events(sid))
        second = [r.time for r in self.sim.store.requests if "dataValueSets" in r.path][-1]
        self.assertGreaterEqual(second - start, 0.9)


# (type: the table is checked as a ClockDeliveryRig, which DeliveryRig is not)
class OutcomeRulesEndToEndTests(OutcomeRules, DeliveryRig):  # type: ignore[misc]
    """The same table in real time: PostgreSQL, Redis, the simulator on a port, DHIS2 2.40."""

    version = "2.40"

    def client_at(self, path: str) -> DHIS2Client:
        """A client of the same simulator under another base URL (``/dhis``: a wrong one)."""
        client = DHIS2Client(reactor, self.server.base_url + path, self.client_auth(), connect_timeout=2)
        self.addCleanup(client.close)
        return client

    async def wait_until(self, done: Callable[[], Any], timeout: float = 20.0) -> None:
        """Poll ``done()`` on the reactor; fail after ``timeout`` seconds."""
        deadline = reactor.seconds() + timeout
        while not done():
            if reactor.seconds() > deadline:
                self.fail(f"not done after {timeout} s")
            await deferLater(reactor, 0.02, lambda: None)

    async def stop_dispatcher(self, dispatcher: Dispatcher) -> None:
        await dispatcher.stopService()
