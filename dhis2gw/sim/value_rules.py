"""Rules both simulated aggregate imports apply to data values: the 2.36-2.42 one
(:class:`~dhis2gw.sim.aggregate.AggregateImporter`) and the 2.43+ data entry pipeline
(:class:`~dhis2gw.sim.entry_pipeline.DataEntryImporter`) store, skip and lock values alike.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from dhis2gw.sim.conflicts import BOOL_TRUE
from dhis2gw.sim.metadata import DEFAULT_COC
from dhis2gw.sim.periods import Period, add_months, monthly_period_of, parse_period

NUMERIC_TYPES = {"NUMBER", "INTEGER", "INTEGER_POSITIVE", "INTEGER_ZERO_OR_POSITIVE", "INTEGER_NEGATIVE",
                 "PERCENTAGE", "UNIT_INTERVAL"}


def zero_counts() -> dict[str, int]:
    """An ``importCount`` with nothing counted."""
    return {"imported": 0, "updated": 0, "ignored": 0, "deleted": 0}


def completion_key(ds: dict[str, Any], period: Period, ou: dict[str, Any],
                   aoc: dict[str, Any] | None) -> tuple[str, str, str, str]:
    """The key of a completeness registration (the default AOC when the payload names none)."""
    return ds["id"], period.iso, ou["id"], aoc["id"] if aoc else DEFAULT_COC


def outside_hierarchy(ou: dict[str, Any], user_paths: list[str]) -> bool:
    """True when the user is restricted to org-unit subtrees and *ou* is in none of them."""
    return bool(user_paths) and not any(ou["path"] == p or ou["path"].startswith(p + "/") for p in user_paths)


def normalised(de: dict[str, Any], value: str | None) -> str | None:
    """The value as DHIS2 stores it: a BOOLEAN's spellings become ``true``/``false``."""
    if value and de["valueType"] == "BOOLEAN":
        return "true" if value in BOOL_TRUE else "false"
    return value


def insignificant_zero(de: dict[str, Any], value: str | None, delete: bool) -> bool:
    """A zero of a numeric data element whose zeros are not significant: DHIS2 skips it silently."""
    return (not delete and bool(value) and de["valueType"] in NUMERIC_TYPES and not de.get("zeroIsSignificant")
            and _is_zero(value or ""))


def _is_zero(value: str) -> bool:
    try:
        return float(value) == 0
    except ValueError:
        return False


def latest_open(ds: dict[str, Any], today: dt.date) -> tuple[str, dt.date]:
    """ISO code and end date of the latest period still open for data entry in *ds*."""
    ofp = int(ds.get("openFuturePeriods") or 0)
    if ds.get("periodType") == "Quarterly":
        q = (today.month - 1) // 3 + ofp
        year = today.year + q // 4
        iso = f"{year}Q{q % 4 + 1}"
    else:
        iso = add_months(monthly_period_of(today), ofp)
    period = parse_period(iso)
    assert period is not None
    return iso, period.end
