"""The load suite of issue 12: ingest, scale, delivery, memory and /logs figures in one run.

Run: ``.venv/bin/python -m tests.bench.bench_load [--quick] [--duration 30]`` (needs ``wrk``). Appends
to ``bench-results/load.md`` (date, machine, commit). Not a test: figures depend on the machine.

* ingest — wrk (2 threads, 50 connections, ``--duration`` s) against the bare Klein INSERT+LPUSH
  endpoint of :mod:`tests.bench.bench_ingest` and ``POST /api/v2/aggregate`` (simplified form, 10
  mapped codes) in turns, ``--rounds`` times (same run, same PostgreSQL/Redis; the median ratio
  counts), then ``POST /api/v2/tracker`` (one
  person + enrollment + event) on a ``--role api`` gateway with a Bearer JWT; req/s, p50, p99;
* latency at half the measured max — :mod:`tests.bench.openloop` (fixed arrival rate, latency
  from the scheduled start) at 50 % of the aggregate req/s just measured;
* scale — the same aggregate wrk run against ``server.workers: 2`` (two API processes sharing one
  listening socket) beside one;
* delivery — N seeded aggregate submissions, one ``--role worker`` gateway, simulator at 200 ms,
  max_concurrent 5, batching off and on: submissions/s and values/s against the theoretical
  unbatched 25/s, and the worker's peak RSS (VmHWM) during the run;
* memory — peak RSS with 100,000 submissions queued (:func:`tests.bench.bench_delivery.measure_memory`);
* /logs — runs :mod:`tests.bench.bench_logs` (``--logs-rows``; 1,000,000 by default, 0 skips it).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

from tests.bench.bench_delivery import measure_delivery, measure_memory
from tests.bench.bench_ingest import (
    BODY,
    alternate,
    bearer_headers,
    create_submitter,
    median_pair,
    prepare_database,
    rounds_table,
    start_baseline,
    wrk,
)
from tests.bench.openloop import open_loop
from tests.bench.report import write_report
from tests.support.processes import GatewayProcess, SimulatorProcess
from tests.support.services import create_database, delete_redis_prefix, drop_database, redis_prefix, test_environ

FAC = "ty5AJ6ZU5f7"
TRACKER_BODY = {"trackedEntities": [{
    "trackedEntityType": "wUDUIqHvKBT", "orgUnit": FAC,
    "attributes": [{"attribute": "Nx35aDI8hlO", "value": "Kito"}, {"attribute": "yniiXK6gaAZ", "value": "Mwangi"},
                   {"attribute": "gG0gOd8XsCL", "value": "2024-02-01"}],
    "enrollments": [{"program": "x77Cvs1U2W8", "orgUnit": FAC, "enrolledAt": "2024-02-02", "status": "ACTIVE",
                     "events": [{"programStage": "mfldQTsPucY", "orgUnit": FAC, "occurredAt": "2024-02-02",
                                 "status": "COMPLETED",
                                 "dataValues": [{"dataElement": "EUBJhFXsCXe", "value": "2900"}]}]}]}]}


def _children(pid: int) -> list[int]:
    """Pids whose parent is ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return out


def measure_ingest(duration: int, connections: int, open_loop_seconds: int, rounds: int = 3) -> dict[str, Any]:
    """Baseline and aggregate in turns (``rounds`` pairs), tracker, open-loop at half max, and 2 API
    processes; one database."""
    dsn, prefix = create_database(), redis_prefix()
    sim = SimulatorProcess()
    out: dict[str, Any] = {}
    procs: list[Any] = []
    try:
        prepare_database(dsn)
        sim.start()
        baseline, port = start_baseline(dsn, prefix)
        procs.append(baseline)
        env = test_environ(dsn, prefix, dhis2_base_url=sim.base_url, dhis2_user="admin", dhis2_password="district",
                           DHIS2GW_MAX_BODY_BYTES="1MiB",
                           # the load generator on 127.0.0.1 stands for many clients (open loop: up to 256)
                           DHIS2GW_MAX_CONNECTIONS_PER_ADDRESS="4096")
        create_submitter(env)
        for workers in (1, 2):
            gateway = GatewayProcess(dict(env, DHIS2GW_WORKERS=str(workers)), role="api")
            procs.append(gateway)
            gateway.start()
            time.sleep(2 if workers > 1 else 0.5)  # let the helper process start and accept
            headers = bearer_headers(gateway.port)
            url = f"http://127.0.0.1:{gateway.port}/api/v2"
            if workers == 1:
                out["pairs"] = alternate(f"http://127.0.0.1:{port}/bare", url + "/aggregate", headers, duration,
                                         connections, rounds)
                out["baseline"], out["aggregate"] = median_pair(out["pairs"])
                baseline.terminate()
                baseline.wait(10)
                out["tracker"] = wrk_body(url + "/tracker", headers, duration, connections, TRACKER_BODY)
                half = max(1.0, out["aggregate"]["rps"] / 2)
                out["open_loop"] = open_loop(url + "/aggregate", headers, json.dumps(BODY).encode(), half,
                                             open_loop_seconds)
            else:
                assert gateway.proc is not None
                out["api_processes"] = 1 + len(_children(gateway.proc.pid))
                out["aggregate_2"] = wrk(url + "/aggregate", headers, duration, connections)
            gateway.stop()
    finally:
        for proc in procs:
            try:
                proc.stop() if isinstance(proc, GatewayProcess) else proc.terminate()
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass
        sim.stop()
        delete_redis_prefix(prefix)
        drop_database(dsn)
    return out


def wrk_body(url: str, headers: dict[str, str], duration: int, connections: int, body: Any) -> dict[str, float]:
    """:func:`tests.bench.bench_ingest.wrk` with another body."""
    import tests.bench.bench_ingest as ingest

    saved = ingest.BODY
    ingest.BODY = body
    try:
        return wrk(url, headers, duration, connections)
    finally:
        ingest.BODY = saved


def measure_logs(rows: int) -> str:
    """Run bench_logs over ``rows`` submissions; return its timing table."""
    result = subprocess.run([sys.executable, "-m", "tests.bench.bench_logs", "--rows", str(rows), "--repeat", "3"],
                            capture_output=True, text=True, timeout=3600)
    text = result.stdout
    start = text.find("GET /api/v2/logs")
    table = text[start:].split("\n\n")[0] if start >= 0 else (text + result.stderr)[-2000:]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: short wrk runs, small counts")
    parser.add_argument("--duration", type=int, default=None, help="wrk seconds (default 30; quick 5)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=None,
                        help="baseline/aggregate pairs in turns (default 3; quick 1)")
    parser.add_argument("--logs-rows", type=int, default=None, help="rows for /logs (default 1,000,000; quick 0)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    q = args.quick
    duration = args.duration or (5 if q else 30)
    unbatched_n, batched_n, queued_n = (150, 2000, 10_000) if q else (20_000, 20_000, 100_000)
    logs_rows = args.logs_rows if args.logs_rows is not None else (0 if q else 1_000_000)

    rounds = args.rounds or (1 if q else 3)
    ingest = measure_ingest(duration, args.connections, duration, rounds)
    deliveries = [measure_delivery(0.2, unbatched_n), measure_delivery(0.2, batched_n, batching=True)]
    memory = measure_memory(queued_n)
    logs = measure_logs(logs_rows) if logs_rows else "(skipped; see bench-results/ or run with --logs-rows)"

    b, a, t, o, a2 = (ingest[k] for k in ("baseline", "aggregate", "tracker", "open_loop", "aggregate_2"))
    lines = [f"{'QUICK smoke run — ' if q else ''}wrk -t2 -c{args.connections} -d{duration}s on 127.0.0.1; "
             "aggregate body: simplified form, 10 mapped codes; Bearer JWT; request log on. Baseline and "
             f"aggregate measured in turns, {rounds} round(s):", "", *rounds_table(ingest["pairs"]), "",
             "The round with the median ratio, and the other endpoints:", "",
             "| endpoint | requests/s | p50 ms | p99 ms | non-2xx |", "|---|---|---|---|---|",
             f"| bare Klein INSERT+LPUSH (baseline) | {b['rps']:.0f} | {b['p50']:.1f} | {b['p99']:.1f} "
             f"| {b['errors']} |",
             f"| POST /api/v2/aggregate | {a['rps']:.0f} | {a['p50']:.1f} | {a['p99']:.1f} | {a['errors']} |",
             f"| POST /api/v2/tracker | {t['rps']:.0f} | {t['p50']:.1f} | {t['p99']:.1f} | {t['errors']} |",
             f"| POST /api/v2/aggregate, server.workers 2 ({ingest['api_processes']} processes) | {a2['rps']:.0f} "
             f"| {a2['p50']:.1f} | {a2['p99']:.1f} | {a2['errors']} |", "",
             f"Aggregate / baseline, median of the rounds: **{a['rps'] / b['rps'] * 100:.0f} %** (goal ≥ 60 %). "
             f"2 API processes / 1: **{a2['rps'] / a['rps']:.2f}×**.", "",
             f"Open loop at half the aggregate max ({o['rate']:.0f} req/s for {duration} s, achieved "
             f"{o['achieved_rate']}/s, latency from the scheduled start): "
             f"p50 **{o['p50']} ms**, p99 **{o['p99']} ms**, max {o['max']} ms; {o['ok']} ok, {o['non2xx']} non-2xx, "
             f"{o['errors']} errors (goal p99 < 50 ms).", "",
             "| delivery, DHIS2 at 200 ms, max_concurrent 5 | submissions | seconds | submissions/s | values/s "
             "| vs theoretical unbatched 25/s | worker peak RSS |", "|---|---|---|---|---|---|---|"]
    for d in deliveries:
        lines.append(f"| batching {'on' if d['batching'] else 'off'} | {d['submissions']} | {d['seconds']} "
                     f"| {d['per_second']} | {d['values_per_second']} "
                     f"| {d['per_second'] / d['theoretical'] * 100:.0f} % | {d['peak_rss_mb']} MB |")
    lines += ["", f"Batched / unbatched: **{deliveries[1]['per_second'] / deliveries[0]['per_second']:.1f}×** "
                  "(one value per submission, so values/s = submissions/s; goal ≥ 20×).", "",
              f"Peak RSS with {memory['queued']:,} submissions queued: **{memory['peak_rss_mb']} MB** "
              f"(goal ≤ 150 MB; reconciler queued them in {memory['reconcile_seconds']} s).", "",
              f"/logs over {logs_rows:,} rows:" if logs_rows else "/logs:", "", "```", logs, "```"]
    write_report("load", "Load suite" + (" (quick)" if q else ""), "\n".join(lines))


if __name__ == "__main__":
    main()
