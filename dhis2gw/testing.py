"""Fakes for fast tests: the delivery engine on a ``task.Clock``, with no PostgreSQL, Redis or socket.

* `MemorySubmissionStore`, `MemorySubmissionQueue`: what the delivery worker and the dispatcher use of
  `SubmissionStore` and `SubmissionQueue`, in memory, with their rules (the lease-token guard, final
  rows never taken again, FIFO claims, released and due ids claimed next).
* `sim_client(version, clock)`: a real `DHIS2Client` and the real simulator, through ``StubTreq``.
  The simulator's waits and the client's timeouts run on the same Clock: a hang is a request never
  answered until the Clock passes the client's ``read_timeout``.
* `ScriptedKind`, `ScriptedHealthCheck`: answers a test scripts, each when it advances the Clock.

A fake's public methods are the real class's, as declared there (`signature_mismatches`, checked in
``tests/test_testing.py``, with a contract suite run on both); test-only helpers are `fake_helper`.
"""
from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from treq.testing import StubTreq
from twisted.internet import error, task
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from zope.interface import implementer

from dhis2gw.dhis2.auth import BasicAuth, DHIS2Auth
from dhis2gw.dhis2.client import DHIS2Client
from dhis2gw.dhis2.outcome import Outcome, ReadBack
from dhis2gw.sim import Metadata, Simulator
from dhis2gw.storage.statuses import FINAL_STATES, PENDING_STATES, PROCESSING, QUEUED
from dhis2gw.storage.submissions import SUMMARY_COLUMNS, utc

F = TypeVar("F", bound=Callable[..., Any])
_SUMMARY = tuple(c.strip() for c in SUMMARY_COLUMNS.split(","))
_ATTEMPT = _SUMMARY + ("dhis2_payload", "import_params", "payload")
_FULL = _SUMMARY + ("payload", "dhis2_payload", "import_params", "response", "conflicts", "lease_owner")


def fake_helper(fn: F) -> F:
    """Mark a fake's method that only tests call (it has no counterpart in the real class)."""
    fn.fake_helper = True  # type: ignore[attr-defined]
    return fn


def signature_mismatches(fake: type, real: type) -> list[str]:
    """Public methods of ``fake`` that the real class lacks or declares differently (empty when it fits)."""
    problems = []
    for name, method in inspect.getmembers(fake, inspect.isfunction):
        if name.startswith("_") or getattr(method, "fake_helper", False):
            continue
        original = getattr(real, name, None)
        if original is None:
            problems.append(f"{fake.__name__}.{name}: {real.__name__} has no such method")
        elif inspect.signature(method) != inspect.signature(original):
            problems.append(f"{fake.__name__}.{name}{inspect.signature(method)} != {inspect.signature(original)}")
        elif inspect.iscoroutinefunction(method) != inspect.iscoroutinefunction(original):
            problems.append(f"{fake.__name__}.{name}: async in one class only")
    return problems


class MemorySubmissionStore:
    """`SubmissionStore` in memory: rows keyed by id, their events, and every ``record`` call made."""

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.rows: dict[int, dict[str, Any]] = {}
        self.event_rows: dict[int, list[dict[str, Any]]] = {}
        #: Each ``record`` call that changed a row: its arguments, ``id`` and ``status`` included.
        self.records: list[dict[str, Any]] = []

    def _now(self) -> datetime:
        return utc(self.clock.seconds())

    def _event(self, sid: int, event: str, status: str | None = None, **fields: Any) -> None:
        detail = (fields.pop("detail", None) or "")[:1000] or None
        self.event_rows.setdefault(sid, []).append(dict(
            {"at": self._now(), "event": event, "status": status, "attempt": None, "destination": None,
             "http_status": None, "duration_ms": None, "actor": None}, detail=detail, **fields))

    @fake_helper
    def add(self, **columns: Any) -> int:
        """A queued row with ``columns`` set (``id`` too, if given), as if ingest had made it; its id."""
        sid = int(columns.pop("id", max(self.rows, default=0) + 1))
        row = dict.fromkeys(_FULL)
        row.update(id=sid, kind="aggregate", destination="main", status=QUEUED, attempts=0, job_failures=0,
                   created_at=self._now(), updated_at=self._now(), dhis2_payload={}, import_params={})
        row.update(columns)
        self.rows[sid] = row
        self._event(sid, QUEUED, QUEUED, destination=row["destination"])
        return sid

    @fake_helper
    def last(self, submission_id: int) -> dict[str, Any]:
        """The last ``record`` call made for one submission."""
        return [r for r in self.records if r["id"] == submission_id][-1]

    async def get(self, submission_id: int, with_payloads: bool = True) -> dict[str, Any] | None:
        row = self.rows.get(submission_id)
        return None if row is None else {c: row[c] for c in (_FULL if with_payloads else _SUMMARY)}

    async def events(self, submission_id: int) -> list[dict[str, Any]]:
        return [dict(e) for e in self.event_rows.get(submission_id, [])]

    async def start_attempt(self, submission_id: int, token: str, destination: str) -> dict[str, Any] | None:
        row = self.rows.get(submission_id)
        if row is None or row["status"] not in PENDING_STATES:
            return None
        row.update(status=PROCESSING, attempts=row["attempts"] + 1, lease_owner=token,
                   last_attempt_at=self._now(), updated_at=self._now())
        self._event(submission_id, PROCESSING, PROCESSING, attempt=row["attempts"], destination=destination)
        return {c: row[c] for c in _ATTEMPT}

    async def start_attempts(self, submission_ids: Sequence[int], token: str,
                             destination: str) -> list[dict[str, Any]]:
        return [r for r in [await self.start_attempt(i, token, destination) for i in sorted(set(submission_ids))]
                if r is not None]

    async def save_job(self, submission_id: int, token: str, job_id: str) -> bool:
        row = self.rows.get(submission_id)
        if row is None or row["lease_owner"] != token:
            return False
        row.update(dhis2_job_id=job_id, updated_at=self._now())
        return True

    async def record(self, submission_id: int, token: str, status: str, *, event: str,
                     attempt: int | None = None, destination: str | None = None,
                     http_status: int | None = None, duration_ms: int | None = None,
                     response: Any = None, import_count: Any = None, conflicts: Any = None,
                     error: str | None = None, next_attempt_at: datetime | None = None,
                     spent_retry: bool = False, detail: str | None = None,
                     keep_response: bool = True) -> bool:
        row = self.rows.get(submission_id)
        if row is None or token is None or row["lease_owner"] != token:
            return False
        final = status in FINAL_STATES
        row.update(status=status, updated_at=self._now(), finished_at=self._now() if final else None,
                   next_attempt_at=next_attempt_at, job_failures=row["job_failures"] + (1 if spent_retry else 0),
                   error=error, lease_owner=token if status == PROCESSING else None)
        for column, value in (("http_status", http_status), ("import_count", import_count),
                              ("conflicts", conflicts)):
            row[column] = row[column] if value is None else value
        if keep_response and response is not None:
            row["response"] = response
        if final:
            row["dhis2_job_id"] = None
        self._event(submission_id, event, status, attempt=attempt, destination=destination,
                    http_status=http_status, duration_ms=duration_ms, detail=detail or error)
        self.records.append(dict(id=submission_id, status=status, event=event, attempt=attempt,
                                 http_status=http_status, error=error, detail=detail, spent_retry=spent_retry,
                                 next_attempt_at=next_attempt_at, import_count=import_count, conflicts=conflicts))
        return True

    async def pending(self, after_id: int, limit: int) -> list[dict[str, Any]]:
        ids = sorted(i for i, r in self.rows.items() if i > after_id and r["status"] in PENDING_STATES)[:limit]
        return [{c: self.rows[i][c] for c in ("id", "destination", "status", "next_attempt_at", "lease_owner")}
                for i in ids]

    async def reset_processing(self, ids: Sequence[int], event: str, detail: str) -> list[int]:
        reset = [i for i in ids if i in self.rows and self.rows[i]["status"] == PROCESSING]
        for i in reset:
            self.rows[i].update(status=QUEUED, lease_owner=None, updated_at=self._now())
            self._event(i, event, QUEUED, destination=self.rows[i]["destination"], detail=detail)
        return reset

    async def add_events(self, ids: Iterable[int], event: str, detail: str) -> None:
        for i in ids:
            if i in self.rows:
                self._event(i, event, destination=self.rows[i]["destination"], detail=detail)


class _MemoryKeys:
    """The plain Redis commands the dispatcher sends itself (its sentinel key)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def call(self, command: str, key: str, *args: Any) -> Any:
        if command == "SET":
            if "NX" in args[1:] and key in self.values:
                return None
            self.values[key] = str(args[0])
            return "OK"
        raise NotImplementedError(f"MemorySubmissionQueue.redis does not do {command}")


class MemorySubmissionQueue:
    """`SubmissionQueue` in memory, lease times on the injected clock; ``calls`` lists what was done to ids."""

    def __init__(self, clock: IReactorTime, prefix: str = "memory", lease_seconds: float = 60.0) -> None:
        self.clock = clock
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        self.redis = _MemoryKeys()
        self.ready: dict[str, deque[int]] = {}  # the right end is claimed next
        self.processing: dict[str, list[int]] = {}
        self.leases: dict[tuple[str, int], float] = {}
        self.delayed: dict[tuple[str, int], float] = {}
        self.members: set[tuple[str, int]] = set()
        #: ``(operation, destination, id)`` for each ack/release/delay (delay adds the seconds until due).
        self.calls: list[tuple[Any, ...]] = []

    def _lease_until(self) -> float:
        return self.clock.seconds() + self.lease_seconds

    def _take(self, dest: str, submission_id: int) -> None:
        if submission_id in self.processing.get(dest, []):
            self.processing[dest].remove(submission_id)
        self.leases.pop((dest, submission_id), None)

    async def enqueue(self, dest: str, submission_id: int, timeout: float | None = None) -> bool:
        if (dest, submission_id) in self.members:
            return False
        self.members.add((dest, submission_id))
        self.ready.setdefault(dest, deque()).appendleft(submission_id)
        return True

    async def schedule(self, dest: str, submission_id: int, due: float) -> bool:
        if (dest, submission_id) in self.members:
            return False
        self.members.add((dest, submission_id))
        self.delayed[(dest, submission_id)] = due
        return True

    async def claim(self, dest: str) -> int | None:
        ids = await self.claim_many(dest, 1)
        return ids[0] if ids else None

    async def claim_many(self, dest: str, count: int) -> list[int]:
        ready = self.ready.get(dest)
        out: list[int] = []
        while ready and len(out) < count:
            sid = ready.pop()
            self.processing.setdefault(dest, []).append(sid)
            self.leases[(dest, sid)] = self._lease_until()
            out.append(sid)
        return out

    async def heartbeat_many(self, dest: str, submission_ids: list[int]) -> int:
        return sum([await self.heartbeat(dest, sid) for sid in submission_ids])

    async def heartbeat(self, dest: str, submission_id: int) -> bool:
        if (dest, submission_id) not in self.leases:
            return False
        self.leases[(dest, submission_id)] = self._lease_until()
        return True

    async def ack(self, dest: str, submission_id: int) -> None:
        self.calls.append(("ack", dest, submission_id))
        self._take(dest, submission_id)
        self.members.discard((dest, submission_id))

    async def release(self, dest: str, submission_id: int) -> None:
        self.calls.append(("release", dest, submission_id))
        self._take(dest, submission_id)
        self.ready.setdefault(dest, deque()).append(submission_id)

    async def delay(self, dest: str, submission_id: int, due: float) -> None:
        self.calls.append(("delay", dest, submission_id, due - self.clock.seconds()))
        self._take(dest, submission_id)
        self.delayed[(dest, submission_id)] = due

    async def move_due(self, limit: int = 1000) -> int:
        due = sorted((t, m) for m, t in self.delayed.items() if t <= self.clock.seconds())[:limit]
        for _, (dest, sid) in due:
            del self.delayed[(dest, sid)]
            self.ready.setdefault(dest, deque()).append(sid)
        return len(due)

    async def reap(self, limit: int = 1000) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for dest, ids in self.processing.items():
            for sid in list(ids):
                lease = self.leases.get((dest, sid))
                if len(out) < limit and (lease is None or lease <= self.clock.seconds()):
                    self._take(dest, sid)
                    self.ready.setdefault(dest, deque()).append(sid)
                    out.append((dest, sid))
        return out

    async def known(self, members: Iterable[tuple[str, int]]) -> list[bool]:
        return [(dest, sid) in self.members for dest, sid in members]


class ScriptedKind:
    """A submission kind whose deliveries and read-backs answer ``(seconds on the Clock, answer)`` per id."""

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.deliveries: dict[int, list[tuple[float, Outcome]]] = {}
        self.reads: dict[int, list[tuple[float, ReadBack | None]]] = {}
        self.delivered: list[int] = []
        self.read: list[int] = []

    async def deliver(self, client: Any, submission: dict[str, Any], context: Any) -> Any:
        self.delivered.append(submission["id"])
        delay, outcome = self.deliveries[submission["id"]].pop(0)
        return await task.deferLater(self.clock, delay, lambda: outcome)

    async def read_back(self, client: Any, submission: dict[str, Any]) -> Any:
        self.read.append(submission["id"])
        delay, read = self.reads[submission["id"]].pop(0)
        return await task.deferLater(self.clock, delay, lambda: read)


class ScriptedHealthCheck:
    """A client whose ``health_check`` (``GET /api/me``) gives the scripted ``answers``, each ``delay`` later."""

    def __init__(self, clock: IReactorTime, answers: Sequence[Outcome] = (), delay: float = 1.0) -> None:
        self.clock, self.answers, self.delay, self.checks = clock, list(answers), delay, 0

    async def health_check(self) -> Outcome:
        self.checks += 1
        answer = self.answers.pop(0)  # chosen when the check starts
        return await task.deferLater(self.clock, self.delay, lambda: answer)


@implementer(IReactorTime)
class _FlushingClock:
    """The simulator's view of the test's Clock: whatever a timed call wrote is delivered at once."""

    def __init__(self, clock: IReactorTime, flush: Callable[[], None]) -> None:
        self._clock, self._flush = clock, flush

    def seconds(self) -> float:
        return self._clock.seconds()

    def callLater(self, delay: float, callable: Callable[..., Any], *args: object,  # noqa: N802, A002 - IReactorTime's names
                  **kwargs: object) -> IDelayedCall:
        def fire() -> None:
            try:
                callable(*args, **kwargs)
            finally:
                self._flush()

        return self._clock.callLater(delay, fire)

    def getDelayedCalls(self) -> Sequence[IDelayedCall]:  # noqa: N802
        return self._clock.getDelayedCalls()


class MemorySimulatorServer:
    """A `Simulator` served to clients through ``StubTreq`` (their ``http``): no socket, all on the clock.

    It stands in for `dhis2gw.sim.SimulatorServer` as ``sim.server``: ``outage(seconds)`` refuses new
    connections (requests already sent are still answered).
    """

    base_url = "http://dhis2.sim"

    def __init__(self, version: str, clock: IReactorTime, **sim_options: Any) -> None:
        self.clock = clock
        self.sim = Simulator(version, clock=_FlushingClock(clock, self.flush), **sim_options)
        self.sim.server = self
        self._stub: Any = StubTreq(self.sim.app.resource())  # its methods are set at run time
        self._down_until = float("-inf")

    @property
    def listening(self) -> bool:
        """False during an outage."""
        return self.clock.seconds() >= self._down_until

    def request(self, method: str, url: str, *, params: Any = None, headers: Any = None, data: Any = None,
                allow_redirects: bool = True, unbuffered: bool = False, reactor: Any = None) -> Deferred[Any]:
        """treq's ``request`` (`dhis2gw.dhis2.client.TreqLike`); connection refused during an outage."""
        if not self.listening:
            return fail(error.ConnectionRefusedError("simulated outage"))
        d: Deferred[Any] = self._stub.request(method, url, params=params, headers=headers, data=data,
                                              allow_redirects=allow_redirects, unbuffered=unbuffered)
        self.flush()  # also tells the simulator about connections earlier clients gave up on
        return d

    def flush(self) -> None:
        """Move every byte waiting between the clients and the simulator."""
        self._stub.flush()

    def outage(self, seconds: float) -> Deferred[None]:
        """Refuse connections for ``seconds`` on the clock; the Deferred fires when they are over."""
        self._down_until = self.clock.seconds() + seconds
        return task.deferLater(self.clock, seconds, lambda: None)

    def client(self, auth: DHIS2Auth | None = None, **options: Any) -> DHIS2Client:
        """A `DHIS2Client` on this server (``admin``/``district`` unless ``auth``), timeouts on the clock."""
        return DHIS2Client(self.clock, self.base_url, auth or BasicAuth("admin", "district"),
                           clock=self.sim.clock, http=self, **options)  # a timeout reaches the simulator at once


def sim_client(version: str, clock: IReactorTime, *, auth: DHIS2Auth | None = None,
               metadata: Metadata | None = None, **options: Any) -> tuple[DHIS2Client, Simulator]:
    """A real `DHIS2Client` and the simulated DHIS2 ``version`` it talks to in memory, both on ``clock``.

    The simulator's wall time is the clock's: start the Clock at a real date. ``metadata`` is the
    simulator's (default: the bundled country, loaded anew); ``options`` go to the client
    (``read_timeout``, …). ``sim.server.outage(seconds)`` refuses connections for a while.
    """
    server = MemorySimulatorServer(version, clock, metadata=metadata)
    return server.client(auth, **options), server.sim
