"""The mapping sheet's columns (the original dhis2gw's 13, in its order) and row validation.

Header names match case- and space-insensitively (``Category Option Combo``,
``category_option_combo`` and ``CATEGORYOPTIONCOMBO`` are the same column); unknown columns are
ignored. ``what`` is ``de`` (data value: code → dataelement [+ category_option_combo]),
``ou`` (org unit: source_orgunit → destination_orgunit) or ``co`` (category option).
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

COLUMNS: tuple[str, ...] = (
    "code", "what", "name", "description", "dataset", "dataelement", "category_option_combo",
    "category_option", "category_combo", "instance_name", "source_name", "source_orgunit",
    "destination_orgunit",
)
KEY_COLUMNS: tuple[str, ...] = ("code", "source_name", "instance_name", "what")
UID_COLUMNS = frozenset({"dataset", "dataelement", "category_option_combo", "category_option",
                         "category_combo", "destination_orgunit"})
WHATS = ("de", "ou", "co")
UID_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9]{10}$")
MAX_CELL = {"description": 2000}
DEFAULT_MAX_CELL = 255

COLUMN_DOCS: dict[str, str] = {
    "code": "The submitter's key (required). Unique together with source_name, instance_name and what.",
    "what": "de (data value, the default), ou (org unit) or co (category option).",
    "name": "A human name; the key when mapping_scheme is NAME.",
    "description": "Free text.",
    "dataset": "DHIS2 data set UID (optional).",
    "dataelement": "DHIS2 data element UID (required when what=de).",
    "category_option_combo": "DHIS2 category option combo UID (optional; empty = default).",
    "category_option": "DHIS2 category option UID (required when what=co).",
    "category_combo": "DHIS2 category combo UID (optional).",
    "instance_name": "The destination's instance_name this row applies to; empty or default = every destination"
                     " (the original's sheets say default).",
    "source_name": "The submitter's source_name this row applies to; empty or default = every submitter"
                   " (the original's sheets say default); a named row wins over these.",
    "source_orgunit": "The submitter's org-unit code (what=ou; the code is used when empty).",
    "destination_orgunit": "DHIS2 org unit UID (required when what=ou).",
}


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_SQUASHED = {_squash(c): c for c in COLUMNS}


def match_header(cells: Iterable[Any]) -> tuple[dict[int, str], list[str]]:
    """Map cell positions to known columns; return ``(position → column, ignored header names)``."""
    positions: dict[int, str] = {}
    ignored: list[str] = []
    for i, cell in enumerate(cells):
        name = cell_text(cell)
        column = _BY_SQUASHED.get(_squash(name))
        if column is None or column in positions.values():
            if name:
                ignored.append(name)
            continue
        positions[i] = column
    return positions, ignored


def cell_text(value: Any) -> str:
    """A cell as text: numbers without float noise (101.0 → "101"), dates as ISO, trimmed."""
    if value.__class__ is str:
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return str(value).strip()


def row_errors(row: dict[str, str], number: int) -> list[dict[str, Any]]:
    """Validate (and normalise in place) one row; return ``[{row, column, message}]``.

    ``what`` is lower-cased and defaults to ``de``; an ``ou`` row without a code takes its
    ``source_orgunit`` as code.
    """
    errors: list[dict[str, Any]] = []

    def fail(column: str, message: str) -> None:
        errors.append({"row": number, "column": column, "message": message})

    what = (row.get("what") or "de").lower()
    row["what"] = what
    if what not in WHATS:
        fail("what", f"must be one of {', '.join(WHATS)} (got {row.get('what')!r})")
    if what == "ou" and not row.get("code"):
        row["code"] = row.get("source_orgunit", "")
    if not row.get("code"):
        fail("code", "is required")
    required = {"de": ("dataelement",), "ou": ("destination_orgunit",), "co": ("category_option",)}.get(what, ())
    for column in required:
        if not row.get(column):
            fail(column, f"is required when what={what}")
    for column in COLUMNS:
        value = row.get(column, "")
        if len(value) > MAX_CELL.get(column, DEFAULT_MAX_CELL):
            fail(column, f"is longer than {MAX_CELL.get(column, DEFAULT_MAX_CELL)} characters")
        elif value and column in UID_COLUMNS and not UID_RE.match(value):
            fail(column, f"{value!r} is not a DHIS2 UID (a letter then 10 letters or digits)")
    return errors


def complete(row: dict[str, str]) -> dict[str, str]:
    """Every column present (missing ones as "")."""
    return {c: row.get(c, "") for c in COLUMNS}


def row_key(row: dict[str, str]) -> tuple[str, str, str, str]:
    """The unique key (code, source_name, instance_name, what)."""
    return (row["code"], row["source_name"], row["instance_name"], row["what"])


def is_blank(values: Iterable[Any]) -> bool:
    """True for a row with no content (skipped, like trailing empty spreadsheet rows)."""
    return all(cell_text(v) == "" for v in values)


def key_text(key: tuple[str, ...] | None) -> str:
    """A key for messages."""
    return "/".join(key or ())
