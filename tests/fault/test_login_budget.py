"""Issue 16, F2: two gateway processes on one Redis share one login budget."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from tests.support.processes import GatewayProcess
from tests.support.services import create_database, drop_database, redis_prefix, test_environ


def _guess(port: int) -> int:
    body = json.dumps({"username": "admin", "password": "Not-The-Password-1"}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v2/users/getToken", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_300_guesses_across_two_processes_verify_at_most_the_budget() -> None:
    """300 concurrent getToken guesses split over two gateways: at most login_max_failures (5) are verified
    (answered 401); the others are refused before verification (429), in either process."""
    dsn = create_database()
    prefix = redis_prefix()
    # every guess comes from 127.0.0.1: lift the per-address connection cap so each one reaches the login
    env = dict(test_environ(dsn, prefix), DHIS2GW_LOGIN_MAX_FAILURES="5", DHIS2GW_MAX_CONNECTIONS_PER_ADDRESS="1000")
    first, second = GatewayProcess(dict(env), role="api"), GatewayProcess(dict(env), role="api")
    try:
        first.start()
        second.start()
        ports = [first.port, second.port] * 150
        with ThreadPoolExecutor(max_workers=100) as pool:
            statuses = list(pool.map(_guess, ports))
        # 429: the budget is spent; 503: Redis busy, refused without verifying (see dhis2gw.auth.throttle)
        assert statuses.count(401) + statuses.count(429) + statuses.count(503) == 300, sorted(set(statuses))
        assert statuses.count(401) <= 5, f"{statuses.count(401)} guesses were verified"
        assert statuses.count(429) >= 250, f"only {statuses.count(429)} refused by the budget"
    finally:
        first.stop()
        second.stop()
        drop_database(dsn)
