"""A two-worker fault rig: two ``dhis2gw --role worker`` processes, a simulator process, seeded rows.

Blocking helpers (subprocess, polling threads) for tests/fault only. ``TwoWorkerRun`` owns every
process and service of one scenario; ``DeliveredSampler`` records the delivered count over time so a
scenario can compare the drain rate before the fault with the rate after recovery; ``DropShare``
keeps the simulator's ``commit_then_drop`` fault at a fixed share of the requests it receives (the
simulator's rule takes a count, not a rate); ``check_zero_loss`` is the end-of-run verdict.
"""
from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import tempfile
import threading
import time
import urllib.error
from collections.abc import Callable
from typing import Any

import psycopg2
import psycopg2.extras

from dhis2gw.dhis2.uids import generate_uid
from dhis2gw.runtime.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from tests.support.processes import (
    DE_OPD,
    GatewayProcess,
    SimulatorProcess,
    expected_values,
    seed_submissions,
    status_counts,
    wait_until,
)
from tests.support.services import (
    _apply_migrations_blocking,
    create_database,
    delete_redis_prefix,
    drop_database,
    redis_prefix,
    services,
    test_environ,
)


def _count_delivered(conn: Any) -> tuple[int, int]:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FILTER (WHERE status = 'delivered'), count(*) FILTER (WHERE status = 'failed')"
                    " FROM submissions")
        delivered, failed = cur.fetchone()
    return int(delivered), int(failed)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class DeliveredSampler(threading.Thread):
    """Polls the delivered count every ``interval`` seconds into ``samples`` [(monotonic, delivered)]."""

    def __init__(self, dsn: str, interval: float = 0.2) -> None:
        super().__init__(daemon=True, name="delivered-sampler")
        self.dsn, self.interval = dsn, interval
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        conn = None
        while not self._halt.is_set():
            try:
                if conn is None:
                    conn = psycopg2.connect(self.dsn, connect_timeout=2)
                    conn.autocommit = True
                self.samples.append((time.monotonic(), _count_delivered(conn)[0]))
            except psycopg2.Error:
                conn = None  # PostgreSQL restarting: skip this sample, reconnect next time
            self._halt.wait(self.interval)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        """End the polling thread."""
        self._halt.set()
        self.join(10)

    def latest(self) -> int:
        """The last sampled delivered count (0 before the first sample)."""
        return self.samples[-1][1] if self.samples else 0

    def time_reaching(self, n: int) -> float:
        """First sample time at which at least ``n`` were delivered."""
        return next(t for t, d in self.samples if d >= n)

    def first_progress_after(self, t0: float) -> float:
        """Time of the first sample after ``t0`` whose count is higher than the count at ``t0``."""
        base = self.count_at(t0)
        return next((t for t, d in self.samples if t > t0 and d > base), t0)

    def count_at(self, t: float) -> int:
        """Delivered count of the last sample at or before ``t``."""
        best = 0
        for ts, d in self.samples:
            if ts > t:
                break
            best = d
        return best

    def timeline(self, t0: float, step: float = 1.0) -> list[int]:
        """Deliveries per ``step`` seconds from ``t0`` to the last sample (for diagnosing a slow drain)."""
        out, t = [], t0
        while self.samples and t < self.samples[-1][0]:
            out.append(self.count_at(t + step) - self.count_at(t))
            t += step
        return out

    def rate(self, t0: float, t1: float) -> float:
        """Submissions delivered per second between ``t0`` and ``t1``."""
        return (self.count_at(t1) - self.count_at(t0)) / max(t1 - t0, 1e-6)


class DropShare(threading.Thread):
    """Keeps the simulator dropping (after committing) about ``share`` of its requests while running.

    Every ``interval`` seconds: when the previous drops are used up, arm ``commit_then_drop`` with
    enough drops to bring the total to ``share`` × requests seen since the start.
    """

    def __init__(self, sim: SimulatorProcess, share: float = 0.1, interval: float = 0.2) -> None:
        super().__init__(daemon=True, name="drop-share")
        self.sim, self.share, self.interval = sim, share, interval
        self.armed = 0
        self._halt = threading.Event()

    def run(self) -> None:
        start = self.sim.control("state")["counts"]["requests"]
        while not self._halt.is_set():
            state = self.sim.control("state")
            remaining = (state["faults"].get("commit_then_drop") or {}).get("count", 0)
            want = int((state["counts"]["requests"] - start) * self.share) - self.armed
            if remaining <= 0 and want > 0:
                self.sim.control("faults", {"commit_then_drop": {"count": want, "paths": ["dataValueSets", "tracker"]}})
                self.armed += want
            self._halt.wait(self.interval)

    def stop(self) -> int:
        """Stop arming drops, disarm the rest; return how many drops were actually taken."""
        self._halt.set()
        self.join(10)
        left = (self.sim.control("state")["faults"].get("commit_then_drop") or {}).get("count", 0)
        self.sim.control("faults", {"commit_then_drop": 0})
        return self.armed - left


def worker_environ(dsn: str, redis_address: str, prefix: str, sim: SimulatorProcess, max_concurrent: int,
                   batching: bool) -> dict[str, str]:
    """Worker configuration: short leases, fast backoff and probes, so faults resolve within seconds."""
    env = test_environ(dsn, prefix)
    env.update({
        "DHIS2GW_REDIS": redis_address,
        "dhis2_base_url": sim.base_url, "dhis2_user": "admin", "dhis2_password": "district",
        "dhis2_auth_method": "basic",
        "DHIS2GW_MAX_CONCURRENT": str(max_concurrent),
        "DHIS2GW_BACKOFF_BASE": "0.2", "DHIS2GW_BACKOFF_CAP": "1",
        "DHIS2GW_REQUEST_PROCESS_INTERVAL": "0.5",
        "DHIS2GW_QUEUE_LEASE_SECONDS": "4", "DHIS2GW_QUEUE_HEARTBEAT_SECONDS": "1",
        "DHIS2GW_BREAKER_PROBE_INTERVAL": "0.5",
        "DHIS2GW_REDIS_TIMEOUT": "1",
        "DHIS2GW_REQUEST_LOG": "false",
        "DHIS2GW_DHIS2_READ_TIMEOUT": "30",
        # A port of its own, not test_environ's 9090: fault runs of several checkouts share this machine.
        "DHIS2GW_SERVER_PORT": str(free_port()),
    })
    if batching:
        # Small batches so a few hundred submissions still take many requests (faults hit mid-batch).
        env.update({"DHIS2GW_BATCH_ENABLED": "true", "DHIS2GW_BATCH_MAX_VALUES": "5",
                    "DHIS2GW_BATCH_LINGER_MS": "20"})
    return env


TRACKER_IDS = tuple[str, str, str]


class TwoWorkerRun:
    """Everything one scenario needs; ``close()`` stops it all (use as a context manager).

    ``count`` aggregate submissions (+ ``tracker`` tracker submissions) are seeded before the workers
    start; the workers' reconcilers queue them.
    """

    def __init__(self, count: int, *, latency: float, max_concurrent: int, batching: bool = False,
                 private_pg: bool = False, private_redis: bool = False, tracker: int = 0,
                 max_retries: int | None = None) -> None:
        self.count, self.tracker_count = count, tracker
        self.max_retries = max_retries
        self._cleanups: list[Callable[[], Any]] = []
        self.state_dir = tempfile.mkdtemp(prefix="dhis2gw-2w-")
        self._cleanups.append(lambda: shutil.rmtree(self.state_dir, ignore_errors=True))
        self.pg: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        try:
            self._start(latency, max_concurrent, batching, private_pg, private_redis)
        except BaseException:
            self.close()
            raise

    def _start(self, latency: float, max_concurrent: int, batching: bool, private_pg: bool,
               private_redis: bool) -> None:
        if private_pg:
            pg = self.pg = EmbeddedPostgres(self.state_dir)
            pg.start()
            self._cleanups.append(lambda: pg.stop("immediate"))
            conn = psycopg2.connect(pg.uri)
            conn.autocommit = True
            conn.cursor().execute("CREATE DATABASE faults")
            conn.close()
            self.dsn = pg.uri.rsplit("/", 1)[0] + "/faults"
        else:
            self.dsn = create_database()
            self._cleanups.append(lambda: drop_database(self.dsn))
        prefix = redis_prefix()
        if private_redis:
            redis = self.redis = EmbeddedRedis(self.state_dir, persist=False)
            redis.start()
            self._cleanups.append(redis.stop)
            redis_address = redis.address
        else:
            redis_address = services().redis_address
            self._cleanups.append(lambda: delete_redis_prefix(prefix))
        self.sim = SimulatorProcess(latency=latency)
        self.sim.start()
        self._cleanups.append(self.sim.stop)
        _apply_migrations_blocking(self.dsn)
        seed_submissions(self.dsn, self.count)
        self.tracker_ids = [self._seed_tracker() for _ in range(self.tracker_count)]
        self.env = worker_environ(self.dsn, redis_address, prefix, self.sim, max_concurrent, batching)
        if self.max_retries is not None:
            self.env["DHIS2GW_MAX_RETRIES"] = str(self.max_retries)
        self.sampler = DeliveredSampler(self.dsn)
        self.sampler.start()
        self._cleanups.append(self.sampler.stop)
        self.workers = [self._worker(), self._worker()]
        self.started = time.monotonic()

    def _seed_tracker(self) -> TRACKER_IDS:
        from tests.fault.test_tracker_crash import tracker_payload

        ids = (generate_uid(), generate_uid(), generate_uid())
        payload = json.dumps(tracker_payload(*ids))
        conn = psycopg2.connect(self.dsn)
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO submissions (uid, kind, destination, endpoint, payload, dhis2_payload,"
                        " import_params, value_count) VALUES (%s, 'tracker', 'main', '/api/v2/tracker', %s, %s,"
                        " '{}', 3)", (generate_uid(), payload, payload))
        conn.close()
        return ids

    def _worker(self) -> GatewayProcess:
        worker = GatewayProcess(self.env, role="worker")
        worker.start(wait=False)
        self._cleanups.append(worker.stop)
        return worker

    def restart_worker(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Kill worker ``index`` with ``sig`` and start a fresh one in its place."""
        self.workers[index].kill(sig)
        self.workers[index] = self._worker()

    @property
    def total(self) -> int:
        """Every seeded submission (aggregate and tracker)."""
        return self.count + self.tracker_count

    def wait_delivered(self, share: float, timeout: float = 600) -> None:
        """Block until ``share`` of the aggregate submissions are delivered."""
        wait_until(lambda: self.sampler.latest() >= self.count * share, timeout, 0.1,
                   what=f"{share:.0%} delivered")

    def outage(self, seconds: float) -> None:
        """Take the simulator off the network for ``seconds`` (its control answer may itself be cut off)."""
        try:
            self.sim.control("faults", {"outage": seconds})
        except (ConnectionError, http.client.HTTPException, urllib.error.URLError):
            pass  # the outage aborts open connections, sometimes this one before its answer is read
        wait_until(lambda: not _port_open(self.sim.port), 5, 0.05, what="the simulator to stop listening")

    def flushall(self) -> None:
        """FLUSHALL the private Redis."""
        assert self.redis is not None
        with socket.create_connection((self.redis.host, self.redis.port)) as sock:
            sock.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
            assert sock.recv(16).startswith(b"+OK")

    def wait_all_final(self) -> None:
        """Block until every submission is delivered (or one failed: then stop waiting)."""
        def done() -> bool:
            counts = status_counts(self.dsn)
            return counts.get("failed", 0) > 0 or counts.get("delivered", 0) == self.total
        wait_until(done, timeout=max(180, self.total / 10), interval=0.3, what="every submission final")

    def close(self) -> None:
        """Stop every process and remove every service (best effort, reverse order)."""
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass
        self._cleanups = []

    def __enter__(self) -> TwoWorkerRun:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def drain_rates(run: TwoWorkerRun, fault_start: float, recovered: float) -> tuple[float, float]:
    """(rate before the fault, rate after recovery) in submissions/s.

    Before: from the first delivery to ``fault_start``. After: from the first progress after
    ``recovered`` until 95 % is delivered (the tail, when fewer than max_concurrent remain, is not a rate).
    """
    s = run.sampler
    first = s.time_reaching(1)
    before = s.rate(first, fault_start)
    resumed = s.first_progress_after(recovered)
    end = s.time_reaching(int(run.total * 0.95))
    assert end > resumed, "the backlog was drained before the fault ended: no rate after recovery to measure"
    return before, s.rate(resumed, end)


def failed_details(dsn: str, limit: int = 5) -> list[dict[str, Any]]:
    """The first few failed submissions with their error and events (for an assertion message)."""
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute("SELECT id, kind, attempts, job_failures, http_status, error FROM submissions"
                    " WHERE status = 'failed' ORDER BY id LIMIT %s", (limit,))
        rows = [dict(r) for r in cur.fetchall()]
        for row in rows:
            cur.execute("SELECT event, status, attempt, http_status, detail FROM submission_events"
                        " WHERE submission_id = %s ORDER BY id", (row["id"],))
            row["events"] = [dict(e) for e in cur.fetchall()]
    conn.close()
    return rows


def check_zero_loss(run: TwoWorkerRun) -> dict[str, int]:
    """Assert: all delivered, none failed, the simulator holds exactly every value sent and one of
    each tracker object. Returns the simulator's re-import count (imports beyond one per value), the
    number of values, and the tracker objects with the writes the simulator took for them."""
    counts = status_counts(run.dsn)
    assert counts == {"delivered": run.total}, f"{counts}; failed: {failed_details(run.dsn)}"
    store = run.sim.control("store")
    values = {(v["orgUnit"], v["period"]): v["value"] for v in store["dataValues"]
              if v["dataElement"] == DE_OPD and not v.get("deleted")}
    expected = expected_values(run.count)
    missing = set(expected) - set(values)
    wrong = {k for k in expected if k in values and values[k] != expected[k]}
    extra = set(values) - set(expected)
    assert not (missing or wrong or extra), f"missing {len(missing)}, wrong {len(wrong)}, unexpected {len(extra)}"
    if run.tracker_ids:
        for kind, key, position in (("trackedEntities", "trackedEntity", 0), ("enrollments", "enrollment", 1),
                                    ("events", "event", 2)):
            uids = [o[key] for o in store[kind]]
            assert len(uids) == len(set(uids)) == run.tracker_count, (kind, len(uids))
            assert set(uids) == {ids[position] for ids in run.tracker_ids}, kind
    reimports = sum(max(0, c["count"] - 1) for c in store["writeCounts"] if isinstance(c["key"], list))
    tracker_uids = {uid for ids in run.tracker_ids for uid in ids}
    tracker_writes = sum(c["count"] for c in store["writeCounts"]
                         if isinstance(c["key"], str) and c["key"] in tracker_uids)
    return {"reimports": reimports, "values": len(values), "tracker_objects": len(tracker_uids),
            "tracker_writes": tracker_writes}
