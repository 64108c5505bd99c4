"""Real processes for fault tests: the gateway, the simulator, a private Redis/PostgreSQL.

These helpers block (subprocess, polling with sleeps): they are for tests under tests/fault and
tests/bench only, which drive whole processes from the outside.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extras

from dhis2gw.runtime.embedded import free_port, wait_for_port
from tests.support.services import ROOT

VENV_BIN = Path(sys.executable).parent
DS_HMIS = "uFaVMlw4qxK"
DE_OPD = "Re46C6Apebu"
COC = "HllvX50cXC0"


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.2, what: str = "condition") -> None:
    """Poll ``predicate`` until true; raise AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class SimulatorProcess:
    """``twistd -n dhis2sim`` in its own process."""

    def __init__(self, version: str = "2.40", latency: float | None = None) -> None:
        self.port = free_port()
        self.version = version
        self.latency = latency
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="dhis2sim-", suffix=".log", delete=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [str(VENV_BIN / "twistd"), "-n", "--pidfile=", "dhis2sim", "--version", self.version,
                "--port", str(self.port)]
        if self.latency:
            args += ["--latency", str(self.latency)]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=str(ROOT))
        if not wait_for_port("127.0.0.1", self.port, 30):
            raise AssertionError(f"simulator did not start: {Path(self.log.name).read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the simulator's /__sim control endpoint."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + "/__sim/" + path, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())


class GatewayProcess:
    """``dhis2gw --config …`` (foreground) with environment overrides."""

    def __init__(self, env: dict[str, str], config_path: str | None = None, role: str = "all") -> None:
        self.env = dict(os.environ, **env)
        self.port = int(env.get("DHIS2GW_SERVER_PORT", "0")) or free_port()
        self.env["DHIS2GW_SERVER_PORT"] = str(self.port)
        self.config_path = config_path
        self.role = role
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="dhis2gw-", suffix=".log", delete=False)

    def start(self, wait: bool = True) -> None:
        args = [str(VENV_BIN / "dhis2gw")]
        if self.config_path:
            args += ["--config", self.config_path]
        args += ["--role", self.role]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=self.env, cwd=str(ROOT))
        if wait and self.role != "worker" and not wait_for_port("127.0.0.1", self.port, 60):
            raise AssertionError(f"gateway did not start: {self.output()[-3000:]}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(10)
        return self.proc.returncode if self.proc else 0


def seed_submissions(dsn: str, count: int, period: str = "202401", destination: str = "main") -> list[int]:
    """Insert ``count`` queued aggregate submissions directly (the reconciler queues them).

    Each has one distinct value: DE_OPD at (facility, month) with value i + 1 — the simulator's 32
    facilities × consecutive past months give every submission its own natural key.
    Returns their ids.
    """
    from dhis2gw.dhis2.uids import generate_uid

    facilities = facility_uids()
    rows = []
    for i in range(count):
        payload = {"dataSet": DS_HMIS, "period": _period(period, i // len(facilities)),
                   "orgUnit": facilities[i % len(facilities)],
                   "dataValues": [{"dataElement": DE_OPD, "value": str(i + 1)}]}
        rows.append((generate_uid(), "aggregate", destination, "/api/v2/aggregate", json.dumps(payload),
                     json.dumps(payload), json.dumps({"importStrategy": "CREATE_AND_UPDATE"}), 1))
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur, "INSERT INTO submissions (uid, kind, destination, endpoint, payload, dhis2_payload,"
                 " import_params, value_count) VALUES %s RETURNING id", rows, page_size=1000, fetch=True)
        cur.execute("SELECT id FROM submissions ORDER BY id")
        ids = [r[0] for r in cur.fetchall()]
    conn.close()
    return ids[-count:]


def _period(start: str, offset: int) -> str:
    year, month = int(start[:4]), int(start[4:6])
    total = year * 12 + (month - 1) - offset
    return f"{total // 12:04d}{total % 12 + 1:02d}"


def facility_uids() -> list[str]:
    """The simulator's default facilities (level 5), in a stable order."""
    from dhis2gw.sim import Metadata

    units = Metadata.load_default().objects["organisationUnits"].values()
    return sorted(ou["id"] for ou in units if ou.get("level") == 5)


def expected_values(ids_count: int, period: str = "202401") -> dict[tuple[str, str], str]:
    """(orgUnit, period) → value that ``seed_submissions`` sent."""
    facilities = facility_uids()
    return {(facilities[i % len(facilities)], _period(period, i // len(facilities))): str(i + 1)
            for i in range(ids_count)}


def status_counts(dsn: str) -> dict[str, int]:
    """Submissions per status."""
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT status, count(*) FROM submissions GROUP BY status")
        out = {s: n for s, n in cur.fetchall()}
    conn.close()
    return out



def http_json(url: str, token: str | None = None, body: Any = None, timeout: float = 30) -> tuple[int, Any]:
    """GET ``url`` (POST ``body`` as JSON when given), Bearer ``token`` if any: ``(status, parsed answer)``."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
