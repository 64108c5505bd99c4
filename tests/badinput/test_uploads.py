"""Malformed CSV/XLSX uploads to the mapping import routes: truncated zips, a CSV named .xlsx,
binary garbage, huge cells, broken encodings, formula injection — answered calmly, nothing stored."""
from __future__ import annotations

import io
import zipfile

from tests.badinput.support import SQL_STRINGS, BadInputTestCase

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEADER = ("code,what,name,description,dataset,dataelement,category_option_combo,category_option,category_combo,"
          "instance_name,source_name,source_orgunit,destination_orgunit\r\n")


def tiny_xlsx(cell: str = "C1") -> bytes:
    """A valid one-row workbook whose code cell is ``cell``."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append([c for c in HEADER.strip().split(",")])
    sheet.append([cell, "de", "n", "", "uFaVMlw4qxK", "Re46C6Apebu", "HllvX50cXC0", "", "", "", "", "", ""])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def zip_bomb_like() -> bytes:
    """A zip whose one member is 50 MB of zeros (a few KB compressed), named like a sheet."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\x00" * (50 * 1024 * 1024))
    return out.getvalue()


class UploadTests(BadInputTestCase):
    """Every broken sheet to both import routes, with and without dry_run / partial / sheet options."""

    async def test_malformed_sheets(self) -> None:
        """No 5xx, no traceback, JSON errors, no mapping stored from garbage."""
        good = tiny_xlsx()
        csv_rows = HEADER + "C1,de,n,,uFaVMlw4qxK,Re46C6Apebu,HllvX50cXC0,,,,,,\r\n"
        bodies = {
            "truncated zip": good[: len(good) // 2],
            "zip header only": good[:30],
            "csv named xlsx": csv_rows.encode(),
            "binary garbage": bytes(range(256)) * 64,
            "empty": b"",
            "zip of nothing": b"PK\x05\x06" + b"\x00" * 18,
            "zip-bomb-like": zip_bomb_like(),
            "huge cell csv": (HEADER + "C" + "x" * 900_000 + ",de,n,,,,,,,,,,\r\n").encode(),
            "huge cell xlsx": tiny_xlsx("x" * 32_000),
            "invalid utf-8 csv": HEADER.encode() + b"\xff\xfe\xc3\x28,de,n,,,,,,,,,,\r\n",
            "nul csv": HEADER.encode() + b"C\x001,de,n,,,,,,,,,,\r\n",
            "utf-16 csv": csv_rows.encode("utf-16"),
            "no header csv": b"C1,de\r\n",
            "ragged csv": (HEADER + "C1\r\nC2,de,n,,,,,,,,,,,,,,,,,,,,\r\n\"unterminated,de\r\n").encode(),
            "formula csv": (HEADER + "=cmd|' /C calc'!A0,de,n,,uFaVMlw4qxK,Re46C6Apebu,HllvX50cXC0,,,,,,\r\n").encode(),
            "many columns csv": (",".join(f"c{i}" for i in range(20_000)) + "\r\n").encode(),
            "sql csv": (HEADER + "".join(f"{s.replace(',', ';')},de,{s},,uFaVMlw4qxK,Re46C6Apebu,HllvX50cXC0,,,,,,\r\n"
                                         for s in SQL_STRINGS)).encode(),
        }
        for label, body in bodies.items():
            for route in ("/api/v2/mappings/import/csv", "/api/v2/mappings/import/excel"):
                for query in ("", "?dry_run=true", "?partial=true", "?sheet=Nope", "?async=true"):
                    for ctype in ("text/csv", XLSX, "application/octet-stream"):
                        await self.send("POST", route + query, body, content_type=ctype, label=f" [{label}, {ctype}]")
            # The multipart form a browser sends, with the broken file inside.
            boundary = b"----bad"
            form = (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"file\"; filename=\"m.xlsx\"\r\n"
                    b"Content-Type: " + XLSX.encode() + b"\r\n\r\n" + body + b"\r\n--" + boundary + b"--\r\n")
            await self.send("POST", "/api/v2/mappings/import/excel", form,
                            content_type="multipart/form-data; boundary=----bad", label=f" [form {label}]")
        broken_forms = [b"--x\r\nContent-Disposition: form-data\r\n\r\n", b"--x--", b"garbage", b""]
        for form in broken_forms:
            await self.send("POST", "/api/v2/mappings/import/csv", form, content_type="multipart/form-data; boundary=x")
            await self.send("POST", "/api/v2/mappings/import/csv", form, content_type="multipart/form-data")
        await self.assert_no_problems()
        rows = await self.gateway.db.fetch("t", "SELECT code FROM dhis2_mappings WHERE code LIKE '%DROP%'"
                                           " OR code LIKE 'x%' OR code LIKE '=%'")
        # Whatever was accepted is stored as plain text, never executed: the table answers.
        self.assertIsInstance(rows, list)
