"""`DHIS2Client`: one treq HTTPClient over one persistent connection pool per destination.

Every delivery method returns an `Outcome` and never raises for transport
errors or odd answers - the delivery engine relies on that.  Only a caller's own
cancellation propagates (``CancelledError``).  Metadata reads (`get_json` and
the readers built on it) raise `DHIS2ReadError` carrying the Outcome instead.

Timeouts run on the injected clock: ``connect_timeout`` (TCP/TLS set-up, by the
Agent), then ``read_timeout`` for the response headers and again for the body.
Redirects are never followed: DHIS2 answers missing credentials with a 302 to
its login page, which must surface as an auth failure.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from importlib import metadata as _package_metadata
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import ConnectingCancelledError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS

from dhis2gw.dhis2 import metadata as _metadata
from dhis2gw.dhis2.auth import DHIS2Auth
from dhis2gw.dhis2.body_reader import read_body
from dhis2gw.dhis2.failures import ConnectTimeout, ReadTimeout, exception_chain, interpret_failure
from dhis2gw.dhis2.http_rules import decode_body, interpret_json_read, interpret_ping
from dhis2gw.dhis2.interpret import (
    interpret_data_value_set_response,
    interpret_job_notifications,
    interpret_metadata_response,
    interpret_task_summary,
    pending_outcome,
)
from dhis2gw.dhis2.outcome import JobRef, Outcome, OutcomeKind
from dhis2gw.dhis2.tracker_reports import (
    TRACKER_JOB_TYPE,
    interpret_job_configuration,
    interpret_tracker_job_report,
    interpret_tracker_response,
)
from dhis2gw.dhis2.transport import TreqLike, api_root, persistent_pool, pooled_treq
from dhis2gw.dhis2.versions import Version, parse_version

try:
    _VERSION = _package_metadata.version("dhis2gw")
except _package_metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    _VERSION = "0"

USER_AGENT = f"dhis2gw/{_VERSION}"

Params = Mapping[str, Any] | Sequence[tuple[str, Any]] | None
Interpreter = Callable[..., Outcome]

#: Tracker defaults from DESIGN.md section 5: synchronous, idempotent re-sends.
TRACKER_DEFAULT_PARAMS = {"async": "false", "importStrategy": "CREATE_AND_UPDATE"}


class DHIS2Client:
    """HTTP client for one DHIS2 server (see the module docstring for the contract)."""

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        base_url: str,
        auth: DHIS2Auth,
        *,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        max_response_bytes: int = 32 * 1024 * 1024,
        idle_connection_timeout: float = 15.0,
        clock: IReactorTime | None = None,
        tls_policy: IPolicyForHTTPS | None = None,
        user_agent: str = USER_AGENT,
        http: TreqLike | None = None,
    ) -> None:
        """``reactor`` does the networking; ``clock`` (default: the reactor) drives timeouts and durations.

        ``http`` replaces the treq ``HTTPClient`` the client builds over its own connection pool: tests
        hand it a ``treq.testing.StubTreq`` (``dhis2gw.testing.sim_client``). The connection options
        (``max_connections``, ``connect_timeout``, ``idle_connection_timeout``, ``tls_policy``) are then
        the injected client's business, and `close` has nothing to close.
        """
        self._reactor = reactor
        self._clock: IReactorTime = clock if clock is not None else reactor
        self.base_url = base_url
        self.api_url = api_root(base_url)
        self._auth = auth
        self.read_timeout = read_timeout
        self.max_response_bytes = max_response_bytes
        self._user_agent = user_agent
        self._pool: HTTPConnectionPool | None = None
        self._http: TreqLike
        if http is not None:
            self._http = http
        else:
            self._pool = persistent_pool(reactor, max_connections, idle_connection_timeout)
            self._http = pooled_treq(reactor, self._pool, connect_timeout, tls_policy)
        #: Server version from the last successful `system_info`, e.g. ``(2, 40, 3)``.
        self.version: Version | None = None
        #: The last ``/api/system/info`` body.
        self.system_info_body: dict[str, Any] | None = None

    # ------------------------------------------------------------------ transport

    def _headers(self, has_body: bool) -> dict[str, bytes]:
        headers = {
            "Authorization": self._auth.header_value(),
            "Accept": b"application/json",
            "User-Agent": self._user_agent.encode("ascii"),
        }
        if has_body:
            headers["Content-Type"] = b"application/json"
        return headers

    def _timeout_for(self, phase: str) -> Callable[[Any, float], Any]:
        def on_timeout(result: Any, seconds: float) -> Failure:
            # Cancelling during connection set-up means nothing was sent: that is a
            # connect timeout (destination failure), not a read timeout (retry).
            if isinstance(result, Failure) and result.check(ConnectingCancelledError):
                return Failure(ConnectTimeout(f"no connection within {seconds:g} s"))
            return Failure(ReadTimeout(phase, seconds))

        return on_timeout

    async def _exchange(
        self, method: str, path: str, params: Params, json_body: Any
    ) -> tuple[int, dict[str, str], bytes] | Outcome:
        """Send one request; the (status, headers, body) answer, or an Outcome for a transport failure."""
        data = None
        if json_body is not None:
            try:
                data = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            except (TypeError, ValueError) as exc:
                return Outcome(OutcomeKind.REJECTED, "payload_not_json", message=f"payload cannot be encoded: {exc}")
        try:
            request = self._http.request(
                method,
                self.api_url + path.lstrip("/"),
                params=params,
                headers=self._headers(data is not None),
                data=data,
                allow_redirects=False,
                unbuffered=True,
                reactor=self._reactor,
            )
            request.addTimeout(self.read_timeout, self._clock, onTimeoutCancel=self._timeout_for("headers"))
            response = await request
        except CancelledError:
            raise
        except Exception:  # noqa: BLE001 - every transport failure becomes an Outcome (module docstring)
            failure = Failure()
            _raise_if_cancelled(failure)
            return interpret_failure(failure)
        try:
            body_read = read_body(response, self.max_response_bytes)
            body_read.addTimeout(self.read_timeout, self._clock, onTimeoutCancel=self._timeout_for("body"))
            body = await body_read
        except CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a failed body read becomes an Outcome too
            failure = Failure()
            _raise_if_cancelled(failure)
            return interpret_failure(failure, http_status=response.code)
        headers = {
            name.decode("latin-1"): values[-1].decode("latin-1")
            for name, values in response.headers.getAllRawHeaders()
        }
        return response.code, headers, body

    async def request(
        self,
        method: str,
        path: str,
        interpret: Interpreter,
        *,
        params: Params = None,
        json_body: Any = None,
        **interpret_kwargs: Any,
    ) -> Outcome:
        """Send ``method path`` (relative to ``/api/``) and interpret the answer; never raises but on cancel."""
        started = self._clock.seconds()
        answer = await self._exchange(method, path, params, json_body)
        if isinstance(answer, Outcome):
            outcome = answer
        else:
            status, headers, body = answer
            try:
                outcome = interpret(status, headers, body, now=self._clock.seconds(), **interpret_kwargs)
            except Exception:  # noqa: BLE001 - a bug in an interpreter must not kill the delivery loop
                self.log.failure("interpreting DHIS2 answer to {method} {path}", method=method, path=path)
                outcome = Outcome(
                    OutcomeKind.RETRY, "unexpected_error", http_status=status,
                    body=decode_body(body).body_value, message="could not interpret the answer",
                )
        outcome = outcome.with_duration(self._clock.seconds() - started)
        self.log.debug(
            "{method} {path} -> {kind} {reason} (HTTP {status}, {duration:.3f} s)",
            method=method, path=path, kind=outcome.kind.value, reason=outcome.reason,
            status=outcome.http_status, duration=outcome.duration,
        )
        return outcome

    # ------------------------------------------------------------------ system

    async def system_info(self) -> Outcome:
        """``GET /api/system/info``; on success caches `version` and `system_info_body`."""
        outcome = await self.request("GET", "system/info", interpret_json_read)
        if outcome.kind is OutcomeKind.DELIVERED and isinstance(outcome.body, dict):
            self.system_info_body = outcome.body
            self.version = parse_version(outcome.body.get("version")) or self.version
        return outcome

    async def ping(self) -> Outcome:
        """``GET /api/system/ping``: the breaker's cheap liveness probe (any 2xx is DELIVERED)."""
        return await self.request("GET", "system/ping", interpret_ping)

    async def health_check(self) -> Outcome:
        """``GET /api/me?fields=id``: the breaker's probe and the engine's health check.

        Unlike ``/api/system/ping`` (answered while DHIS2's database is down), it authenticates
        and reads the user from the database, with the same timeouts as a delivery: DELIVERED
        only when DHIS2 can do work.
        """
        return await self.request("GET", "me", interpret_json_read, params={"fields": "id"})

    async def fetch_json(self, path: str, params: Params = None) -> Outcome:
        """GET a JSON resource; DELIVERED with the JSON in `Outcome.body`, else the failure."""
        return await self.request("GET", path, interpret_json_read, params=params)

    async def get_json(self, path: str, params: Params = None) -> Any:
        """GET a JSON resource and return it; raises `DHIS2ReadError` (with the Outcome) otherwise."""
        outcome = await self.fetch_json(path, params)
        if outcome.kind is not OutcomeKind.DELIVERED:
            raise _metadata.DHIS2ReadError(outcome)
        return outcome.body

    # ------------------------------------------------------------------ aggregate

    async def post_data_value_set(self, payload: Mapping[str, Any], params: Params = None) -> Outcome:
        """``POST /api/dataValueSets`` (``async=true`` in params gives ACCEPTED_ASYNC + job)."""
        return await self.request(
            "POST", "dataValueSets", interpret_data_value_set_response, params=params, json_body=payload,
            version=self.version,  # the known-transient table is per version (dhis2gw.dhis2.transient)
        )

    async def _poll_job(self, job: JobRef, notifications_path: str,
                        finished: Callable[[], Awaitable[Outcome]]) -> Outcome:
        """One poll of an async job: the read's failure, PENDING while it runs, else ``finished()``."""
        notes = await self.request("GET", notifications_path, interpret_json_read)
        if notes.kind is not OutcomeKind.DELIVERED:
            return notes
        progress = interpret_job_notifications(notes.body)
        if not progress.completed:
            return pending_outcome(job, progress, notes.http_status, notes.body)
        return await finished()

    async def get_data_value_task(self, job_id: str) -> Outcome:
        """Poll an async data value import: PENDING while running, else its summary's Outcome."""
        job = JobRef(job_id, "DATAVALUE_IMPORT")

        async def summary() -> Outcome:
            return await self.request("GET", f"system/taskSummaries/DATAVALUE_IMPORT/{job_id}",
                                      interpret_task_summary, job=job)

        return await self._poll_job(job, f"system/tasks/DATAVALUE_IMPORT/{job_id}", summary)

    # ------------------------------------------------------------------ tracker

    async def post_tracker(self, payload: Mapping[str, Any], params: Params = None) -> Outcome:
        """``POST /api/tracker`` with ``async=false&importStrategy=CREATE_AND_UPDATE`` unless overridden."""
        merged = dict(TRACKER_DEFAULT_PARAMS)
        merged.update(dict(params or {}))
        return await self.request("POST", "tracker", interpret_tracker_response, params=merged, json_body=payload)

    async def get_tracker_job(self, job_id: str, report_mode: str = "ERRORS") -> Outcome:
        """Poll an async tracker job: PENDING while running, else the Outcome of its report."""
        return await self._poll_job(JobRef(job_id, TRACKER_JOB_TYPE), f"tracker/jobs/{job_id}",
                                    lambda: self.get_tracker_job_report(job_id, report_mode))

    async def get_tracker_job_report(self, job_id: str, report_mode: str = "ERRORS") -> Outcome:
        """``GET /api/tracker/jobs/{id}/report``: the import's Outcome, or PENDING on 404."""
        return await self.request(
            "GET", f"tracker/jobs/{job_id}/report", interpret_tracker_job_report,
            params={"reportMode": report_mode}, job_id=job_id,
        )

    async def get_job_configuration(self, job_id: str, job_type: str = TRACKER_JOB_TYPE) -> Outcome:
        """``GET /api/jobConfigurations/{id}?fields=jobStatus,lastExecutedStatus``: did an ad-hoc job fail?

        The fallback when 2.44 wiped a failed job's notification feed (`interpret_job_configuration`).
        """
        return await self.request(
            "GET", f"jobConfigurations/{job_id}", interpret_job_configuration,
            params={"fields": "jobStatus,lastExecutedStatus"}, job=JobRef(job_id, job_type),
        )

    # ------------------------------------------------------------------ org units

    async def create_org_unit(self, org_unit: Mapping[str, Any]) -> Outcome:
        """``POST /api/organisationUnits`` (send ``id`` to keep the UID)."""
        return await self.request("POST", "organisationUnits", interpret_metadata_response, json_body=org_unit)

    async def update_org_unit(self, uid: str, org_unit: Mapping[str, Any]) -> Outcome:
        """``PUT /api/organisationUnits/{uid}`` (a full replace: send every field)."""
        return await self.request(
            "PUT", f"organisationUnits/{uid}", interpret_metadata_response, json_body=org_unit
        )

    async def add_org_unit_to_group(self, group_uid: str, org_unit_uid: str) -> Outcome:
        """``POST /api/organisationUnitGroups/{group}/organisationUnits/{ou}`` (204 or TypeReport)."""
        return await self.request(
            "POST", f"organisationUnitGroups/{group_uid}/organisationUnits/{org_unit_uid}",
            interpret_metadata_response,
        )

    # ------------------------------------------------------------------ metadata reads

    def organisation_units(self, **kwargs: Any) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of org units; see `metadata.iterate_organisation_units` for the arguments."""
        return _metadata.iterate_organisation_units(self, **kwargs)

    async def data_set(self, uid: str) -> _metadata.DataSetStructure:
        """One data set's structure (elements, valid COCs and AOCs, assigned org units)."""
        return await _metadata.fetch_data_set(self, uid)

    async def category_option_combos(self, category_combo: str | None = None) -> list[dict[str, Any]]:
        """Category option combos, optionally of one category combo."""
        return await _metadata.fetch_category_option_combos(self, category_combo)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> Deferred[None]:
        """Close the cached persistent connections; the Deferred fires when they are closed."""
        if self._pool is None:  # an injected HTTP layer belongs to whoever made it
            return succeed(None)
        closed: Deferred[None] = self._pool.closeCachedConnections()
        return closed


# ---------------------------------------------------------------------- helpers


def _raise_if_cancelled(failure: Failure) -> None:
    """Re-raise a caller's cancellation that twisted.web wrapped (e.g. in ResponseNeverReceived).

    Our own timeouts never leave a CancelledError behind (they become ReadTimeout /
    ConnectTimeout), so any CancelledError in the chain is the caller's.
    """
    if failure.value is not None and any(isinstance(exc, CancelledError)
                                         for exc in exception_chain(failure.value)):
        raise CancelledError()
