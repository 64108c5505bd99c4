"""DHIS2 period identifiers: every type, real range checks, and the date <-> period round trip."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.dhis2.periods import (
    PERIOD_TYPES,
    InvalidPeriod,
    is_valid_period,
    parse_period,
    period_for_date,
    period_type,
    weeks_in_year,
)

DATES = st.dates(min_value=date(1901, 1, 1), max_value=date(2200, 12, 31))


class PeriodTypeTests(SynchronousTestCase):
    """Each documented format is recognised with its DHIS2 type name and exact dates."""

    EXAMPLES = {
        "20040315": ("Daily", date(2004, 3, 15), date(2004, 3, 15)),
        "2004W10": ("Weekly", date(2004, 3, 1), date(2004, 3, 7)),
        "2015WedW5": ("WeeklyWednesday", date(2015, 1, 28), date(2015, 2, 3)),
        "2015ThuW6": ("WeeklyThursday", date(2015, 2, 5), date(2015, 2, 11)),
        "2015SatW7": ("WeeklySaturday", date(2015, 2, 14), date(2015, 2, 20)),
        "2015SunW8": ("WeeklySunday", date(2015, 2, 22), date(2015, 2, 28)),
        "2015BiW1": ("BiWeekly", date(2014, 12, 29), date(2015, 1, 11)),
        "200403": ("Monthly", date(2004, 3, 1), date(2004, 3, 31)),
        "200401B": ("BiMonthly", date(2004, 1, 1), date(2004, 2, 29)),
        "2004Q1": ("Quarterly", date(2004, 1, 1), date(2004, 3, 31)),
        "2004NovQ1": ("QuarterlyNov", date(2003, 11, 1), date(2004, 1, 31)),
        "2004S1": ("SixMonthly", date(2004, 1, 1), date(2004, 6, 30)),
        "2004AprilS1": ("SixMonthlyApril", date(2004, 4, 1), date(2004, 9, 30)),
        "2004AprilS2": ("SixMonthlyApril", date(2004, 10, 1), date(2005, 3, 31)),
        "2004NovS1": ("SixMonthlyNov", date(2003, 11, 1), date(2004, 4, 30)),
        "2004NovS2": ("SixMonthlyNov", date(2004, 5, 1), date(2004, 10, 31)),
        "2004": ("Yearly", date(2004, 1, 1), date(2004, 12, 31)),
        "2004April": ("FinancialApril", date(2004, 4, 1), date(2005, 3, 31)),
        "2004July": ("FinancialJuly", date(2004, 7, 1), date(2005, 6, 30)),
        "2004Sep": ("FinancialSep", date(2004, 9, 1), date(2005, 8, 31)),
        "2004Oct": ("FinancialOct", date(2004, 10, 1), date(2005, 9, 30)),
        "2004Nov": ("FinancialNov", date(2003, 11, 1), date(2004, 10, 31)),
    }

    def test_examples(self) -> None:
        """The examples from the DHIS2 docs parse to the right type and dates."""
        for iso, (kind, start, end) in self.EXAMPLES.items():
            period = parse_period(iso)
            self.assertEqual((period.period_type, period.start, period.end), (kind, start, end), iso)
            self.assertEqual(period_type(iso), kind)
        self.assertEqual({k for k, _, _ in self.EXAMPLES.values()}, set(PERIOD_TYPES))

    def test_out_of_range_values_are_invalid(self) -> None:
        """Month 13, day 30 of February, bi-month 7, quarter 5, S3, week 0, and garbage are rejected."""
        for iso in ("200413", "200400", "20040230", "20030229", "200407B", "200400B", "2004Q5", "2004Q0",
                    "2004NovQ5", "2004S3", "2004AprilS3", "2004NovS0", "2004W0", "2004W54", "2004BiW0",
                    "2004BiW28", "0000", "2004W", "2004-03", "2004-03-15", "2004june", "2004 ", " 2004",
                    "2004WedW", "200", "2004April1", "2004Dec", ""):
            self.assertFalse(is_valid_period(iso), iso)
            self.assertIsNone(period_type(iso))
        with self.assertRaises(InvalidPeriod) as caught:
            parse_period("200413")
        self.assertIn("month must be 01..12", str(caught.exception))
        self.assertFalse(is_valid_period(None))  # type: ignore[arg-type]

    def test_week_53_only_in_long_years(self) -> None:
        """ISO week 53 exists in 2015, 2020, 2026 but not in 2019, 2021, 2023; BiW27 follows it."""
        for year in (2004, 2009, 2015, 2020, 2026):
            self.assertTrue(is_valid_period(f"{year}W53"), year)
            self.assertTrue(is_valid_period(f"{year}BiW27"), year)
        for year in (2019, 2021, 2022, 2023, 2024):
            self.assertFalse(is_valid_period(f"{year}W53"), year)
            self.assertFalse(is_valid_period(f"{year}BiW27"), year)
        self.assertTrue(is_valid_period("2015W01"), "leading zero accepted as DHIS2 does")

    def test_weeks_with_other_start_days(self) -> None:
        """Week 1 is the week (from its start day) containing 4 January; 53-week years differ by start day."""
        self.assertEqual(parse_period("2022SunW1").start, date(2022, 1, 2))
        self.assertEqual(parse_period("2021SatW1").start, date(2021, 1, 2))
        self.assertEqual(weeks_in_year(2022, 6), 52)
        long_years = {y for y in range(2000, 2030) if weeks_in_year(y, 2) == 53}
        for year in range(2000, 2030):
            self.assertEqual(is_valid_period(f"{year}WedW53"), year in long_years)


class PeriodPropertyTests(SynchronousTestCase):
    """Properties over many dates and all types."""

    @settings(max_examples=300, deadline=None)
    @given(day=DATES, kind=st.sampled_from(PERIOD_TYPES))
    def test_period_for_date_contains_it_and_round_trips(self, day: date, kind: str) -> None:
        """For any date and type, the computed period contains the date and re-parses to itself."""
        period = period_for_date(kind, day)
        self.assertTrue(period.contains(day), (kind, day, period))
        self.assertEqual(parse_period(period.iso), period)
        self.assertEqual(period.period_type, kind)

    @settings(max_examples=200, deadline=None)
    @given(day=DATES, kind=st.sampled_from([k for k in PERIOD_TYPES if k != "BiWeekly"]))
    def test_consecutive_periods_tile_the_calendar(self, day: date, kind: str) -> None:
        """Outside the BiW27 overlap, the period after this one starts the day after it ends."""
        period = period_for_date(kind, day)
        following = period_for_date(kind, period.end + timedelta(days=1))
        self.assertEqual(following.start, period.end + timedelta(days=1))

    @settings(max_examples=300, deadline=None)
    @given(year=st.integers(1000, 9998), month=st.integers(0, 99))
    def test_monthly_range(self, year: int, month: int) -> None:
        """yyyyMM is valid exactly for months 01..12."""
        self.assertEqual(is_valid_period(f"{year:04d}{month:02d}"), 1 <= month <= 12)

    @settings(max_examples=300, deadline=None)
    @given(year=st.integers(1000, 9998), week=st.integers(0, 60))
    def test_iso_week_range(self, year: int, week: int) -> None:
        """yyyyWn is valid for 1..52, and 53 exactly when Python's ISO calendar has week 53."""
        has_53 = date(year, 12, 28).isocalendar()[1] == 53
        self.assertEqual(is_valid_period(f"{year}W{week}"), 1 <= week <= 52 or (week == 53 and has_53))

    @given(text=st.text(max_size=12))
    def test_never_crashes(self, text: str) -> None:
        """Any string gives a bool, never an exception other than InvalidPeriod from parse."""
        self.assertIn(is_valid_period(text), (True, False))
