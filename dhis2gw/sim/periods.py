"""ISO period strings as used in data values (``202401``, ``2024Q1``, ``2024W10`` …)."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("Daily", re.compile(r"^(\d{4})(\d{2})(\d{2})$")),
    ("Weekly", re.compile(r"^(\d{4})W(\d{1,2})$")),
    ("Monthly", re.compile(r"^(\d{4})(\d{2})$")),
    ("BiMonthly", re.compile(r"^(\d{4})(\d{2})B$")),
    ("Quarterly", re.compile(r"^(\d{4})Q([1-4])$")),
    ("SixMonthly", re.compile(r"^(\d{4})S([12])$")),
    ("Yearly", re.compile(r"^(\d{4})$")),
    ("FinancialJuly", re.compile(r"^(\d{4})July$")),
]


@dataclass(frozen=True)
class Period:
    """A parsed period: its type and inclusive start/end dates."""

    iso: str
    period_type: str
    start: dt.date
    end: dt.date


def _month_end(year: int, month: int) -> dt.date:
    nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


def parse_period(iso: object) -> Period | None:
    """Parse an ISO period; None if DHIS2 would reject it (E7611)."""
    if not isinstance(iso, str):
        return None
    for ptype, pattern in _PATTERNS:
        m = pattern.match(iso)
        if not m:
            continue
        try:
            year = int(m.group(1))
            if ptype == "Daily":
                d = dt.date(year, int(m.group(2)), int(m.group(3)))
                return Period(iso, ptype, d, d)
            if ptype == "Weekly":
                week = int(m.group(2))
                start = dt.date.fromisocalendar(year, week, 1)
                return Period(iso, ptype, start, start + dt.timedelta(days=6))
            if ptype == "Monthly":
                month = int(m.group(2))
                return Period(iso, ptype, dt.date(year, month, 1), _month_end(year, month))
            if ptype == "BiMonthly":
                month = int(m.group(2)) * 2 - 1
                return Period(iso, ptype, dt.date(year, month, 1), _month_end(year, month + 1))
            if ptype == "Quarterly":
                month = (int(m.group(2)) - 1) * 3 + 1
                return Period(iso, ptype, dt.date(year, month, 1), _month_end(year, month + 2))
            if ptype == "SixMonthly":
                month = 1 if m.group(2) == "1" else 7
                return Period(iso, ptype, dt.date(year, month, 1), _month_end(year, month + 5))
            if ptype == "Yearly":
                return Period(iso, ptype, dt.date(year, 1, 1), dt.date(year, 12, 31))
            if ptype == "FinancialJuly":
                return Period(iso, ptype, dt.date(year, 7, 1), dt.date(year + 1, 6, 30))
        except ValueError:
            return None
    return None


def monthly_period_of(day: dt.date) -> str:
    """The monthly ISO period containing *day*."""
    return f"{day.year:04d}{day.month:02d}"


def add_months(iso: str, months: int) -> str:
    """Shift a monthly ISO period by *months*."""
    year, month = int(iso[:4]), int(iso[4:6])
    index = year * 12 + (month - 1) + months
    return f"{index // 12:04d}{index % 12 + 1:02d}"
