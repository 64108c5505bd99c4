"""The delivery engine end to end: real PostgreSQL, Redis and simulator."""
from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.task import deferLater

from dhis2gw.dhis2.auth import BasicAuth
from tests.support.delivery import DE_ANC1, DE_OPD, DE_OPEN, DE_WEIGHT, DS_HMIS, FACILITIES, DeliveryRig

COC = "HllvX50cXC0"


class HappyPathTests(DeliveryRig):
    """Both input forms arrive in DHIS2 exactly as expected."""

    async def test_simplified_form(self) -> None:
        """Codes are mapped, values keep their exact text, the events read queued → processing → delivered."""
        self.make_dispatcher()
        sid = await self.submit({"orgUnit": FACILITIES[0], "period": "202401",
                                 "dataValues": {"OPD": 1000000, "ANC1": "7", "WEIGHT": 3.25, "OPEN": True}})
        await self.wait_final([sid])
        row = await self.store.get(sid)
        self.assertEqual(row["status"], "delivered")
        self.assertEqual(row["import_count"]["imported"], 4)
        stored = self.sim.store.data_values
        key = (DE_OPD, "202401", FACILITIES[0], COC, COC)
        self.assertEqual(stored[key].value, "1000000")
        self.assertEqual(stored[(DE_ANC1, "202401", FACILITIES[0], COC, COC)].value, "7")
        self.assertEqual(stored[(DE_WEIGHT, "202401", FACILITIES[0], COC, COC)].value, "3.25")
        self.assertEqual(stored[(DE_OPEN, "202401", FACILITIES[0], COC, COC)].value, "true")
        self.assertEqual(await self.events(sid), ["queued", "processing", "delivered"])
        self.assertEqual(row["attempts"], 1)
        self.assertEqual(row["job_failures"], 0)

    async def test_native_form(self) -> None:
        """A native dataValueSet is sent as given (with CREATE_AND_UPDATE) and stored."""
        self.make_dispatcher()
        sid = await self.submit({"dataSet": DS_HMIS, "period": "202402", "orgUnit": FACILITIES[1],
                                 "dataValues": [{"dataElement": DE_OPD, "value": "12"},
                                                {"dataElement": DE_ANC1, "value": 0}]})
        await self.wait_final([sid])
        row = await self.store.get(sid)
        self.assertEqual(row["status"], "delivered")
        self.assertEqual(self.sim.store.data_values[(DE_OPD, "202402", FACILITIES[1], COC, COC)].value, "12")
        self.assertEqual(self.sim.store.data_values[(DE_ANC1, "202402", FACILITIES[1], COC, COC)].value, "0")
        posted = [r for r in self.sim.store.requests if "dataValueSets" in r.path]
        self.assertEqual(len(posted), 1)
        self.assertIn("CREATE_AND_UPDATE", str(posted[0].query))

    async def test_redelivery_is_idempotent(self) -> None:
        """Delivering the same values twice leaves one value per natural key in DHIS2."""
        self.make_dispatcher()
        body = {"orgUnit": FACILITIES[2], "period": "202403", "dataValues": {"OPD": 5}}
        first = await self.submit(body)
        await self.wait_final([first])
        second = await self.submit(body)
        await self.wait_final([second])
        keys = [k for k in self.sim.store.data_values if k[2] == FACILITIES[2]]
        self.assertEqual(len(keys), 1)
        row = await self.store.get(second)
        self.assertEqual(row["status"], "delivered")
        self.assertEqual(row["import_count"]["imported"], 0)


class ConcurrencyTests(DeliveryRig):
    """Never more than max_concurrent requests in flight to one destination."""

    max_concurrent = 3

    async def test_in_flight_cap(self) -> None:
        """With 40 submissions and 50 ms latency the simulator never sees more than 3 at once."""
        self.sim.faults.latency(0.05)
        ids = await self.submit_many(40)
        self.make_dispatcher()
        await self.wait_final(ids)
        self.assertEqual(self.sim.max_in_flight, 3)
        self.assertEqual(set((await self.statuses(ids)).values()), {"delivered"})


class PickupLatencyTests(DeliveryRig):
    """An idle gateway picks a new submission up quickly."""

    async def test_pickup_without_wake(self) -> None:
        """Without a local wake-up (another process ingested), the 50 ms poll finds it."""
        self.make_dispatcher()
        await deferLater(reactor, 0.3, lambda: None)
        start = reactor.seconds()
        sid = await self.submit({"orgUnit": FACILITIES[3], "period": "202404", "dataValues": {"OPD": 1}})
        await self.wait_final([sid])
        first_request = next(r for r in self.sim.store.requests if "dataValueSets" in r.path)
        self.assertLess(first_request.time - start, 0.2)


class AuthFailureTests(DeliveryRig):
    """Wrong DHIS2 credentials: the breaker opens with reason auth and no retry is spent."""

    def client_auth(self) -> BasicAuth:
        return BasicAuth("admin", "wrong-password")

    async def test_auth_failure_opens_breaker(self) -> None:
        dispatcher = self.make_dispatcher()
        sid = await self.submit({"orgUnit": FACILITIES[0], "period": "202401", "dataValues": {"OPD": 1}})
        deadline = reactor.seconds() + 30
        while dispatcher.breakers["main"].state != "open" and reactor.seconds() < deadline:
            await deferLater(reactor, 0.05, lambda: None)
        breaker = dispatcher.breakers["main"].snapshot()
        self.assertEqual((breaker.state, breaker.reason), ("open", "auth"))
        row = await self.store.get(sid)
        self.assertEqual(row["job_failures"], 0)
        self.assertIn(row["status"], ("queued", "processing"))
        self.assertIn("destination_unavailable", await self.events(sid))
