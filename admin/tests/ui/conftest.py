"""Headless UI tests: one Kivy window for the whole process, a real gateway and simulator as
subprocesses (real PostgreSQL/Redis), and helpers to click widgets and take screenshots.

Run them in their own process: ``.venv/bin/pytest admin/tests/ui -q`` (stack-notes pitfall 8).
Kivy's bundled SDL2 uses its offscreen EGL driver when there is no DISPLAY; Xvfb is optional.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Before anything imports Kivy or the Twisted reactor.
os.environ["KIVY_NO_ARGS"] = "1"
os.environ["KIVY_HOME"] = tempfile.mkdtemp(prefix="kivy-home-")
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
from kivy.config import Config

Config.set("graphics", "width", "1440")
Config.set("graphics", "height", "900")
Config.set("input", "mouse", "mouse,disable_multitouch")
from dhis2gw_admin.kivy_reactor import install  # noqa: E402

REACTOR = install()

ROOT = Path(__file__).resolve().parents[3]
OUTPUT = ROOT / "admin" / "tests" / "output"
PASSWORD = "a-Long-enough-pass-1"


class Gateway:
    """The gateway and simulator subprocesses, with blocking helpers for test set-up."""

    def __init__(self) -> None:
        from dhis2gw.runtime.embedded import free_port
        from tests.support.processes import GatewayProcess, SimulatorProcess
        from tests.support.services import migrated_database, redis_prefix, test_environ

        self.sim = SimulatorProcess()
        self.sim.start()
        self.dsn = migrated_database()
        self.prefix = redis_prefix()
        self.env = test_environ(self.dsn, self.prefix, DHIS2GW_SERVER_PORT=str(free_port()))
        self.env.update({"dhis2_base_url": self.sim.base_url, "dhis2_user": "admin", "dhis2_password": "district",
                         "DHIS2GW_MAX_RETRIES": "0", "DHIS2GW_BACKOFF_BASE": "0.05", "DHIS2GW_BACKOFF_CAP": "0.2",
                         "DHIS2GW_BREAKER_PROBE_INTERVAL": "0.2", "DHIS2GW_REQUEST_PROCESS_INTERVAL": "0.5"})
        self.proc = GatewayProcess(self.env)
        self.proc.start()
        self.url = f"http://127.0.0.1:{self.proc.port}"
        self.create_user("boss", "admin")
        self.token = self.call("POST", "/users/getToken", {"username": "boss", "password": PASSWORD})["access_token"]
        self.sync_org_units()  # org-unit names and codes in the logs, as in the demo

    def create_user(self, name: str, role: str) -> None:
        subprocess.run([str(Path(sys.executable).parent / "dhis2gw"), "createuser", name, "--role", role,
                        "--password-stdin"], input=PASSWORD.encode(), env=dict(os.environ, **self.env), check=True,
                       cwd=str(ROOT), capture_output=True, timeout=60)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if getattr(self, "token", None):
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + "/api/v2" + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def submit(self, value: int, facility: int) -> int:
        from tests.support.processes import COC, DE_OPD, DS_HMIS, facility_uids

        body = {"dataSet": DS_HMIS, "period": "202401", "orgUnit": facility_uids()[facility],
                "dataValues": [{"dataElement": DE_OPD, "categoryOptionCombo": COC, "value": str(value)}]}
        return int(self.call("POST", "/aggregate", body)["submission_id"])

    def seed_realistic(self, facilities: int = 2000, periods: tuple[str, ...] = (
            "202401", "202402", "202403", "202404", "202405", "202406")) -> int:
        """A national-sized picture for the screenshots: ``facilities`` more facilities in the
        org-unit cache and, for each facility and period of the HMIS data set, the latest submission
        (mostly delivered, some partial, rejected, failed or missing) spread over the last 7 days,
        made by ``boss``; the four demo mappings instead of the import test's sample rows.
        Rows are final (nothing for the dispatcher to send). Returns the facilities in the cache."""
        import psycopg2
        import psycopg2.extras

        from dhis2gw.runtime.devmode import SAMPLE_MAPPINGS
        from tests.support.processes import COC, DE_OPD, DS_HMIS

        districts = ("Kaliro", "Kasese", "Gulu", "Mbale", "Lira", "Arua", "Masaka", "Mbarara", "Hoima", "Soroti",
                     "Jinja", "Tororo", "Kabale", "Moroto", "Kitgum", "Iganga", "Mubende", "Busia", "Luwero",
                     "Mityana")
        places = ("Town", "Central", "North", "South", "East", "West", "Hill", "Valley", "Market", "Lake")
        kinds = ("Health Centre II", "Health Centre III", "Health Centre IV", "Hospital")
        reasons = {
            "partial": "Period {p} is after the latest open future period: 1 value ignored (E7641)"
                       " (WARNING imported=2 updated=0 ignored=1 deleted=0)",
            "rejected": "Org unit {ou} is not assigned to data set uFaVMlw4qxK (E7603)"
                        " (ERROR imported=0 updated=0 ignored=3 deleted=0)",
            "failed": "HTTP 500: An unexpected error has occurred; retries exhausted (3 retries)",
        }
        conn = psycopg2.connect(self.dsn)
        with conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM users WHERE username = 'boss'")
            boss = cur.fetchone()[0]
            cur.execute("SELECT uid FROM organisation_units WHERE level = 1")
            root = (cur.fetchone() or ["pDomLOJBzpp"])[0]
            units = []
            for i in range(facilities):
                uid = f"F{i:010d}"
                name = (f"{districts[i % 20]} {places[i // 20 % 10]} {kinds[i // 200 % 4]}"
                        + (f" {chr(66 + i // 800 - 1)}" if i >= 800 else ""))
                units.append((uid, f"UG-{districts[i % 20][:3].upper()}-{i:04d}", name, 5, f"/{root}/{uid}", root))
            psycopg2.extras.execute_values(
                cur, "INSERT INTO organisation_units (uid, code, name, level, path, parent_uid) VALUES %s"
                     " ON CONFLICT (uid) DO NOTHING", units, page_size=1000)
            rows = []
            for i, (uid, _code, _name, _level, _path, _parent) in enumerate(units):
                for n, period in enumerate(periods):
                    r = (i * 37 + n * 53) % 100
                    if 78 <= r < 84:
                        continue  # nothing arrived for this facility and month
                    status = ("delivered" if r < 78 else "partial" if r < 90 else "rejected" if r < 96
                              else "failed")
                    payload = {"dataSet": DS_HMIS, "period": period, "orgUnit": uid,
                               "dataValues": [{"dataElement": DE_OPD, "categoryOptionCombo": COC,
                                               "value": str(40 + (i * 7 + n) % 300)}]}
                    error = reasons.get(status, "").format(p=period, ou=uid) or None
                    age = f"{(i * 13 + n * 97) % (7 * 24 * 60)} minutes"
                    rows.append((f"S{i:05d}{n:05d}", boss, json.dumps(payload), json.dumps(payload), status,
                                 4 if status == "failed" else 1, error, 500 if status == "failed" else 200, age))
            psycopg2.extras.execute_values(
                cur, "INSERT INTO submissions (uid, kind, destination, endpoint, submitter_id, payload, dhis2_payload,"
                     " status, attempts, error, http_status, value_count, created_at, last_attempt_at, finished_at)"
                     " SELECT v.uid, 'aggregate', 'main', '/api/v2/aggregate', v.sub, v.p::jsonb, v.d::jsonb, v.st,"
                     " v.att, v.err, v.http, 1, now() - v.age::interval, now() - v.age::interval + interval '2 s',"
                     " now() - v.age::interval + interval '2 s'"
                     " FROM (VALUES %s) AS v(uid, sub, p, d, st, att, err, http, age)", rows, page_size=2000)
            cur.execute("DELETE FROM dhis2_mappings")
            for n, (code, de, name) in enumerate(SAMPLE_MAPPINGS):
                cur.execute("INSERT INTO dhis2_mappings (uid, code, what, name, dataset, dataelement,"
                            " category_option_combo) VALUES (%s, %s, 'de', %s, %s, %s, %s)",
                            (f"Map{n:08d}", code, name, DS_HMIS, de, COC))
            cur.execute("SELECT count(*) FROM organisation_units WHERE level = 5")
            total = int(cur.fetchone()[0])
        conn.close()
        return total

    def sync_org_units(self) -> None:
        """What the demo does at start: the org-unit hierarchy of the simulator into the cache."""
        self.call("POST", "/sync/orgunits")

    def wait_status(self, sid: int, wanted: str, timeout: float = 30) -> None:
        from tests.support.processes import wait_until

        wait_until(lambda: self.call("GET", f"/logs/{sid}")["status"] == wanted, timeout, what=f"{sid} {wanted}")

    def stop(self) -> None:
        from tests.support.services import delete_redis_prefix, drop_database

        self.proc.stop()
        self.sim.stop()
        delete_redis_prefix(self.prefix)
        drop_database(self.dsn)


class Driver:
    """Runs the app's frames until a condition holds; clicks; screenshots."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def pump(self, seconds: float = 0.0) -> None:
        from kivy.base import EventLoop

        end = time.monotonic() + seconds
        while True:
            EventLoop.idle()
            if time.monotonic() >= end:
                return

    def until(self, predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
        from kivy.base import EventLoop

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            EventLoop.idle()
            value = predicate()
            if value:
                return value
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def click(self, widget: Any) -> None:
        """A real touch (down + up) at the widget's centre in window coordinates."""
        from kivy.tests.common import UnitTestTouch

        self.pump(0.05)
        x, y = widget.to_window(*widget.center)
        touch = UnitTestTouch(x, y)
        touch.touch_down()
        self.pump(0.05)
        touch.touch_up()
        self.pump(0.1)

    def type_into(self, field: Any, text: str) -> None:
        field.focus = True
        field.text = text
        field.focus = False
        self.pump(0.05)

    def screenshot(self, name: str) -> Path:
        from kivy.core.window import Window

        OUTPUT.mkdir(parents=True, exist_ok=True)
        self.pump(0.6)  # let transitions and ripples finish
        made = Path(Window.screenshot(name=str(OUTPUT / f"{name}.png")))
        target = OUTPUT / f"{name}.png"
        shutil.move(str(made), str(target))  # Window.screenshot numbers the file: name0001.png
        return target


@pytest.fixture(scope="session")
def gateway() -> Iterator[Gateway]:
    gw = Gateway()
    yield gw
    gw.stop()


@pytest.fixture(scope="session")
def ui(gateway: Gateway) -> Iterator[Driver]:
    from kivy.base import EventLoop, stopTouchApp

    from dhis2gw_admin.app import AdminApp

    settings = Path(tempfile.mkdtemp(prefix="admin-ui-")) / "settings.json"
    app = AdminApp(REACTOR, server_url=gateway.url, settings_path=str(settings))
    app._run_prepare()
    if EventLoop.status != "started":
        EventLoop.start()
    driver = Driver(app)
    driver.pump(0.5)
    yield driver
    app.dispatch("on_stop")
    stopTouchApp()
    EventLoop.close()
