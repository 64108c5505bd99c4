"""Timing GET requests against a whole gateway started in this process (role ``api``).

Shared by the benchmarks that fill a database first and then time API reads over HTTP: the gateway
runs on the given database with the test Redis, a static authenticator, and a free port; each query
is asked once to warm up and then ``repeat`` times.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

#: (label, median ms, max ms, what ``measure`` made of the last answer)
Timing = tuple[str, float, float, int]


def bench_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments every such bench takes: ``--rows`` to fill and ``--repeat`` per query."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    return parser


def filled_database(what: str, fill: Callable[[str], float]) -> str:
    """A fresh migrated database on the test PostgreSQL filled by ``fill(dsn)`` (which returns its seconds)."""
    from tests.support.services import migrated_database

    dsn = migrated_database()
    print(f"filling {what} …", flush=True)
    print(f"filled in {fill(dsn):.1f} s")
    return dsn


async def time_gateway_queries(reactor: Any, dsn: str, queries: Sequence[tuple[str, str]], repeat: int,
                               measure: Callable[[bytes], int]) -> list[Timing]:
    """Start a gateway on ``dsn`` and time ``GET path`` for every ``(label, path)`` of ``queries``."""
    import treq

    from dhis2gw.config import load_config
    from dhis2gw.runtime.embedded import free_port
    from dhis2gw.wiring.root import build_gateway
    from tests.support.fake_auth import StaticAuthenticator
    from tests.support.services import delete_redis_prefix, redis_prefix, test_environ

    prefix = redis_prefix()
    config = load_config(None, test_environ(dsn, prefix, DHIS2GW_SERVER_PORT=str(free_port())))
    gateway = build_gateway(config, reactor, "api")
    gateway.router.authenticator = StaticAuthenticator()
    gateway.service.startService()
    port = (await gateway.listener.listening).getHost().port
    headers = {"Authorization": ["Test admin 1"]}
    results: list[Timing] = []
    try:
        for label, path in queries:
            times = []
            body = b""
            for i in range(repeat + 1):
                started = time.perf_counter()
                response = await treq.get(f"http://127.0.0.1:{port}{path}", headers=headers)
                body = await response.content()
                elapsed = (time.perf_counter() - started) * 1000
                if response.code != 200:
                    raise RuntimeError(f"{label}: {response.code} {body[:300]!r}")
                if i:
                    times.append(elapsed)
            results.append((label, statistics.median(times), max(times), measure(body)))
    finally:
        await gateway.service.stopService()
        delete_redis_prefix(prefix)
    return results


def react_for(work: Callable[[Any], Awaitable[list[Timing]]]) -> list[Timing]:
    """Run ``work(reactor)`` in a fresh reactor and return what it returned.

    ``task.react`` ends with ``SystemExit``: a zero exit is the normal end here, any other is raised.
    """
    from twisted.internet import defer, task

    results: list[Timing] = []

    async def go(reactor: Any) -> None:
        results.extend(await work(reactor))

    try:
        task.react(lambda reactor: defer.Deferred.fromCoroutine(go(reactor)))
    except SystemExit as e:
        if e.code:
            raise
    return results


def print_timings(title: str, results: Sequence[Timing], measured: str, label_width: int) -> None:
    """The results as a plain table under ``title``; ``measured`` heads the last column."""
    print(f"\n{title}")
    print(f"{'query':{label_width}} {'median ms':>10} {'max ms':>8} {measured:>9}")
    for label, med, worst, value in results:
        print(f"{label:{label_width}} {med:10.1f} {worst:8.1f} {value:9}")
