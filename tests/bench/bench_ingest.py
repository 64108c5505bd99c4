"""Benchmark: ingest rate of ``POST /api/v2/aggregate`` beside a bare Klein INSERT + LPUSH endpoint.

Run: ``.venv/bin/python -m tests.bench.bench_ingest [--duration 10] [--connections 50]`` (needs ``wrk``,
the Debian package). Both servers run as child processes against the same PostgreSQL and Redis,
measured one after the other in the same run:

* **baseline** — a Klein route that does one txpostgres ``INSERT … RETURNING`` into ``submissions``
  and one txredisapi ``LPUSH``: the floor cost of "record then queue" on this stack;
* **gateway** — the real gateway (``--role api``), a submitter with a Bearer JWT posting the
  simplified form with 10 mapped codes (auth, schema validation, mapping look-up, transaction with
  its event row, Redis push, request log).

Both servers stay up and are measured in turns, baseline then gateway, ``--rounds`` times (3 by
default): on a noisy machine a single pair can be off by 10 % either way, so the figure to read is
the median of the per-round ratios. Prints requests/s and latency percentiles for every round and
appends them to ``bench-results/ingest.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any

import psycopg2

from dhis2gw.dhis2.uids import generate_uid
from dhis2gw.runtime.embedded import free_port, wait_for_port
from tests.bench.report import write_report
from tests.support.processes import GatewayProcess
from tests.support.services import (
    _apply_migrations_blocking,
    create_database,
    delete_redis_prefix,
    drop_database,
    redis_prefix,
    services,
    test_environ,
)

CODES = [f"C{i:02d}" for i in range(10)]
DE = ["Re46C6Apebu", "sHyMCqP5u8T", "mIZRY6JqE19", "fBMbkOwHQxP", "V7Jxd1RvrjG", "BBUGB1Uo7SW", "eapB1gPonCZ",
      "mr3nbJiajRl", "g5Jsa2EvlhL", "TlCYgA6XJth"]
BODY = {"orgUnit": "ty5AJ6ZU5f7", "period": "202401", "dataValues": {c: i + 1 for i, c in enumerate(CODES)}}
PASSWORD = "Bench-Password-123"


def serve_baseline(dsn: str, redis_host: str, redis_port: int, prefix: str, port: int) -> None:
    """Child process: the bare Klein INSERT + LPUSH endpoint."""
    import psycopg2.extras
    import txredisapi
    from klein import Klein
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    from twisted.web.server import Site
    from txpostgres import txpostgres

    app = Klein()
    pool = txpostgres.ConnectionPool(None, dsn, min=6, cursor_factory=psycopg2.extras.RealDictCursor)
    redis = txredisapi.lazyConnectionPool(redis_host, redis_port, poolsize=4, convertNumbers=False)

    @app.route("/bare", methods=["POST"])
    async def bare(request: Any) -> bytes:
        body = json.loads(request.content.read())
        query = pool.runQuery(
            "INSERT INTO submissions (uid, kind, destination, endpoint, payload) VALUES (%s, 'aggregate', 'main',"
            " '/bare', %s) RETURNING id", (generate_uid(), psycopg2.extras.Json(body)))
        # A client hanging up cancels the request; txpostgres cannot cancel a running query.
        shielded: Any = Deferred()
        query.chainDeferred(shielded)
        rows = await shielded
        await redis.lpush(f"{prefix}:bare", rows[0]["id"])
        request.setResponseCode(202)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"submission_id": rows[0]["id"]}).encode()

    def start() -> None:
        pool.start().addCallback(lambda _: reactor.listenTCP(port, Site(app.resource()), interface="127.0.0.1"))

    reactor.callWhenRunning(start)
    reactor.run()


def wrk(url: str, headers: dict[str, str], duration: int, connections: int) -> dict[str, float]:
    """POST BODY to ``url`` with wrk; return req/s and latency percentiles (ms)."""
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write('wrk.method = "POST"\n')
    script.write(f"wrk.body = {json.dumps(json.dumps(BODY))}\n")
    for k, v in headers.items():
        script.write(f'wrk.headers["{k}"] = "{v}"\n')
    script.close()
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script.name, url],
                         capture_output=True, text=True, check=True).stdout
    os.unlink(script.name)

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p50": ms("50"), "p99": ms("99"), "errors": int(non2xx.group(1)) if non2xx else 0}


def prepare_database(dsn: str) -> None:
    """Migrate the benchmark database and map the ten codes of BODY."""
    _apply_migrations_blocking(dsn)
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        for code, de in zip(CODES, DE):
            cur.execute("INSERT INTO dhis2_mappings (uid, code, dataelement) VALUES (%s, %s, %s)",
                        (generate_uid(), code, de))
    conn.close()


def start_baseline(dsn: str, prefix: str) -> tuple[subprocess.Popen[bytes], int]:
    """The bare Klein INSERT+LPUSH server in a child process; (process, port)."""
    svc = services()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.bench_ingest", "--serve-baseline", dsn,
                             svc.redis_host, str(svc.redis_port), prefix, str(port)])
    assert wait_for_port("127.0.0.1", port, 30), "baseline did not start"
    return proc, port


def create_submitter(env: dict[str, str]) -> None:
    """The ``bench`` submitter, made with the gateway's own CLI."""
    create = subprocess.run([os.path.join(os.path.dirname(sys.executable), "dhis2gw"), "createuser", "bench",
                             "--role", "submitter", "--password-stdin"], input=PASSWORD + "\n", text=True,
                            env=dict(os.environ, **env), capture_output=True)
    assert create.returncode == 0, create.stderr


def bearer_headers(port: int) -> dict[str, str]:
    """JSON + Bearer headers for the ``bench`` submitter of the gateway on ``port``."""
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v2/users/getToken",
                                 data=json.dumps({"username": "bench", "password": PASSWORD}).encode(),
                                 headers={"Content-Type": "application/json"})
    token = json.loads(urllib.request.urlopen(req, timeout=30).read())["access_token"]
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


Pair = tuple[dict[str, float], dict[str, float]]


def alternate(baseline_url: str, gateway_url: str, gateway_headers: dict[str, str], duration: int,
              connections: int, rounds: int) -> list[Pair]:
    """wrk against the baseline then the gateway, ``rounds`` times; the (baseline, gateway) figures."""
    pairs = []
    for _ in range(rounds):
        b = wrk(baseline_url, {"Content-Type": "application/json"}, duration, connections)
        g = wrk(gateway_url, gateway_headers, duration, connections)
        print(f"round {len(pairs) + 1}: baseline {b['rps']:.0f} req/s, gateway {g['rps']:.0f} req/s "
              f"({g['rps'] / b['rps']:.0%})", flush=True)
        pairs.append((b, g))
    return pairs


def median_pair(pairs: list[Pair]) -> Pair:
    """The round whose gateway/baseline ratio is the median one."""
    ranked = sorted(pairs, key=lambda p: p[1]["rps"] / p[0]["rps"])
    return ranked[(len(ranked) - 1) // 2]


def rounds_table(pairs: list[Pair], label: str = "POST /api/v2/aggregate") -> list[str]:
    """Markdown rows: every round's baseline and gateway figures and their ratio."""
    lines = ["| round | bare Klein INSERT+LPUSH req/s (p50 / p99 ms) | " + label + " req/s (p50 / p99 ms) "
             "| gateway / baseline | non-2xx |", "|---|---|---|---|---|"]
    for i, (b, g) in enumerate(pairs, 1):
        lines.append(f"| {i} | {b['rps']:.0f} ({b['p50']:.1f} / {b['p99']:.1f}) | {g['rps']:.0f} ({g['p50']:.1f} / "
                     f"{g['p99']:.1f}) | {g['rps'] / b['rps'] * 100:.0f} % | {b['errors'] + g['errors']} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3, help="baseline/gateway pairs, measured in turns")
    parser.add_argument("--serve-baseline", nargs=5, metavar=("DSN", "HOST", "PORT", "PREFIX", "LISTEN"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the gateway (e.g. DHIS2GW_REQUEST_LOG=false)")
    args = parser.parse_args()
    if args.serve_baseline:
        dsn, host, rport, prefix, port = args.serve_baseline
        serve_baseline(dsn, host, int(rport), prefix, int(port))
        return
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    dsn = create_database()
    prefix = redis_prefix()
    prepare_database(dsn)
    baseline = gateway = None
    try:
        baseline, port = start_baseline(dsn, prefix)
        env = test_environ(dsn, prefix, dhis2_base_url="http://127.0.0.1:9", dhis2_user="admin",
                           dhis2_password="district", DHIS2GW_MAX_BODY_BYTES="1MiB")
        env.update(item.split("=", 1) for item in args.set)
        create_submitter(env)
        gateway = GatewayProcess(env, role="api")
        gateway.start()
        pairs = alternate(f"http://127.0.0.1:{port}/bare", f"http://127.0.0.1:{gateway.port}/api/v2/aggregate",
                          bearer_headers(gateway.port), args.duration, args.connections, args.rounds)
    finally:
        if baseline and baseline.poll() is None:
            baseline.terminate()
        if gateway:
            gateway.stop()
        delete_redis_prefix(prefix)
        drop_database(dsn)
    b, g = median_pair(pairs)
    extra = f" Gateway settings: {', '.join(args.set)}." if args.set else ""
    lines = [f"wrk -t2 -c{args.connections} -d{args.duration}s per measurement, 127.0.0.1, {args.rounds} rounds of "
             "baseline then gateway; gateway body: simplified form, 10 mapped codes, Bearer JWT, request log on."
             + extra, "", *rounds_table(pairs), "",
             f"Gateway / baseline, median of the rounds: **{g['rps'] / b['rps'] * 100:.0f} %** (goal ≥ 60 %)."]
    write_report("ingest", "Ingest rate", "\n".join(lines))


if __name__ == "__main__":
    main()
