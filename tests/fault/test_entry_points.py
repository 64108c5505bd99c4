"""Both entry points run the same service tree: ``dhis2gw run`` (what the systemd unit runs) and
``twistd -n dhis2gw``, each with ``server.workers: 2`` and ``--demo``.

For each, as a real process: the demo simulator starts and the demo users exist (the banner),
one API helper process shares the port, a submission made through the API is delivered to the
simulator (asserted on what the simulator stored), ``GET /api/v2/cron`` lists the scheduled jobs
(``metadata_refresh`` included), and SIGTERM stops the gateway and its helper cleanly.
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

import psutil
import pytest

from dhis2gw.runtime.embedded import free_port
from tests.support.processes import VENV_BIN, http_json, wait_until
from tests.support.services import ROOT, create_database, drop_database, redis_prefix, test_environ

COMMANDS = {
    "console script": ["dhis2gw", "--demo", "run"],
    "twistd": ["twistd", "-n", "--pidfile=", "dhis2gw", "--demo"],
}




@pytest.mark.parametrize("entry", sorted(COMMANDS))
def test_entry_point_with_two_workers_and_demo(entry: str) -> None:
    dsn = create_database()
    state = tempfile.mkdtemp(prefix="dhis2gw-entry-")
    port, sim_port = free_port(), free_port()
    env = dict(os.environ, **test_environ(dsn, redis_prefix(), DHIS2GW_SERVER_PORT=str(port), DHIS2GW_WORKERS="2",
                                          DHIS2GW_STATE_DIR=state, DHIS2GW_LOGDIR=state,
                                          dhis2_base_url=f"http://127.0.0.1:{sim_port}", dhis2_user="admin",
                                          dhis2_password="district"))
    log_path = Path(state) / "out.log"
    command = COMMANDS[entry]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(VENV_BIN / command[0]), *command[1:]], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)

    def output() -> str:
        return log_path.read_text(errors="replace")

    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: "dhis2gw demo is up" in output() or proc.poll() is not None, 120, what="the demo banner")
        assert proc.poll() is None, output()[-3000:]
        time.sleep(0.5)  # the rest of the banner
        password = re.search(r"users: admin / (\S+)", output()).group(1)  # type: ignore[union-attr]

        parent = psutil.Process(proc.pid)
        wait_until(lambda: [c for c in parent.children() if "--listen-fd" in " ".join(c.cmdline())], 30,
                   what="the API helper")
        helpers = [c for c in parent.children() if "--listen-fd" in " ".join(c.cmdline())]
        assert len(helpers) == 1, [c.cmdline() for c in helpers]

        code, answer = http_json(base + "/api/v2/users/getToken", body={"username": "demo", "password": password})
        assert code == 200, answer
        token = answer["access_token"]
        code, answer = http_json(base + "/api/v2/aggregate", token, {
            "orgUnit": "ty5AJ6ZU5f7", "period": "202403", "dataSet": "uFaVMlw4qxK", "dataValues": {"OPD": 4321}})
        assert code == 202, answer
        sid = answer["submission_id"]
        deadline = time.monotonic() + 60
        while True:
            code, row = http_json(f"{base}/api/v2/submissions/{sid}", token)
            if row.get("status") in ("delivered", "partial", "rejected", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert row["status"] == "delivered", row
        code, stored = http_json(f"http://127.0.0.1:{sim_port}/__sim/store")
        assert code == 200
        assert "4321" in json.dumps(stored), "the simulator did not store the value"

        code, admin = http_json(base + "/api/v2/users/getToken", body={"username": "admin", "password": password})
        code, cron = http_json(base + "/api/v2/cron", admin["access_token"])
        assert code == 200, cron
        assert {"orgunit_sync", "retry_reconcile", "metadata_refresh"} <= {j["name"] for j in cron["jobs"]}, cron

        proc.send_signal(signal.SIGTERM)
        # twistd re-raises the signal it stopped on once it has shut down (systemd counts that as a clean stop).
        assert proc.wait(60) in ((0, -signal.SIGTERM) if entry == "twistd" else (0,)), output()[-3000:]
        if entry == "twistd":
            assert "Server Shut Down." in output()
        gone, alive = psutil.wait_procs(helpers, timeout=30)
        assert not [h for h in alive if h.status() != psutil.STATUS_ZOMBIE], output()[-3000:]
        assert "Traceback" not in output(), output()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(state, ignore_errors=True)
        drop_database(dsn)
