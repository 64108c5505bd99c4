"""Shared helpers for the simulator tests: fixed UIDs, fixture loading, shape comparison, clients."""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# UIDs fixed in dhis2gw/sim/country.yml
ROOT = "pDomLOJBzpp"
REGION_NR = "OZRoMx0Tm10"
REGION_CR = "WOq7pVEM7g6"
FAC_NR = "ty5AJ6ZU5f7"        # Kaliro Town Health Centre III (code ZM_NR_KAL_S1_HC3)
FAC_NR_2 = "a0BQ4umzjN4"      # Kaliro Town Health Centre II
FAC_CR = "v6Y4Dev9q4Q"        # Amani Central Health Centre III (code ZM_CR_PAC_S1_HC3)
DS_HMIS = "uFaVMlw4qxK"       # monthly, no expiry, openFuturePeriods 0
DS_MAL = "AIus2YpTw6A"        # monthly, expiryDays 15, openFuturePeriods 2, Funding attribute combo, NR only
DE_OPD = "Re46C6Apebu"        # INTEGER_POSITIVE, HMIS
DE_MAL_CONF = "TlCYgA6XJth"   # INTEGER_ZERO_OR_POSITIVE, Sex x Age, malaria only, !zeroIsSignificant
DE_MAL_DEATHS = "g5Jsa2EvlhL"  # zeroIsSignificant, Sex x Age (default override in HMIS)
DE_ANC1 = "sHyMCqP5u8T"       # INTEGER_ZERO_OR_POSITIVE, zeroIsSignificant
DE_BED_OCC = "mIZRY6JqE19"    # PERCENTAGE
DE_WEIGHT = "fBMbkOwHQxP"     # NUMBER
DE_STOCK = "f0oUec04raF"      # INTEGER
DE_OPEN = "V7Jxd1RvrjG"       # BOOLEAN
DE_SUP = "BBUGB1Uo7SW"        # DATE
DE_HIV = "mr3nbJiajRl"        # HMIS, Sex x Age, !zeroIsSignificant
COC_DEFAULT = "HllvX50cXC0"
COC_MALE_LT5 = "xwXBjw0KE34"
COC_FEMALE_LT5 = "de3899n1WEy"
AOC_GOV = "AYvPC2Y2aKF"
OUG_HOSP = "mLAyN0g8IhK"
TET_PERSON = "wUDUIqHvKBT"
TEA_FIRST, TEA_LAST, TEA_DOB = "Nx35aDI8hlO", "yniiXK6gaAZ", "gG0gOd8XsCL"
PR_CHILD = "x77Cvs1U2W8"      # tracker program, NR facilities only
PS_BIRTH, PS_VACC = "mfldQTsPucY", "oEZP0xOmRXt"
DE_BIRTH_WEIGHT, DE_VACCINE = "EUBJhFXsCXe", "vLuEXTZB6VP"
PR_MAL, PS_MAL = "vmOQjAdnOpO", "bsyk5Moo0gj"  # event program, all facilities
DE_RDT = "wS7PxX89ein"
RT_MOTHER_CHILD = "zQt6WFITWa0"

T_2025_06_15 = 1749988800.0  # 2025-06-15T12:00:00Z, the simulated "now" for Clock-driven tests

ENUM_KEYS = {"status", "httpStatus", "httpStatusCode", "responseType", "errorCode", "property", "trackerType",
             "jobType", "category", "level", "importStrategy", "mergeMode", "reportMode", "completed", "klass",
             "mainKlass", "errorProperty", "warningCode", "jobStatus"}


def fixture(rel: str) -> Any:
    """Load a fixture (JSON, or text for .html)."""
    path = FIXTURES / rel
    return path.read_text() if path.suffix == ".html" else json.loads(path.read_text())


def basic(user: str = "admin", password: str = "district") -> dict[str, str]:
    """Headers with Basic credentials and a JSON content type."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json", "Accept": "application/json"}


def shape(value: Any, key: str | None = None) -> Any:
    """The structure of a JSON value: keys, list element shapes, types, and enum values."""
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0], key)] if value else []
    if key in ENUM_KEYS and not (key == "level" and isinstance(value, int)):  # org-unit levels vary
        return value
    return type(value).__name__


def assert_same_shape(testcase: Any, actual: Any, expected: Any, path: str = "$",
                      superset: tuple[str, ...] = ("importOptions", "jobParameters")) -> None:
    """Fail unless *actual* has exactly the keys, types and enum values of *expected*.

    Under keys named in *superset* (import options echo client flags), extra keys are allowed.
    """
    if isinstance(expected, dict):
        testcase.assertIsInstance(actual, dict, path)
        lenient = path.rsplit(".", 1)[-1] in superset
        if lenient:
            testcase.assertLessEqual(set(expected) - {"preheatCache"}, set(actual), path)
        else:
            testcase.assertEqual(list(actual), list(expected), path)
        for k, v in expected.items():
            if k in actual:
                assert_same_shape(testcase, actual[k], v, f"{path}.{k}", superset)
    elif isinstance(expected, list):
        testcase.assertIsInstance(actual, list, path)
        if expected:
            testcase.assertTrue(actual, f"{path} is empty")
            assert_same_shape(testcase, actual[0], expected[0], f"{path}[0]", superset)
    else:
        testcase.assertEqual(shape(actual, path.rsplit(".", 1)[-1]), shape(expected, path.rsplit(".", 1)[-1]), path)


class StubClient:
    """Synchronous requests against a simulator through treq's StubTreq (no network)."""

    def __init__(self, version: str = "2.40", **kwargs: Any) -> None:
        """A simulator on a Clock set to 2025-06-15."""
        from treq.testing import StubTreq

        from dhis2gw.sim import Simulator
        self.clock = Clock()
        self.clock.advance(T_2025_06_15)
        self.sim = Simulator(version, clock=self.clock, **kwargs)
        self.stub = StubTreq(self.sim.app.resource())

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                raw: bytes | None = None) -> tuple[int, Any, Any]:
        """``(status, parsed body or text, response)``; *body* is JSON-encoded."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = basic() if headers is None else headers
        d = self.stub.request(method, "http://sim.test" + path, headers=hdrs, data=data, allow_redirects=False)
        self.stub.flush()
        responses: list[Any] = []
        d.addCallback(responses.append)
        if not responses:
            raise AssertionError("no response (waiting on the clock?)")
        response = responses[0]
        content: list[bytes] = []
        response.content().addCallback(content.append)
        self.stub.flush()
        text = content[0].decode()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return response.code, parsed, response

    def get(self, path: str, **kw: Any) -> tuple[int, Any, Any]:
        """GET."""
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> tuple[int, Any, Any]:
        """POST."""
        return self.request("POST", path, body, **kw)

    def advance(self, seconds: float) -> None:
        """Move the simulated time (async jobs complete)."""
        self.clock.advance(seconds)
        self.stub.flush()


def person(uid: str | None = None, org_unit: str = FAC_NR, **extra: Any) -> dict[str, Any]:
    """A valid tracked entity of type Person."""
    te: dict[str, Any] = {"trackedEntityType": TET_PERSON, "orgUnit": org_unit,
                          "attributes": [{"attribute": TEA_FIRST, "value": "Amina"},
                                         {"attribute": TEA_LAST, "value": "Okello"},
                                         {"attribute": TEA_DOB, "value": "2024-02-01"}]}
    if uid:
        te["trackedEntity"] = uid
    te.update(extra)
    return te
