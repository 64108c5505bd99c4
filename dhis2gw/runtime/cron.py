"""Cron: APScheduler 3.x ``TwistedScheduler`` with an in-reactor executor, and the run log.

Why not APScheduler's defaults (stack-notes pitfall 7): ``TwistedScheduler``'s executor runs jobs
in the reactor's thread pool, where txpostgres/treq/txredisapi must not be used, and reports an
``async def`` job "executed" without awaiting it. `ReactorExecutor` runs each job in the reactor
thread and awaits its Deferred/coroutine; ``max_instances`` counts a job until that completes.

Pieces:

* `JobRunner` — runs one job execution: claims it in ``cron_runs`` (see
  `dhis2gw.storage.cron_runs`: one process per scheduled fire time, never two runs of a job at
  once across processes), awaits the work, closes the row with outcome ``ok``/``error`` and the
  counts. It exists on every role, so ``POST /sync/orgunits`` works on an API-only process too.
* `Cron` — the service owning the scheduler: every `CronJob` with a crontab expression in the
  configured time zone, ``max_instances=1``, ``coalesce=True``, ``misfire_grace_time``.
  The composition root hands it every job at construction: the built-in ones and the plugins'
  `dhis2gw.interfaces.ICronJob` (``dhis2gw.wiring.features``).
* Time is injected: the scheduler's "now" is ``clock.seconds()`` (APScheduler reads
  ``datetime.now`` in its job loop; that name is pointed at the clock while the scheduler's own
  methods run, always in the reactor thread), and its wake-ups are ``clock.callLater`` calls, so a
  ``task.Clock`` drives it in tests exactly as the reactor does in production.
* APScheduler's stdlib ``logging`` goes to ``twisted.logger``.

``apscheduler.schedulers.twisted`` installs the default reactor when imported, so it is only
imported inside functions here.
"""
from __future__ import annotations

import functools
import logging
import socket
import sys
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel

from dhis2gw.storage.cron_runs import CronRunStore

log = Logger(namespace="dhis2gw.runtime.cron")

Work = Callable[[], Awaitable[Any]]


@dataclass
class CronJob:
    """One scheduled job: a name, a five-field crontab expression and the async work (returns counts)."""

    name: str
    cron_expression: str
    work: Work
    stale_after: float = 6 * 3600.0  # an unfinished run older than this no longer blocks the job


class JobBusy(Exception):
    """The job is already running (here or in another gateway process), or this fire time was taken."""


@dataclass(frozen=True)
class RunResult:
    """One finished execution."""

    run_id: int
    outcome: str
    detail: Any


class JobRunner:
    """Claims, runs and logs job executions (one ``cron_runs`` row each)."""

    def __init__(self, runs: CronRunStore, host: str | None = None) -> None:
        self.runs = runs
        self.host = host or socket.gethostname()
        self.running: dict[str, datetime | None] = {}  # job -> scheduled_for of the run in progress here

    async def execute(self, job: CronJob, scheduled_for: datetime | None = None) -> RunResult:
        """Run ``job`` once if the claim succeeds; raises `JobBusy` when it does not."""
        run_id = await self.runs.claim(job.name, scheduled_for, self.host, job.stale_after)
        if run_id is None:
            raise JobBusy(job.name)
        self.running[job.name] = scheduled_for
        try:
            detail = await job.work()
        except Exception as e:  # noqa: BLE001 - a failing job is logged and recorded, never fatal
            log.failure("cron job {job} failed", job=job.name)
            detail = {"error": f"{type(e).__name__}: {e}"}
            outcome = "error"
        else:
            outcome = "ok"
            detail = _jsonable(detail)
        finally:
            self.running.pop(job.name, None)
        await self.runs.finish(run_id, outcome, detail)
        # A routine run is no change of the service's state (its job logs what it changed): debug.
        log.debug("cron job {job} finished: {outcome} {detail}", job=job.name, outcome=outcome, detail=detail)
        return RunResult(run_id, outcome, detail)


def _jsonable(value: Any) -> Any:
    """Counts for the run log: dicts as they are, dataclasses as dicts, anything else wrapped."""
    import dataclasses

    if value is None:
        return {}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return value
    return {"result": value if isinstance(value, (int, float, str, bool, list)) else repr(value)}


def next_fire_time(expression: str, timezone: tzinfo, now: datetime) -> datetime | None:
    """The next time ``expression`` fires after ``now`` (in ``timezone``)."""
    from apscheduler.triggers.cron import CronTrigger

    fire: datetime | None = CronTrigger.from_crontab(expression, timezone=timezone).get_next_fire_time(None, now)
    return fire


# ----------------------------------------------------------------------------- APScheduler glue

class _TwistedLogHandler(logging.Handler):
    """Forwards stdlib log records (APScheduler's) to twisted.logger."""

    _levels = {logging.DEBUG: LogLevel.debug, logging.INFO: LogLevel.info, logging.WARNING: LogLevel.warn,
               logging.ERROR: LogLevel.error, logging.CRITICAL: LogLevel.critical}

    def emit(self, record: logging.LogRecord) -> None:
        level = self._levels.get(record.levelno, LogLevel.info)
        Logger(namespace=record.name).emit(level, "{message}", message=record.getMessage())


def bridge_apscheduler_logging(level: int = logging.INFO) -> None:
    """Send the ``apscheduler`` stdlib loggers to twisted.logger (idempotent)."""
    logger = logging.getLogger("apscheduler")
    if not any(isinstance(h, _TwistedLogHandler) for h in logger.handlers):
        logger.addHandler(_TwistedLogHandler())
    logger.setLevel(level)
    logger.propagate = False


class _ClockReactor:
    """What ``TwistedScheduler`` needs from a reactor, on an injected clock.

    ``callFromThread`` calls at once: every caller of the scheduler is in the reactor thread.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock

    def callLater(self, delay: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        return self.clock.callLater(delay, fn, *args, **kwargs)

    def callFromThread(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:  # noqa: N802
        fn(*args, **kwargs)


def _reactor_executor_class() -> type:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
    from apscheduler.executors.base import BaseExecutor

    class ReactorExecutor(BaseExecutor):
        """Runs jobs in the reactor thread and awaits their Deferred or coroutine.

        A job function receives the scheduled fire time as keyword ``scheduled_for``. Jobs start
        after ``submit_job`` has counted the instance, so a job that finishes synchronously is
        still accounted correctly. ``_do_submit_job`` (the hook every executor implements) and
        ``_run_job_success`` (how an executor reports) are APScheduler's private executor API:
        tests/packaging/test_apscheduler.py checks them on the pinned version.
        """

        def __init__(self, clock: IReactorTime) -> None:
            super().__init__()
            self.clock = clock
            self.pending: list[tuple[Any, list[datetime]]] = []
            self.in_flight: set[defer.Deferred[None]] = set()
            # The name BaseExecutor.start gives the default executor's logger.
            self.logger = logging.getLogger("apscheduler.executors.default")

        def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
            self.pending.append((job, run_times))

        def submit_job(self, job: Any, run_times: list[datetime]) -> None:
            super().submit_job(job, run_times)
            while self.pending:
                queued, times = self.pending.pop(0)
                d = defer.Deferred.fromCoroutine(self._run(queued, times))
                self.in_flight.add(d)

                def forget(result: Any, d: defer.Deferred[None] = d) -> Any:
                    self.in_flight.discard(d)
                    return result

                d.addBoth(forget)

        async def _run(self, job: Any, run_times: list[datetime]) -> None:
            events = []
            for run_time in run_times:
                now = datetime.fromtimestamp(self.clock.seconds(), run_time.tzinfo)
                if job.misfire_grace_time is not None and now - run_time > timedelta(seconds=job.misfire_grace_time):
                    events.append(JobExecutionEvent(EVENT_JOB_MISSED, job.id, None, run_time))
                    self.logger.warning('Run time of job "%s" was missed by %s', job, now - run_time)
                    continue
                try:
                    retval = job.func(*job.args, scheduled_for=run_time, **job.kwargs)
                    if isinstance(retval, defer.Deferred) or hasattr(retval, "__await__"):
                        retval = await defer.ensureDeferred(retval)
                except Exception as exc:  # noqa: BLE001 - reported as an APScheduler job error
                    tb = "".join(traceback.format_tb(sys.exc_info()[2]))
                    events.append(JobExecutionEvent(EVENT_JOB_ERROR, job.id, None, run_time, exception=exc,
                                                    traceback=tb))
                    self.logger.error('Job "%s" raised %r', job, exc)
                else:
                    events.append(JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, None, run_time, retval=retval))
            self._run_job_success(job.id, events)

    return ReactorExecutor


# The public scheduler methods that reach a ``datetime.now`` of apscheduler.schedulers.base
# (directly, or through _real_add_job / _process_jobs): each runs with that name on the clock.
CLOCK_METHODS = ("start", "add_job", "reschedule_job", "resume_job", "wakeup")


def _clock_scheduler_class() -> type:
    import apscheduler.schedulers.base as aps_base
    from apscheduler.schedulers.twisted import TwistedScheduler

    class ClockScheduler(TwistedScheduler):
        """``TwistedScheduler`` whose notion of now is the injected clock (see module docstring).

        Built from public options only: the reactor (``reactor=``) is the clock, the default
        executor (``executors=``) is a `ReactorExecutor`. The one private reliance is the module
        global ``datetime`` of ``apscheduler.schedulers.base``, pointed at the clock while a
        method of `CLOCK_METHODS` runs.
        """

        def __init__(self, clock: IReactorTime, **options: Any) -> None:
            self.clock = clock
            self.executor = _reactor_executor_class()(clock)
            real = datetime

            class ClockDatetime(datetime):
                @classmethod
                def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
                    return real.fromtimestamp(clock.seconds(), tz)

            self.clock_datetime = ClockDatetime
            super().__init__(reactor=_ClockReactor(clock), executors={"default": self.executor}, **options)

        def on_clock(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            """Call ``fn`` with APScheduler's ``datetime.now`` reading the clock."""
            saved = aps_base.datetime
            aps_base.datetime = self.clock_datetime
            try:
                return fn(*args, **kwargs)
            finally:
                aps_base.datetime = saved

        def start(self, *args: Any, **kwargs: Any) -> Any:
            return self.on_clock(super().start, *args, **kwargs)

        def add_job(self, *args: Any, **kwargs: Any) -> Any:
            return self.on_clock(super().add_job, *args, **kwargs)

        def reschedule_job(self, *args: Any, **kwargs: Any) -> Any:
            return self.on_clock(super().reschedule_job, *args, **kwargs)

        def resume_job(self, *args: Any, **kwargs: Any) -> Any:
            return self.on_clock(super().resume_job, *args, **kwargs)

        def wakeup(self) -> Any:
            return self.on_clock(super().wakeup)

    return ClockScheduler


@functools.cache
def _scheduler_class() -> type:
    return _clock_scheduler_class()


def make_scheduler(clock: IReactorTime, timezone: tzinfo, misfire_grace: float) -> Any:
    """A (not started) ``TwistedScheduler`` on ``clock`` with the in-reactor executor as default.

    Its ``executor`` attribute is that executor (``in_flight``: the executions running now).
    """
    bridge_apscheduler_logging()
    return _scheduler_class()(clock, timezone=timezone, job_defaults={
        "max_instances": 1, "coalesce": True, "misfire_grace_time": int(misfire_grace)})


# ----------------------------------------------------------------------------- the service

class Cron(service.Service):
    """Schedules `CronJob`s (plus plugin jobs found at start) and runs them through a `JobRunner`."""

    name = "cron"

    def __init__(self, clock: IReactorTime, runner: JobRunner, jobs: list[CronJob], timezone: tzinfo, *,
                 misfire_grace: float = 300.0, ready: defer.Deferred[Any] | None = None,
                 extra_jobs: Callable[[], list[CronJob]] | None = None,
                 shutdown_timeout: float = 30.0) -> None:
        self.clock = clock
        self.runner = runner
        self.jobs: dict[str, CronJob] = {j.name: j for j in jobs}
        self.timezone = timezone
        self.misfire_grace = misfire_grace
        self.ready = ready
        self.extra_jobs = extra_jobs
        self.shutdown_timeout = shutdown_timeout
        self.scheduler: Any = None
        self.skipped: dict[str, int] = {}  # job -> fire times another process (or a running job) took
        self.started: defer.Deferred[None] = defer.Deferred()
        self._starting: defer.Deferred[None] | None = None

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self._starting = defer.Deferred.fromCoroutine(self._start())
        self._starting.addErrback(lambda f: log.failure("cron start-up failed", f))

    async def _start(self) -> None:
        if self.ready is not None:
            await self.ready
        if not self.running:
            return
        for job in (self.extra_jobs() if self.extra_jobs else []):
            if job.name in self.jobs:
                log.warn("cron job {job} is defined twice; keeping the first", job=job.name)
                continue
            self.jobs[job.name] = job
        self.scheduler = make_scheduler(self.clock, self.timezone, self.misfire_grace)
        from apscheduler.triggers.cron import CronTrigger

        for job in self.jobs.values():
            self.scheduler.add_job(self._firer(job), CronTrigger.from_crontab(job.cron_expression,
                                                                             timezone=self.timezone),
                                   id=job.name, name=job.name)
        self.scheduler.start()
        log.info("cron started: {jobs}", jobs=", ".join(f"{j.name} [{j.cron_expression}]"
                                                        for j in self.jobs.values()) or "no jobs")
        self.started.callback(None)

    def _firer(self, job: CronJob) -> Callable[..., Awaitable[RunResult | None]]:
        async def fire(scheduled_for: datetime | None = None) -> RunResult | None:
            try:
                return await self.runner.execute(job, scheduled_for)
            except JobBusy:
                self.skipped[job.name] = self.skipped.get(job.name, 0) + 1
                log.info("cron job {job} at {at}: taken by another process or still running; skipped",
                         job=job.name, at=scheduled_for)
                return None

        return fire

    def stopService(self) -> defer.Deferred[None]:  # noqa: N802
        super().stopService()
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        # Not started yet (still waiting for the database): nothing to stop; _start sees
        # ``running`` is False when ``ready`` fires and returns.
        if self._starting is not None and self.started.called:
            await self._starting
        if self.scheduler is None or not self.scheduler.running:
            return
        self.scheduler.shutdown(wait=False)
        running = list(self.scheduler.executor.in_flight)
        if running:
            waiting = defer.DeferredList(running, consumeErrors=True)
            waiting.addTimeout(self.shutdown_timeout, self.clock)
            try:
                await waiting
            except defer.TimeoutError:
                log.warn("cron: {n} jobs still running at shutdown", n=len(running))

    def next_run(self, name: str) -> datetime | None:
        """The scheduler's next fire time of job ``name`` (None when not scheduled)."""
        if self.scheduler is None:
            return None
        job = self.scheduler.get_job(name)
        return job.next_run_time if job is not None else None

    def in_flight(self) -> list[defer.Deferred[None]]:
        """Deferreds of the executions running now (tests await them)."""
        if self.scheduler is None:
            return []
        return list(self.scheduler.executor.in_flight)
