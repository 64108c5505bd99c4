"""DHIS2Client against the DHIS2 simulator at 2.37, 2.40, 2.42, 2.43.0, 2.43.2 and 2.44: each fault gives
the outcome the rules table says.

The versions cover the answers' shapes: 2.37 a bare ImportSummary (always 200), 2.40 and 2.42 a
WebMessage (409 for WARNING/ERROR), 2.43.0 the data entry pipeline with a mixed import still 409,
2.43.2 E81xx codes and 200 WARNING, 2.44 the Gist list pager and ``/login/``.

The simulator runs on the real reactor and a real port (its slow-body trickle needs real time);
outages are driven with a `Clock` given to the `SimulatorServer`.  Assertions look at DHIS2's side
too (``sim.store``), not just at the outcome.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest, TestCase

from dhis2gw.dhis2.auth import ApiTokenAuth, BasicAuth
from dhis2gw.dhis2.client import DHIS2Client
from dhis2gw.dhis2.outcome import OutcomeKind as K
from dhis2gw.dhis2.versions import data_entry_pipeline, login_path, parse_version, partial_success_is_200
from tests.support.versions import per_version

try:
    from dhis2gw.sim import Simulator, SimulatorServer
except ImportError:  # pragma: no cover - the simulator is built by another work stream
    Simulator = SimulatorServer = None  # type: ignore[assignment,misc]

# Fixed UIDs of the simulator's bundled country.yml (see tests/sim/support.py).
DS_HMIS, DE_OPD, COC_DEFAULT = "uFaVMlw4qxK", "Re46C6Apebu", "HllvX50cXC0"
FAC_NR, FAC_NR_2 = "ty5AJ6ZU5f7", "a0BQ4umzjN4"
TET_PERSON, TEA_FIRST, TEA_LAST, TEA_DOB = "wUDUIqHvKBT", "Nx35aDI8hlO", "yniiXK6gaAZ", "gG0gOd8XsCL"


def data_value_set(period: str, value: str = "12") -> dict[str, Any]:
    """A valid one-value payload for the simulator's HMIS data set."""
    return {"dataSet": DS_HMIS, "period": period, "orgUnit": FAC_NR,
            "dataValues": [{"dataElement": DE_OPD, "categoryOptionCombo": COC_DEFAULT, "value": value}]}


def stored_value(sim: Any, period: str, org_unit: str = FAC_NR) -> str | None:
    record = sim.store.data_values.get((DE_OPD, period, org_unit, COC_DEFAULT, COC_DEFAULT))
    return None if record is None or record.deleted else record.value


class _NoCredentials:
    """An Authorization header that carries no credentials (what a misconfigured gateway sends)."""

    def header_value(self) -> bytes:
        return b""


class _SimRig:
    """A simulator of ``version`` on a port, and clients of it closed after the test."""

    version = ""

    def setUp(self) -> Any:
        if Simulator is None:
            raise SkipTest("dhis2gw.sim is not available")
        self.sim = Simulator(self.version, clock=reactor)
        self.server_clock = Clock()
        self.server = SimulatorServer(self.sim, reactor, clock=self.server_clock)
        self.addCleanup(self.server.stop)
        return Deferred.fromCoroutine(self.server.start(port=0))

    def client(self, auth: Any = None, **kwargs: Any) -> DHIS2Client:
        client = DHIS2Client(reactor, self.server.base_url, auth or BasicAuth("admin", "district"), **kwargs)
        self.addCleanup(client.close)
        return client


@per_version(TestCase, "2.37", "2.40", "2.42", "2.43.0", "2.43.2", "2.44")
class _SimFaults(_SimRig):
    """Each fault mode of the simulator gives the outcome the rules table says."""

    async def test_delivered_and_partial(self) -> None:
        """A clean payload is DELIVERED; one bad value is PARTIAL (200 on 2.37, 409 on 2.40) with its index."""
        client = self.client()
        v = parse_version(self.version)
        ok = await client.post_data_value_set(data_value_set("202401", "7"))
        stored = "updated" if data_entry_pipeline(v) else "imported"  # 2.43+: imported is always 0
        self.assertEqual((ok.kind, ok.http_status, ok.import_count[stored]), (K.DELIVERED, 200, 1))
        self.assertEqual(stored_value(self.sim, "202401"), "7")
        payload = data_value_set("202402", "8")
        payload["dataValues"].append({"dataElement": DE_OPD, "categoryOptionCombo": COC_DEFAULT, "value": "abc",
                                      "orgUnit": FAC_NR_2})
        partial = await client.post_data_value_set(payload)
        self.assertEqual(partial.kind, K.PARTIAL)
        self.assertEqual(partial.http_status, 200 if v < (2, 38, 0) or partial_success_is_200(v) else 409)
        self.assertEqual(partial.rejected_indexes, (1,))
        self.assertEqual([c["errorCode"] for c in partial.conflicts], ["E8122" if data_entry_pipeline(v) else "E7619"])
        self.assertEqual(partial.conflicts[0]["indexes"], [1], "placed by index, never by object")
        self.assertEqual((stored_value(self.sim, "202402"), stored_value(self.sim, "202402", FAC_NR_2)), ("8", None))
        await client.system_info()
        self.assertEqual(client.version, parse_version(self.version), "read from /api/system/info")

    async def test_connection_refused_during_outage(self) -> None:
        """While the server is down: DESTINATION_FAILURE connection_refused; after it is back: DELIVERED."""
        back = self.server.outage(60)
        client = self.client()
        down = await client.post_data_value_set(data_value_set("202403"))
        self.assertEqual((down.kind, down.reason), (K.DESTINATION_FAILURE, "connection_refused"))
        self.assertFalse(down.spends_retry)
        self.assertIsNone(stored_value(self.sim, "202403"))
        self.server_clock.advance(60)
        await back
        up = await client.post_data_value_set(data_value_set("202403"))
        self.assertEqual(up.kind, K.DELIVERED)
        self.assertEqual(stored_value(self.sim, "202403"), "12")

    async def test_http_error_statuses(self) -> None:
        """500 WebMessage -> SUSPECT; 502/503/504 proxy pages -> DESTINATION_FAILURE; 429 -> RATE_LIMITED."""
        client = self.client()
        expected = {500: (K.SUSPECT, "server_error"), 502: (K.DESTINATION_FAILURE, "http_502"),
                    503: (K.DESTINATION_FAILURE, "http_503"), 504: (K.DESTINATION_FAILURE, "http_504"),
                    429: (K.RATE_LIMITED, "rate_limited")}
        for status, (kind, reason) in expected.items():
            self.sim.faults.fail_next(1, status=status, paths=["dataValueSets"], retry_after=9)
            outcome = await client.post_data_value_set(data_value_set("202404"))
            self.assertEqual((outcome.kind, outcome.reason, outcome.http_status), (kind, reason, status))
            if status in (429, 503):
                self.assertEqual(outcome.retry_after, 9.0)
        self.assertIsNone(stored_value(self.sim, "202404"), "no injected failure stored anything")

    async def test_commit_then_drop(self) -> None:
        """The import is committed, the connection dropped: SUSPECT (lost answer) and the value IS in DHIS2."""
        self.sim.faults.commit_then_drop(n=1, paths=["dataValueSets"])
        client = self.client()
        outcome = await client.post_data_value_set(data_value_set("202405", "42"))
        self.assertEqual((outcome.kind, outcome.reason), (K.SUSPECT, "connection_lost"))
        self.assertTrue(outcome.counts_for_breaker)
        self.assertFalse(outcome.spends_retry)  # only when DHIS2 is shown healthy (delivery.outcome_rules)
        self.assertEqual(stored_value(self.sim, "202405"), "42")
        again = await client.post_data_value_set(data_value_set("202405", "42"))
        self.assertEqual(again.kind, K.DELIVERED, "the idempotent re-send is accepted")
        self.assertEqual(stored_value(self.sim, "202405"), "42")

    async def test_slow_body_past_the_timeout(self) -> None:
        """A body trickling slower than the read timeout: SUSPECT timeout with the HTTP status kept."""
        self.sim.faults.slow_body(chunk_size=8, chunk_delay=0.4, paths=["dataValueSets"])
        outcome = await self.client(read_timeout=0.2).post_data_value_set(data_value_set("202406"))
        self.assertEqual((outcome.kind, outcome.reason, outcome.http_status), (K.SUSPECT, "timeout", 200))
        self.assertEqual(stored_value(self.sim, "202406"), "12", "DHIS2 stored it although we never saw why")

    async def test_bad_credentials_and_pat(self) -> None:
        """Wrong Basic password -> DESTINATION_FAILURE auth; a PAT works from 2.37 on."""
        refused = await self.client(BasicAuth("admin", "wrong")).post_data_value_set(data_value_set("202407"))
        self.assertEqual((refused.kind, refused.reason, refused.http_status), (K.DESTINATION_FAILURE, "auth", 401))
        token = self.sim.add_pat("admin")
        accepted = await self.client(ApiTokenAuth(token)).post_data_value_set(data_value_set("202407"))
        self.assertEqual(accepted.kind, K.DELIVERED)
        self.assertEqual(stored_value(self.sim, "202407"), "12")

    async def test_login_redirect_is_auth(self) -> None:
        """No usable credentials: DHIS2 redirects to its login page (``/login/`` on 2.43+), which is an auth
        failure of the destination, never a verdict on the payload."""
        outcome = await self.client(_NoCredentials()).post_data_value_set(data_value_set("202408"))
        self.assertEqual((outcome.kind, outcome.reason, outcome.http_status), (K.DESTINATION_FAILURE, "auth", 302))
        self.assertIn(login_path(parse_version(self.version)), outcome.message)
        self.assertIsNone(stored_value(self.sim, "202408"))

    async def test_tracker_sync_and_validation(self) -> None:
        """A tracked entity with its mandatory attributes is created; without them it is REJECTED (E1090)."""
        client = self.client()
        entity = {"trackedEntity": "Kj6vYde4LHh", "trackedEntityType": TET_PERSON, "orgUnit": FAC_NR}
        rejected = await client.post_tracker({"trackedEntities": [entity]})
        self.assertEqual((rejected.kind, rejected.http_status), (K.REJECTED, 409))
        self.assertIn("E1090", [e["code"] for e in rejected.error_reports])
        entity["attributes"] = [{"attribute": TEA_FIRST, "value": "Ada"}, {"attribute": TEA_LAST, "value": "Okello"},
                                {"attribute": TEA_DOB, "value": "2020-01-01"}]
        created = await client.post_tracker({"trackedEntities": [entity]})
        self.assertEqual((created.kind, created.stats["created"]), (K.DELIVERED, 1), created.message)
        self.assertIn("Kj6vYde4LHh", self.sim.store.tracked_entities)
        resent = await client.post_tracker({"trackedEntities": [entity]})
        self.assertEqual((resent.kind, resent.stats["updated"]), (K.DELIVERED, 1), "a re-send updates")

    async def test_metadata_reads_and_org_unit_writes(self) -> None:
        """Paged org units arrive complete, parents first; data set overrides resolve; org-unit writes land."""
        client = self.client()
        pages = [page async for page in client.organisation_units(page_size=10)]
        units = [u for page in pages for u in page]
        self.assertEqual((len(pages), len(units), len({u["id"] for u in units})), (5, 47, 47))
        levels = [u["level"] for u in units]
        self.assertEqual(levels, sorted(levels))
        structure = await client.data_set(DS_HMIS)
        self.assertEqual(structure.elements["g5Jsa2EvlhL"].category_option_combos, {COC_DEFAULT})
        self.assertIn(FAC_NR, structure.organisation_units)
        unit = {"id": "Nq3ZeSEtdyz", "name": "New CHP", "shortName": "New CHP", "openingDate": "2020-01-01",
                "parent": {"id": "OZRoMx0Tm10"}}
        created = await client.create_org_unit(unit)
        self.assertEqual((created.kind, created.http_status), (K.DELIVERED, 201), created.message)
        self.assertEqual(self.sim.store.org_units["Nq3ZeSEtdyz"]["name"], "New CHP")
        added = await client.add_org_unit_to_group("mLAyN0g8IhK", "Nq3ZeSEtdyz")
        self.assertEqual((added.kind, added.http_status), (K.DELIVERED, 204 if self.version == "2.37" else 200))
        invalid = await client.create_org_unit({"name": "No opening date", "shortName": "x"})
        self.assertEqual((invalid.kind, invalid.error_reports[0]["code"]), (K.REJECTED, "E4000"))


class GistPager244Tests(_SimRig, TestCase):
    """DHIS2 2.44's Gist list pager, met by the client's own paging."""

    version = "2.44"

    async def test_gist_pages_are_rebuilt_not_followed(self) -> None:
        """2.44 answers org-unit pages through Gist (gist:true, nextPage over http://): the client asks for
        page=N on its own base URL each time and never requests a nextPage link."""
        from dhis2gw.dhis2.metadata import ORG_UNIT_FIELDS
        client = self.client()
        first = await client.get_json("organisationUnits", [("fields", ORG_UNIT_FIELDS), ("pageSize", 10)])
        self.assertTrue(first["gist"])
        self.assertTrue(first["pager"]["nextPage"].startswith("http://"))
        self.sim.store.requests.clear()
        units = [u for page in [p async for p in client.organisation_units(page_size=10)] for u in page]
        self.assertEqual(len(units), 47)
        asked = [r for r in self.sim.store.requests if r.path == "/api/organisationUnits"]
        self.assertEqual([r.query["page"] for r in asked], [["1"], ["2"], ["3"], ["4"], ["5"]])
