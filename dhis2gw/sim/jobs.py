"""Asynchronous jobs (``DATAVALUE_IMPORT`` and ``TRACKER_IMPORT_JOB``) run on the injected clock.

A job is accepted at once, runs its work after ``delay`` seconds (``clock.callLater``), and keeps
its notifications (newest first) and result in memory, like DHIS2's notifier.
"""
from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from dhis2gw.sim.uids import new_uid
from dhis2gw.sim.versions import Version


class SimulatedJobFailure(Exception):
    """A job failing on purpose (``JobRegistry.fail_next``)."""


#: Seconds after a failed job's terminal row when 2.44 wipes its feed.
WIPE_AFTER = 1.0


@dataclass
class Job:
    """One async job and what it produced."""

    id: str
    job_type: str
    created: dt.datetime
    username: str
    done: bool = False
    failed: bool = False
    result: dict[str, Any] | None = None
    notifications: list[dict[str, Any]] = field(default_factory=list)


class JobRegistry:
    """Accepts, schedules and remembers jobs."""

    log = Logger()

    def __init__(self, clock: IReactorTime, rng: random.Random, version: Callable[[], Version],
                 now: Callable[[], dt.datetime]) -> None:
        """Jobs run on *clock*; *version* and *now* are read when notifications are made."""
        self.clock, self.rng, self.version, self.now = clock, rng, version, now
        self.jobs: dict[str, Job] = {}
        self._pending: list[Any] = []
        self._failures = 0

    def fail_next(self, n: int = 1) -> None:
        """Make the next *n* jobs fail inside DHIS2 (an exception in the job: no report, ERROR notification)."""
        self._failures = n

    def submit(self, job_type: str, username: str, work: Callable[[], dict[str, Any]], delay: float,
               parameters: dict[str, Any] | None = None) -> Job:
        """Accept a job; *work* runs after *delay* seconds and returns the summary/report."""
        job = Job(new_uid(self.rng), job_type, self.now(), username)
        self.jobs[job.id] = job
        v = self.version()
        if job_type == "DATAVALUE_IMPORT":
            first = "Data value set import" if v.persisted_jobs else "Process started"
            self._notify(job, first, False)
        else:
            extra: dict[str, Any] = {"dataType": "PARAMETERS", "data": parameters or {}} if v.persisted_jobs else {}
            first = "Tracker import started" if v.persisted_jobs else "(TRACKER_IMPORT_JOB) Import:Start"
            self._notify(job, first, False, **extra)
        self._pending.append(self.clock.callLater(delay, self._run, job, work))
        return job

    def _run(self, job: Job, work: Callable[[], dict[str, Any]]) -> None:
        v = self.version()
        if job.job_type == "DATAVALUE_IMPORT" and v.persisted_jobs:
            self._notify(job, "Importing data...", False)
        try:
            if self._failures > 0:
                self._failures -= 1
                raise SimulatedJobFailure(job.id)
            job.result = work()
        except SimulatedJobFailure:
            self.log.info("simulated job {job_id} failed on purpose (fail_next)", job_id=job.id)
            self._fail(job)
            return
        except Exception:  # noqa: BLE001 - any failing job ends as a failed job, like DHIS2's
            self.log.failure("simulated job {job_id} failed", job_id=job.id)
            self._fail(job)
            return
        result = job.result
        if job.job_type == "DATAVALUE_IMPORT":
            c = result.get("importCount", {})
            if v.persisted_jobs:
                msg = (f"Import complete with status {result['status']}, {c.get('imported', 0)} created, "
                       f"{c.get('updated', 0)} updated, {c.get('deleted', 0)} deleted, {c.get('ignored', 0)} ignored")
            else:
                msg = "Import process aborted" if result["status"] == "ERROR" else "Import done"
            job.failed = result["status"] == "ERROR"
            level = "ERROR" if job.failed and (not v.persisted_jobs or v.failed_job_feed_wiped) else "INFO"
            self._notify(job, msg, True, level=level)
        else:
            s = result.get("stats", {})
            if v.persisted_jobs:
                for step in ("Running PreHeat", "Running Validation", "Commit Transaction", "PostCommit"):
                    self._notify(job, step, False)
                msg = (f"Import complete with status {result['status']}, {s.get('created', 0)} created, "
                       f"{s.get('updated', 0)} updated, {s.get('deleted', 0)} deleted, {s.get('ignored', 0)} ignored")
            else:
                msg = "(TRACKER_IMPORT_JOB) Import:Done took 0.1 sec."
            self._notify(job, msg, True)
        job.done = True
        self._wipe_if_failed(job)

    def _fail(self, job: Job) -> None:
        """End ``job`` as DHIS2 ends one that died: a terminal ERROR row, then (2.44) the feed wiped."""
        self._notify(job, "Job failed", True, level="ERROR")
        job.done = job.failed = True
        self._wipe_if_failed(job)

    def _wipe_if_failed(self, job: Job) -> None:
        """2.44 empties a failed job's notification feed about a second after its terminal row (dhis2w #143)."""
        if job.failed and self.version().failed_job_feed_wiped:
            self._pending.append(self.clock.callLater(WIPE_AFTER, job.notifications.clear))

    def configuration(self, job_id: str) -> dict[str, Any] | None:
        """``/api/jobConfigurations/{id}`` of an ad-hoc job (its id is a JobConfiguration uid), or None."""
        job = self.jobs.get(job_id)
        if job is None:
            return None
        if not job.done:
            return {"id": job.id, "jobType": job.job_type, "jobStatus": "RUNNING", "lastExecutedStatus": "RUNNING"}
        return {"id": job.id, "jobType": job.job_type, "jobStatus": "DISABLED",
                "lastExecutedStatus": "FAILED" if job.failed else "COMPLETED"}

    def _notify(self, job: Job, message: str, completed: bool, level: str = "INFO", **extra: Any) -> None:
        uid = new_uid(self.rng)
        note: dict[str, Any] = {"uid": uid, "level": level, "category": job.job_type,
                                "time": self.now().strftime("%Y-%m-%dT%H:%M:%S.") +
                                f"{self.now().microsecond // 1000:03d}",
                                "message": message, "completed": completed}
        if self.version().persisted_jobs:
            note["id"] = uid
        note.update(extra)
        job.notifications.insert(0, note)

    def get(self, job_type: str, job_id: str) -> Job | None:
        """A job of that type, or None."""
        job = self.jobs.get(job_id)
        return job if job and job.job_type == job_type else None

    def cancel_pending(self) -> None:
        """Cancel scheduled runs (simulator reset/shutdown)."""
        for call in self._pending:
            if call.active():
                call.cancel()
        self._pending = []
