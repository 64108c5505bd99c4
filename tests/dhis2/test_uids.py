"""DHIS2 UID generation and validation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.dhis2.uids import UID_PATTERN, generate_uid, generate_uids, is_valid_uid


class UidTests(SynchronousTestCase):
    """UIDs match DHIS2's CodeGenerator rules."""

    def test_generated_uids_are_valid_and_distinct(self) -> None:
        """5000 generated UIDs all match ^[a-zA-Z][a-zA-Z0-9]{10}$ and do not repeat."""
        uids = generate_uids(5000)
        self.assertEqual(len(set(uids)), 5000)
        self.assertTrue(all(UID_PATTERN.fullmatch(u) for u in uids))
        self.assertTrue(is_valid_uid(generate_uid()))
        # Every alphabet class shows up: first chars are letters only, later chars use digits too.
        self.assertFalse(any(u[0].isdigit() for u in uids))
        self.assertTrue(any(c.isdigit() for u in uids for c in u[1:]))
        self.assertEqual(generate_uids(0), [])
        self.assertRaises(ValueError, generate_uids, -1)

    def test_validation(self) -> None:
        """Known good UIDs pass; wrong length, leading digit, symbols and non-strings fail."""
        for good in ("Y0moqFplrX4", "HllvX50cXC0", "pBOMPrpg1QX"):
            self.assertTrue(is_valid_uid(good))
        for bad in ("0abcdefghij", "abcdefghij", "abcdefghijkl", "abc_efghijk", "invalid_uid", "Ñbcdefghijk",
                    "abcdefghij\n", None, 12345678901):
            self.assertFalse(is_valid_uid(bad), bad)

    @given(st.text(max_size=14))
    def test_validation_matches_the_rule(self, text: str) -> None:
        """is_valid_uid agrees with the rule spelt out by hand for arbitrary text."""
        ascii_alnum = all(c.isascii() and c.isalnum() for c in text)
        expected = len(text) == 11 and ascii_alnum and text[:1].isalpha()
        self.assertEqual(is_valid_uid(text), expected)
