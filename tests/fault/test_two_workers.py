"""Fault scenarios with TWO worker processes (``dhis2gw --role worker`` ×2) sharing PostgreSQL and Redis.

No API process: rows are seeded in PostgreSQL and both workers' reconcilers queue them. Each
scenario delivers to a simulator process while a fault happens, then checks on the simulator's side:
every value exactly as sent (and each tracker object once, where tracker rows are seeded), every
submission ``delivered`` (none ``failed`` because of the fault), and prints the drain rate before the
fault beside the rate after recovery (which must be at least half of it: "full rate", with room for
a noisy 2-core machine).

Sizes: the normal suite runs each scenario small (400 submissions, DHIS2 at 200 ms, 3 concurrent
per worker, a 5 s outage). ``make fault`` sets DHIS2GW_2W_SUBMISSIONS=20000, DHIS2GW_2W_LATENCY=0.05,
DHIS2GW_2W_CONCURRENCY=5 and DHIS2GW_2W_OUTAGE=300 (a 5-minute DHIS2 outage).
"""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

from tests.support.faults import DropShare, TwoWorkerRun, check_zero_loss, drain_rates

N = int(os.environ.get("DHIS2GW_2W_SUBMISSIONS", "400"))
LATENCY = float(os.environ.get("DHIS2GW_2W_LATENCY", "0.2"))
CONCURRENCY = int(os.environ.get("DHIS2GW_2W_CONCURRENCY", "3"))
OUTAGE = float(os.environ.get("DHIS2GW_2W_OUTAGE", "5"))
FULL = N >= 5000
TRACKER = 10
#: After recovery the drain rate must reach this share of the rate before the fault.
MIN_RECOVERY = 0.5


def _scenario(name: str, fault: Callable[[TwoWorkerRun], tuple[float, float]], *, batching: bool = False,
              tracker: int = 0, max_imports_per_value: float | None = None, **rig: Any) -> None:
    """Run ``fault`` (returns (fault_start, recovered) monotonic times) in a fresh two-worker rig.

    ``max_imports_per_value`` bounds the imports the simulator took per aggregate value (and per
    tracker object), where the scenario promises few re-imports.
    """
    count = N * 3 if batching else N  # batches of 5 drain faster: give the fault time to land mid-run
    with TwoWorkerRun(count, latency=LATENCY, max_concurrent=CONCURRENCY, batching=batching, tracker=tracker,
                      **rig) as run:
        fault_start, recovered = fault(run)
        run.wait_all_final()
        outcome = check_zero_loss(run)
        before, after = drain_rates(run, fault_start, recovered)
        took = time.monotonic() - run.started
        per_value = (outcome['values'] + outcome['reimports']) / max(1, outcome['values'])
        per_object = outcome["tracker_writes"] / max(1, outcome["tracker_objects"])
        print(f"\n[two-workers] {name}{' (batched)' if batching else ''}: {run.total} submissions in {took:.1f} s;"
              f" drain before {before:.1f}/s, after recovery {after:.1f}/s ({after / before:.0%});"
              f" re-imports {outcome['reimports']}; imports per value {per_value:.3f}"
              + (f"; tracker writes per object {per_object:.3f}" if outcome["tracker_objects"] else ""))
        if after < before * 0.8:
            print(f"[two-workers] per second from the fault on: {run.sampler.timeline(fault_start)}")
        assert after >= before * MIN_RECOVERY, f"backlog drained at {after:.1f}/s after recovery vs {before:.1f}/s"
        if max_imports_per_value is not None:
            assert per_value <= max_imports_per_value, f"{per_value:.3f} imports per value"
            assert per_object <= max_imports_per_value, f"{per_object:.3f} tracker writes per object"


def _kill_loop(run: TwoWorkerRun) -> tuple[float, float]:
    """Kill a worker every few seconds until 70 % is delivered, leaving a backlog to measure the rate on."""
    run.wait_delivered(0.2)
    fault_start = time.monotonic()
    interval, kills = (5.0, 10_000) if FULL else (2.0, 3)
    victim = 0
    for _ in range(kills):
        if _reached(run, 0.7):
            break
        run.restart_worker(victim, signal.SIGKILL)
        victim = 1 - victim  # alternate, so both workers die mid-lease at some point
        deadline = time.monotonic() + interval
        while time.monotonic() < deadline and not _reached(run, 0.7):
            time.sleep(0.1)
    return fault_start, time.monotonic()


def _reached(run: TwoWorkerRun, share: float) -> bool:
    return run.sampler.latest() >= run.count * share


def _commit_then_drop(run: TwoWorkerRun) -> tuple[float, float]:
    run.wait_delivered(0.2)
    fault_start = time.monotonic()
    dropper = DropShare(run.sim, 0.1)
    dropper.start()
    run.wait_delivered(0.7)
    taken = dropper.stop()
    print(f"\n[two-workers] commit-then-drop: {taken} imports committed then dropped")
    assert taken > 0
    return fault_start, time.monotonic()


def test_worker_kill9_every_few_seconds() -> None:
    """kill -9 one worker every few seconds (restarting it): nothing lost, each tracker object once."""
    _scenario("kill -9 loop", _kill_loop, tracker=TRACKER)


def test_worker_kill9_batched() -> None:
    """The kill -9 loop with aggregate batching on: a killed batch is redelivered, values exact."""
    _scenario("kill -9 loop", _kill_loop, batching=True)


def test_redis_restart_and_flushall() -> None:
    """Redis killed and restarted (no persistence), later FLUSHALLed: the queue is rebuilt from PostgreSQL."""

    def fault(run: TwoWorkerRun) -> tuple[float, float]:
        assert run.redis is not None
        run.wait_delivered(0.2)
        fault_start = time.monotonic()
        run.redis.stop(signal.SIGKILL)
        time.sleep(1)
        run.redis.start()
        run.wait_delivered(0.4)
        run.flushall()
        return fault_start, time.monotonic()

    _scenario("Redis restart + FLUSHALL", fault, private_redis=True)


def test_postgres_restart() -> None:
    """PostgreSQL restarted under both workers: unrecorded attempts are redelivered, nothing lost."""

    def fault(run: TwoWorkerRun) -> tuple[float, float]:
        assert run.pg is not None
        run.wait_delivered(0.2)
        fault_start = time.monotonic()
        run.pg.stop("fast")
        time.sleep(1)
        run.pg.start()
        return fault_start, time.monotonic()

    _scenario("PostgreSQL restart", fault, private_pg=True)


def test_dhis2_outage() -> None:
    """DHIS2 refuses connections for OUTAGE seconds: nothing fails, the backlog drains afterwards."""

    def fault(run: TwoWorkerRun) -> tuple[float, float]:
        run.wait_delivered(0.2)
        fault_start = time.monotonic()
        run.outage(OUTAGE)
        time.sleep(OUTAGE)
        return fault_start, time.monotonic()

    _scenario(f"DHIS2 outage {OUTAGE:.0f} s", fault)


#: A lost answer is read back from DHIS2 before anything is posted again (delivery/outcome_rules.py),
#: so 10 % of answers lost spends no retry: these scenarios run with the default max_retries (3).
LOSSY_RETRIES = None
#: The read-back resolves most lost answers (the issue's goal is 1.05 imports per value on average;
#: a lost answer whose read-back finds the data missing is posted again). Bound with room for noise.
MAX_IMPORTS_PER_VALUE = 1.10


def test_commit_then_drop_ten_percent() -> None:
    """10 % of imports are stored by DHIS2 but the answer is lost, with the default max_retries: nothing
    fails, the read-back confirms the lost answers (at most 1.10 imports per value), values exact."""
    _scenario("commit-then-drop 10 %", _commit_then_drop, tracker=TRACKER, max_retries=LOSSY_RETRIES,
              max_imports_per_value=MAX_IMPORTS_PER_VALUE)


def test_commit_then_drop_batched() -> None:
    """Commit-then-drop with batching on and the default max_retries: each row of a dropped batch is
    read back (at most 1.10 imports per value), nothing fails, values exact."""
    _scenario("commit-then-drop 10 %", _commit_then_drop, batching=True, max_retries=LOSSY_RETRIES,
              max_imports_per_value=MAX_IMPORTS_PER_VALUE)


def test_slow_dhis2_bodies() -> None:
    """DHIS2 trickles its answers (16 bytes every 50 ms) for a while: slower, but nothing lost or failed."""

    def fault(run: TwoWorkerRun) -> tuple[float, float]:
        run.wait_delivered(0.2)
        fault_start = time.monotonic()
        run.sim.control("faults", {"slow_body": {"chunk_size": 16, "chunk_delay": 0.05,
                                                 "paths": ["dataValueSets"]}})
        time.sleep(60 if FULL else 5)
        run.sim.control("faults", {"slow_body": None})
        return fault_start, time.monotonic()

    _scenario("slow DHIS2 bodies", fault)
