"""Propagation of the synced hierarchy to CC servers: right servers, parents first, no duplicates."""
from __future__ import annotations

import json
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater

from dhis2gw.sim import Metadata
from tests.sync.support import SyncRig, metadata_without_units

DISTRICT = "NKiGGxF7RQG"  # Kaliro District (level 3)


class PropagationTests(SyncRig):
    """Three CC simulators: ``hier`` (empty: whole hierarchy + group adds), ``cre`` (new units),
    ``upd`` (changed units + facilities)."""

    cc = {"hier": metadata_without_units, "cre": Metadata.load_default, "upd": Metadata.load_default}
    roles = {"cc_dhis2_hierarchy_servers": "hier", "cc_dhis2_ou_group_add_servers": "hier",
             "cc_dhis2_create_servers": "cre", "cc_dhis2_update_servers": "upd", "cc_dhis2_servers": "upd"}

    def posted_units(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.sims[name].store.requests
                if r.method == "POST" and r.path.rstrip("/").endswith("/organisationUnits")]

    async def sub_county(self) -> str:
        main = self.sims["main"].metadata.objects["organisationUnits"]
        return next(u for u, ou in main.items() if ou["level"] == 4 and f"/{DISTRICT}/" in ou["path"])

    async def test_hierarchy_then_changes_reach_the_right_servers_in_order(self) -> None:
        """First sync: ``hier`` gets all 47 units parents-first plus group adds, ``upd`` the 32
        facilities (already there: POST becomes PUT), ``cre`` nothing. A rename and a new facility
        then reach exactly the servers whose lists cover them; a repeat sync writes nothing."""
        self.start_dispatcher()
        sync = self.make_sync()
        report = await sync.run("test")
        self.assertEqual((report["mode"], report["inserted"]), ("full", 47))
        plan = report["propagation"]["servers"]
        self.assertEqual(set(plan), {"hier", "upd"})
        grouped = {u for g in self.sims["main"].metadata.objects["organisationUnitGroups"].values()
                   for u in g["organisationUnits"]}
        self.assertEqual((plan["hier"]["create"], plan["hier"]["group"]), (47, len(grouped)))
        self.assertEqual(plan["upd"]["create"], 32)
        statuses = await self.wait_final([plan["hier"]["submission_id"], plan["upd"]["submission_id"]])
        self.assertEqual(set(statuses.values()), {"delivered"})

        hier_units = self.sims["hier"].metadata.objects["organisationUnits"]
        main_units = self.sims["main"].metadata.objects["organisationUnits"]
        self.assertEqual(set(hier_units), set(main_units))
        self.assertEqual({u: hier_units[u]["path"] for u in hier_units}, {u: main_units[u]["path"] for u in hier_units})
        seen: set[str] = set()
        for body in self.posted_units("hier"):  # every parent was created before its child
            if body.get("parent"):
                self.assertIn(body["parent"]["id"], seen, f"{body['id']} posted before its parent")
            seen.add(body["id"])
        groups = self.sims["hier"].metadata.objects["organisationUnitGroups"]
        main_groups = self.sims["main"].metadata.objects["organisationUnitGroups"]
        self.assertEqual({g: sorted(groups[g]["organisationUnits"]) for g in groups},
                         {g: sorted(main_groups[g]["organisationUnits"]) for g in main_groups})
        self.assertEqual(self.writes("cre"), [])
        upd_writes = self.writes("upd")
        self.assertTrue(all(main_units[p.rsplit("/", 1)[-1]]["level"] == 5 for m, p in upd_writes if m == "PUT"))
        self.assertEqual(len([w for w in upd_writes if w[0] == "PUT"]), 32)
        self.assertEqual(max(self.sims["hier"].store.write_counts[u] for u in hier_units), 1)

        # A rename and a new facility in the main DHIS2.
        before = {n: len(self.writes(n)) for n in self.cc}
        await self.main_write("PUT", DISTRICT, {**{k: main_units[DISTRICT][k] for k in ("name", "shortName",
                              "code", "openingDate")}, "name": "Kaliro City",
                              "parent": {"id": main_units[DISTRICT]["parent"]}})
        parent = await self.sub_county()
        await self.main_write("POST", "", {"id": "NewFacil001", "name": "New Facility HC", "shortName": "New HC",
                                           "code": "NEW_HC", "openingDate": "2024-01-01", "parent": {"id": parent}})
        report = await sync.run("test")
        self.assertEqual((report["mode"], report["inserted"], report["updated"]), ("incremental", 1, 1))
        plan = report["propagation"]["servers"]
        self.assertEqual(set(plan), {"hier", "cre", "upd"})
        await self.wait_final([p["submission_id"] for p in plan.values()])
        new = {n: self.writes(n)[before[n]:] for n in self.cc}
        self.assertEqual([m for m, _ in new["cre"]], ["POST"])
        self.assertEqual(self.sims["cre"].metadata.objects["organisationUnits"]["NewFacil001"]["parent"], parent)
        self.assertEqual(self.sims["cre"].metadata.objects["organisationUnits"][DISTRICT]["name"], "Kaliro District")
        for name in ("hier", "upd"):
            units = self.sims[name].metadata.objects["organisationUnits"]
            self.assertEqual(units[DISTRICT]["name"], "Kaliro City", name)
            self.assertEqual(units["NewFacil001"]["parent"], parent, name)
            methods = [(m, p.rsplit("/", 1)[-1]) for m, p in new[name]]
            self.assertEqual(methods[0], ("PUT", DISTRICT), name)  # the level-3 rename before the level-5 unit
            self.assertEqual(methods[1][0], "POST", name)
            self.assertEqual(len(methods), 2, name)

        # Nothing changed: no submission, no write anywhere.
        before = {n: len(self.writes(n)) for n in self.cc}
        count = len(await self.orgunit_submissions())
        report = await sync.run("test")
        self.assertEqual((report["read"] <= 2, report["inserted"], report["updated"]), (True, 0, 0))
        self.assertEqual(report["propagation"]["submissions"], 0)
        self.assertEqual(len(await self.orgunit_submissions()), count)
        self.assertEqual({n: len(self.writes(n)) for n in self.cc}, before)

    async def test_cc_server_down_catches_up_without_duplicates(self) -> None:
        """An outage in the middle of the hierarchy batch: the batch waits (no retries spent on the
        outage), resumes after the server is back, and every unit exists once on the CC server."""
        self.sims["hier"].faults.latency(0.01)
        self.start_dispatcher()
        sync = self.make_sync()
        report = await sync.run("test")
        sid = report["propagation"]["servers"]["hier"]["submission_id"]
        hier = self.sims["hier"]
        while len(hier.metadata.objects["organisationUnits"]) < 10:
            await deferLater(reactor, 0.01, lambda: None)
        back = self.servers["hier"].outage(1.0)
        self.assertLess(len(hier.metadata.objects["organisationUnits"]), 47)
        await back
        statuses = await self.wait_final([sid])
        self.assertEqual(statuses[sid], "delivered")
        units = hier.metadata.objects["organisationUnits"]
        self.assertEqual(set(units), set(self.sims["main"].metadata.objects["organisationUnits"]))
        created = [b["id"] for b in self.posted_units("hier")]
        # A POST cut off by the outage may be repeated (then answered "exists" → PUT); none is created twice.
        self.assertLessEqual(len(created) - len(set(created)), 3)
        self.assertLessEqual(max(hier.store.write_counts[u] for u in units), 2)
        events = [e["event"] for e in await self.store.events(sid)]
        self.assertIn("destination_unavailable", events)
        row = await self.db.fetch_one("t", "SELECT job_failures, import_count FROM submissions WHERE id = %s", (sid,))
        self.assertLessEqual(row["job_failures"], 1)  # only a reply lost mid-request spends one
        states = await self.db.fetch("t", "SELECT status, count(*) AS n FROM orgunit_propagation"
                                     " WHERE server = 'hier' AND operation = 'unit' GROUP BY status")
        self.assertEqual({r["status"]: r["n"] for r in states}, {"delivered": 47})
        # A repeat sync finds the server in step: nothing more is sent.
        writes = len(self.writes("hier"))
        report = await sync.run("test")
        self.assertNotIn("hier", report["propagation"]["servers"])
        self.assertEqual(len(self.writes("hier")), writes)
