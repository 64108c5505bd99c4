"""Property: what passes pre-validation is accepted by the simulator without conflicts, and whatever the
simulator (with every strict check on) refuses, pre-validation already caught."""
from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.interfaces import KindError
from dhis2gw.mapping.metadata_cache import MetadataCache, fetch_snapshot
from dhis2gw.mapping.prevalidation import PreValidator
from tests.sim.support import (
    COC_DEFAULT,
    COC_MALE_LT5,
    DE_ANC1,
    DE_BED_OCC,
    DE_HIV,
    DE_MAL_CONF,
    DE_MAL_DEATHS,
    DE_OPD,
    DE_OPEN,
    DE_SUP,
    DE_WEIGHT,
    DS_HMIS,
    FAC_CR,
    FAC_NR,
    FAC_NR_2,
    REGION_NR,
    StubClient,
)

UNKNOWN = "Zz3456789ab"
DE_REMARKS = "eapB1gPonCZ"
STRICT = {"strictPeriods": "true", "strictDataElements": "true", "strictCategoryOptionCombos": "true",
          "strictOrganisationUnits": "true"}

values = st.one_of(
    st.integers(-3, 150).map(str),
    st.decimals(-10, 120, places=2, allow_nan=False).map(str),
    st.sampled_from(["true", "false", "1", "0", "yes", "2024-01-31", "2024-02-30", "20240101", "1e3", "1_0", " 5",
                     "abc", "0.0", "-0", "+7", "", "100.01", "NaN", "Infinity"]),
    st.text(max_size=4),
)
random_value = st.fixed_dictionaries(
    {"dataElement": st.sampled_from([DE_OPD, DE_ANC1, DE_BED_OCC, DE_WEIGHT, DE_OPEN, DE_SUP, DE_REMARKS, DE_HIV,
                                     DE_MAL_DEATHS, DE_MAL_CONF, UNKNOWN]),
     "value": values},
    optional={"categoryOptionCombo": st.sampled_from([COC_DEFAULT, COC_MALE_LT5, UNKNOWN])})
# Values that are usually right, so that many generated submissions pass and reach the simulator.
plausible_value = st.one_of(
    st.builds(lambda v: {"dataElement": DE_OPD, "value": v}, st.integers(-1, 500).map(str)),
    st.builds(lambda v: {"dataElement": DE_ANC1, "value": v}, st.integers(-1, 500).map(str)),
    st.builds(lambda v: {"dataElement": DE_BED_OCC, "value": v}, st.decimals(-1, 101, places=1).map(str)),
    st.builds(lambda v: {"dataElement": DE_WEIGHT, "value": v}, st.floats(-5, 9, allow_nan=False).map(repr)),
    st.builds(lambda v: {"dataElement": DE_OPEN, "value": v}, st.sampled_from(["true", "false", "True", "yes"])),
    st.builds(lambda v: {"dataElement": DE_SUP, "value": v.isoformat()}, st.dates()),
    st.builds(lambda c, v: {"dataElement": DE_HIV, "categoryOptionCombo": c, "value": v},
              st.sampled_from([COC_MALE_LT5, COC_DEFAULT]), st.integers(0, 50).map(str)),
    st.builds(lambda v: {"dataElement": DE_REMARKS, "value": v}, st.text(min_size=1, max_size=20)),
)
data_value = st.one_of(plausible_value, plausible_value, random_value)
payloads = st.fixed_dictionaries({
    "dataSet": st.just(DS_HMIS),
    "orgUnit": st.sampled_from([FAC_NR, FAC_NR, FAC_NR, FAC_NR_2, FAC_CR, REGION_NR, UNKNOWN]),
    "period": st.sampled_from(["202401", "202401", "202312", "202505", "2024Q1", "2025W3", "2024"]),
    "dataValues": st.lists(data_value, min_size=1, max_size=4),
})


class _StubReader:
    """``get_json`` over the in-process simulator (answers synchronously)."""

    def __init__(self, stub: StubClient) -> None:
        self.stub = stub

    async def get_json(self, path: str, params: Any = None) -> Any:
        status, body, _ = self.stub.get(f"/api/{path}?{urlencode(params or {})}")
        assert status == 200, body
        return body


class PreValidationPropertyTests(SynchronousTestCase):
    """Pre-validation agrees with the simulator on generated submissions."""

    def setUp(self) -> None:
        self.sim = StubClient("2.40")
        snapshot = self.successResultOf(Deferred.fromCoroutine(
            fetch_snapshot(_StubReader(self.sim), "main", self.sim.clock.seconds())))
        cache = MetadataCache(None, {"main": None}, self.sim.clock)
        cache.snapshots["main"] = snapshot
        self.validator = PreValidator(cache)

    def verdict(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        d = Deferred.fromCoroutine(self.validator.check(payload, {}, "main"))
        results: list[Any] = []
        d.addBoth(results.append)
        (result,) = results
        if isinstance(result, dict):
            self.assertTrue(result["checked"], result)
            return []
        self.assertIsInstance(result.value, KindError, result)
        return list(result.value.details["errors"])

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(payloads)
    def test_prevalidation_matches_the_simulator(self, payload: dict[str, Any]) -> None:
        """No errors ⇒ SUCCESS with no conflicts; every value the strict simulator refuses was flagged."""
        errors = self.verdict(payload)
        event("passes pre-validation" if not errors else "refused by pre-validation")
        status, body, _ = self.sim.post("/api/dataValueSets?" + urlencode(STRICT), payload)
        summary = body.get("response", body)
        conflicts = summary["conflicts"]
        if not errors:
            self.assertEqual((status, summary["status"], conflicts), (200, "SUCCESS", []), payload)
            return
        flagged = {e["index"] for e in errors}
        for conflict in conflicts:
            indexes = conflict.get("indexes")
            if indexes is None:  # header-level (e.g. E7603): pre-validation flagged the values
                self.assertTrue(flagged)
            else:
                self.assertLessEqual(set(indexes), flagged, (conflict, errors, payload))
        for error in errors:
            self.assertRegex(error["code"], r"^E76\d\d$")
            self.assertEqual(error["field"].split("/")[:2], ["dataValues", str(error["index"])])

    def test_known_cases(self) -> None:
        """A clean payload passes; a bad value type is E7619 at its index, as the simulator says."""
        good = {"dataSet": DS_HMIS, "orgUnit": FAC_NR, "period": "202401",
                "dataValues": [{"dataElement": DE_OPD, "value": "3"},
                               {"dataElement": DE_HIV, "categoryOptionCombo": COC_MALE_LT5, "value": "0"}]}
        self.assertEqual(self.verdict(good), [])
        bad = dict(good, dataValues=[{"dataElement": DE_OPD, "value": "3"}, {"dataElement": DE_BED_OCC,
                                                                            "value": "140"}])
        (error,) = self.verdict(bad)
        self.assertEqual((error["index"], error["code"]), (1, "E7619"))
        _, body, _ = self.sim.post("/api/dataValueSets", bad)
        self.assertEqual(body["response"]["conflicts"][0]["errorCode"], "E7619")
