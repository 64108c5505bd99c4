"""Parsing mapping sheets: headers, encodings, delimiters, row validation and the safety limits."""
from __future__ import annotations

import io
import zipfile

from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.mapping.export import template_xlsx, to_xlsx
from dhis2gw.mapping.rows import COLUMNS, complete, row_errors
from dhis2gw.mapping.sheets import SheetLimits, SheetRejected, check_zip, read_csv, read_xlsx
from tests.mapping.support import make_csv, make_xlsx, sample_rows


def rows_of(sheet):  # type: ignore[no-untyped-def]
    return list(sheet.rows)


class CsvTests(SynchronousTestCase):
    """CSV uploads as spreadsheets and scripts really write them."""

    def test_original_columns_bom_and_semicolon(self) -> None:
        """The 13-column header is read from UTF-8 with BOM and ';' delimiters, every column kept."""
        rows = sample_rows(3)
        rows[0]["source_orgunit"], rows[0]["destination_orgunit"] = "KAL-01", "ty5AJ6ZU5f7"
        sheet = read_csv(make_csv(rows, delimiter=";", bom=True))
        self.assertEqual(sorted(sheet.columns.values()), sorted(COLUMNS))
        parsed = rows_of(sheet)
        self.assertEqual(sheet.total, 3)
        self.assertEqual([n for n, _ in parsed], [2, 3, 4])
        self.assertEqual(parsed[0][1]["code"], "C000000")
        self.assertEqual(parsed[0][1]["destination_orgunit"], "ty5AJ6ZU5f7")  # the original's CSV dropped these
        self.assertEqual(parsed[2][1], rows[2])

    def test_mixed_case_headers_any_order_unknown_ignored(self) -> None:
        """Header names match whatever their case and spacing; extra columns are reported as ignored."""
        data = (b"Data Element, CODE ,Category_Option_Combo,Notes,What\n"
                b"Re46C6Apebu,OPD,HllvX50cXC0,x,DE\n")
        sheet = read_csv(data)
        self.assertEqual(sheet.ignored_columns, ["Notes"])
        (_, row), = rows_of(sheet)
        self.assertEqual((row["code"], row["dataelement"], row["category_option_combo"], row["what"]),
                         ("OPD", "Re46C6Apebu", "HllvX50cXC0", "DE"))
        self.assertEqual(complete(row)["source_name"], "")  # missing columns become ""

    def test_not_utf8_and_no_header(self) -> None:
        """Latin-1 bytes and a header without a code column are refused with 422 and a reason."""
        with self.assertRaises(SheetRejected) as e:
            read_csv("code\nCaf\xe9\n".encode("latin-1"))
        self.assertEqual((e.exception.status, e.exception.code), (422, "invalid_encoding"))
        with self.assertRaises(SheetRejected) as e:
            read_csv(b"foo,bar\n1,2\n")
        self.assertEqual((e.exception.status, e.exception.code), (422, "missing_columns"))

    def test_limits(self) -> None:
        """An oversized file and too many rows are 413s naming the limit."""
        data = make_csv(sample_rows(20))
        with self.assertRaises(SheetRejected) as e:
            read_csv(data, SheetLimits(max_file_bytes=100))
        self.assertEqual((e.exception.status, e.exception.code, e.exception.details["limit_bytes"]),
                         (413, "file_too_large", 100))
        sheet = read_csv(data, SheetLimits(max_rows=10))
        with self.assertRaises(SheetRejected) as e:
            rows_of(sheet)
        self.assertEqual((e.exception.status, e.exception.code), (413, "too_many_rows"))


class RowValidationTests(SynchronousTestCase):
    """Per-row checks: required cells by kind, UID formats, lengths."""

    def test_required_cells_and_bad_uids(self) -> None:
        """Missing code/dataelement and malformed UIDs give one error each with the column."""
        row = complete({"code": "", "dataelement": "", "dataset": "not-a-uid", "category_option_combo": "1abcdefghij"})
        errors = row_errors(row, 7)
        self.assertEqual({(e["row"], e["column"]) for e in errors},
                         {(7, "code"), (7, "dataelement"), (7, "dataset"), (7, "category_option_combo")})
        self.assertIn("not a DHIS2 UID", next(e["message"] for e in errors if e["column"] == "dataset"))

    def test_kinds(self) -> None:
        """ou rows take source_orgunit as code and need a destination; co rows need a category option."""
        ou = complete({"what": "OU", "source_orgunit": "KAL-01", "destination_orgunit": "ty5AJ6ZU5f7"})
        self.assertEqual(row_errors(ou, 2), [])
        self.assertEqual((ou["what"], ou["code"]), ("ou", "KAL-01"))
        co = complete({"what": "co", "code": "MALE"})
        self.assertEqual([e["column"] for e in row_errors(co, 3)], ["category_option"])
        bad = complete({"what": "xx", "code": "A"})
        self.assertEqual([e["column"] for e in row_errors(bad, 4)], ["what"])


class XlsxTests(SynchronousTestCase):
    """XLSX uploads: first or named sheet, numbers as text, no formulas, zip-bomb guard."""

    def test_first_sheet_or_named_sheet(self) -> None:
        """Data on the first sheet is read by default; ?sheet= picks another; an unknown one lists the sheets."""
        data = make_xlsx(sample_rows(2), sheets=("Notes", "Mappings"), data_sheet="Mappings")
        with self.assertRaises(SheetRejected) as e:
            read_xlsx(data)  # the first sheet is empty
        self.assertEqual(e.exception.code, "empty_file")
        sheet = read_xlsx(data, "Mappings")
        self.assertEqual([r["code"] for _, r in sheet.rows], ["C000000", "C000001"])
        with self.assertRaises(SheetRejected) as e:
            read_xlsx(data, "Nope")
        self.assertEqual((e.exception.code, e.exception.details["sheets"]), ("unknown_sheet", ["Notes", "Mappings"]))

    def test_numbers_and_formulas(self) -> None:
        """Numeric codes lose no digits and gain no '.0'; a formula is not evaluated (its cached value, none here)."""
        from openpyxl import Workbook

        wb = Workbook()
        ws = wb.active
        ws.append(["Code", "DataElement"])
        ws.append([101, "Re46C6Apebu"])
        ws.append(["=1+1", "Re46C6Apebu"])
        out = io.BytesIO()
        wb.save(out)
        rows = [r for _, r in read_xlsx(out.getvalue()).rows]
        self.assertEqual(rows[0]["code"], "101")
        self.assertEqual(rows[1]["code"], "")  # no cached value: nothing was computed

    def test_export_and_template_are_importable(self) -> None:
        """Export writes the data on the first sheet as text ('=' stays text); the template has a docs sheet."""
        rows = sample_rows(2)
        rows[0]["description"] = "=HYPERLINK(\"x\")"
        parsed = [r for _, r in read_xlsx(to_xlsx(rows)).rows]
        self.assertEqual(parsed[0]["description"], "=HYPERLINK(\"x\")")
        self.assertEqual(parsed[1], rows[1])
        template = read_xlsx(template_xlsx())
        self.assertEqual(template.sheets, ["Mappings", "Columns"])
        (_, example), = list(template.rows)
        self.assertEqual(example["dataelement"], "Re46C6Apebu")
        from openpyxl import load_workbook

        docs = load_workbook(io.BytesIO(template_xlsx()), read_only=True)["Columns"]
        documented = [r[0] for r in docs.iter_rows(min_row=2, values_only=True)]
        self.assertEqual(documented, list(COLUMNS))

    def test_zip_bomb_and_not_a_zip(self) -> None:
        """A workbook part inflating 1000:1 is a 413 before openpyxl opens it; junk bytes are a 422."""
        base = make_xlsx(sample_rows(1))
        out = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(base)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                dst.writestr(info, src.read(info))
            with dst.open("xl/worksheets/sheet9.xml", "w") as bomb:
                chunk = b"\0" * (1024 * 1024)
                for _ in range(64):
                    bomb.write(chunk)
        with self.assertRaises(SheetRejected) as e:
            read_xlsx(out.getvalue())
        self.assertEqual((e.exception.status, e.exception.code), (413, "xlsx_compression_ratio"))
        self.assertEqual(e.exception.details["part"], "xl/worksheets/sheet9.xml")
        with self.assertRaises(SheetRejected) as e:
            check_zip(base, SheetLimits(max_uncompressed_bytes=1000))
        self.assertEqual((e.exception.status, e.exception.code), (413, "xlsx_too_large_uncompressed"))
        with self.assertRaises(SheetRejected) as e:
            read_xlsx(b"PK\x03\x04 definitely not a workbook")
        self.assertEqual((e.exception.status, e.exception.code), (422, "invalid_xlsx"))
