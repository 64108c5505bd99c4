"""Reading uploaded mapping sheets (CSV or XLSX) safely and lazily.

CSV: UTF-8 with or without BOM (a Latin-1 fallback would silently garble codes, so invalid
UTF-8 is a 422), ``,`` ``;`` or tab delimiters sniffed from the header line, quoted fields.
XLSX: openpyxl in ``read_only`` mode (rows are streamed from the zip, memory stays flat) with
``data_only=True`` (the cached value of a formula cell is read, no formula is ever evaluated),
after a zip-bomb guard that checks every member's declared size and compression ratio before
openpyxl opens anything. Rows are yielded one by one so the importer can work in chunks.
"""
from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dhis2gw.mapping.rows import COLUMNS, cell_text, is_blank, match_header

MIB = 1024 * 1024
_FORMULA_STARTS = "=+-@\t\r"


@dataclass(eq=False)
class SheetRejected(Exception):
    """The file as a whole cannot be imported; answered with ``status`` (413 or 422)."""

    status: int
    code: str
    message: str
    details: Any = None

    def __post_init__(self) -> None:
        super().__init__(self.message)


@dataclass(frozen=True)
class SheetLimits:
    """Upload limits (the site's body limit applies first)."""

    max_file_bytes: int = 10 * MIB
    max_rows: int = 200_000
    max_uncompressed_bytes: int = 256 * MIB  # sum of the declared sizes of the XLSX members
    max_member_ratio: int = 200              # uncompressed/compressed, for members above 1 MiB
    max_members: int = 500
    #: uncompressed size of ``xl/sharedStrings.xml``: openpyxl holds the whole table in memory
    max_shared_strings_bytes: int = 64 * MIB


@dataclass
class Sheet:
    """A parsed header plus a lazy iterator of ``(row number, {column: text})``."""

    columns: dict[int, str]
    ignored_columns: list[str]
    total: int | None  # data rows, when known before reading them
    rows: Iterator[tuple[int, dict[str, str]]]
    sheet_name: str | None = None
    sheets: list[str] = field(default_factory=list)


def _check_size(data: bytes, limits: SheetLimits) -> None:
    if len(data) > limits.max_file_bytes:
        raise SheetRejected(413, "file_too_large", f"the file is larger than {limits.max_file_bytes} bytes",
                            {"limit_bytes": limits.max_file_bytes, "size_bytes": len(data)})
    if not data.strip():
        raise SheetRejected(422, "empty_file", "the file is empty")


def _rows_from(values: Iterator[tuple[int, list[Any]]], columns: dict[int, str],
               limits: SheetLimits) -> Iterator[tuple[int, dict[str, str]]]:
    count = 0
    for number, cells in values:
        if is_blank(cells):
            continue
        count += 1
        if count > limits.max_rows:
            raise SheetRejected(413, "too_many_rows", f"the file has more than {limits.max_rows} rows",
                                {"limit_rows": limits.max_rows})
        # Every column present (missing ones as ""), in one dict per row.
        row = dict.fromkeys(COLUMNS, "")
        width = len(cells)
        for pos, column in columns.items():
            if pos < width:
                row[column] = cell_text(cells[pos])
        yield number, row


def _header(columns: dict[int, str], ignored: list[str]) -> None:
    if "code" not in columns.values() and "source_orgunit" not in columns.values():
        raise SheetRejected(422, "missing_columns",
                            "the first row must be the header and name at least the 'code' column",
                            {"found": ignored})


def read_csv(data: bytes, limits: SheetLimits = SheetLimits()) -> Sheet:
    """Parse a CSV upload (see module docstring)."""
    _check_size(data, limits)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SheetRejected(422, "invalid_encoding", "the CSV file is not UTF-8",
                            {"byte_offset": e.start}) from None
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)
    try:
        header = next(csv.reader(io.StringIO(first_line), delimiter=delimiter))
    except StopIteration:
        raise SheetRejected(422, "empty_file", "the file is empty") from None
    columns, ignored = match_header(header)
    _header(columns, ignored)
    # Counting first gives the job a total for progress; without quotes a line is a row, which is
    # much cheaper to count than parsed rows.
    if '"' in text:
        total = sum(1 for cells in csv.reader(io.StringIO(text), delimiter=delimiter) if not is_blank(cells)) - 1
    else:
        blank = " \t\r" + delimiter
        total = sum(1 for line in text.split("\n") if line.strip(blank)) - 1

    def values() -> Iterator[tuple[int, list[Any]]]:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        try:
            next(reader)
            for cells in reader:
                # The export writes '=… for a cell starting with a formula character (CSV injection):
                # take the quote off again so an export imports unchanged.
                yield reader.line_num, [c[1:] if c[:1] == "'" and c[1:2] in _FORMULA_STARTS and c[1:2] else c
                                        for c in cells]
        except csv.Error as e:
            raise SheetRejected(422, "invalid_csv", f"the CSV file cannot be read: {e}",
                                {"line": reader.line_num}) from None

    return Sheet(columns, ignored, max(total, 0), _rows_from(values(), columns, limits))


def check_zip(data: bytes, limits: SheetLimits = SheetLimits()) -> int:
    """Refuse an XLSX whose members would inflate beyond the limits (zip bomb) or that is no zip;
    return the declared uncompressed size."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise SheetRejected(422, "invalid_xlsx", "the file is not an XLSX workbook (not a zip archive)") from None
    with archive:
        members = archive.infolist()
        if len(members) > limits.max_members:
            raise SheetRejected(422, "invalid_xlsx", f"the workbook has more than {limits.max_members} parts")
        total = 0
        for info in members:
            total += info.file_size
            if info.filename.lower().endswith("sharedstrings.xml") and info.file_size > limits.max_shared_strings_bytes:
                raise SheetRejected(413, "xlsx_shared_strings_too_large",
                                    f"the workbook's shared strings inflate to {info.file_size} bytes, more than "
                                    f"{limits.max_shared_strings_bytes}",
                                    {"part": info.filename, "uncompressed_bytes": info.file_size,
                                     "limit_bytes": limits.max_shared_strings_bytes})
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > MIB and ratio > limits.max_member_ratio:
                raise SheetRejected(413, "xlsx_compression_ratio",
                                    f"workbook part {info.filename!r} inflates {ratio:.0f}:1, more than the "
                                    f"{limits.max_member_ratio}:1 allowed (zip bomb?)",
                                    {"part": info.filename, "ratio": round(ratio), "limit": limits.max_member_ratio})
        if total > limits.max_uncompressed_bytes:
            raise SheetRejected(413, "xlsx_too_large_uncompressed",
                                f"the workbook inflates to {total} bytes, more than {limits.max_uncompressed_bytes}",
                                {"uncompressed_bytes": total, "limit_bytes": limits.max_uncompressed_bytes})
        if "[Content_Types].xml" not in archive.namelist():
            raise SheetRejected(422, "invalid_xlsx", "the file is a zip archive but not an XLSX workbook")
        return total


def read_xlsx(data: bytes, sheet: str | None = None, limits: SheetLimits = SheetLimits()) -> Sheet:
    """Parse an XLSX upload: the first sheet, or the one named ``sheet``."""
    _check_size(data, limits)
    check_zip(data, limits)
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except Exception as e:  # noqa: BLE001 - openpyxl raises many types for damaged files
        raise SheetRejected(422, "invalid_xlsx", f"the workbook cannot be read: {type(e).__name__}") from None
    names = list(workbook.sheetnames)
    if sheet and sheet not in names:
        workbook.close()
        raise SheetRejected(422, "unknown_sheet", f"the workbook has no sheet named {sheet!r}", {"sheets": names})
    ws = workbook[sheet] if sheet else workbook.worksheets[0]
    rows = ws.iter_rows(values_only=True)
    try:
        header = list(next(rows))
    except StopIteration:
        workbook.close()
        raise SheetRejected(422, "empty_file", f"sheet {ws.title!r} is empty", {"sheets": names}) from None
    columns, ignored = match_header(header)
    try:
        _header(columns, ignored)
    except SheetRejected:
        workbook.close()
        raise
    total = ws.max_row - 1 if isinstance(ws.max_row, int) and ws.max_row > 1 else None

    def values() -> Iterator[tuple[int, list[Any]]]:
        try:
            for number, cells in enumerate(rows, start=2):
                yield number, list(cells)
        except SheetRejected:
            raise
        except Exception as e:  # noqa: BLE001 - a damaged part (XML error) found while streaming rows
            raise SheetRejected(422, "invalid_xlsx", f"the workbook cannot be read: {type(e).__name__}") from None
        finally:
            workbook.close()

    return Sheet(columns, ignored, total, _rows_from(values(), columns, limits), ws.title, names)
