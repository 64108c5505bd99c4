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
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

# Before anything imports Kivy or the Twisted reactor.
os.environ["KIVY_NO_ARGS"] = "1"
os.environ["KIVY_HOME"] = tempfile.mkdtemp(prefix="kivy-home-")
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
from kivy.config import Config  # noqa: E402

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
        from dhis2gw.embedded import free_port
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
