"""The README's "DHIS2 versions" section lists the known transient answers and every supported version."""
from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.dhis2.transient import KNOWN_TRANSIENT
from dhis2gw.dhis2.versions import SUPPORTED_RANGE

README = Path(__file__).resolve().parents[2] / "README.md"


class VersionsSectionTests(SynchronousTestCase):
    """The table in the README and the code say the same."""

    def section(self) -> str:
        text = README.read_text(encoding="utf-8")
        start = text.index("## DHIS2 versions")
        return text[start:text.index("\n## ", start + 3)]

    def test_known_transient_rows_listed(self) -> None:
        """Each row of KNOWN_TRANSIENT appears by name with its HTTP status."""
        section = self.section()
        for row in KNOWN_TRANSIENT:
            line = next((ln for ln in section.splitlines() if ln.startswith(f"| `{row.name}`")), None)
            self.assertIsNotNone(line, row.name)
            for status in row.statuses:
                self.assertIn(f"| {status} |", line or "")

    def test_supported_range(self) -> None:
        """The section names the range the client declares supported (2.36 – 2.44)."""
        low, high = SUPPORTED_RANGE
        self.assertIn(f"DHIS2 2.{low[1]} – 2.{high[1]}", self.section())
