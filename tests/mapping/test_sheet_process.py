"""Issue 16, F8: spreadsheets are parsed off the reactor, in a bounded child process."""
from __future__ import annotations

import io
import time
import zipfile

import treq
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from dhis2gw.mapping.sheet_process import SubprocessSheetParser
from dhis2gw.mapping.sheets import SheetLimits, SheetRejected, read_xlsx
from tests.mapping.support import make_csv, make_xlsx, sample_rows
from tests.support.gateway import GatewayTestCase

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
COLS = ["code", "what", "name", "description", "dataset", "dataelement", "category_option_combo"]
_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"


def shared_strings_workbook(extra_strings: int, size: int = 100, broken: bool = False) -> bytes:
    """A small XLSX whose shared-strings table holds ``extra_strings`` unused strings (the F8 attack:
    a 1 MB file that openpyxl inflates to a table of tens of MB); ``broken``: the sheet's XML is cut."""
    strings = COLS + ["C1", "de", "n", "", "uFaVMlw4qxK", "Re46C6Apebu", "HllvX50cXC0"]

    def row(r: int, offset: int) -> str:
        cells = "".join(f'<c r="{chr(65 + i)}{r}" t="s"><v>{offset + i}</v></c>' for i in range(len(COLS)))
        return f'<row r="{r}">{cells}</row>'

    sheet = f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{_NS}"><sheetData>{row(1, 0)}{row(2, 7)}' \
            '</sheetData></worksheet>'
    if broken:
        sheet = sheet.replace("</sheetData>", "<row><c")
    table = "".join(f"<si><t>{s}</t></si>" for s in strings)
    table += "".join(f"<si><t>{i:08d}{'y' * size}</t></si>" for i in range(extra_strings))
    files = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
        'package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/'
        f'workbook.xml" ContentType="{_CT}.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" '
        f'ContentType="{_CT}.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" '
        f'ContentType="{_CT}.sharedStrings+xml"/></Types>',
        "_rels/.rels": f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_PKG}"><Relationship Id="rId1" '
        f'Type="{_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{_NS}" xmlns:r="{_REL}"><sheets>'
        '<sheet name="Mappings" sheetId="1" r:id="rId1"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{_PKG}">'
        f'<Relationship Id="rId1" Type="{_REL}/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" '
        f'Type="{_REL}/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
        "xl/worksheets/sheet1.xml": sheet,
        "xl/sharedStrings.xml": f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{_NS}">{table}</sst>',
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)
    return out.getvalue()


class SheetProcessTests(TestCase):
    """The child process gives the same rows as parsing here, and turns every failure into a 4xx."""

    def parser(self, **kw: object) -> SubprocessSheetParser:
        return SubprocessSheetParser(reactor, inline_bytes=0, **kw)  # type: ignore[arg-type]

    async def test_same_rows_as_inline(self) -> None:
        """XLSX and CSV through the child: header, total and every row as read_xlsx/read_csv give them."""
        rows = sample_rows(50)
        data = make_xlsx(rows)
        sheet = await self.parser().parse(data, "excel", None, SheetLimits())
        inline = read_xlsx(data)
        self.assertEqual((sheet.columns, sheet.total, sheet.sheet_name), (inline.columns, inline.total, "Mappings"))
        self.assertEqual(list(sheet.rows), list(inline.rows))
        sheet = await self.parser().parse(make_csv(rows), "csv", None, SheetLimits())
        self.assertEqual([r["code"] for _, r in sheet.rows], [r["code"] for r in rows])

    async def test_xml_errors_are_422(self) -> None:
        """F14: a sheet whose XML is cut is 422 invalid_xlsx, in the child and inline (it was a 500)."""
        data = shared_strings_workbook(0, broken=True)
        with self.assertRaises(SheetRejected) as caught:
            sheet = await self.parser().parse(data, "excel", None, SheetLimits())
            list(sheet.rows)
        self.assertEqual((caught.exception.status, caught.exception.code), (422, "invalid_xlsx"))
        with self.assertRaises(SheetRejected) as caught:
            list(read_xlsx(data).rows)
        self.assertEqual((caught.exception.status, caught.exception.code), (422, "invalid_xlsx"))

    def test_entities_are_refused(self) -> None:
        """With defusedxml installed openpyxl refuses a DTD (entity expansion, external entities): 422."""
        import defusedxml  # noqa: F401 - installed (setup.cfg), so openpyxl parses through it

        doctype = (b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
                   b'<!ENTITY c SYSTEM "file:///etc/passwd">]>')
        for target in ("xl/sharedStrings.xml", "xl/worksheets/sheet1.xml"):
            source = zipfile.ZipFile(io.BytesIO(shared_strings_workbook(0)))
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as z:
                for name in source.namelist():
                    data = source.read(name)
                    if name == target:
                        data = data.replace(b'encoding="UTF-8"?>', b'encoding="UTF-8"?>' + doctype, 1)
                    z.writestr(name, data)
            with self.assertRaises(SheetRejected) as caught:
                list(read_xlsx(out.getvalue()).rows)
            self.assertEqual((caught.exception.status, caught.exception.code), (422, "invalid_xlsx"), target)

    async def test_shared_strings_limit(self) -> None:
        """A shared-strings table above the limit is refused from the zip directory, before any parsing."""
        data = shared_strings_workbook(20_000)
        with self.assertRaises(SheetRejected) as caught:
            await self.parser().parse(data, "excel", None, SheetLimits(max_shared_strings_bytes=1024 * 1024))
        self.assertEqual((caught.exception.status, caught.exception.code), (413, "xlsx_shared_strings_too_large"))

    async def test_time_and_memory_limits(self) -> None:
        """A child over its deadline or its memory is killed: 422 sheet_unreadable / 413, never a 500."""
        data = shared_strings_workbook(100_000)
        with self.assertRaises(SheetRejected) as caught:
            await self.parser(timeout=0.05).parse(data, "excel", None, SheetLimits())
        self.assertEqual((caught.exception.status, caught.exception.code), (422, "sheet_unreadable"))
        with self.assertRaises(SheetRejected) as caught:
            sheet = await self.parser(memory_bytes=100 * 1024 * 1024).parse(shared_strings_workbook(400_000), "excel",
                                                                            None, SheetLimits())
            list(sheet.rows)
        self.assertIn(caught.exception.status, (413, 422))


class HealthDuringUploadsTests(GatewayTestCase):
    """Four big uploads at once leave /health answering."""

    async def test_health_p99_during_four_big_uploads(self) -> None:
        """Four 1 MB workbooks whose shared strings inflate to ~18 MB each (seconds of openpyxl work, in
        child processes): /health, probed every 50 ms meanwhile, keeps answering 200 all along (the
        latencies are printed; a machine's speed is not asserted)."""
        token = await self.user_token("sheet-op", "operator")
        data = shared_strings_workbook(150_000)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": XLSX}

        async def upload() -> int:
            response = await treq.post(self.url("/api/v2/mappings/import/excel?dry_run=true"), data=data,
                                       headers=headers, persistent=False)
            await response.content()
            return int(response.code)

        uploads = defer.gatherResults([defer.Deferred.fromCoroutine(upload()) for _ in range(4)])
        latencies: list[float] = []
        while not uploads.called:
            started = time.monotonic()
            response = await treq.get(self.url("/health"), persistent=False)
            await response.content()
            latencies.append(time.monotonic() - started)
            self.assertEqual(response.code, 200)
            await deferLater(reactor, 0.05, lambda: None)
        codes = await uploads
        self.assertTrue(all(code < 500 for code in codes), codes)
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"\n/health during 4 uploads: {len(latencies)} probes,"
              f" p50 {latencies[len(latencies) // 2] * 1000:.1f} ms,"
              f" p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms; upload statuses {codes}")
        self.assertGreater(len(latencies), 20)
