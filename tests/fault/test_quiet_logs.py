"""Quiet logs by default, measured on a real process: a start, 1,000 deliveries and a stop of the
gateway at the default log level write fewer than 30 lines (stdout and stderr together). And a
gateway still waiting for PostgreSQL stops on SIGTERM, having said why it waits in one line per try.

At the default level (info) the gateway logs one line per state change of the service and a
warning for each real problem; a line per delivery appears only at debug, when asked.
"""
from __future__ import annotations

import shutil
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.runtime.embedded import free_port
from tests.support.faults import worker_environ
from tests.support.processes import GatewayProcess, SimulatorProcess, seed_submissions, status_counts, wait_until
from tests.support.services import _apply_migrations_blocking, create_database, drop_database, redis_prefix, services

COUNT = 1000
MAX_LINES = 30
#: Third-party noise that must never appear (each was seen on every start or stop before).
NOISE = ("XDG_RUNTIME_DIR", "PEP 302", "was never awaited", "Starting factory", "Stopping factory",
         "DeprecationWarning", "Traceback")


def _run(level: str | None) -> str:
    """Start a gateway, let it deliver ``COUNT`` seeded submissions, stop it; its whole output."""
    state = tempfile.mkdtemp(prefix="dhis2gw-quiet-")
    dsn = create_database()
    sim = SimulatorProcess()
    gateway = None
    try:
        sim.start()
        _apply_migrations_blocking(dsn)
        seed_submissions(dsn, COUNT)
        env = worker_environ(dsn, services().redis_address, redis_prefix(), sim, max_concurrent=5, batching=False)
        env["DHIS2GW_STATE_DIR"] = state
        env["DHIS2GW_SERVER_PORT"] = str(free_port())
        if level:
            env["DHIS2GW_LOG_LEVEL"] = level
        gateway = GatewayProcess(env)
        if not level:
            gateway.env.pop("DHIS2GW_LOG_LEVEL", None)  # the default, whatever this shell has
        gateway.start()
        wait_until(lambda: status_counts(dsn).get("delivered", 0) == COUNT, 180, interval=0.5,
                   what=f"{COUNT} delivered")
        assert gateway.stop() in (0, -15), gateway.output()[-2000:]
        return gateway.output()
    finally:
        if gateway is not None:
            gateway.stop()
        sim.stop()
        drop_database(dsn)
        shutil.rmtree(state, ignore_errors=True)


class QuietLogsTests(SynchronousTestCase):
    """The default log level keeps a busy gateway's log short."""

    def test_default_level_fewer_than_30_lines(self) -> None:
        """Start, 1,000 deliveries, stop at the default level: under 30 lines, none of the known noise."""
        output = _run(None)
        lines = [line for line in output.splitlines() if line.strip()]
        print(f"\n{len(lines)} lines for a start, {COUNT} deliveries and a stop:\n" + "\n".join(lines))
        self.assertLess(len(lines), MAX_LINES, "\n".join(lines))
        for noise in NOISE:
            self.assertNotIn(noise, output)

    def test_stops_while_waiting_for_postgresql(self) -> None:
        """PostgreSQL unreachable: one short warning per attempt (the reason, no Failure dump), and
        SIGTERM stops the gateway at once (it used to wait for the database for ever)."""
        import signal
        import subprocess
        import time

        from tests.support.processes import VENV_BIN
        from tests.support.services import ROOT, redis_prefix, services, test_environ

        state = tempfile.mkdtemp(prefix="dhis2gw-nodb-")
        env = dict(test_environ("postgresql://postgres@127.0.0.1:1/nowhere", redis_prefix()),
                   DHIS2GW_REDIS=services().redis_address, DHIS2GW_STATE_DIR=state,
                   DHIS2GW_SERVER_PORT=str(free_port()))
        log = open(f"{state}/out.log", "wb")
        proc = subprocess.Popen([str(VENV_BIN / "dhis2gw")], env=dict(__import__("os").environ, **env), cwd=str(ROOT),
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            time.sleep(3)
            proc.send_signal(signal.SIGTERM)
            started = time.monotonic()
            proc.wait(20)
            took = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
        output = open(f"{state}/out.log").read()
        shutil.rmtree(state, ignore_errors=True)
        self.assertLess(took, 10, output)
        waits = [line for line in output.splitlines() if "PostgreSQL not reachable" in line]
        self.assertTrue(waits, output)
        for line in waits:
            self.assertNotIn("Failure", line)
            self.assertIn("Connection refused", line)
