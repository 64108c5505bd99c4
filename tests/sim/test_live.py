"""Faults, outages and concurrency observed by a real treq client over 127.0.0.1."""
from __future__ import annotations

import json
from typing import Any

import treq
from twisted.internet import error, reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool, ResponseFailed

from dhis2gw.sim import Metadata, Simulator, SimulatorServer

from .support import COC_DEFAULT, DE_OPD, FAC_NR, basic, fixture

VALUES = {"dataValues": [{"dataElement": DE_OPD, "period": "202401", "orgUnit": FAC_NR, "value": "5"}]}
KEY = (DE_OPD, "202401", FAC_NR, COC_DEFAULT, COC_DEFAULT)


class LiveTests(TestCase):
    """A SimulatorServer on port 0 driven by treq."""

    async def start(self, version: str = "2.40", clock: Any = None, **kw: Any) -> None:
        self.sim = Simulator(version, clock=reactor, **kw)
        self.server = SimulatorServer(self.sim, reactor, clock=clock)
        await self.server.start(0)
        self.addCleanup(self.server.stop)
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(self.pool.closeCachedConnections)
        self.http = treq.client.HTTPClient(Agent(reactor, pool=self.pool))

    async def call(self, method: str, path: str, body: Any = None, headers: Any = None) -> tuple[int, bytes, Any]:
        response = await self.http.request(method, self.server.base_url + path, headers=headers or basic(),
                                           data=json.dumps(body).encode() if body is not None else None,
                                           allow_redirects=False)
        return response.code, await response.content(), response

    async def test_error_pages_and_control_endpoint(self) -> None:
        """fail_next 502/504 serve the nginx pages, 500 the WebMessage; faults settable over /__sim/faults."""
        await self.start()
        self.sim.faults.fail_next(1, status=502, paths=["dataValueSets"])
        code, body, _ = await self.call("GET", "/api/system/info")
        self.assertEqual(code, 200)
        code, body, _ = await self.call("POST", "/api/dataValueSets", VALUES)
        self.assertEqual((code, body.decode()), (502, fixture("system/502_bad_gateway_nginx__constructed.html")))
        self.assertEqual(self.sim.store.data_values, {})
        code, body, _ = await self.call("POST", "/__sim/faults", {"fail_next": {"count": 1, "status": 504}},
                                        headers={})
        self.assertEqual(code, 200)
        code, body, _ = await self.call("GET", "/api/me")
        self.assertEqual((code, body.decode()), (504, fixture("system/504_gateway_timeout_nginx__constructed.html")))
        await self.call("POST", "/__sim/faults", {"error_rate": {"rate": 1.0, "status": 500}}, headers={})
        code, body, _ = await self.call("GET", "/api/me")
        self.assertEqual((code, json.loads(body)), (500, fixture("system/500_unexpected_error__constructed.json")))
        await self.call("POST", "/__sim/faults", {"clear": True, "rate_limit": {"retry_after": 7}}, headers={})
        code, _, response = await self.call("GET", "/api/me")
        self.assertEqual((code, response.headers.getRawHeaders("Retry-After")), (429, ["7"]))
        await self.call("POST", "/__sim/faults", {"clear": True, "maintenance": True}, headers={})
        code, body, _ = await self.call("GET", "/api/me")
        self.assertEqual(code, 503)
        self.assertIn(b"maintenance", body)
        await self.call("POST", "/__sim/reset", {}, headers={})
        code, body, _ = await self.call("GET", "/__sim/state", headers={})
        state = json.loads(body)
        self.assertEqual((state["version"], state["faults"]["maintenance"]), ("2.40", False))
        code, body, _ = await self.call("POST", "/api/dataValueSets", VALUES)
        _, store, _ = await self.call("GET", "/__sim/store", headers={})
        self.assertEqual([v["value"] for v in json.loads(store)["dataValues"]], ["5"])
        self.assertEqual(json.loads(store)["requests"][-1]["path"], "/api/dataValueSets")
        self.assertNotIn("authorization", json.loads(store)["requests"][-1]["headers"])

    async def test_control_can_be_disabled(self) -> None:
        """control=False hides /__sim."""
        await self.start(control=False)
        code, _, _ = await self.call("GET", "/__sim/state", headers={})
        self.assertEqual(code, 404)

    async def test_outage_same_port(self) -> None:
        """During an outage connections are refused (even pooled ones); afterwards the same port serves again."""
        clock = Clock()
        await self.start(clock=clock)
        port = self.server.port
        self.assertEqual((await self.call("GET", "/api/system/ping"))[0], 200)
        back = self.server.outage(30)
        await deferLater(reactor, 0.01, lambda: None)
        with self.assertRaises((error.ConnectionRefusedError, ResponseFailed)):
            await self.call("GET", "/api/system/ping")
        with self.assertRaises(error.ConnectionRefusedError):
            await self.call("GET", "/api/system/ping")
        clock.advance(30)
        await back
        self.assertEqual(self.server.port, port)
        code, body, _ = await self.call("GET", "/api/system/ping")
        self.assertEqual((code, body), (200, b"pong"))

    async def test_commit_then_drop(self) -> None:
        """The client sees a connection error, yet the value is stored; the next import answers normally."""
        await self.start()
        self.sim.faults.commit_then_drop(n=1)
        with self.assertRaises(ResponseFailed):
            await self.call("POST", "/api/dataValueSets", VALUES)
        self.assertEqual(self.sim.store.data_values[KEY].value, "5")
        code, body, _ = await self.call("POST", "/api/dataValueSets", VALUES)
        self.assertEqual((code, json.loads(body)["response"]["importCount"]["ignored"]), (200, 0))
        self.assertEqual(json.loads(body)["response"]["importCount"]["updated"], 1)
        self.assertEqual(self.sim.in_flight, 0)

    async def test_slow_body_and_latency(self) -> None:
        """Headers arrive before the trickled body completes; latency delays the response on the clock."""
        await self.start()
        self.sim.faults.slow_body(chunk_size=100, chunk_delay=0.02)
        started = reactor.seconds()
        response = await self.http.get(self.server.base_url + "/api/system/info", headers=basic())
        headers_at = reactor.seconds()
        body = await response.content()
        done_at = reactor.seconds()
        self.assertEqual(json.loads(body)["version"], "2.40.0")
        chunks = -(-len(body) // 100)
        self.assertGreaterEqual(done_at - started, 0.02 * (chunks - 1) * 0.9)
        self.assertLess(headers_at - started, done_at - started)
        self.sim.faults.slow_body(off=True)
        self.sim.faults.latency(0.15, paths=["me"])
        started = reactor.seconds()
        await self.call("GET", "/api/me")
        self.assertGreaterEqual(reactor.seconds() - started, 0.14)

    async def test_max_in_flight(self) -> None:
        """Five concurrent imports held by latency are counted: max_in_flight == 5, then back to 0."""
        await self.start()
        self.sim.faults.latency(0.1, paths=["dataValueSets"])
        results = await gatherResults([
            Deferred.fromCoroutine(self.call("POST", "/api/dataValueSets",
                      {"dataValues": [{"dataElement": DE_OPD, "period": f"2024{m:02d}", "orgUnit": FAC_NR,
                                       "value": "1"}]})) for m in range(1, 6)])
        self.assertEqual([r[0] for r in results], [200] * 5)
        self.assertEqual((self.sim.max_in_flight, self.sim.in_flight), (5, 0))
        self.assertEqual(len(self.sim.store.data_values), 5)
        await self.call("GET", "/api/me")
        self.assertEqual(self.sim.max_in_flight, 5)  # reads are not imports

    async def test_large_generated_tree_paging(self) -> None:
        """A generated ~2,000-facility tree pages with filters as DHIS2 lists do."""
        await self.start(metadata=Metadata.generate(facilities=2000))
        code, body, _ = await self.call("GET", "/api/organisationUnits?filter=level:eq:5&fields=id,path,lastUpdated"
                                               "&pageSize=500&page=4&filter=lastUpdated:ge:2023-01-01")
        page = json.loads(body)
        self.assertEqual(page["pager"]["total"], 2000)
        self.assertEqual(page["pager"]["pageCount"], 4)
        self.assertIn("prevPage", page["pager"])
        self.assertNotIn("nextPage", page["pager"])
        self.assertEqual(len(page["organisationUnits"]), 500)
        region = json.loads((await self.call("GET", "/api/organisationUnits?filter=level:eq:2&paging=false"
                                                    "&fields=id"))[1])["organisationUnits"][0]["id"]
        code, body, _ = await self.call("GET", f"/api/organisationUnits?filter=path:like:/{region}&filter=level:eq:5"
                                               "&paging=false&fields=id")
        self.assertEqual(len(json.loads(body)["organisationUnits"]), 250)
        ids = ",".join(o["id"] for o in page["organisationUnits"][:3])
        code, body, _ = await self.call("GET", f"/api/organisationUnits?filter=id:in:[{ids}]&fields=id")
        self.assertEqual(json.loads(body)["pager"]["total"], 3)
