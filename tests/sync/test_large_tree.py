"""The sync of a ~2,000-facility, 5-level tree: full copy, no-op repeat, incremental changes, gone units."""
from __future__ import annotations

import time
from collections import Counter

from dhis2gw.sim import Metadata
from tests.sync.support import SyncRig


def generated() -> Metadata:
    return Metadata.generate(facilities=2000)


class LargeTreeTests(SyncRig):
    """Main = generated tree; ``cre`` (create) and ``upd`` (update) are copies of it."""

    main_metadata = staticmethod(generated)
    cc = {"cre": generated, "upd": generated}
    roles = {"cc_dhis2_create_servers": "cre", "cc_dhis2_update_servers": "upd"}

    async def test_full_copy_noop_repeat_and_incremental(self) -> None:
        """2,249 units over 5 levels land in PostgreSQL with levels and groups (the time is printed); a
        repeat writes nothing and queues nothing; a rename, a new facility and a removed unit are
        picked up incrementally and reach only their servers."""
        self.start_dispatcher()
        sync = self.make_sync()
        started = time.monotonic()
        report = await sync.run("test")
        print(f"\nfull sync of the generated tree: {time.monotonic() - started:.1f} s")
        main_units = self.sims["main"].metadata.objects["organisationUnits"]
        self.assertEqual((report["mode"], report["inserted"], report["read"]),
                         ("full", len(main_units), len(main_units)))
        rows = await self.db.fetch("t", "SELECT level, count(*) AS n FROM organisation_units GROUP BY level")
        self.assertEqual({r["level"]: r["n"] for r in rows}, dict(Counter(u["level"] for u in main_units.values())))
        self.assertEqual({r["level"]: r["n"] for r in rows}[5], 2000)
        levels = await self.db.fetch("t", "SELECT level, name FROM organisation_unit_levels ORDER BY level")
        self.assertEqual([lv["name"] for lv in levels],
                         ["National", "Region", "District/City", "Sub-county", "Facility"])
        sample = next(u for u in main_units.values() if u["level"] == 5)
        row = await self.db.fetch_one("t", "SELECT * FROM organisation_units WHERE uid = %s", (sample["id"],))
        self.assertEqual((row["name"], row["path"], row["parent_uid"], row["code"], row["baseline"]),
                         (sample["name"], sample["path"], sample["parent"], sample["code"], True))
        members = await self.db.fetch_one("t", "SELECT count(*) AS n FROM organisation_unit_group_members")
        self.assertEqual(members["n"], sum(len(g["organisationUnits"]) for g in
                                           self.sims["main"].metadata.objects["organisationUnitGroups"].values()))
        self.assertEqual(report["propagation"]["submissions"], 0)  # the baseline is not "new" or "changed"

        # No change: no row is written, nothing is queued, the CC servers see nothing.
        stamp = await self.db.fetch_one("t", "SELECT max(updated_at) AS t FROM organisation_units")
        report = await sync.run("test")
        self.assertEqual((report["mode"], report["inserted"], report["updated"], report["gone"]),
                         ("incremental", 0, 0, 0))
        self.assertEqual((report["memberships_added"], report["memberships_removed"], report["levels_changed"]),
                         (0, 0, 0))
        self.assertEqual(report["propagation"]["submissions"], 0)
        self.assertEqual((await self.db.fetch_one("t", "SELECT max(updated_at) AS t FROM organisation_units"))["t"],
                         stamp["t"])
        self.assertEqual((self.writes("cre"), self.writes("upd")), ([], []))

        # A rename, a new facility, and a facility removed from the main DHIS2.
        district = next(u for u in main_units.values() if u["level"] == 3)
        await self.main_write("PUT", district["id"], {"name": "Renamed District", "shortName": "Renamed",
                                                      "code": district["code"], "openingDate": "1995-01-01",
                                                      "parent": {"id": district["parent"]}})
        sub = next(u for u in main_units.values() if u["level"] == 4)
        await self.main_write("POST", "", {"id": "BrandNew001", "name": "Brand New HC", "shortName": "Brand New",
                                           "openingDate": "2024-02-01", "parent": {"id": sub["id"]}})
        removed = next(u for u in main_units.values() if u["level"] == 5 and u["id"] != "BrandNew001")["id"]
        del main_units[removed]
        self.sims["main"].metadata.retree()
        report = await sync.run("test")
        self.assertEqual((report["inserted"], report["updated"], report["gone"]), (1, 1, 1))
        gone = await self.db.fetch_one("t", "SELECT gone_from_dhis2, gone_at FROM organisation_units WHERE uid = %s",
                                       (removed,))
        self.assertTrue(gone["gone_from_dhis2"])
        self.assertIsNotNone(gone["gone_at"])
        plan = report["propagation"]["servers"]
        self.assertEqual(set(plan), {"cre", "upd"})
        await self.wait_final([p["submission_id"] for p in plan.values()])
        self.assertEqual(self.writes("cre"), [("POST", "/api/organisationUnits")])
        self.assertEqual(self.writes("upd"), [("PUT", f"/api/organisationUnits/{district['id']}")])
        self.assertEqual(self.sims["cre"].metadata.objects["organisationUnits"]["BrandNew001"]["parent"], sub["id"])
        self.assertEqual(self.sims["upd"].metadata.objects["organisationUnits"][district["id"]]["name"],
                         "Renamed District")
        self.assertIn(removed, self.sims["upd"].metadata.objects["organisationUnits"])  # never deleted anywhere
