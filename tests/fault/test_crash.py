"""Crash safety with real processes: the gateway is killed with SIGKILL, Redis is restarted and
flushed, PostgreSQL is restarted — while submissions are being delivered to a simulator process.

Each scenario checks, at the end: every submission is in a final state (none lost), all are
``delivered`` (nothing failed because of the fault), and the simulator holds every value exactly
as sent (a re-import of the same value is allowed: it is idempotent).

The normal suite runs small batches; ``make fault`` sets DHIS2GW_FAULT_SUBMISSIONS=5000.
"""
from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from typing import Any

import psycopg2

from dhis2gw.runtime.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.support.faults import worker_environ
from tests.support.processes import (
    DE_OPD,
    GatewayProcess,
    SimulatorProcess,
    expected_values,
    seed_submissions,
    status_counts,
    wait_until,
)
from tests.support.services import create_database, drop_database, redis_prefix, services

N = int(os.environ.get("DHIS2GW_FAULT_SUBMISSIONS", "600"))


def _delivered(dsn: str) -> int:
    return status_counts(dsn).get("delivered", 0)


def _check_outcome(dsn: str, sim: SimulatorProcess, count: int) -> None:
    counts = status_counts(dsn)
    assert counts == {"delivered": count}, counts
    store = sim.control("store")
    values = {(v["orgUnit"], v["period"]): v["value"] for v in store["dataValues"]
              if v["dataElement"] == DE_OPD and not v.get("deleted")}
    assert values == expected_values(count), "the simulator does not hold exactly the values sent"


def _run(scenario: Callable[[GatewayProcess, dict[str, Any]], None], *, private_pg: bool = False,
         private_redis: bool = False, latency: float = 0.02) -> None:
    cleanups: list[Callable[[], Any]] = []
    try:
        state = tempfile.mkdtemp(prefix="dhis2gw-crash-")
        cleanups.append(lambda: shutil.rmtree(state, ignore_errors=True))
        ctx: dict[str, Any] = {}
        if private_pg:
            pg = EmbeddedPostgres(state)
            pg.start()
            cleanups.append(lambda: pg.stop("immediate"))
            conn = psycopg2.connect(pg.uri)
            conn.autocommit = True
            conn.cursor().execute("CREATE DATABASE crash")
            conn.close()
            dsn = pg.uri.rsplit("/", 1)[0] + "/crash"
            ctx["pg"] = pg
        else:
            dsn = create_database()
            cleanups.append(lambda: drop_database(dsn))
        if private_redis:
            redis = EmbeddedRedis(state, persist=False)
            redis.start()
            cleanups.append(redis.stop)
            redis_address = redis.address
            ctx["redis"] = redis
        else:
            redis_address = services().redis_address
        sim = SimulatorProcess(latency=latency)
        sim.start()
        cleanups.append(sim.stop)
        env = worker_environ(dsn, redis_address, redis_prefix(), sim, max_concurrent=5, batching=False)
        # Migrate and seed before the gateway runs: its reconciler queues the seeded rows.
        from tests.support.services import _apply_migrations_blocking
        _apply_migrations_blocking(dsn)
        seed_submissions(dsn, N)
        gateway = GatewayProcess(env)
        cleanups.append(gateway.stop)
        gateway.start()
        ctx.update(dsn=dsn, sim=sim, env=env)
        scenario(gateway, ctx)
        wait_until(lambda: sum(status_counts(dsn).values()) == status_counts(dsn).get("delivered", -1),
                   timeout=max(120, N / 20), what="every submission delivered")
        _check_outcome(dsn, sim, N)
    finally:
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass


def test_gateway_killed_mid_delivery() -> None:
    """SIGKILL the gateway after ~30 % is delivered, start a new one: nothing lost or duplicated."""

    def scenario(gateway: GatewayProcess, ctx: dict[str, Any]) -> None:
        wait_until(lambda: _delivered(ctx["dsn"]) >= N * 0.3, 120, what="30 % delivered")
        gateway.kill(signal.SIGKILL)
        assert _delivered(ctx["dsn"]) < N
        restarted = GatewayProcess(ctx["env"])
        restarted.start()
        ctx["restarted"] = restarted
        gateway.proc = restarted.proc  # so cleanup stops the new one

    _run(scenario)


def test_redis_restart_and_flushall() -> None:
    """Redis restarted (no persistence) and later FLUSHALLed mid-run: the queue is rebuilt from PostgreSQL."""

    def scenario(gateway: GatewayProcess, ctx: dict[str, Any]) -> None:
        redis: EmbeddedRedis = ctx["redis"]
        wait_until(lambda: _delivered(ctx["dsn"]) >= N * 0.2, 120, what="20 % delivered")
        redis.stop(signal.SIGKILL)
        redis.start()
        wait_until(lambda: _delivered(ctx["dsn"]) >= N * 0.5, 120, what="50 % delivered after the restart")
        import socket

        with socket.create_connection((redis.host, redis.port)) as sock:
            sock.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
            assert sock.recv(16).startswith(b"+OK")

    _run(scenario, private_redis=True)


def test_postgres_restart_mid_run() -> None:
    """PostgreSQL restarted mid-run: attempts that could not be recorded are redelivered, nothing lost."""

    def scenario(gateway: GatewayProcess, ctx: dict[str, Any]) -> None:
        pg: EmbeddedPostgres = ctx["pg"]
        wait_until(lambda: _delivered(ctx["dsn"]) >= N * 0.3, 120, what="30 % delivered")
        pg.stop("fast")
        pg.start()

    _run(scenario, private_pg=True)
