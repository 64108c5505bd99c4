"""A rig for DHIS2 outage shapes with real processes: one gateway (``--role all``) per DHIS2 version,
each in front of its own simulator process, fed through the real ingest API.

Blocking helpers (subprocess, urllib, polling) for tests/fault only. ``ShapeRig`` owns the
processes and services of one DHIS2 version; ``Batch`` is one lot of submissions posted to
``POST /api/v2/aggregate`` (native dataValueSets, one value each, the value unique to the batch) whose
outcome is checked in PostgreSQL and on the simulator's side; ``DrainSamples`` records how many of a
batch were delivered over time so a scenario can compare drain rates.
"""
from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.extras

from dhis2gw.runtime.embedded import free_port
from tests.support.processes import DE_OPD, DS_HMIS, GatewayProcess, SimulatorProcess, _period, facility_uids
from tests.support.services import delete_redis_prefix, drop_database, migrated_database, redis_prefix, test_environ

PASSWORD = "a-Long-enough-pass-1"  # the suite's test password: the secrets scan looks for it

#: Delivery settings of the normal suite: small timeouts, fast backoff and probes.
FAST = {"DHIS2GW_BACKOFF_BASE": "0.2", "DHIS2GW_BACKOFF_CAP": "1", "DHIS2GW_BREAKER_PROBE_INTERVAL": "0.5",
        "DHIS2GW_DHIS2_READ_TIMEOUT": "1.5", "DHIS2GW_DHIS2_CONNECT_TIMEOUT": "1.5",
        "DHIS2GW_REQUEST_PROCESS_INTERVAL": "0.5", "DHIS2GW_QUEUE_LEASE_SECONDS": "6",
        "DHIS2GW_QUEUE_HEARTBEAT_SECONDS": "1"}
#: The production defaults the issue names (conf/dhis2gw.yml); every other delivery key keeps its default.
PRODUCTION = {"DHIS2GW_BACKOFF_BASE": "30", "DHIS2GW_BACKOFF_CAP": "3600", "DHIS2GW_MAX_RETRIES": "3"}


def _request(url: str, body: Any = None, headers: dict[str, str] | None = None, method: str | None = None,
             timeout: float = 30) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, json.loads(raw) if raw else None


@dataclass
class Batch:
    """Submissions posted in one go: ``values`` maps (orgUnit, period) to the value sent."""

    ids: list[int]
    values: dict[tuple[str, str], str]
    #: the simulator's import count per natural key before the batch (imports are counted as a difference)
    writes_before: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass
class DrainSamples:
    """(monotonic time, delivered count of one batch) samples."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    def rate(self, after: float, share: float = 0.95) -> float:
        """Submissions/s from the first progress after ``after`` until ``share`` of the batch is delivered.

        The tail (fewer waiting than slots) is not a rate, hence ``share``.
        """
        base = max((d for t, d in self.samples if t <= after), default=0)
        start = next(((t, d) for t, d in self.samples if t > after and d > base), None)
        total = self.samples[-1][1] if self.samples else 0
        end = next(((t, d) for t, d in self.samples if d >= int(total * share)), None)
        if start is None or end is None or end[0] <= start[0]:
            return 0.0
        return (end[1] - start[1]) / (end[0] - start[0])


class ShapeRig:
    """One DHIS2 version: a simulator process, a gateway process, a database and a Redis prefix."""

    def __init__(self, version: str, env: dict[str, str], latency: float, max_concurrent: int) -> None:
        self.version = version
        self.dsn = migrated_database()
        self.prefix = redis_prefix()
        self.sim = SimulatorProcess(version=version, latency=latency)
        self.gateway: GatewayProcess | None = None
        self.next_key = 0
        self.next_batch = 1
        try:
            self.sim.start()
            self.env = test_environ(self.dsn, self.prefix, **{
                "dhis2_base_url": self.sim.base_url, "dhis2_user": "admin", "dhis2_password": "district",
                "dhis2_auth_method": "basic", "DHIS2GW_MAX_CONCURRENT": str(max_concurrent),
                "DHIS2GW_REDIS_TIMEOUT": "1", "DHIS2GW_REQUEST_LOG": "false",
                "DHIS2GW_SERVER_PORT": str(free_port()), **env})  # not test_environ's 9090: rigs run side by side
            self._create_user()
            self.gateway = GatewayProcess(self.env)
            self.gateway.start()
        except BaseException:
            self.close()
            raise

    # --- set-up ------------------------------------------------------------------------------
    def _create_user(self) -> None:
        import os
        import subprocess
        import sys

        create = subprocess.run([os.path.join(os.path.dirname(sys.executable), "dhis2gw"), "createuser", "shapes",
                                 "--role", "admin", "--password-stdin"], input=PASSWORD + "\n", text=True,
                                env=dict(os.environ, **self.env), capture_output=True)
        assert create.returncode == 0, create.stderr

    @property
    def headers(self) -> dict[str, str]:
        """A Bearer header with a fresh access token (a 10-minute outage outlives one)."""
        return self._bearer()

    def _bearer(self) -> dict[str, str]:
        code, body = _request(self.url("/api/v2/users/getToken"), {"username": "shapes", "password": PASSWORD})
        assert code == 200, body
        return {"Authorization": f"Bearer {body['access_token']}"}

    def url(self, path: str) -> str:
        assert self.gateway is not None
        return f"http://127.0.0.1:{self.gateway.port}{path}"

    def close(self) -> None:
        """Stop the processes, drop the database and the Redis keys (best effort)."""
        for step in (lambda: self.gateway and self.gateway.stop(), self.sim.stop,
                     lambda: delete_redis_prefix(self.prefix), lambda: drop_database(self.dsn)):
            try:
                step()
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass

    # --- the gateway's side ----------------------------------------------------------------------
    def submit(self, count: int) -> Batch:
        """POST ``count`` native dataValueSets (one value each, a natural key of its own within the batch)."""
        assert self.gateway is not None
        facilities = facility_uids()
        number, self.next_batch = self.next_batch, self.next_batch + 1
        batch = Batch([], {}, self.writes())
        headers = {"Content-Type": "application/json", **self.headers}
        conn = http.client.HTTPConnection("127.0.0.1", self.gateway.port, timeout=30)  # one keep-alive connection
        try:
            for i in range(count):
                ou, pe = facilities[i % len(facilities)], _period("202312", i // len(facilities))
                value = str(number * 100_000 + i + 1)
                body = json.dumps({"dataSet": DS_HMIS, "period": pe, "orgUnit": ou,
                                   "dataValues": [{"dataElement": DE_OPD, "value": value}]})
                conn.request("POST", "/api/v2/aggregate", body, headers)
                resp = conn.getresponse()
                answer = json.loads(resp.read())
                assert resp.status == 202, (resp.status, answer)
                batch.ids.append(int(answer["submission_id"]))
                batch.values[(ou, pe)] = value
        finally:
            conn.close()
        return batch

    def breaker(self) -> tuple[str | None, str | None]:
        """(state, reason) of destination ``main`` as the running gateway reports it on ``/ready``."""
        code, body = _request(self.url("/ready"), timeout=10)
        main = (body or {}).get("checks", {}).get("destinations", {}).get("main") or {}
        return main.get("state"), main.get("reason")

    def pause(self, on: bool) -> None:
        """Pause (or resume) deliveries to ``main`` through the queue API."""
        code, body = _request(self.url(f"/api/v2/queue/main/{'pause' if on else 'resume'}"), {}, self.headers)
        assert code == 200, (code, body)

    # --- PostgreSQL ----------------------------------------------------------------------------
    def rows(self, batch: Batch) -> list[dict[str, Any]]:
        """The batch's rows: id, status, attempts, job_failures and their events."""
        conn = psycopg2.connect(self.dsn)
        with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT s.id, s.status, s.attempts, s.job_failures, s.error,"
                        " array_agg(e.event ORDER BY e.id) AS events FROM submissions s"
                        " LEFT JOIN submission_events e ON e.submission_id = s.id"
                        " WHERE s.id = ANY(%s) GROUP BY s.id ORDER BY s.id", (batch.ids,))
            out = [dict(r) for r in cur.fetchall()]
        conn.close()
        return out

    def delivered(self, batch: Batch) -> tuple[int, int]:
        """(delivered, failed) among the batch."""
        conn = psycopg2.connect(self.dsn)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FILTER (WHERE status = 'delivered'), count(*) FILTER (WHERE status = 'failed')"
                        " FROM submissions WHERE id = ANY(%s)", (batch.ids,))
            delivered, failed = cur.fetchone()
        conn.close()
        return int(delivered), int(failed)

    # --- the simulator's side ------------------------------------------------------------------
    def writes(self) -> dict[tuple[str, str], int]:
        """Imports the simulator took per (orgUnit, period) of DE_OPD so far."""
        try:
            store = self.sim.control("store")
        except (OSError, http.client.HTTPException):
            return {}  # not listening (a refused outage): it starts again with an empty store
        return {(k["key"][2], k["key"][1]): k["count"] for k in store["writeCounts"]
                if isinstance(k["key"], list) and k["key"][0] == DE_OPD}

    def stored(self) -> dict[tuple[str, str], str]:
        """The simulator's live DE_OPD values by (orgUnit, period)."""
        store = self.sim.control("store")
        return {(v["orgUnit"], v["period"]): v["value"] for v in store["dataValues"]
                if v["dataElement"] == DE_OPD and not v.get("deleted")}

    def restart_simulator(self) -> None:
        """Start the stopped simulator process again on the same port (an empty store)."""
        self.sim.start()


def wait_batches(rigs: list[ShapeRig], batches: list[Batch], timeout: float,
                 samples: list[DrainSamples] | None = None) -> None:
    """Block until every batch is final (all delivered, or one failed); sample the delivered counts."""
    deadline = time.monotonic() + timeout
    while True:
        done = True
        for i, (rig, batch) in enumerate(zip(rigs, batches)):
            delivered, failed = rig.delivered(batch)
            if samples is not None:
                samples[i].samples.append((time.monotonic(), delivered))
            done = done and (failed > 0 or delivered == len(batch.ids))
        if done:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not every submission final after {timeout:.0f}s: "
                                 + ", ".join(f"{r.version}: {r.delivered(b)}" for r, b in zip(rigs, batches)))
        time.sleep(0.2)

