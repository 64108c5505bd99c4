"""Value checks and conflict collection shared by the aggregate and tracker importers."""
from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from dhis2gw.sim.versions import Version

BOOL_TRUE, BOOL_FALSE = {"true", "True", "TRUE", "1", "t"}, {"false", "False", "FALSE", "0", "f"}


def value_type_error(value_type: str, value: str) -> tuple[str, str] | None:
    """``(i18n key, text)`` if *value* does not fit *value_type*, else None (``ValidationUtils``)."""
    def number() -> float | None:
        try:
            f = float(value)
        except ValueError:
            return None
        return f if f == f and f not in (float("inf"), float("-inf")) else None

    integer = re.fullmatch(r"[-+]?\d+", value) is not None
    if value_type == "NUMBER" and number() is None:
        return "value_not_numeric", "Data value is not numeric"
    if value_type == "INTEGER" and not integer:
        return "value_not_integer", "Data value is not an integer"
    if value_type == "INTEGER_POSITIVE" and not (integer and int(value) > 0):
        return "value_not_positive_integer", "Data value is not a positive integer"
    if value_type == "INTEGER_ZERO_OR_POSITIVE" and not (integer and int(value) >= 0):
        return "value_not_zero_or_positive_integer", "Data value is not a zero or positive integer"
    if value_type == "PERCENTAGE":
        n = number()
        if n is None or not 0 <= n <= 100:
            return "value_not_percentage", "Data value is not a percentage"
    if value_type == "BOOLEAN" and value not in BOOL_TRUE | BOOL_FALSE:
        return "value_not_bool", "Data value is not a boolean"
    if value_type == "DATE":
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            return "value_not_valid_date", "Data value is not a valid date"
    if value_type == "TEXT" and len(value) > 50000:
        return "value_length_greater_than_max_length", "Data value is greater than max length"
    return None


class Conflicts:
    """Collects conflicts and renders them per version (grouped with indexes from 2.37)."""

    def __init__(self, version: Version) -> None:
        """Start empty."""
        self.version = version
        self.items: list[dict[str, Any]] = []
        self._by_key: dict[str, dict[str, Any]] = {}

    def add(self, code: str, objects: dict[str, str], prop: str, message: str,
            legacy: tuple[str, str], index: int | None = None) -> None:
        """Record one conflict; *legacy* is the 2.36 ``(object, value)`` pair."""
        if not self.version.coded_conflicts:
            key = json.dumps(legacy)
            if key not in self._by_key:
                self._by_key[key] = {"object": legacy[0], "value": legacy[1]}
                self.items.append(self._by_key[key])
            return
        key = json.dumps([code, objects, message])
        if key in self._by_key:
            if index is not None:
                self._by_key[key].setdefault("indexes", []).append(index)
            return
        conflict: dict[str, Any] = {"object": next(iter(objects.values()), ""), "objects": objects,
                                    "value": message, "errorCode": code, "property": prop}
        if index is not None:
            conflict["indexes"] = [index]
        self._by_key[key] = conflict
        self.items.append(conflict)
