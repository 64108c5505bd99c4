"""The simulator: state, the Klein app, the request pipeline and the control endpoint."""
from __future__ import annotations

import copy
import datetime as dt
import json
import random
import re
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qs, urlparse

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime, ITCPTransport
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.http import Request
from twisted.web.iweb import IRequest

from dhis2gw.sim.auth import Authenticator
from dhis2gw.sim.context import RequestContext
from dhis2gw.sim.endpoints import CoreApi
from dhis2gw.sim.faults import Faults, mode_response
from dhis2gw.sim.jobs import JobRegistry
from dhis2gw.sim.metadata import Metadata
from dhis2gw.sim.metadata_api import LISTABLE, MetadataApi
from dhis2gw.sim.store import RequestRecord, Store
from dhis2gw.sim.uids import new_uid
from dhis2gw.sim.versions import Version
from dhis2gw.sim.webmessage import LOGIN_PAGE, SimResponse, error

_VERSIONED = re.compile(r"^/(\d{2})(/.*)?$")
_KINDS = "|".join(LISTABLE)
IMPORT_PATHS = ("/dataValueSets", "/tracker")


class Simulator:
    """A simulated DHIS2 server (see the package docstring for the API)."""

    app = Klein()
    log = Logger()

    def __init__(self, version: str | Version = "2.40", *, clock: IReactorTime, metadata: Metadata | None = None,
                 seed: int = 0, control: bool = True, job_delay: float = 0.1, time_offset: float = 0.0,
                 keep_request_bodies: bool = True) -> None:
        """Create a simulator of DHIS2 *version* waiting on *clock*.

        *time_offset* is added to ``clock.seconds()`` to get the server's wall time (use it with
        a ``task.Clock`` starting at 0). *control* enables ``/__sim/*``.
        """
        self.clock = clock
        self._version = Version.parse(version)
        self.metadata = metadata or Metadata.load_default()
        self._pristine = copy.deepcopy(self.metadata)
        self.rng = random.Random(seed)
        self.control = control
        self.job_delay = job_delay
        self.time_offset = time_offset
        self.store = Store(keep_request_bodies=keep_request_bodies)
        self.faults = Faults(clock, random.Random(seed + 1))
        self.auth = Authenticator(self.metadata, lambda: self._version, self.epoch, self.rng)
        self.jobs = JobRegistry(clock, self.rng, lambda: self._version, self.now)
        self.core = CoreApi(self)
        self.metadata_api = MetadataApi(lambda: self.metadata, self.store, lambda: self._version, self.now,
                                        lambda: new_uid(self.rng))
        self.in_flight = 0
        self.max_in_flight = 0
        self.in_flight_requests = 0
        self.max_in_flight_requests = 0
        self.server: Any = None  # set by SimulatorServer so the control endpoint can trigger outages
        self.routes = self._routes()

    # -- state -----------------------------------------------------------------------
    @property
    def version(self) -> Version:
        """The simulated DHIS2 version."""
        return self._version

    @version.setter
    def version(self, value: str | Version) -> None:
        self._version = Version.parse(value)

    def epoch(self) -> float:
        """Server wall time in epoch seconds."""
        return self.clock.seconds() + self.time_offset

    def now(self) -> dt.datetime:
        """Server wall time (UTC)."""
        return dt.datetime.fromtimestamp(self.epoch(), tz=dt.UTC)

    def add_pat(self, username: str = "admin", token: str | None = None, expires_at: float | None = None) -> str:
        """Register a personal access token for *username*; returns the token."""
        return self.auth.add_pat(username, token, expires_at)

    def add_user(self, username: str, password: str, authorities: list[str] | None = None,
                 org_units: list[str] | None = None) -> dict[str, Any]:
        """Add a user (authorities default to ``ALL``)."""
        return self.auth.add_user(username, password, authorities, org_units)

    def reset(self) -> None:
        """Clear the store, faults, jobs and counters; restore the seeded metadata."""
        self.store.clear()
        self.faults.clear()
        self.jobs.cancel_pending()
        self.jobs.jobs.clear()
        self.metadata = copy.deepcopy(self._pristine)
        self.auth.metadata = self.metadata
        self.in_flight = self.max_in_flight = self.in_flight_requests = self.max_in_flight_requests = 0

    def state(self) -> dict[str, Any]:
        """Summary for ``GET /__sim/state``."""
        s = self.store
        return {"version": str(self._version), "faults": self.faults.describe(), "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight, "in_flight_requests": self.in_flight_requests,
                "max_in_flight_requests": self.max_in_flight_requests, "job_delay": self.job_delay,
                "counts": {"requests": len(s.requests), "dataValues": len(s.live_values()),
                           "trackedEntities": len(s.tracked_entities), "enrollments": len(s.enrollments),
                           "events": len(s.events), "relationships": len(s.relationships),
                           "organisationUnits": len(self.metadata.objects["organisationUnits"]),
                           "jobs": len(self.jobs.jobs)},
                "listening": bool(self.server and self.server.listening)}

    # -- routing -----------------------------------------------------------------------
    def _routes(self) -> list[tuple[str, re.Pattern[str], Callable[..., SimResponse]]]:
        c, m = self.core, self.metadata_api
        table: list[tuple[str, str, Callable[..., SimResponse]]] = [
            ("GET", r"/system/info", c.system_info),
            ("GET", r"/system/ping", c.ping),
            ("GET", r"/(?:me|currentUser)", c.me),
            ("GET", r"/me/authorization/(?P<auth>[^/]+)", c.me_authorization),
            ("GET", r"/system/(?:id|uid)", c.system_id),
            ("GET", r"/system/tasks/(?P<type>[A-Z_]+)/(?P<id>\w+)", c.tasks),
            ("GET", r"/system/taskSummaries/(?P<type>[A-Z_]+)/(?P<id>\w+)", c.task_summary),
            ("GET", r"/jobConfigurations/(?P<id>\w+)", c.job_configuration),
            ("POST", r"/dataValueSets", c.post_data_value_sets),
            ("GET", r"/dataValueSets", c.get_data_value_sets),
            ("POST", r"/tracker", c.post_tracker),
            ("GET", r"/tracker/jobs/(?P<id>\w+)", c.tracker_job),
            ("GET", r"/tracker/jobs/(?P<id>\w+)/report", c.tracker_report),
            ("GET", r"/tracker/(?P<kind>trackedEntities|enrollments|events)/(?P<id>\w+)", c.tracker_object),
            ("POST", r"/organisationUnits", m.create_org_unit),
            ("PUT", r"/organisationUnits/(?P<id>\w+)", lambda ctx: m.update_org_unit(ctx, ctx.params["id"])),
            ("POST", r"/organisationUnitGroups/(?P<g>\w+)/organisationUnits/(?P<ou>\w+)",
             lambda ctx: m.group_member(ctx, ctx.params["g"], ctx.params["ou"], True)),
            ("DELETE", r"/organisationUnitGroups/(?P<g>\w+)/organisationUnits/(?P<ou>\w+)",
             lambda ctx: m.group_member(ctx, ctx.params["g"], ctx.params["ou"], False)),
            ("GET", rf"/(?P<kind>{_KINDS})", lambda ctx: m.list(ctx, ctx.params["kind"])),
            ("GET", rf"/(?P<kind>{_KINDS})/(?P<id>\w+)", lambda ctx: m.get(ctx, ctx.params["kind"], ctx.params["id"])),
        ]
        return [(method, re.compile(f"^{pattern}$"), handler) for method, pattern, handler in table]

    def dispatch(self, ctx: RequestContext) -> SimResponse:
        """Route an authenticated request to its handler."""
        allowed = False
        for method, pattern, handler in self.routes:
            match = pattern.match(ctx.path)
            if not match:
                continue
            allowed = True
            if method == ctx.method:
                ctx.params = match.groupdict()
                return handler(ctx)
        if allowed:
            return error(405, f"Request method '{ctx.method}' is not supported")
        return error(404, f"No endpoint for {ctx.method} /api{ctx.path}")

    # -- HTTP pipeline ---------------------------------------------------------------------
    @app.route("/api/", branch=True)
    async def api(self, request: IRequest) -> bytes | None:
        """Every ``/api/...`` request: record, faults, auth, route, commit-then-drop, write."""
        method = request.method.decode()
        full_path = request.path.decode()
        rest = full_path[len("/api"):] or "/"
        api_version = None
        m = _VERSIONED.match(rest)
        if m:
            api_version, rest = int(m.group(1)), m.group(2) or "/"
        if rest.endswith(".json"):
            rest = rest[:-5]
        rest = rest.rstrip("/") or "/"
        query = parse_qs(urlparse(request.uri.decode()).query, keep_blank_values=True)
        body = request.content.read() if request.content else b""
        headers = {k.decode().lower(): v[0].decode(errors="replace")
                   for k, v in request.requestHeaders.getAllRawHeaders()}
        self.store.requests.append(RequestRecord(
            method, full_path, query, {k: v for k, v in headers.items() if k not in ("authorization", "cookie")},
            len(body), self.epoch(), body if self.store.keep_request_bodies else b""))
        host = headers.get("host") or f"{request.getHost().host}:{request.getHost().port}"
        ctx = RequestContext(method, rest, query, body, headers, f"http://{host}", api_version)
        is_import = method == "POST" and rest in IMPORT_PATHS
        self.in_flight_requests += 1
        self.max_in_flight_requests = max(self.max_in_flight_requests, self.in_flight_requests)
        if is_import:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.faults.delay(rest)
            response = self.faults.failure_for(rest)
            mode = self._outage_mode(method, rest, body)
            if mode in ("hang", "reset"):
                if mode == "reset":
                    # The whole request was read; reset the connection without a word (nothing committed).
                    _abort(request)
                await Deferred()  # never answer (Klein cancels this when the client gives up)
            elif mode is not None:
                response = mode_response(mode)
            if response is None:
                user, refusal = self.auth.authenticate(headers)
                if refusal is not None:
                    response = refusal
                    if response.status == 302:
                        response.headers["Location"] = ctx.base_url + response.headers["Location"]
                else:
                    ctx.user = user
                    try:
                        response = self.dispatch(ctx)
                    except Exception:  # noqa: BLE001 - a handler bug is DHIS2's 500, like the real one
                        self.log.failure("simulator handler failed for {method} {path}", method=method, path=rest)
                        response = error(500, "An unexpected error has occured. Please contact your system "
                                              "administrator")
                    if is_import and response.status < 500 and self.faults.take_drop(rest):
                        # The import is committed; now vanish without a response, like a proxy or
                        # Tomcat dying after the commit. Klein cancels this await on connection loss.
                        _abort(request)
                        await Deferred()
            return await self._write(request, response, self.faults.slow_for(rest))
        finally:
            self.in_flight_requests -= 1
            if is_import:
                self.in_flight -= 1

    def _outage_mode(self, method: str, path: str, body: bytes) -> str | None:
        """``hang``, ``reset``, ``500``, ``404`` or None, from the outage shape and the poison rules."""
        shape = self.faults.active_shape()
        if shape == "db_down":
            return None if path == "/system/ping" else "500"
        if shape == "hang":
            return "hang"
        if shape == "reset_after_send":
            return "reset"
        if shape == "tomcat_starting":
            return "404"
        return self.faults.poison_for(body) if body else None

    async def _write(self, request: IRequest, response: SimResponse, slow: Any) -> bytes | None:
        request.setResponseCode(response.status)
        for name, value in response.headers.items():
            request.setHeader(name, value)
        if response.status in (204, 304):
            return b""
        request.setHeader("Content-Length", str(len(response.body)))
        if slow is None or not response.body:
            return response.body
        body = response.body
        for start in range(0, len(body), slow.chunk_size):
            request.write(body[start:start + slow.chunk_size])
            if start + slow.chunk_size < len(body):
                await deferLater(self.clock, slow.chunk_delay, lambda: None)
        request.finish()
        return None

    @app.route("/dhis-web-commons/security/login.action")
    @app.route("/dhis-web-login/")
    @app.route("/login/")
    def login_page(self, request: IRequest) -> bytes:
        """The login page unauthenticated browsers are redirected to."""
        request.setHeader("Content-Type", "text/html;charset=UTF-8")
        return LOGIN_PAGE.encode()

    # -- control endpoint ------------------------------------------------------------------
    def _control_json(self, request: IRequest, status: int, payload: Any) -> bytes:
        request.setResponseCode(status)
        request.setHeader("Content-Type", "application/json")
        return json.dumps(payload, default=str).encode()

    @app.route("/__sim/<path:what>", methods=["GET", "POST"])
    def control_endpoint(self, request: IRequest, what: str) -> bytes:
        """``/__sim/faults|state|store|reset|config|pats`` (no DHIS2 auth; off with control=False)."""
        if not self.control:
            return self._control_json(request, 404, {"error": "control endpoint disabled"})
        method = request.method.decode()
        try:
            body = json.loads(request.content.read() or b"{}") if method == "POST" else {}
        except ValueError as e:
            return self._control_json(request, 400, {"error": f"bad JSON: {e}"})
        if what == "state":
            return self._control_json(request, 200, self.state())
        if what == "store":
            return self._control_json(request, 200, self.store.to_json())
        if what == "faults":
            if method == "POST":
                try:
                    self.faults.configure(body)
                except (TypeError, ValueError, AttributeError) as e:
                    return self._control_json(request, 400, {"error": str(e)})
                if body.get("outage"):
                    if not self.server:
                        return self._control_json(request, 409, {"error": "no server to take down"})
                    # Answer first, then stop listening.
                    self.clock.callLater(0, self.server.outage, float(body["outage"]))
            return self._control_json(request, 200, self.faults.describe())
        if what == "reset" and method == "POST":
            self.reset()
            return self._control_json(request, 200, self.state())
        if what == "config" and method == "POST":
            try:
                if "version" in body:
                    self.version = body["version"]
                if "job_delay" in body:
                    self.job_delay = float(body["job_delay"])
            except ValueError as e:
                return self._control_json(request, 400, {"error": str(e)})
            return self._control_json(request, 200, self.state())
        if what == "pats" and method == "POST":
            token = self.add_pat(body.get("username", "admin"), body.get("token"), body.get("expires_at"))
            return self._control_json(request, 201, {"token": token})
        return self._control_json(request, 404, {"error": f"unknown control path {what}"})


def _abort(request: IRequest) -> None:
    """Drop the request's connection without an answer (Klein's requests are twisted.web's)."""
    cast(ITCPTransport, cast(Request, request).transport).abortConnection()
