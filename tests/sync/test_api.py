"""``POST /sync/orgunits``, ``GET /orgunits`` and ``GET /cron`` through the real HTTP stack, and the wiring."""
from __future__ import annotations

from typing import Any

import treq
from twisted.internet import reactor

from dhis2gw.runtime.cron import Cron
from dhis2gw.wiring.root import build_gateway
from tests.support.fake_auth import StaticAuthenticator
from tests.sync.support import SyncRig


class OrgUnitApiTests(SyncRig):
    """The sync's areas, built as the composition root builds them, on a Router with the test authenticator."""

    async def rig_setup(self) -> None:
        await super().rig_setup()
        from dhis2gw.api.routing import Router
        from dhis2gw.api.site import GatewaySite
        from dhis2gw.api.sync import CronApi, OrgUnitsApi
        from dhis2gw.kinds.orgunit import OrgUnitKind
        from dhis2gw.runtime.cron import JobRunner
        from dhis2gw.storage.cron_runs import CronRunStore
        from dhis2gw.storage.orgunit_propagation import PropagationStore
        from dhis2gw.storage.orgunit_tree import OrgUnitStore
        from dhis2gw.wiring import features

        self.start_dispatcher()
        config = self.config
        sync = features.build_sync(config, self.db, self.destinations.clients, self.store, self.queue,
                                   self.dispatcher)
        self.kind = OrgUnitKind(PropagationStore(self.db))
        jobs = [features.sync_job(config, sync, "cron"), features.reconcile_job(config, self.dispatcher)]
        runs = CronRunStore(self.db)
        runner = JobRunner(runs)
        self.cron_service = Cron(reactor, runner, jobs, config.server.tzinfo, ready=self.db.started)
        router = Router(StaticAuthenticator())
        router.mount("/api/v2", OrgUnitsApi(OrgUnitStore(self.db), PropagationStore(self.db), runner,
                                            features.sync_job(config, sync, "manual"),
                                            config.api.dhis2_district_oulevel_name))
        router.mount("/api/v2", CronApi(runs, jobs, config.server.tzinfo, reactor, self.cron_service, "all"))
        self.routes = {(r.spec.method, r.full_path) for r in router.routes}
        port = reactor.listenTCP(0, GatewaySite(router.resource(), max_body_bytes=1 << 20), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.base = f"http://127.0.0.1:{port.getHost().port}/api/v2"

    async def call(self, method: str, path: str, role: str = "operator") -> tuple[int, Any]:
        response = await treq.request(method, self.base + path, headers={"Authorization": [f"Test {role} 1"]},
                                      persistent=False)
        return response.code, await response.json()

    async def test_sync_now_then_query_the_tree(self) -> None:
        """An operator runs the sync; any user then filters the copied tree by level, parent, path,
        text and district (by the configured district level name), page by page."""
        self.assertEqual(self.kind.name, "orgunit")
        self.assertTrue({("GET", "/api/v2/orgunits"), ("POST", "/api/v2/sync/orgunits"),
                         ("GET", "/api/v2/cron")} <= self.routes)
        code, body = await self.call("GET", "/orgunits", "submitter")
        self.assertEqual((code, body["total"], body["items"]), (200, 0, []))
        code, body = await self.call("POST", "/sync/orgunits", "submitter")
        self.assertEqual((code, body["error"]["code"]), (403, "forbidden"))

        code, body = await self.call("POST", "/sync/orgunits")
        self.assertEqual(code, 200, body)
        self.assertEqual((body["outcome"], body["report"]["mode"], body["report"]["inserted"]), ("ok", "full", 47))

        code, body = await self.call("GET", "/orgunits?level=3", "submitter")
        self.assertEqual(code, 200)
        self.assertEqual(body["total"], 4)
        kaliro = next(u for u in body["items"] if u["uid"] == "NKiGGxF7RQG")
        self.assertEqual((kaliro["name"], kaliro["parent"], kaliro["level"]), ("Kaliro District", "OZRoMx0Tm10", 3))
        self.assertEqual(kaliro["district"], {"uid": "NKiGGxF7RQG", "name": "Kaliro District"})
        self.assertEqual(body["district_level"], {"name": "District/City", "level": 3})

        code, body = await self.call("GET", "/orgunits?district=Kaliro%20District&level=5&page_size=3")
        units = self.sims["main"].metadata.objects["organisationUnits"]
        expected = sorted(u for u, ou in units.items() if ou["level"] == 5 and "/NKiGGxF7RQG/" in ou["path"])
        self.assertEqual(body["total"], len(expected))
        self.assertEqual(len(body["items"]), min(3, len(expected)))
        self.assertTrue(all(u["district"]["uid"] == "NKiGGxF7RQG" for u in body["items"]))
        facility = body["items"][0]
        self.assertEqual(facility["groups"], sorted(
            g for g, grp in self.sims["main"].metadata.objects["organisationUnitGroups"].items()
            if facility["uid"] in grp["organisationUnits"]))

        code, body = await self.call("GET", "/orgunits?parent=OZRoMx0Tm10")
        self.assertEqual({u["uid"] for u in body["items"]},
                         {u for u, ou in units.items() if ou.get("parent") == "OZRoMx0Tm10"})
        path = units["NKiGGxF7RQG"]["path"]
        code, body = await self.call("GET", f"/orgunits?path={path}&page_size=1000")
        self.assertEqual(body["total"], sum(1 for ou in units.values() if ou["path"].startswith(path)))
        code, body = await self.call("GET", "/orgunits?q=kaliro")
        self.assertIn("NKiGGxF7RQG", [u["uid"] for u in body["items"]])
        code, body = await self.call("GET", "/orgunits?page=2&page_size=20")
        self.assertEqual((body["total"], body["page"], body["total_pages"], len(body["items"])), (47, 2, 3, 20))
        code, body = await self.call("GET", "/orgunits?district=Nowhere")
        self.assertEqual((code, body["total"]), (200, 0))

        code, body = await self.call("GET", "/cron", "submitter")
        self.assertEqual(code, 403)
        code, body = await self.call("GET", "/cron", "admin")
        self.assertEqual(code, 200)
        jobs = {j["name"]: j for j in body["jobs"]}
        self.assertEqual(set(jobs), {"orgunit_sync", "retry_reconcile"})
        self.assertEqual(jobs["orgunit_sync"]["cron_expression"], "0 0 1 1 *")
        self.assertTrue(jobs["orgunit_sync"]["next_run"].startswith(("2027-01-01T00:00:00", "2026-01-01T00:00:00")))
        self.assertEqual(jobs["orgunit_sync"]["last_run"]["outcome"], "ok")
        self.assertEqual(jobs["orgunit_sync"]["last_run"]["detail"]["inserted"], 47)
        self.assertIsNone(jobs["retry_reconcile"]["last_run"])
        self.assertEqual(body["timezone"], "Africa/Kampala")

    async def test_roles_of_the_cron_service(self) -> None:
        """``build_gateway`` wires the sync on every role; the cron service only on all and worker."""
        for role, has_cron in (("api", False), ("worker", True), ("all", True)):
            gateway = build_gateway(self.config, reactor, role)
            self.assertIn("orgunit", gateway.kinds)
            self.assertEqual(isinstance(gateway.cron, Cron), has_cron, role)
            self.assertIn("metadata_refresh", [job.name for job in gateway.cron_jobs])
            self.assertEqual(any(isinstance(s, Cron) for s in gateway.service), has_cron, role)
            paths = {r.full_path for r in gateway.router.routes}
            self.assertTrue({"/api/v2/orgunits", "/api/v2/sync/orgunits", "/api/v2/cron"} <= paths, role)
