"""server.workers: N API processes share one port; stopping the first stops them all."""
from __future__ import annotations

import json
import signal
import urllib.request

import psutil

from tests.support.processes import GatewayProcess, wait_until
from tests.support.services import create_database, drop_database, redis_prefix, test_environ


def test_workers_share_the_port_and_stop_together() -> None:
    """With DHIS2GW_WORKERS=3 two helpers serve the same port; SIGTERM to the first ends all three."""
    dsn = create_database()
    gateway = GatewayProcess(dict(test_environ(dsn, redis_prefix()), DHIS2GW_WORKERS="3"))
    try:
        gateway.start()
        parent = psutil.Process(gateway.proc.pid)  # type: ignore[union-attr]
        wait_until(lambda: len([c for c in parent.children() if "--listen-fd" in " ".join(c.cmdline())]) == 2,
                   30, what="two API helpers")
        helpers = [c for c in parent.children() if "--listen-fd" in " ".join(c.cmdline())]
        for _ in range(30):
            with urllib.request.urlopen(f"http://127.0.0.1:{gateway.port}/health", timeout=10) as r:
                assert json.loads(r.read())["status"] == "ok"
        gateway.kill(signal.SIGTERM)
        psutil.wait_procs(helpers, timeout=30)
        assert not any(h.is_running() and h.status() != psutil.STATUS_ZOMBIE for h in helpers)
    finally:
        gateway.stop()
        drop_database(dsn)
