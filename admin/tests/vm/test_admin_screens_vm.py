"""DashboardVM, MappingsVM and UsersVM against a real gateway."""
from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from admin_rig import PASSWORD, AdminGatewayCase
from twisted.internet import reactor, task

from dhis2gw_admin.client import GatewayClient
from tests.mapping.support import make_csv, make_xlsx, sample_rows


class DashboardViewModelTests(AdminGatewayCase):
    """Counts per status, the queue per destination, pause/resume, auto-refresh."""

    async def test_counts_queue_pause_resume(self) -> None:
        """Counts match what happened; pause shows the paused flag and waiting age; resume clears it."""
        model = await self.logged_in()
        sid = await self.submit(5)
        await self.wait_status(sid, ("delivered",))
        vm = model.dashboard
        self.assertTrue(await vm.refresh())
        self.assertEqual(vm.counts["24h"]["delivered"], 1)
        self.assertEqual(vm.counts["7d"]["failed"], 0)
        main = {d["destination"]: d for d in vm.destinations}["main"]
        self.assertEqual(main["paused_text"], "running")
        self.assertTrue(main["breaker_text"].startswith("closed"), main["breaker_text"])
        await vm.pause("main")
        self.assertEqual(vm.message, "Deliveries to main paused")
        waiting = await self.submit(6, facility=3)
        await vm.refresh()
        main = {d["destination"]: d for d in vm.destinations}["main"]
        self.assertTrue(main["paused"])
        self.assertEqual(main["paused_text"], "PAUSED")
        self.assertEqual(vm.counts["24h"]["queued"], 1)
        self.assertNotEqual(main["oldest_text"], "—")
        await vm.resume("main")
        self.assertFalse({d["destination"]: d for d in vm.destinations}["main"]["paused"])
        await self.wait_status(waiting, ("delivered",))
        await vm.pause("nowhere")
        self.assertEqual(vm.error, "No DHIS2 destination named 'nowhere' is configured.")

    async def test_names_the_gateway_and_no_stale_state_after_an_error(self) -> None:
        """The dashboard names the gateway (address, version, zone) and each destination's DHIS2 URL;
        when a refresh fails, the queue cards stop claiming "running / breaker closed" under the error."""
        model = await self.logged_in()
        vm = model.dashboard
        self.assertTrue(await vm.refresh())
        self.assertIn(f"at {self.base}", vm.gateway_text)
        self.assertIn(self.config.server.timezone, vm.gateway_text)
        main = {d["destination"]: d for d in vm.destinations}["main"]
        self.assertEqual(main["title"], f"main: DHIS2 at {self.config.api.dhis2_base_url}")
        address = model.client.base_url
        model.client.base_url = "http://127.0.0.1:9"  # the gateway is gone (nothing listens there)
        self.assertFalse(await vm.refresh())
        self.assertIn("Cannot reach the gateway", vm.error)
        main = {d["destination"]: d for d in vm.destinations}["main"]
        self.assertTrue(main["stale"])
        self.assertNotIn("closed", main["breaker_text"])
        self.assertNotEqual(main["paused_text"], "running")
        model.client.base_url = address  # back: the next refresh shows the real state again
        self.assertTrue(await vm.refresh())
        self.assertEqual(vm.error, "")
        self.assertFalse({d["destination"]: d for d in vm.destinations}["main"]["stale"])

    async def test_auto_refresh(self) -> None:
        """Auto-refresh reloads on its interval until stopped (and stops at logout)."""
        model = await self.logged_in()
        vm = model.dashboard
        vm.interval = 0.05
        loads: list[int] = []
        vm.bind(destinations=lambda _vm, value: loads.append(len(value)))
        vm.start_auto_refresh()
        for _ in range(100):
            if len(loads) >= 3:
                break
            await task.deferLater(reactor, 0.05, lambda: None)
        self.assertGreaterEqual(len(loads), 3)
        model.login.logout()
        self.assertFalse(vm.auto_refreshing)
        await task.deferLater(reactor, 0.3, lambda: None)
        seen = len(loads)
        await task.deferLater(reactor, 0.2, lambda: None)
        self.assertEqual(len(loads), seen)


class MappingsViewModelTests(AdminGatewayCase):
    """Import with progress and row errors, list with filters, export, template."""

    def write(self, name: str, data: bytes) -> Path:
        path = Path(tempfile.mkdtemp(prefix="admin-map-")) / name
        path.write_bytes(data)
        return path

    async def test_import_csv_with_progress_then_filter_and_export(self) -> None:
        """A 3,000-row CSV imports as a job with progress; the list filters; the export re-imports unchanged."""
        model = await self.logged_in()
        vm = model.mappings
        progress: list[float] = []
        vm.bind(progress=lambda _vm, value: progress.append(value))
        report = await vm.import_file(self.write("big.csv", make_csv(sample_rows(3000))))
        self.assertEqual(vm.error, "")
        assert report is not None
        self.assertEqual(report["counts"], {"inserted": 3000, "updated": 0, "unchanged": 0, "rejected": 0})
        self.assertEqual(progress[-1], 1.0)
        self.assertIn("3000 new", vm.message)
        self.assertEqual(vm.total, 3000)
        # the footer is drawn when the items arrive: the total is already the new one then
        totals: list[int] = []
        vm.bind(items=lambda _vm, _items: totals.append(vm.total))
        self.assertTrue(await vm.apply(code="C000042"))
        self.assertEqual([m["code"] for m in vm.items], ["C000042"])
        self.assertEqual(totals, [1])
        self.assertEqual(vm.items[0]["dataelement"], "Re46C6Apebu")
        out = Path(tempfile.mkdtemp(prefix="admin-export-"))
        saved = await vm.export("csv", out)
        assert saved is not None
        rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8-sig"))))
        self.assertEqual([r["code"] for r in rows], ["C000042"])
        vm.set_filters(code="")
        saved_all = await vm.export("xlsx", out)
        assert saved_all is not None
        self.assertTrue(saved_all.name.endswith(".xlsx"))
        again = await vm.import_file(saved_all)
        assert again is not None
        self.assertEqual(again["counts"]["unchanged"], 3000)
        template = await vm.download_template(out)
        assert template is not None
        from openpyxl import load_workbook

        sheet = load_workbook(template, read_only=True).worksheets[0]
        self.assertEqual(next(sheet.iter_rows(values_only=True))[:2], ("code", "what"))

    async def test_import_errors_listed_per_row(self) -> None:
        """Invalid rows are listed as 'Row N, column: message' and nothing is imported (all-or-nothing)."""
        model = await self.logged_in()
        rows = sample_rows(3)
        rows[1]["dataelement"] = "not-a-uid"
        rows[2]["what"] = "zz"
        vm = model.mappings
        report = await vm.import_file(self.write("bad.xlsx", make_xlsx(rows)))
        assert report is not None
        self.assertFalse(report["applied"])
        self.assertIn("2 row(s) are invalid", vm.error)
        self.assertEqual(len(vm.import_errors), 2)
        self.assertTrue(vm.import_errors[0].startswith("Row 3, dataelement:"), vm.import_errors)
        self.assertTrue(vm.import_errors[1].startswith("Row 4, what:"), vm.import_errors)
        self.assertEqual(vm.import_counts["rejected"], 2)
        await vm.load()
        self.assertEqual(vm.total, 0)
        partial = await vm.import_file(self.write("bad.csv", make_csv(rows)), partial=True)
        assert partial is not None
        self.assertEqual(partial["counts"]["inserted"], 1)
        self.assertEqual(vm.total, 1)
        self.assertIsNone(await vm.import_file(self.write("notes.txt", b"hello")))
        self.assertEqual(vm.error, "notes.txt: choose a .csv or .xlsx file.")


class UsersViewModelTests(AdminGatewayCase):
    """Admin-only user management."""

    async def test_create_reset_deactivate(self) -> None:
        """Create a user, reset its password (it can log in with the new one), deactivate it (it cannot)."""
        model = await self.logged_in()
        vm = model.users
        self.assertTrue(await vm.load())
        self.assertEqual(sorted(u["username"] for u in vm.items), ["boss", "oper"])
        user = await vm.create("clerk", "clerk-Password-123", role="submitter", full_name="A Clerk")
        assert user is not None
        self.assertEqual(vm.message, "User clerk created (submitter)")
        self.assertIn("clerk", [u["username"] for u in vm.items])
        self.assertIsNone(await vm.create("clerk", "clerk-Password-123"))
        self.assertIn("already exists", vm.error)
        self.assertIsNone(await vm.create("weak", "short"))
        self.assertIn("policy", vm.error)
        self.assertTrue(await vm.reset_password(user["uid"], "brand-New-password-9"))
        other = GatewayClient(reactor, self.base)
        self.addCleanup(other.close)
        session = await other.login("clerk", "brand-New-password-9")
        self.assertEqual(session.role, "submitter")
        self.assertTrue(await vm.deactivate(user["uid"]))
        self.assertEqual({u["username"]: u["state"] for u in vm.items}["clerk"], "deactivated")
        vm2 = self.new_model().login
        self.assertFalse(await vm2.login("brand-New-password-9", username="clerk"))
        self.assertTrue(vm2.error)
        self.assertNotIn(PASSWORD, vm2.error)

    async def test_permissions(self) -> None:
        """An admin sets a submitter's source name, scopes and permissions; a bad UID is refused
        naming the field and changes nothing; the gateway's record shows what was saved."""
        model = await self.logged_in()
        vm = model.users
        user = await vm.create("emr", "emr-Password-1234", role="submitter")
        assert user is not None
        self.assertIsNone(await vm.set_permissions(user["uid"], source_name="emr", orgunit_scope="ImspTQPwCqd, 12x",
                                                   dataset_scope="", may_delete=False, callback_allowed=False))
        self.assertEqual(vm.error, "Org units: '12x' is not a DHIS2 UID (11 letters and digits, a letter first).")
        saved = await vm.set_permissions(user["uid"], source_name=" emr ",
                                         orgunit_scope="ImspTQPwCqd,\nO6uvpzGd5pu ImspTQPwCqd",
                                         dataset_scope="uFaVMlw4qxK", may_delete=True, callback_allowed=True)
        assert saved is not None
        self.assertEqual(vm.message, "Permissions of emr saved")
        record = await model.api.client.get_json(f"/users/{user['uid']}")
        self.assertEqual({k: record[k] for k in ("source_name", "orgunit_scope", "dataset_scope", "may_delete",
                                                 "callback_allowed")},
                         {"source_name": "emr", "orgunit_scope": ["ImspTQPwCqd", "O6uvpzGd5pu"],
                          "dataset_scope": ["uFaVMlw4qxK"], "may_delete": True, "callback_allowed": True})
        listed = {u["username"]: u for u in vm.items}["emr"]
        self.assertEqual(listed["orgunit_scope"], ["ImspTQPwCqd", "O6uvpzGd5pu"])
        cleared = await vm.set_permissions(user["uid"], source_name="", orgunit_scope="", dataset_scope="",
                                           may_delete=False, callback_allowed=False)
        assert cleared is not None
        record = await model.api.client.get_json(f"/users/{user['uid']}")
        self.assertEqual((record["source_name"], record["orgunit_scope"], record["may_delete"]), (None, [], False))
