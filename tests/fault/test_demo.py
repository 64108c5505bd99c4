"""The demo a newcomer runs (``dhis2gw --config conf/dev.yml --demo``, i.e. ``make run``), as a
real process with its embedded PostgreSQL, Redis and DHIS2 simulator:

* the banner's copy-and-paste commands, run as printed by ``sh``, submit data and then show that
  very submission (not ``/submissions/1``);
* the org units are synced from the simulator at start (``/api/v2/orgunits`` is not empty);
* docs/tracker.md's example, posted as it stands, is accepted (202) and delivered;
* its start and stop say nothing of the known third-party noise (XDG_RUNTIME_DIR, PEP 302,
  un-awaited coroutines, "Starting factory"), and it exits cleanly on SIGTERM.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.runtime.embedded import free_port
from tests.support.processes import VENV_BIN, http_json
from tests.support.services import ROOT


class DemoTests(SynchronousTestCase):
    """One demo gateway for the whole class (its embedded servers take a while to start)."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.state = tempfile.mkdtemp(prefix="dhis2gw-demo-")
        cls.port, sim_port = free_port(), free_port()
        cls.base = f"http://127.0.0.1:{cls.port}"
        env = dict(os.environ, DHIS2GW_STATE_DIR=cls.state, DHIS2GW_LOGDIR=cls.state,
                   DHIS2GW_SERVER_PORT=str(cls.port), dhis2_base_url=f"http://127.0.0.1:{sim_port}",
                   DHIS2GW_QUEUE_PREFIX=f"demo-test-{cls.port}")
        cls.log_path = Path(cls.state) / "out.log"
        cls.log = open(cls.log_path, "wb")
        cls.proc = subprocess.Popen([str(VENV_BIN / "dhis2gw"), "--config", "conf/dev.yml", "--demo"], cwd=ROOT,
                                    env=env, stdout=cls.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while "dhis2gw demo is up" not in cls.output():
            if cls.proc.poll() is not None or time.monotonic() > deadline:
                cls.tearDownClass()
                raise AssertionError("the demo did not come up:\n" + cls.output()[-3000:])
            time.sleep(0.5)
        time.sleep(0.5)  # the rest of the banner
        cls.banner = cls.output().split("dhis2gw demo is up", 1)[1]
        cls.password = re.search(r"users: admin / (\S+)", cls.banner).group(1)  # type: ignore[union-attr]

    @classmethod
    def output(cls) -> str:
        return cls.log_path.read_text(errors="replace")

    @classmethod
    def tearDownClass(cls) -> None:
        if cls.proc.poll() is None:
            cls.proc.send_signal(signal.SIGTERM)
            try:
                cls.proc.wait(60)
            except subprocess.TimeoutExpired:
                cls.proc.kill()
        cls.log.close()
        shutil.rmtree(cls.state, ignore_errors=True)

    def token(self, user: str = "demo") -> str:
        code, answer = http_json(self.base + "/api/v2/users/getToken",
                                 body={"username": user, "password": self.password})
        self.assertEqual(code, 200, answer)
        return str(answer["access_token"])

    def wait_delivered(self, submission_id: int, token: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while True:
            code, answer = http_json(f"{self.base}/api/v2/submissions/{submission_id}", token)
            if answer.get("status") in ("delivered", "partial", "rejected", "failed") or time.monotonic() > deadline:
                return answer
            time.sleep(0.3)

    def test_banner_commands_show_the_submission_they_made(self) -> None:
        """The banner's commands, run as printed, end by showing the submission they just made."""
        token = self.token()
        for value in (7, 8):  # submissions before the banner's: its GET must not show number 1
            http_json(self.base + "/api/v2/aggregate", token, {"orgUnit": "ty5AJ6ZU5f7", "period": "202402",
                                                           "dataSet": "uFaVMlw4qxK", "dataValues": {"OPD": value}})
        lines = [line.strip() for line in self.banner.splitlines()]
        start = next(i for i, line in enumerate(lines) if line.startswith("TOKEN="))
        script = "\n".join(line for line in lines[start:] if line and "__sim/store" not in line)
        self.assertNotIn("/submissions/1 ", script)
        result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        shown = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertGreater(shown["id"], 2)
        self.assertEqual(shown["payload"]["dataValues"], {"OPD": 120, "ANC1": 14})
        self.assertEqual(self.wait_delivered(shown["id"], token)["status"], "delivered")

    def test_org_units_synced_at_start(self) -> None:
        """/api/v2/orgunits lists the simulator's hierarchy without anyone running a sync."""
        code, answer = http_json(self.base + "/api/v2/orgunits?page_size=100", self.token("admin"))
        self.assertEqual(code, 200, answer)
        names = [u.get("name") for u in answer["items"]]
        self.assertIn("Kaliro Town Health Centre III", names)

    def test_tracker_doc_example_is_delivered(self) -> None:
        """docs/tracker.md's example, posted as it stands, gets 202 and is delivered by the simulator."""
        text = (ROOT / "docs" / "tracker.md").read_text()
        example = json.loads(re.search(r"```json\n(.*?)```", text, re.S).group(1))  # type: ignore[union-attr]
        token = self.token()
        code, answer = http_json(self.base + "/api/v2/tracker", token, example)
        self.assertEqual(code, 202, answer)
        final = self.wait_delivered(answer["submission_id"], token)
        self.assertEqual(final["status"], "delivered", final)

    def test_zz_stop_is_clean_and_quiet(self) -> None:
        """(Last.) SIGTERM stops the demo with status 0 and none of the known noise in its output."""
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(60), 0)
        output = self.output()
        for noise in ("XDG_RUNTIME_DIR", "PEP 302", "was never awaited", "Starting factory", "Stopping factory",
                      "Traceback"):
            self.assertNotIn(noise, output)
