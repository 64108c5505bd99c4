"""The /mappings API over HTTP with real PostgreSQL: import, upsert counts, export round trip, CRUD."""
from __future__ import annotations

import io
import os
import time
import tracemalloc

from twisted.internet import defer

from dhis2gw.mapping.sheets import SheetLimits
from tests.mapping.support import ADMIN, SUBMITTER, MappingRig, make_csv, make_xlsx, sample_rows, wait

CSV_TYPE = "text/csv"


class ImportTests(MappingRig):
    """CSV and XLSX imports: upsert semantics, per-row errors, partial and dry-run modes."""

    async def stored(self) -> dict[str, dict]:
        rows = await self.db.fetch("test.rows", "SELECT * FROM dhis2_mappings")
        return {r["code"]: r for r in rows}

    async def test_original_csv_multipart_then_upsert_counts(self) -> None:
        """The original's 13-column CSV imports via multipart; a changed re-import updates only what changed."""
        rows = sample_rows(5, source="kenya-emr", instance="main")
        rows.append({"code": "KAL-01", "what": "ou", "source_orgunit": "KAL-01", "destination_orgunit": "ty5AJ6ZU5f7",
                     "instance_name": "main", "source_name": "kenya-emr"})
        answer = await self.call("POST", "/api/v2/mappings/import/csv",
                                 files={"file": ("mappings.csv", "text/csv", io.BytesIO(make_csv(rows)))})
        self.assertEqual(answer.code, 200, answer.json)
        self.assertEqual(answer.json["counts"], {"inserted": 6, "updated": 0, "unchanged": 0, "rejected": 0})
        self.assertTrue(answer.json["applied"])
        stored = await self.stored()
        self.assertEqual(stored["KAL-01"]["destination_orgunit"], "ty5AJ6ZU5f7")
        self.assertEqual(stored["C000003"]["source_name"], "kenya-emr")
        rows[1]["dataelement"] = "sHyMCqP5u8T"
        rows.append(sample_rows(7, source="kenya-emr", instance="main")[6])
        again = await self.call("POST", "/api/v2/mappings/import/csv", data=make_csv(rows, delimiter=";", bom=True),
                                content_type=CSV_TYPE)
        self.assertEqual(again.json["counts"], {"inserted": 1, "updated": 1, "unchanged": 5, "rejected": 0})
        self.assertEqual((await self.stored())["C000001"]["dataelement"], "sHyMCqP5u8T")

    async def test_xlsx_raw_body_and_named_sheet(self) -> None:
        """An XLSX body (raw) is read from the first sheet, or from ?sheet= when the data is elsewhere."""
        data = make_xlsx(sample_rows(3), header=[c.upper() for c in sample_rows(1)[0]])
        answer = await self.call("POST", "/api/v2/mappings/import/excel", data=data)
        self.assertEqual(answer.json["counts"]["inserted"], 3, answer.json)
        self.assertEqual(answer.json["sheet"], "Mappings")
        other = make_xlsx(sample_rows(4, prefix="X"), sheets=("Readme", "Data"), data_sheet="Data")
        answer = await self.call("POST", "/api/v2/mappings/import/excel?sheet=Data",
                                 files={"file": ("m.xlsx", "application/octet-stream", io.BytesIO(other))})
        self.assertEqual(answer.json["counts"]["inserted"], 4, answer.json)
        self.assertEqual(len(await self.stored()), 7)

    async def test_errors_all_or_nothing_partial_and_dry_run(self) -> None:
        """Duplicates, missing cells and bad UIDs are listed by row and column; nothing is written unless partial."""
        rows = sample_rows(4)
        rows[1]["dataelement"] = ""
        rows[2]["dataset"] = "bad uid"
        rows.append(dict(rows[0]))  # duplicate key of row 2
        data = make_csv(rows)
        answer = await self.call("POST", "/api/v2/mappings/import/csv", data=data)
        self.assertEqual(answer.code, 422)
        report = answer.json["error"]["details"]
        self.assertEqual(answer.json["error"]["code"], "mapping_rows_rejected")
        self.assertEqual({(e["row"], e["column"]) for e in report["errors"]},
                         {(3, "dataelement"), (4, "dataset"), (6, "code")})
        self.assertIn("also on row 2", next(e["message"] for e in report["errors"] if e["row"] == 6))
        self.assertEqual(report["counts"]["rejected"], 3)
        self.assertFalse(report["applied"])
        self.assertEqual(await self.stored(), {})
        dry = await self.call("POST", "/api/v2/mappings/import/csv?partial=true&dry_run=true", data=data)
        self.assertEqual(dry.code, 200)
        self.assertEqual(dry.json["counts"], {"inserted": 2, "updated": 0, "unchanged": 0, "rejected": 3})
        self.assertEqual(await self.stored(), {})
        partial = await self.call("POST", "/api/v2/mappings/import/csv?partial=true", data=data)
        self.assertEqual(partial.json["counts"], {"inserted": 2, "updated": 0, "unchanged": 0, "rejected": 3})
        self.assertEqual(sorted(await self.stored()), ["C000000", "C000003"])

    async def test_export_import_round_trip_changes_nothing(self) -> None:
        """Export (CSV and XLSX, data on the first sheet) re-imports with zero inserts and updates."""
        rows = sample_rows(30, source="s1")
        rows[0]["description"] = "=SUM(A1:A2), with \"quotes\"; and ; delimiters"
        rows[1]["category_option_combo"] = ""
        await self.call("POST", "/api/v2/mappings/import/csv", data=make_csv(rows))
        for fmt, path in (("csv", "csv"), ("excel", "excel")):
            exported = await self.call("GET", f"/api/v2/mappings/export/{path}")
            self.assertEqual(exported.code, 200)
            self.assertIn("attachment", exported.headers.getRawHeaders("content-disposition")[0])
            again = await self.call("POST", f"/api/v2/mappings/import/{fmt}", data=exported.raw)
            self.assertEqual(again.json["counts"], {"inserted": 0, "updated": 0, "unchanged": 30, "rejected": 0},
                             fmt)
        self.assertEqual((await self.stored())["C000001"]["category_option_combo"], "")
        template = await self.call("GET", "/api/v2/mappings/template.xlsx")
        legacy = await self.call("GET", "/api/v2/mappings/export/excel-template")
        self.assertEqual(template.raw[:2], b"PK")
        self.assertEqual(legacy.code, 200)
        dry = await self.call("POST", "/api/v2/mappings/import/excel?dry_run=true", data=template.raw)
        self.assertEqual(dry.json["counts"]["inserted"], 1)
        unauthenticated = await self.call("GET", "/api/v2/mappings/export/excel-template", headers={})
        self.assertEqual(unauthenticated.code, 401)

    async def test_zip_bomb_and_oversized_upload_over_http(self) -> None:
        """A zip bomb is a 413 with the part named; a body beyond the site limit is a 413 before parsing."""
        import io
        import zipfile

        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(make_xlsx(sample_rows(1)))) as src, \
                zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                dst.writestr(info, src.read(info))
            with dst.open("xl/sharedStrings2.xml", "w") as bomb:
                for _ in range(40):
                    bomb.write(b"a" * (1024 * 1024))
        answer = await self.call("POST", "/api/v2/mappings/import/excel", data=out.getvalue())
        self.assertEqual(answer.code, 413)
        self.assertEqual(answer.json["error"]["code"], "xlsx_compression_ratio")
        junk = await self.call("POST", "/api/v2/mappings/import/excel", data=b"not a workbook at all")
        self.assertEqual((junk.code, junk.json["error"]["code"]), (422, "invalid_xlsx"))
        big = await self.call("POST", "/api/v2/mappings/import/csv", data=b"code\n" + b"x\n" * (6 * 1024 * 1024))
        self.assertEqual((big.code, big.json["error"]["code"]), (413, "payload_too_large"))

    async def test_submitters_may_not_touch_mappings(self) -> None:
        """Mappings are for operators and admins: a submitter gets 403, an admin is allowed."""
        self.assertEqual((await self.call("GET", "/api/v2/mappings", headers=SUBMITTER)).code, 403)
        self.assertEqual((await self.call("POST", "/api/v2/mappings/import/csv", headers=SUBMITTER,
                                          data=make_csv(sample_rows(1)))).code, 403)
        self.assertEqual((await self.call("GET", "/api/v2/mappings", headers=ADMIN)).code, 200)


class SmallLimitsTests(MappingRig):
    """The importer's own limits (below the site's body limit)."""

    max_body_bytes = 5 * 1024 * 1024
    limits = SheetLimits(max_file_bytes=2000, max_rows=50)

    async def test_file_and_row_limits(self) -> None:
        """A file above max_file_bytes and a sheet above max_rows are 413s naming the limit; nothing is written."""
        answer = await self.call("POST", "/api/v2/mappings/import/csv", data=make_csv(sample_rows(40)))
        self.assertEqual((answer.code, answer.json["error"]["code"]), (413, "file_too_large"))
        self.assertEqual(answer.json["error"]["details"]["limit_bytes"], 2000)
        rows = [{"code": f"{i}", "dataelement": "Re46C6Apebu"} for i in range(60)]
        data = make_csv(rows, header=["code", "what", "name", "description", "dataset", "dataelement"])
        answer = await self.call("POST", "/api/v2/mappings/import/csv", data=data)
        self.assertEqual((answer.code, answer.json["error"]["code"]), (413, "too_many_rows"), answer.json)
        self.assertEqual(await self.db.fetch("test.count", "SELECT uid FROM dhis2_mappings"), [])


class CrudAndListTests(MappingRig):
    """Single-mapping CRUD and the filtered, paginated list."""

    async def test_crud(self) -> None:
        """Create (201 + Location), read, replace, conflict on a taken key (409), delete (then 404)."""
        created = await self.call("POST", "/api/v2/mappings", body={"code": "OPD", "dataelement": "Re46C6Apebu"})
        self.assertEqual(created.code, 201, created.json)
        uid = created.json["uid"]
        self.assertEqual(created.json["what"], "de")
        self.assertTrue(created.headers.getRawHeaders("location")[0].endswith(uid))
        got = await self.call("GET", f"/api/v2/mappings/{uid}")
        self.assertEqual(got.json["dataelement"], "Re46C6Apebu")
        put = await self.call("PUT", f"/api/v2/mappings/{uid}",
                              body={"code": "OPD", "dataelement": "sHyMCqP5u8T", "name": "ANC"})
        self.assertEqual((put.code, put.json["dataelement"], put.json["name"]), (200, "sHyMCqP5u8T", "ANC"))
        dup = await self.call("POST", "/api/v2/mappings", body={"code": "OPD", "dataelement": "Re46C6Apebu"})
        self.assertEqual((dup.code, dup.json["error"]["code"]), (409, "duplicate_mapping"))
        bad = await self.call("POST", "/api/v2/mappings", body={"code": "X", "dataelement": "nope"})
        self.assertEqual((bad.code, bad.json["error"]["details"]["errors"][0]["field"]), (422, "dataelement"))
        self.assertEqual((await self.call("DELETE", f"/api/v2/mappings/{uid}")).json, {"deleted": uid})
        self.assertEqual((await self.call("GET", f"/api/v2/mappings/{uid}")).code, 404)

    async def test_filters_and_pagination(self) -> None:
        """Each filter narrows the list; q searches code/name; pages carry the total."""
        rows = sample_rows(25, source="a") + sample_rows(5, source="b", prefix="B")
        rows[3]["dataelement"] = "sHyMCqP5u8T"
        rows[4]["name"] = "Malaria special"
        await self.call("POST", "/api/v2/mappings/import/csv", data=make_csv(rows))
        page = await self.call("GET", "/api/v2/mappings?page=2&page_size=10")
        self.assertEqual((page.json["total"], page.json["pages"], len(page.json["items"])), (30, 3, 10))
        self.assertEqual(page.json["items"][0]["code"], "C000005")
        self.assertEqual((await self.call("GET", "/api/v2/mappings?source_name=b")).json["total"], 5)
        de = await self.call("GET", "/api/v2/mappings?dataelement=sHyMCqP5u8T")
        self.assertEqual([i["code"] for i in de.json["items"]], ["C000003"])
        q = await self.call("GET", "/api/v2/mappings?q=malaria")
        self.assertEqual([i["code"] for i in q.json["items"]], ["C000004"])
        for name, value, expected in (("code", "B000001", 1), ("dataset", "uFaVMlw4qxK", 30), ("what", "ou", 0),
                                      ("instance_name", "", 30)):
            got = await self.call("GET", f"/api/v2/mappings?{name}={value}")
            self.assertEqual(got.json["total"], expected, name)


class LargeImportTests(MappingRig):
    """A 50,000-row import runs as a job with progress and flat memory."""

    timeout = 120

    async def test_fifty_thousand_rows(self) -> None:
        """202 at once, progress polled (rows done / total) while it runs, bounded memory, every row stored."""
        data = make_csv(sample_rows(50_000))
        self.assertGreater(len(data), 1024 * 1024)
        if not os.environ.get("NO_TRACE"):
            tracemalloc.start()
        started = time.monotonic()
        accepted = await self.call("POST", "/api/v2/mappings/import/csv", data=data)
        self.assertEqual(accepted.code, 202, accepted.json)
        job_id = accepted.json["job_id"]
        seen = []
        while True:
            progress = await self.call("GET", accepted.json["status_url"])
            seen.append((progress.json["rows_done"], progress.json["rows_total"]))
            if progress.json["state"] != "running":
                break
            await wait(0.5)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        self.assertEqual(progress.json["state"], "done", progress.json)
        self.assertEqual(progress.json["result"]["counts"],
                         {"inserted": 50_000, "updated": 0, "unchanged": 0, "rejected": 0})
        self.assertTrue(any(0 < done < 50_000 and total == 50_000 for done, total in seen), seen[:20])
        self.assertEqual(self.importer.jobs[job_id].progress_log[-1], (50_000, 50_000))
        count = await self.db.fetch_one("test.count", "SELECT count(*) AS n FROM dhis2_mappings")
        self.assertEqual(count["n"], 50_000)
        # The file itself is ~5.5 MB; whole-file row objects would cost well over 100 MB.
        self.assertLess(peak, 60 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB")
        print(f"\n50k-row CSV import: {elapsed:.1f}s, tracemalloc peak {peak / 1e6:.1f} MB")
        await defer.succeed(None)
