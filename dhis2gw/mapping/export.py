"""Mapping export (CSV, XLSX) and the XLSX template — readable by the import as they are.

The data is on the FIRST sheet (the original wrote an empty ``Sheet1`` first, so its own
import could not read its export), every cell is plain text (a value starting with ``=`` is
written as a string, never as a formula), and an empty category option combo is an empty cell
(the original wrote pointer addresses).
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from dhis2gw.mapping.rows import COLUMN_DOCS, COLUMNS

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_TYPE = "text/csv; charset=utf-8"
EXAMPLE_ROW = {"code": "OPD_VISITS", "what": "de", "name": "OPD visits", "description": "example row",
               "dataset": "uFaVMlw4qxK", "dataelement": "Re46C6Apebu", "category_option_combo": "HllvX50cXC0",
               "category_option": "", "category_combo": "", "instance_name": "", "source_name": "",
               "source_orgunit": "", "destination_orgunit": ""}


#: A cell starting with one of these is a formula to Excel/LibreOffice (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """``value`` as a CSV cell that a spreadsheet shows as text: a leading ``'`` before a formula
    character (issue 16, F12); the CSV import takes that ``'`` off again."""
    text = str(value) if value is not None else ""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def to_csv(rows: Iterable[dict[str, Any]]) -> bytes:
    """The rows as UTF-8 CSV with the 13-column header (formula-looking cells quoted with ``'``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([csv_cell(row.get(c) or "") for c in COLUMNS])
    return out.getvalue().encode("utf-8")


def _text_cells(ws: Any, values: Iterable[Any]) -> list[Any]:
    from openpyxl.cell import WriteOnlyCell

    cells = []
    for value in values:
        cell = WriteOnlyCell(ws, value=str(value or ""))
        cell.data_type = "s"  # never a formula, even for "=..." text
        cells.append(cell)
    return cells


def to_xlsx(rows: Iterable[dict[str, Any]], docs_sheet: bool = False) -> bytes:
    """The rows as an XLSX workbook: sheet ``Mappings`` first; optionally a ``Columns`` help sheet."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    ws = workbook.create_sheet("Mappings")
    ws.append(_text_cells(ws, COLUMNS))
    for row in rows:
        ws.append(_text_cells(ws, (row.get(c) for c in COLUMNS)))
    if docs_sheet:
        help_ws = workbook.create_sheet("Columns")
        help_ws.append(_text_cells(help_ws, ("column", "meaning")))
        for column in COLUMNS:
            help_ws.append(_text_cells(help_ws, (column, COLUMN_DOCS[column])))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def template_xlsx() -> bytes:
    """Headers, one example row, and a second sheet documenting each column."""
    return to_xlsx([EXAMPLE_ROW], docs_sheet=True)
