"""Requests/s of an authenticated trivial endpoint: Bearer vs Basic vs Token, request log on vs off.

Run:  .venv/bin/python -m tests.bench.bench_auth [--duration 5] [--connections 50]

It makes a fresh migrated database on the test PostgreSQL (tests/support/services.py), then
for each request-log setting starts a gateway API process on 127.0.0.1 (a child running this
same file with ``--serve``) with a user, an API token and a JWT, and loads
``GET /api/v2/bench/ping`` with ``wrk`` (or, without wrk, a small treq loop) once per auth
scheme. The table printed at the end puts the six figures side by side. Not a timed test:
the numbers depend on the machine and on whatever else runs on it.
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
import time
from typing import Any

SCHEMES = ("bearer", "basic", "token")
PASSWORD = "Bench-Password-123"


def serve(dsn: str, request_log: bool, info_path: str) -> None:
    """Child process: run the API with the real reactor until killed."""
    from types import SimpleNamespace

    from twisted.internet import defer, reactor

    from dhis2gw.api.request_log import RequestLogWriter, RequestsApi
    from dhis2gw.api.routing import ANY_USER, Call, Router, route
    from dhis2gw.api.site import GatewaySite
    from dhis2gw.api.users import UsersApi
    from dhis2gw.auth.sessions import build_auth
    from dhis2gw.auth.tokens import new_api_token
    from dhis2gw.dhis2.uids import generate_uid
    from dhis2gw.storage.database import Database
    from dhis2gw.storage.request_log import RequestLogStore

    class BenchArea:
        @route("GET", "/bench/ping", roles=ANY_USER)
        async def ping(self, call: Call) -> dict[str, Any]:
            return {"ok": True, "user": call.require_principal().username}

    async def main() -> None:
        db = Database(reactor, dsn, size=4)
        db.startService()
        await db.started
        config = SimpleNamespace(jwt_secret="bench-secret-" + "b" * 40, jwt_issuer="dhis2gw", access_token_ttl=3600,
                                 refresh_token_ttl=86400, basic_auth_cache_seconds=60, login_max_failures=5,
                                 login_lockout_seconds=300, password_min_length=10)
        auth = build_auth(reactor, db, config)
        username = "bench-" + generate_uid()
        user = await auth.users.create(uid=generate_uid(), username=username, role="submitter",
                                       password_hash=await auth.hasher.hash(PASSWORD))
        api = new_api_token()
        await auth.tokens.create_api_token(user["id"], api.token_hash, api.prefix, "bench", None)
        store = RequestLogStore(db)
        writer = RequestLogWriter(reactor, store, enabled=request_log)
        writer.startService()
        router = Router(auth.authenticator)
        router.mount("/api/v2", UsersApi(auth))
        router.mount("/api/v2", RequestsApi(store))
        router.mount("/api/v2", BenchArea())
        site = GatewaySite(router.resource(), max_body_bytes=1 << 20,
                           finish_observers=[writer.observe] if request_log else [])
        port = reactor.listenTCP(0, site, interface="127.0.0.1", backlog=512)
        import base64

        headers = {"bearer": "Bearer " + auth.issuer.issue_access(user).token,
                   "basic": "Basic " + base64.b64encode(f"{username}:{PASSWORD}".encode()).decode(),
                   "token": "Token " + api.token}
        with open(info_path + ".tmp", "w") as f:
            json.dump({"port": port.getHost().port, "headers": headers}, f)
        os.replace(info_path + ".tmp", info_path)

        def report() -> None:
            sys.stderr.write(json.dumps(writer.stats()) + "\n")

        reactor.addSystemEventTrigger("before", "shutdown", report)

    defer.Deferred.fromCoroutine(main()).addErrback(lambda f: (f.printTraceback(), reactor.stop()))
    reactor.run()


def run_wrk(url: str, header: str, duration: int, connections: int) -> tuple[float, int]:
    """Requests/s and non-2xx count from wrk."""
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "-H", f"Authorization: {header}", url],
                         capture_output=True, text=True, timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, int(bad.group(1)) if bad else 0


def run_loop(url: str, header: str, duration: int, connections: int) -> tuple[float, int]:
    """Fallback load generator (treq, one process): much weaker than wrk, same comparisons."""
    code = f"""
import time, treq
from twisted.internet import defer, task
from twisted.web.client import HTTPConnectionPool, Agent
def main(reactor):
    pool = HTTPConnectionPool(reactor); pool.maxPersistentPerHost = {connections}
    client = treq.client.HTTPClient(Agent(reactor, pool=pool))
    end = time.monotonic() + {duration}; counts = [0, 0]
    async def worker():
        while time.monotonic() < end:
            r = await client.get({url!r}, headers={{"Authorization": {header!r}}})
            await r.content(); counts[0] += 1; counts[1] += r.code != 200
    return defer.gatherResults([defer.ensureDeferred(worker()) for _ in range({connections})]).addCallback(
        lambda _: print(counts[0] / {duration}, counts[1])).addCallback(lambda _: pool.closeCachedConnections())
task.react(main)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=duration + 60).stdout
    rps, bad = out.split()
    return float(rps), int(bad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measurement (default 5)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--request-log", choices=("on", "off"), help=argparse.SUPPRESS)
    parser.add_argument("--info", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.dsn, args.request_log == "on", args.info)
        return

    from tests.support.services import migrated_database

    dsn = migrated_database()
    load = run_wrk if shutil.which("wrk") else run_loop
    results: dict[tuple[str, str], tuple[float, int]] = {}
    stats: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for setting in ("off", "on"):
            info = os.path.join(tmp, f"info-{setting}.json")
            child = subprocess.Popen([sys.executable, "-m", "tests.bench.bench_auth", "--serve", "--dsn", dsn,
                                      "--request-log", setting, "--info", info], stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + 60
                while not os.path.exists(info):
                    if child.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("the API process did not start: "
                                         f"{child.stderr.read() if child.stderr else ''}")
                    time.sleep(0.1)
                with open(info) as f:
                    served = json.load(f)
                url = f"http://127.0.0.1:{served['port']}/api/v2/bench/ping"
                for scheme in SCHEMES:
                    load(url, served["headers"][scheme], 1, args.connections)  # warm-up (Basic cache, JIT-less)
                    results[(scheme, setting)] = load(url, served["headers"][scheme], args.duration, args.connections)
                    print(f"  {scheme:6} request log {setting:3}: {results[(scheme, setting)][0]:8.0f} req/s",
                          flush=True)
            finally:
                child.terminate()
                try:
                    _, err = child.communicate(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
                    _, err = child.communicate()
                stats[setting] = (err or "").strip().splitlines()[-1] if (err or "").strip() else ""
    tool = f"wrk -t2 -c{args.connections} -d{args.duration}s" if load is run_wrk else "treq loop"
    print(f"\nGET /api/v2/bench/ping, 127.0.0.1, {tool}")
    print(f"{'auth':8} {'log off':>10} {'log on':>10} {'on/off':>8}")
    for scheme in SCHEMES:
        off, on = results[(scheme, "off")], results[(scheme, "on")]
        print(f"{scheme:8} {off[0]:10.0f} {on[0]:10.0f} {on[0] / off[0]:8.2f}"
              + (f"   (non-2xx: off {off[1]}, on {on[1]})" if off[1] or on[1] else ""))
    print(f"request log writer stats (log on): {stats.get('on')}")


if __name__ == "__main__":
    main()
