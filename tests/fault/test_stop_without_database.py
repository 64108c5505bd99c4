"""SIGTERM stops a gateway whose PostgreSQL is unreachable, within ``server.shutdown_timeout``.

While the database pool retries, nothing that needs the database has started (the dispatcher,
cron, the metadata cache and the API listener all wait for ``db.started``). Stopping must not
wait for that start: it may never come. Checked on real processes for both ways of running the
gateway (the ``dhis2gw run`` console script and ``twistd -n dhis2gw``), and in-process service by
service so a hang names the service that waits.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from dhis2gw.config import load_config
from dhis2gw.runtime.embedded import free_port
from dhis2gw.wiring.root import build_gateway
from tests.support.processes import VENV_BIN, wait_until
from tests.support.services import ROOT, delete_redis_prefix, redis_prefix, services, test_environ

SHUTDOWN_TIMEOUT = 5.0
#: Port 1 on the loopback: nothing listens, so every connection attempt is refused.
NO_DATABASE = "postgresql://postgres@127.0.0.1:1/nowhere"


def _environ(prefix: str, state: str) -> dict[str, str]:
    return test_environ(NO_DATABASE, prefix, DHIS2GW_REDIS=services().redis_address, DHIS2GW_STATE_DIR=state,
                        DHIS2GW_SERVER_PORT=str(free_port()), DHIS2GW_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT))


class StopWithoutDatabaseProcessTests(SynchronousTestCase):
    """A real gateway process with its database on a closed port gets SIGTERM while it retries."""

    def stop_while_waiting(self, args: list[str], exit_code: int) -> None:
        state = tempfile.mkdtemp(prefix="dhis2gw-nodb-")
        prefix = redis_prefix()
        self.addCleanup(shutil.rmtree, state, True)
        self.addCleanup(delete_redis_prefix, prefix)
        out = Path(state) / "out.log"
        with open(out, "wb") as log:
            proc = subprocess.Popen(args, env=dict(os.environ, **_environ(prefix, state)), cwd=str(ROOT),
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            # Two refused attempts: the pool is in its retry back-off, every dependent service waiting.
            wait_until(lambda: out.read_text().count("PostgreSQL not reachable") >= 2 or proc.poll() is not None,
                       60, what="two refused PostgreSQL connection attempts")
            self.assertIsNone(proc.poll(), out.read_text())
            proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            try:
                code = proc.wait(SHUTDOWN_TIMEOUT + 10)
            except subprocess.TimeoutExpired:
                code = None
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        output = out.read_text()
        self.assertIsNotNone(code, f"still running {SHUTDOWN_TIMEOUT + 10:.0f} s after SIGTERM:\n{output}")
        self.assertLess(took, SHUTDOWN_TIMEOUT, output)
        self.assertEqual(code, exit_code, output)
        self.assertNotIn("Traceback", output)

    def test_console_script(self) -> None:
        """``dhis2gw run``: SIGTERM during the retries exits 0 within server.shutdown_timeout."""
        self.stop_while_waiting([str(VENV_BIN / "dhis2gw"), "run"], 0)

    def test_twistd(self) -> None:
        """``twistd -n dhis2gw``: SIGTERM during the retries exits within server.shutdown_timeout, by
        the signal (twistd re-raises the signal that stopped it, so the status says SIGTERM)."""
        self.stop_while_waiting([str(VENV_BIN / "twistd"), "-n", "--pidfile=", "dhis2gw"], -signal.SIGTERM)


class StopWithoutDatabaseServiceTests(TestCase):
    """The wired service tree of every role, in-process, with the database on a closed port."""

    async def stop_each(self, role: str) -> list[str]:
        prefix = redis_prefix()
        state = tempfile.mkdtemp(prefix="dhis2gw-nodb-")
        self.addCleanup(shutil.rmtree, state, True)
        self.addCleanup(delete_redis_prefix, prefix)
        gateway = build_gateway(load_config(None, _environ(prefix, state)), reactor, role)
        refused: defer.Deferred[set[Any]] = defer.Deferred()

        def watch(event: dict[str, Any]) -> None:
            if "PostgreSQL not reachable" in str(event.get("log_format", "")) and not refused.called:
                # The pool logs this just before it schedules its retry: what is pending now (trial's
                # own test timeout) is not the gateway's.
                refused.callback(set(reactor.getDelayedCalls()))

        globalLogPublisher.addObserver(watch)
        self.addCleanup(globalLogPublisher.removeObserver, watch)
        gateway.service.startService()
        before = await refused
        await deferLater(reactor, 0, lambda: None)
        self.assertFalse(gateway.db.started.called)
        # What OrderedServices.stopService does (the root stops, then its children last-added first),
        # one child at a time under the shutdown timeout, so a hang names the service that waits.
        service.Service.stopService(gateway.service)
        stopped = []
        for child in reversed(list(gateway.service)):
            if not child.running:
                continue
            d = defer.maybeDeferred(child.stopService)
            d.addTimeout(SHUTDOWN_TIMEOUT, reactor)
            try:
                await d
            except defer.TimeoutError:
                self.fail(f"{role}: {getattr(child, 'name', child)!r} did not stop within {SHUTDOWN_TIMEOUT} s"
                          " while the database was unreachable")
            stopped.append(getattr(child, "name", None) or type(child).__name__)
        await self.back_off_ends(before)
        return stopped

    async def back_off_ends(self, before: set[Any]) -> None:
        """Wait for the pool's pending retry back-off to run out (at most about a second here).

        ``Database.stopService`` does not cancel it: the start-up loop wakes, sees it is stopping
        and returns. That delays nothing at shutdown, but trial wants a clean reactor.
        """
        for _ in range(60):
            if not [c for c in reactor.getDelayedCalls() if c.active() and c not in before]:
                return
            await deferLater(reactor, 0.05, lambda: None)

    async def test_role_all(self) -> None:
        """Role all: every service stops at once, the dispatcher, cron and metadata cache included."""
        stopped = await self.stop_each("all")
        for name in ("dispatcher", "cron", "metadata-cache", "api", "request-log", "database"):
            self.assertIn(name, stopped)

    async def test_role_worker(self) -> None:
        """Role worker (dispatcher and cron, no API): every service stops at once."""
        stopped = await self.stop_each("worker")
        for name in ("dispatcher", "cron", "database"):
            self.assertIn(name, stopped)

    async def test_role_api(self) -> None:
        """Role api (listener and metadata cache, no dispatcher): every service stops at once."""
        stopped = await self.stop_each("api")
        for name in ("metadata-cache", "api", "database"):
            self.assertIn(name, stopped)
