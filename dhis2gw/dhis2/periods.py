"""DHIS2 period identifiers (ISO-like strings) for every period type, with real range checks.

Formats (canonical forms only; DHIS2's ``yyyy-MM`` / ``yyyy-MM-dd`` aliases are
not accepted, so a payload never depends on version-specific parsing):

===================  ===================  ==============================================
type                 format / example     range rule
===================  ===================  ==============================================
Daily                ``20040315``         a real calendar date
Weekly               ``2004W10``          1..52, 53 only when the ISO year has 53 weeks
WeeklyWednesday      ``2015WedW5``        same rule with weeks starting on Wednesday
WeeklyThursday       ``2015ThuW6``        ... Thursday
WeeklySaturday       ``2015SatW7``        ... Saturday
WeeklySunday         ``2015SunW8``        ... Sunday
BiWeekly             ``2015BiW1``         1..26, 27 only in 53-week ISO years (DHIS2 maps
                                          week 53 to BiW27)
Monthly              ``200403``           month 01..12
BiMonthly            ``200401B``          01..06
Quarterly            ``2004Q1``           1..4
QuarterlyNov         ``2004NovQ1``        1..4 (Q1 = Nov of the previous year; 2.41+)
SixMonthly           ``2004S1``           1..2
SixMonthlyApril      ``2004AprilS1``      1..2 (S1 = Apr..Sep)
SixMonthlyNov        ``2004NovS1``        1..2 (S1 = Nov of the previous year..Apr)
Yearly               ``2004``
FinancialApril       ``2004April``        Apr 2004 .. Mar 2005
FinancialJuly        ``2004July``         Jul 2004 .. Jun 2005
FinancialSep         ``2004Sep``          Sep 2004 .. Aug 2005 (newer servers only)
FinancialOct         ``2004Oct``          Oct 2004 .. Sep 2005
FinancialNov         ``2004Nov``          Nov 2003 .. Oct 2004 (DHIS2 names it by the end year)
===================  ===================  ==============================================

Weeks follow DHIS2 (``WeekFields.of(startDay, 4)``): week 1 is the first week,
starting on the type's start day, with at least four days in the new year, i.e.
the week that contains 4 January.  Leading zeros in week numbers are accepted
(DHIS2 parses them as integers).  Years run from 1000 to 9998.
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import date, timedelta

MIN_YEAR = 1000
MAX_YEAR = 9998

#: Week start day (Monday=0) per weekly period type, and its infix in the identifier.
WEEKLY_TYPES: dict[str, tuple[str, int]] = {
    "Weekly": ("W", 0),
    "WeeklyWednesday": ("WedW", 2),
    "WeeklyThursday": ("ThuW", 3),
    "WeeklySaturday": ("SatW", 5),
    "WeeklySunday": ("SunW", 6),
}

#: Financial year types: (suffix, first month, year offset of the first month).
FINANCIAL_TYPES: dict[str, tuple[str, int, int]] = {
    "FinancialApril": ("April", 4, 0),
    "FinancialJuly": ("July", 7, 0),
    "FinancialSep": ("Sep", 9, 0),
    "FinancialOct": ("Oct", 10, 0),
    "FinancialNov": ("Nov", 11, -1),
}

#: Every period type name this module knows.
PERIOD_TYPES: tuple[str, ...] = (
    "Daily", *WEEKLY_TYPES, "BiWeekly", "Monthly", "BiMonthly", "Quarterly", "QuarterlyNov",
    "SixMonthly", "SixMonthlyApril", "SixMonthlyNov", "Yearly", *FINANCIAL_TYPES,
)

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Yearly", re.compile(r"(\d{4})")),
    ("Daily", re.compile(r"(\d{4})(\d{2})(\d{2})")),
    ("Monthly", re.compile(r"(\d{4})(\d{2})")),
    ("BiMonthly", re.compile(r"(\d{4})(\d{2})B")),
    ("Quarterly", re.compile(r"(\d{4})Q(\d)")),
    ("QuarterlyNov", re.compile(r"(\d{4})NovQ(\d)")),
    ("SixMonthly", re.compile(r"(\d{4})S(\d)")),
    ("SixMonthlyApril", re.compile(r"(\d{4})AprilS(\d)")),
    ("SixMonthlyNov", re.compile(r"(\d{4})NovS(\d)")),
    ("BiWeekly", re.compile(r"(\d{4})BiW(\d{1,2})")),
    *((name, re.compile(rf"(\d{{4}}){infix}(\d{{1,2}})")) for name, (infix, _) in WEEKLY_TYPES.items()),
    *((name, re.compile(rf"(\d{{4}}){suffix}")) for name, (suffix, _, _) in FINANCIAL_TYPES.items()),
)


class InvalidPeriod(ValueError):
    """The string is not a valid DHIS2 period identifier (message says why)."""


@dataclass(frozen=True)
class Period:
    """A parsed period: identifier, DHIS2 period type name, first and last day."""

    iso: str
    period_type: str
    start: date
    end: date

    def contains(self, day: date) -> bool:
        """True when ``day`` falls within the period."""
        return self.start <= day <= self.end


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def _month_span(year: int, month: int, length: int) -> tuple[date, date]:
    """First day of ``year-month`` and the last day ``length`` months later."""
    end_year, end_month = _add_months(year, month, length - 1)
    return date(year, month, 1), date(end_year, end_month, calendar.monthrange(end_year, end_month)[1])


def week_one_start(year: int, start_day: int) -> date:
    """First day of week 1 of ``year`` for weeks starting on ``start_day`` (Monday=0)."""
    jan4 = date(year, 1, 4)
    return jan4 - timedelta(days=(jan4.weekday() - start_day) % 7)


def weeks_in_year(year: int, start_day: int = 0) -> int:
    """52 or 53: how many weeks (starting on ``start_day``) ``year`` has."""
    return (week_one_start(year + 1, start_day) - week_one_start(year, start_day)).days // 7


def _check(condition: bool, iso: str, why: str) -> None:
    if not condition:
        raise InvalidPeriod(f"invalid period {iso!r}: {why}")


def _range(iso: str, kind: str, year: int, number: int) -> tuple[date, date]:
    """Start and end of period ``number`` of ``kind`` in ``year`` (validates the number)."""
    if kind == "Daily":
        raise AssertionError("handled by the caller")
    if kind in WEEKLY_TYPES:
        start_day = WEEKLY_TYPES[kind][1]
        limit = weeks_in_year(year, start_day)
        _check(1 <= number <= limit, iso, f"week must be 1..{limit} in {year}")
        start = week_one_start(year, start_day) + timedelta(weeks=number - 1)
        return start, start + timedelta(days=6)
    if kind == "BiWeekly":
        limit = 27 if weeks_in_year(year) == 53 else 26
        _check(1 <= number <= limit, iso, f"bi-week must be 1..{limit} in {year}")
        start = week_one_start(year, 0) + timedelta(weeks=2 * (number - 1))
        return start, start + timedelta(days=13)
    if kind == "Monthly":
        _check(1 <= number <= 12, iso, "month must be 01..12")
        return _month_span(year, number, 1)
    if kind == "BiMonthly":
        _check(1 <= number <= 6, iso, "bi-month must be 01..06")
        return _month_span(year, 2 * number - 1, 2)
    if kind in ("Quarterly", "QuarterlyNov"):
        _check(1 <= number <= 4, iso, "quarter must be 1..4")
        first_year, first_month = (year, 1) if kind == "Quarterly" else (year - 1, 11)
        return _month_span(*_add_months(first_year, first_month, 3 * (number - 1)), 3)
    if kind in ("SixMonthly", "SixMonthlyApril", "SixMonthlyNov"):
        _check(1 <= number <= 2, iso, "half-year must be 1 or 2")
        first_year, first_month = {
            "SixMonthly": (year, 1), "SixMonthlyApril": (year, 4), "SixMonthlyNov": (year - 1, 11)
        }[kind]
        return _month_span(*_add_months(first_year, first_month, 6 * (number - 1)), 6)
    if kind == "Yearly":
        return date(year, 1, 1), date(year, 12, 31)
    _, first_month, offset = FINANCIAL_TYPES[kind]
    return _month_span(year + offset, first_month, 12)


def parse_period(iso: str) -> Period:
    """Parse and range-check a period identifier; raises `InvalidPeriod`."""
    if not isinstance(iso, str):
        raise InvalidPeriod(f"invalid period {iso!r}: not a string")
    return _parse_period(iso)


@functools.lru_cache(maxsize=4096)
def _parse_period(iso: str) -> Period:
    # Cached: ingest parses the same few periods over and over (failures are not cached).
    for kind, pattern in _PATTERNS:
        match = pattern.fullmatch(iso)
        if match is None:
            continue
        groups = [int(g) for g in match.groups()]
        year = groups[0]
        _check(MIN_YEAR <= year <= MAX_YEAR, iso, f"year must be {MIN_YEAR}..{MAX_YEAR}")
        if kind == "Daily":
            try:
                day = date(year, groups[1], groups[2])
            except ValueError as exc:
                raise InvalidPeriod(f"invalid period {iso!r}: {exc}") from None
            return Period(iso, kind, day, day)
        start, end = _range(iso, kind, year, groups[1] if len(groups) > 1 else 0)
        return Period(iso, kind, start, end)
    raise InvalidPeriod(f"invalid period {iso!r}: not a DHIS2 period format")


def period_type(iso: str) -> str | None:
    """The DHIS2 period type name (``"Monthly"``, ``"WeeklySunday"``...), or None if invalid."""
    try:
        return parse_period(iso).period_type
    except InvalidPeriod:
        return None


def is_valid_period(iso: str) -> bool:
    """True when ``iso`` is a valid period of any type."""
    return period_type(iso) is not None


def period_for_date(kind: str, day: date) -> Period:
    """The period of type ``kind`` that contains ``day`` (inverse of `parse_period`)."""
    year, month = day.year, day.month
    if kind == "Daily":
        iso = day.strftime("%Y%m%d")
    elif kind in WEEKLY_TYPES:
        infix, start_day = WEEKLY_TYPES[kind]
        start = day - timedelta(days=(day.weekday() - start_day) % 7)
        week_year = next(
            y for y in (start.year + 1, start.year, start.year - 1) if week_one_start(y, start_day) <= start
        )
        number = (start - week_one_start(week_year, start_day)).days // 7 + 1
        iso = f"{week_year:04d}{infix}{number}"
    elif kind == "BiWeekly":
        iso_year, iso_week, _ = day.isocalendar()
        if iso_week % 2 == 0:  # bi-weeks start on odd ISO weeks
            iso_year, iso_week, _ = (day - timedelta(weeks=1)).isocalendar()
        iso = f"{iso_year:04d}BiW{(iso_week + 1) // 2}"
    elif kind == "Monthly":
        iso = f"{year:04d}{month:02d}"
    elif kind == "BiMonthly":
        iso = f"{year:04d}{(month + 1) // 2:02d}B"
    elif kind == "Quarterly":
        iso = f"{year:04d}Q{(month + 2) // 3}"
    elif kind == "QuarterlyNov":
        shifted_year, shifted_month = _add_months(year, month, 2)  # Nov -> Jan of the next year
        iso = f"{shifted_year:04d}NovQ{(shifted_month + 2) // 3}"
    elif kind == "SixMonthly":
        iso = f"{year:04d}S{1 if month <= 6 else 2}"
    elif kind == "SixMonthlyApril":
        first_year = year if month >= 4 else year - 1
        iso = f"{first_year:04d}AprilS{1 if 4 <= month <= 9 else 2}"
    elif kind == "SixMonthlyNov":
        iso = f"{year + 1:04d}NovS1" if month >= 11 else (
            f"{year:04d}NovS1" if month <= 4 else f"{year:04d}NovS2"
        )
    elif kind == "Yearly":
        iso = f"{year:04d}"
    elif kind in FINANCIAL_TYPES:
        suffix, first_month, offset = FINANCIAL_TYPES[kind]
        first_year = year if month >= first_month else year - 1
        iso = f"{first_year - offset:04d}{suffix}"
    else:
        raise ValueError(f"unknown period type {kind!r}")
    return parse_period(iso)
