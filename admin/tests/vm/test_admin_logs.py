"""LogsVM and DetailVM against a real gateway with the simulator as DHIS2: filter, detail,
requeue one and by filter (with job progress), delete, purge with a dry-run count first."""
from __future__ import annotations

from datetime import datetime, timedelta

from admin_rig import AdminGatewayCase


class LogsViewModelTests(AdminGatewayCase):
    """The logs screen's state and actions."""

    def gateway_today(self):  # type: ignore[no-untyped-def]
        """Today in the gateway's zone: the API reads bare dates there (not in this machine's)."""
        return datetime.now(self.config.server.tzinfo).date()

    async def _mixed(self) -> tuple[list[int], list[int]]:
        """Two delivered submissions, then three failed ones (DHIS2 answering 500 to imports only, so
        its health check passes and each 500 spends a retry; no retries)."""
        ok = [await self.submit(10 + i, facility=i) for i in range(2)]
        for sid in ok:
            await self.wait_status(sid, ("delivered",))
        self.sim.faults.error_rate(1.0, status=500, paths=["dataValueSets"])
        failed = [await self.submit(20 + i, facility=5 + i) for i in range(3)]
        for sid in failed:
            await self.wait_status(sid, ("failed",))
        self.sim.faults.clear()
        return ok, failed

    async def test_filter_sort_page(self) -> None:
        """Status, text, destination and date filters select the right rows; sort and pages follow."""
        model = await self.logged_in()
        ok, failed = await self._mixed()
        vm = model.logs
        self.assertTrue(await vm.apply(status="failed"))
        self.assertEqual(sorted(i["id"] for i in vm.items), sorted(failed))
        self.assertEqual(vm.total, 3)
        self.assertTrue(all(i["requeueable"] and i["status"] == "failed" for i in vm.items))
        self.assertTrue(await vm.apply(status=[], text=str(ok[0])))
        self.assertEqual([i["id"] for i in vm.items], [ok[0]])
        today = self.gateway_today().isoformat()
        self.assertTrue(await vm.apply(text="", destination="main", date_from=today, date_to=today))
        self.assertEqual(vm.total, 5)
        self.assertTrue(await vm.apply(date_from="2001-01-01", date_to="2001-01-31"))
        self.assertEqual((vm.total, vm.items), (0, []))
        vm.clear_filters()
        vm.page_size = 2
        self.assertTrue(await vm.sort_by("id"))
        self.assertEqual([i["id"] for i in vm.items], sorted(ok + failed, reverse=True)[:2])
        self.assertTrue(await vm.sort_by("id"))  # again: ascending
        self.assertEqual([i["id"] for i in vm.items], sorted(ok + failed)[:2])
        self.assertEqual(vm.total_pages, 3)
        self.assertTrue(await vm.next_page())
        self.assertEqual([i["id"] for i in vm.items], sorted(ok + failed)[2:4])
        self.assertEqual(vm.page_text, "Page 2 of 3 — 5 submission(s)")
        self.assertFalse(await vm.apply(date_from="yesterday"))
        self.assertIn("'from'", vm.error)
        self.assertNotIn("Traceback", vm.error)

    async def test_detail_of_failed_then_requeue_one(self) -> None:
        """The detail of a failed submission reads plainly; requeue makes it queued, then delivered."""
        model = await self.logged_in()
        _, failed = await self._mixed()
        detail = model.detail
        self.assertTrue(await detail.load(failed[0]))
        self.assertEqual(detail.status, "failed")
        self.assertTrue(detail.can_requeue)
        self.assertIn('"dataElement": "Re46C6Apebu"', detail.dhis2_payload_text)
        self.assertIn('"value": "20"', detail.payload_text)
        self.assertTrue(detail.attempts and detail.attempts[0].startswith("#1: failed — HTTP 500"), detail.attempts)
        self.assertTrue(any("queued" in e for e in detail.events), detail.events)
        self.assertIn(("Status", "failed"), detail.summary)
        # Every message once: the attempt's reason is in the attempts list only (the timeline names the
        # attempt), DHIS2's own message once, never "HTTP 500: HTTP 500".
        reason = detail.submission["attempts_detail"][0]["detail"]
        shown = [str(v) for _k, v in detail.summary] + detail.error_reports + detail.attempts + detail.events
        self.assertEqual(sum(reason in line for line in shown), 1, shown)
        self.assertFalse(any("HTTP 500: HTTP 500" in line or "HTTP 500 — HTTP 500" in line for line in shown))
        self.assertTrue(any(line.endswith("(attempt #1)") and " failed" in line for line in detail.events),
                        detail.events)
        # Codes beside UIDs: the mapping's code and name next to the data element's UID.
        await self.gateway.db.execute("test.mapping", "INSERT INTO dhis2_mappings (uid, code, what, name, dataelement)"
                                      " VALUES ('MapOPD00001', 'OPD', 'de', 'OPD visits', 'Re46C6Apebu')")
        self.assertTrue(await detail.load(failed[0]))
        self.assertTrue(any("Re46C6Apebu" in line and line.endswith("// OPD (OPD visits)")
                            for line in detail.display_text("dhis2_payload").splitlines()),
                        detail.display_text("dhis2_payload"))
        copied = detail.copy("dhis2_payload")
        self.assertNotIn("//", copied)  # a copy is the payload itself
        self.assertEqual(self.copied, [copied])
        self.assertIn("uFaVMlw4qxK", copied)
        # requeue from the list row
        vm = model.logs
        await vm.apply(status="failed")
        self.assertTrue(await vm.requeue_one(failed[0]))
        self.assertIn("queued again", vm.message)
        self.assertNotIn(failed[0], [i["id"] for i in vm.items])
        self.assertEqual(await self.wait_status(failed[0], ("delivered",)), "delivered")
        # requeue from the detail view
        self.assertTrue(await detail.load(failed[1]))
        self.assertTrue(await detail.requeue())
        self.assertIn("queued again", detail.message.lower())
        self.assertTrue(await detail.load(failed[2]))
        self.assertEqual(detail.message, "")  # the banner stays with the submission it was about
        self.assertTrue(await detail.load(failed[1]))
        self.assertIn(detail.status, ("queued", "processing", "delivered"))
        self.assertTrue(any("requeued" in e or "queued" in e for e in detail.events))
        await self.wait_status(failed[1], ("delivered",))
        # a delivered one cannot be requeued without force: a plain 409 sentence
        self.assertFalse(await detail.requeue())
        self.assertIn("force", detail.error)

    async def test_requeue_by_filter_with_count_and_job_progress(self) -> None:
        """'Requeue all matching' counts first, then runs as a job whose progress reaches 1."""
        model = await self.logged_in()
        ok, failed = await self._mixed()
        self.gateway.requeue.sync_limit = 1  # three rows: the gateway answers with a job
        vm = model.logs
        vm.set_filters(destination="main")
        self.assertEqual(await vm.prepare_requeue_matching(), 3)  # delivered ones are not counted
        self.assertEqual(vm.confirm_count, 3)
        progress: list[float] = []
        vm.bind(progress=lambda _vm, value: progress.append(value))
        answer = await vm.requeue_matching()
        self.assertEqual(vm.error, "")
        assert answer is not None
        self.assertTrue(answer["job_id"])
        self.assertEqual((answer["matched"], answer["requeued"]), (3, 3))
        self.assertEqual(progress[-1], 1.0)
        self.assertIn("3 submission(s) queued again", vm.message)
        for sid in failed:
            await self.wait_status(sid, ("delivered",))
        vm.set_filters(status="delivered")
        self.assertIsNone(await vm.prepare_requeue_matching())
        self.assertIn("only partial, rejected and failed", vm.error)

    async def test_delete_and_purge_dry_run_first(self) -> None:
        """Delete removes one final row; purge counts with a dry run, then deletes only final rows."""
        model = await self.logged_in()
        ok, failed = await self._mixed()
        await self.gateway.queue.pause("main")
        pending = await self.submit(99, facility=12)
        vm = model.logs
        self.assertTrue(await vm.delete_one(failed[0]))
        self.assertEqual(vm.message, f"Submission {failed[0]} deleted")
        self.assertFalse(await vm.delete_one(pending))
        self.assertIn("only final submissions", vm.error)
        tomorrow = (self.gateway_today() + timedelta(days=1)).isoformat()
        self.assertEqual(await vm.prepare_purge(tomorrow), 4)
        await vm.apply()
        self.assertEqual(vm.total, 5)  # the dry run deleted nothing
        self.assertEqual(await vm.purge(tomorrow), 4)
        self.assertEqual([i["id"] for i in vm.items], [pending])
        self.assertEqual(vm.items[0]["status"], "queued")
        self.assertFalse(await vm.delete_one(10_000_000))
        self.assertEqual(vm.error, "Submission not found.")


class LogsOperatorColumnsTests(AdminGatewayCase):
    """The list answers "did facility X report for January?": org unit, period, submitter, zone."""

    async def test_rows_name_org_unit_period_and_submitter_and_filter_by_them(self) -> None:
        """Rows carry the org unit (name and code from the org-unit cache), period and submitter;
        the org unit and period filters select their rows; times show the gateway's offset."""
        from tests.support.processes import facility_uids

        model = await self.logged_in()
        units = facility_uids()
        await self.gateway.db.execute("test.ou", "INSERT INTO organisation_units (uid, code, name, level, path)"
                                      " VALUES (%s, 'KAL-HC3', 'Kaliro Town HC III', 4, %s)",
                                      (units[0], "/" + units[0]))
        january = await self.submit(1, facility=0, period="202401")
        february = await self.submit(2, facility=0, period="202402")
        other = await self.submit(3, facility=1, period="202401")
        for sid in (january, february, other):
            await self.wait_status(sid, ("delivered",))
        vm = model.logs
        self.assertTrue(await vm.apply(org_unit="KAL-HC3"))
        self.assertEqual(sorted(i["id"] for i in vm.items), [january, february])
        row = next(i for i in vm.items if i["id"] == january)
        self.assertEqual((row["org_unit_text"], row["period_text"], row["submitter_text"]),
                         ("Kaliro Town HC III (KAL-HC3)", "202401", "boss"))
        self.assertRegex(row["created"], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d$")
        self.assertTrue(await vm.apply(org_unit="", period="202401"))
        self.assertEqual(sorted(i["id"] for i in vm.items), [january, other])
        self.assertTrue(await vm.apply(period="", text="Kaliro"))
        self.assertEqual(sorted(i["id"] for i in vm.items), [january, february])


class ReportViewModelTests(AdminGatewayCase):
    """The report screen's state: facilities × periods from the gateway, problems only, pages."""

    async def test_report_of_two_periods(self) -> None:
        """Delivered and missing cells per facility; totals; 'problems only' keeps the gaps; pages."""
        from tests.support.processes import DS_HMIS, facility_uids

        model = await self.logged_in()
        units = facility_uids()
        for n, uid in enumerate(units[:3]):
            await self.gateway.db.execute("test.ou", "INSERT INTO organisation_units (uid, code, name, level, path)"
                                          " VALUES (%s, %s, %s, 4, %s)",
                                          (uid, f"HC-{n}", f"Health Centre {n}", "/" + uid))
        sids = [await self.submit(1, facility=0, period="202401"), await self.submit(2, facility=1, period="202401"),
                await self.submit(3, facility=0, period="202402")]
        for sid in sids:
            await self.wait_status(sid, ("delivered",))
        vm = model.report
        self.assertFalse(await vm.load(data_set=DS_HMIS, periods_text=""))
        self.assertIn("period", vm.error)
        self.assertTrue(await vm.load(data_set=DS_HMIS, periods_text="202401, 202402"))
        self.assertEqual(vm.periods, ["202401", "202402"])
        got = {r["label"]: r["statuses"] for r in vm.rows}
        self.assertEqual(got, {"Health Centre 0 (HC-0)": ["delivered", "delivered"],
                               "Health Centre 1 (HC-1)": ["delivered", "missing"],
                               "Health Centre 2 (HC-2)": ["missing", "missing"]})
        self.assertIn("202401: 2 delivered", vm.totals_text)
        vm.set_problems_only(True)
        self.assertEqual([r["label"] for r in vm.rows], ["Health Centre 1 (HC-1)", "Health Centre 2 (HC-2)"])
        vm.page_size = 1
        vm.set_problems_only(True)
        self.assertEqual(vm.page_text, "Page 1 of 2 — 2 of 3 facilities")
        vm.next_page()
        self.assertEqual([r["label"] for r in vm.rows], ["Health Centre 2 (HC-2)"])
        self.assertFalse(await vm.load(data_set="bad"))
        self.assertIn("data_set", vm.error)
