"""The JSON codec of responses and jsonb parameters: orjson's output must read back as exactly
what the standard library's did, including what orjson itself cannot encode."""
from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.jsoncodec import document_text, response_bytes

# What a parsed request body can hold: finite floats, integers of any size, any valid text.
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**200, max_value=2**200)
    | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_TEXT, children, max_size=5),
    max_leaves=30)


class JsonCodecTests(SynchronousTestCase):

    @settings(max_examples=300, deadline=None)
    @given(JSON_VALUES)
    def test_reads_back_as_the_same_document(self, value: object) -> None:
        self.assertEqual(json.loads(response_bytes(value)), value)
        self.assertEqual(json.loads(document_text(value)), value)

    def test_what_orjson_refuses_falls_back(self) -> None:
        big = {"n": 2**70, "m": -(2**64)}
        self.assertEqual(json.loads(response_bytes(big)), big)
        self.assertEqual(json.loads(document_text(big)), big)
        deep: object = 1
        for _ in range(600):  # deeper than orjson's recursion limit
            deep = [deep]
        self.assertEqual(json.loads(response_bytes(deep)), deep)
        self.assertEqual(json.loads(document_text(deep)), deep)

    def test_responses_keep_the_former_text_of_other_types(self) -> None:
        at = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
        body = {"at": at, "amount": Decimal("1.50"), 7: "int key", "text": "é\u2028\n"}
        self.assertEqual(json.loads(response_bytes(body)),
                         {"at": str(at), "amount": "1.50", "7": "int key", "text": "é\u2028\n"})
        self.assertIn("é".encode(), response_bytes(body))  # UTF-8, not \\u escapes

    def test_documents_refuse_what_is_not_json(self) -> None:
        with self.assertRaises(TypeError):
            document_text({"amount": Decimal("1.5")})
