"""Benchmark: delivery throughput to the simulator, and gateway memory with a deep queue.

Run: ``.venv/bin/python -m tests.bench.bench_delivery [--quick]`` (or ``make bench``). Prints a
Markdown table and appends it to ``bench-results/delivery.md`` with the date and machine.

* delivery: N seeded aggregate submissions, a simulator process with 0 ms and 200 ms added
  latency, one gateway process (role worker, max_concurrent 5); submissions/s from the first to
  the last delivery, beside the theoretical maximum max_concurrent / latency;
* memory: the gateway's peak RSS (VmHWM) after its reconciler queued 100,000 submissions
  (delivery paused, so they all stay queued).
"""
from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg2

from tests.bench.report import write_report
from tests.support.processes import GatewayProcess, SimulatorProcess, seed_submissions, status_counts, wait_until
from tests.support.services import (
    _apply_migrations_blocking,
    create_database,
    delete_redis_prefix,
    drop_database,
    redis_prefix,
    services,
    test_environ,
)

MAX_CONCURRENT = 5


def _env(dsn: str, prefix: str, sim: SimulatorProcess, **extra: str) -> dict[str, str]:
    env = test_environ(dsn, prefix)
    env.update({"dhis2_base_url": sim.base_url, "dhis2_user": "admin", "dhis2_password": "district",
                "DHIS2GW_MAX_CONCURRENT": str(MAX_CONCURRENT), "DHIS2GW_REQUEST_LOG": "false",
                "DHIS2GW_REQUEST_PROCESS_INTERVAL": "1"})
    env.update(extra)
    return env


def _delivery_times(dsn: str) -> tuple[float, float, int]:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT extract(epoch from min(finished_at)), extract(epoch from max(finished_at)), count(*)"
                    " FROM submissions WHERE status = 'delivered'")
        first, last, n = cur.fetchone()
    conn.close()
    return float(first), float(last), int(n)


@dataclass
class _Rig:
    """A fresh migrated database seeded with submissions, a Redis prefix, a running simulator."""

    dsn: str
    prefix: str
    sim: SimulatorProcess
    gateway: GatewayProcess | None = None

    def start_gateway(self, role: str = "all", wait: bool = True, **extra: str) -> GatewayProcess:
        """Start the gateway under test with ``extra`` environment variables."""
        self.gateway = GatewayProcess(_env(self.dsn, self.prefix, self.sim, **extra), role=role)
        self.gateway.start(wait=wait)
        return self.gateway


@contextmanager
def _rig(count: int, latency: float | None = None) -> Iterator[_Rig]:
    """A rig with ``count`` seeded submissions; everything it made is stopped and dropped on exit."""
    rig = _Rig(create_database(), redis_prefix(), SimulatorProcess(latency=latency))
    try:
        _apply_migrations_blocking(rig.dsn)
        seed_submissions(rig.dsn, count)
        rig.sim.start()
        yield rig
    finally:
        if rig.gateway:
            rig.gateway.stop()
        rig.sim.stop()
        delete_redis_prefix(rig.prefix)
        drop_database(rig.dsn)


def measure_delivery(latency: float, count: int, batching: bool = False) -> dict[str, Any]:
    """Deliver ``count`` submissions through one gateway to a simulator with ``latency``."""
    with _rig(count, latency or None) as rig:
        extra = {"DHIS2GW_BATCH_ENABLED": "true"} if batching else {}
        gateway = rig.start_gateway("worker", wait=False, **extra)
        wait_until(lambda: status_counts(rig.dsn).get("delivered", 0) == count, timeout=max(300, count / 5),
                   interval=0.5, what="all delivered")
        assert gateway.proc is not None
        hwm = _vm_hwm_kb(gateway.proc.pid)
        first, last, n = _delivery_times(rig.dsn)
        # The first delivery completes one round trip after the start: count that interval too.
        elapsed = (last - first) + max(latency, 0.001)
        return {"latency_ms": int(latency * 1000), "batching": batching, "submissions": n, "seconds": round(elapsed, 2),
                "per_second": round(n / elapsed, 1), "values_per_second": round(n / elapsed, 1),
                "peak_rss_mb": round(hwm / 1024, 1),
                "theoretical": round(MAX_CONCURRENT / latency, 1) if latency else None}


def _vm_hwm_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _redis_command(*parts: str) -> bytes:
    """One command to the test Redis over a raw socket (blocking); its raw answer."""
    svc = services()
    encoded = [p.encode() for p in parts]
    payload = b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded)
    with socket.create_connection((svc.redis_host, svc.redis_port)) as sock:
        sock.sendall(payload)
        return sock.recv(64)


def measure_memory(count: int) -> dict[str, Any]:
    """Peak RSS of a gateway whose reconciler queued ``count`` submissions (destination paused)."""
    with _rig(count) as rig:
        _redis_command("SET", f"{rig.prefix}:paused:main", "1")  # pause before start
        started = time.monotonic()
        gateway = rig.start_gateway()

        def queued_all() -> bool:
            return int(_redis_command("LLEN", f"{rig.prefix}:ready:main")[1:].split(b"\r\n")[0]) >= count

        wait_until(queued_all, timeout=600, interval=1, what="reconciler queued everything")
        took = time.monotonic() - started
        time.sleep(2)
        hwm = _vm_hwm_kb(gateway.proc.pid)  # type: ignore[union-attr]
        return {"queued": count, "peak_rss_mb": round(hwm / 1024, 1), "reconcile_seconds": round(took, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts (a smoke run)")
    args = parser.parse_args()
    fast_n, slow_n, batch_n, mem_n = (300, 100, 2000, 10_000) if args.quick else (3000, 500, 20_000, 100_000)
    rows = [measure_delivery(0.0, fast_n), measure_delivery(0.2, slow_n), measure_delivery(0.2, batch_n, True)]
    memory = measure_memory(mem_n)
    lines = ["| DHIS2 latency | batching | submissions | seconds | submissions/s "
             "| theoretical unbatched max (5 / latency) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        theory = f"{r['theoretical']}" if r["theoretical"] else "—"
        lines.append(f"| {r['latency_ms']} ms | {'on' if r['batching'] else 'off'} | {r['submissions']} "
                     f"| {r['seconds']} | {r['per_second']} | {theory} |")
    unbatched, batched = rows[1]["per_second"], rows[2]["per_second"]
    lines += ["", f"Batched / unbatched at 200 ms: **{batched / unbatched:.1f}×** "
                  f"({batched * 1:.0f} vs {unbatched} submissions/s; one value per submission)."]
    lines += ["", f"Peak RSS with {memory['queued']:,} submissions queued: **{memory['peak_rss_mb']} MB** "
                  f"(reconciler queued them in {memory['reconcile_seconds']} s)."]
    write_report("delivery", "Delivery throughput and memory", "\n".join(lines))


if __name__ == "__main__":
    main()
