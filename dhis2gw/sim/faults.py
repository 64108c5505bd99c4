"""Fault injection: latency, error rates, maintenance, 429, slow bodies, commit-then-drop.

Faults are plain settings on :class:`Faults`; the request pipeline in :mod:`dhis2gw.sim.app`
asks it what to do. Every rule can be limited to paths containing one of ``paths`` (matched
against the API path without the ``/api[/NN]`` prefix, e.g. ``"dataValueSets"``). Outages
(connection refused) need the listening port and live in :class:`dhis2gw.sim.server.SimulatorServer`.
"""
from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

from dhis2gw.sim.webmessage import (
    MAINTENANCE_PAGE,
    NGINX_PAGE,
    NGINX_REASONS,
    UNEXPECTED_ERROR,
    SimResponse,
    reason,
    web_message,
)


def _paths(paths: Iterable[str] | str | None) -> tuple[str, ...] | None:
    if paths is None:
        return None
    if isinstance(paths, str):
        return (paths,)
    return tuple(paths) or None


def _applies(paths: tuple[str, ...] | None, path: str) -> bool:
    return paths is None or any(p in path for p in paths)


@dataclass
class LatencyRule:
    """Delay every matching request by ``low`` seconds, or uniformly in ``[low, high]``."""

    low: float
    high: float | None = None
    paths: tuple[str, ...] | None = None


@dataclass
class ErrorRule:
    """Answer a fraction (``rate``) or the next ``count`` matching requests with ``status``."""

    status: int
    rate: float = 0.0
    count: int | None = None
    retry_after: float | None = None
    paths: tuple[str, ...] | None = None


@dataclass
class SlowBodyRule:
    """Send headers at once, then the body in ``chunk_size`` pieces every ``chunk_delay`` seconds."""

    chunk_size: int = 16
    chunk_delay: float = 0.05
    paths: tuple[str, ...] | None = None


@dataclass
class DropRule:
    """Commit the next ``count`` matching imports, then abort the TCP connection without a response."""

    count: int
    paths: tuple[str, ...] | None = None


@dataclass
class PoisonRule:
    """A payload that breaks DHIS2: requests whose body contains ``uid`` get ``mode`` (500/reset/hang)."""

    uid: str
    mode: str = "500"


#: The outage shapes (``shape(name, seconds)``): how a whole DHIS2 is unusable.
SHAPES = ("db_down", "hang", "reset_after_send", "tomcat_starting")


@dataclass
class Faults:
    """The active faults of one simulator (all off by default)."""

    clock: IReactorTime
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    latency_rule: LatencyRule | None = None
    error_rules: list[ErrorRule] = field(default_factory=list)
    slow_rule: SlowBodyRule | None = None
    drop_rule: DropRule | None = None
    maintenance_on: bool = False
    maintenance_retry_after: float | None = None
    #: shape name -> until when (clock seconds; inf = until cleared)
    shapes: dict[str, float] = field(default_factory=dict)
    poison_rules: list[PoisonRule] = field(default_factory=list)
    #: 2.43+: the first completeness registration of each new (data set, period, org unit, AOC) meets
    #: the transient 409 "Failed to flush BatchHandler" (dhis2w #81); the identical retry succeeds.
    batch_handler_flush_on: bool = False
    flushed_once: set[tuple[str, str, str, str]] = field(default_factory=set)

    # -- settings (Python API) ----------------------------------------------------
    def latency(self, seconds: float | None, max_seconds: float | None = None,
                paths: Iterable[str] | str | None = None) -> None:
        """Add fixed latency (or uniform in ``[seconds, max_seconds]``); None clears it."""
        self.latency_rule = None if seconds is None else LatencyRule(seconds, max_seconds, _paths(paths))

    def error_rate(self, rate: float, status: int = 500, paths: Iterable[str] | str | None = None,
                   retry_after: float | None = None) -> None:
        """Fail a random fraction *rate* of matching requests with *status* (500/502/503/504/429…)."""
        self.error_rules = [r for r in self.error_rules if r.count is not None]
        if rate > 0:
            self.error_rules.append(ErrorRule(status, rate=rate, retry_after=retry_after, paths=_paths(paths)))

    def fail_next(self, n: int, status: int = 503, paths: Iterable[str] | str | None = None,
                  retry_after: float | None = None) -> None:
        """Fail exactly the next *n* matching requests with *status*."""
        self.error_rules.insert(0, ErrorRule(status, count=n, retry_after=retry_after, paths=_paths(paths)))

    def rate_limit(self, rate: float = 1.0, retry_after: float = 5, paths: Iterable[str] | str | None = None) -> None:
        """Answer a fraction of requests with 429 and ``Retry-After`` (what a proxy/WAF does)."""
        self.error_rate(rate, 429, paths, retry_after)

    def maintenance(self, on: bool = True, retry_after: float | None = None) -> None:
        """Serve a 503 maintenance HTML page for every API request while on."""
        self.maintenance_on, self.maintenance_retry_after = on, retry_after

    def slow_body(self, chunk_size: int = 16, chunk_delay: float = 0.05,
                  paths: Iterable[str] | str | None = None, off: bool = False) -> None:
        """Trickle response bodies (headers first); ``off=True`` clears it."""
        self.slow_rule = None if off else SlowBodyRule(chunk_size, chunk_delay, _paths(paths))

    def commit_then_drop(self, n: int = 1, paths: Iterable[str] | str | None = None) -> None:
        """Store the next *n* imports, then drop the connection without answering."""
        self.drop_rule = DropRule(n, _paths(paths)) if n > 0 else None

    def shape(self, name: str, seconds: float | None = None, off: bool = False) -> None:
        """Make the whole DHIS2 unusable in one of `SHAPES` for ``seconds`` (None: until cleared).

        ``db_down``: ping answers, every other request a 500 WebMessage (database down, pool exhausted);
        ``hang``: the request is read and never answered; ``reset_after_send``: the whole request is
        read, then the connection is reset (nothing committed); ``tomcat_starting``: Tomcat's HTML 404
        while the DHIS2 web app is not deployed yet.
        """
        if name not in SHAPES:
            raise ValueError(f"unknown outage shape {name!r} (one of {', '.join(SHAPES)})")
        if off:
            self.shapes.pop(name, None)
        else:
            self.shapes[name] = float("inf") if seconds is None else self.clock.seconds() + float(seconds)

    def active_shape(self) -> str | None:
        """The outage shape in force now, if any."""
        now = self.clock.seconds()
        for name, until in list(self.shapes.items()):
            if now < until:
                return name
            del self.shapes[name]
        return None

    def poison(self, uid: str, mode: str = "500") -> None:
        """Break DHIS2 for payloads that contain ``uid`` (a data element or tracked entity UID)."""
        if mode not in ("500", "reset", "hang"):
            raise ValueError(f"unknown poison mode {mode!r} (500, reset or hang)")
        self.poison_rules.append(PoisonRule(uid, mode))

    def poison_for(self, body: bytes) -> str | None:
        """The poison mode for a request body, if any."""
        for rule in self.poison_rules:
            if rule.uid.encode() in body:
                return rule.mode
        return None

    def batch_handler_flush(self, on: bool = True) -> None:
        """Switch the 2.43+ transient BatchHandler 409 on the first registration of a new period."""
        self.batch_handler_flush_on = on
        self.flushed_once = set()

    def flush_fails(self, registration: tuple[str, str, str, str]) -> bool:
        """True (once per registration) when this completeness registration meets the BatchHandler 409."""
        if not self.batch_handler_flush_on or registration in self.flushed_once:
            return False
        self.flushed_once.add(registration)
        return True

    def clear(self) -> None:
        """Switch every fault off."""
        self.batch_handler_flush(False)
        self.shapes = {}
        self.poison_rules = []
        self.latency_rule, self.slow_rule, self.drop_rule = None, None, None
        self.error_rules = []
        self.maintenance_on, self.maintenance_retry_after = False, None

    # -- used by the request pipeline --------------------------------------------
    async def delay(self, path: str) -> None:
        """Wait the configured latency on the injected clock."""
        rule = self.latency_rule
        if rule and _applies(rule.paths, path):
            seconds = rule.low if rule.high is None else self.rng.uniform(rule.low, rule.high)
            if seconds > 0:
                await deferLater(self.clock, seconds, lambda: None)

    def failure_for(self, path: str) -> SimResponse | None:
        """The injected failure response for this request, if any."""
        if self.maintenance_on:
            headers = {"Retry-After": _seconds(self.maintenance_retry_after)} if self.maintenance_retry_after else {}
            return SimResponse.html(503, MAINTENANCE_PAGE, headers)
        for rule in list(self.error_rules):
            if not _applies(rule.paths, path):
                continue
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.error_rules.remove(rule)
                return failure_response(rule.status, rule.retry_after)
            if self.rng.random() < rule.rate:
                return failure_response(rule.status, rule.retry_after)
        return None

    def take_drop(self, path: str) -> bool:
        """True (and one fewer left) if this import must be committed then dropped."""
        rule = self.drop_rule
        if rule and _applies(rule.paths, path):
            rule.count -= 1
            if rule.count <= 0:
                self.drop_rule = None
            return True
        return False

    def slow_for(self, path: str) -> SlowBodyRule | None:
        """The slow-body rule for this path, if any."""
        rule = self.slow_rule
        return rule if rule and _applies(rule.paths, path) else None

    # -- control endpoint --------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The active faults as JSON."""
        return {"latency": asdict(self.latency_rule) if self.latency_rule else None,
                "errors": [asdict(r) for r in self.error_rules],
                "slow_body": asdict(self.slow_rule) if self.slow_rule else None,
                "commit_then_drop": asdict(self.drop_rule) if self.drop_rule else None,
                "maintenance": self.maintenance_on, "shape": self.active_shape(),
                "poison": [asdict(r) for r in self.poison_rules],
                "batch_handler_flush": self.batch_handler_flush_on}

    def configure(self, spec: dict[str, Any]) -> None:
        """Apply a control-endpoint document (see the package docstring)."""
        if spec.get("clear"):
            self.clear()
        if "latency" in spec:
            lat = spec["latency"]
            if lat is None:
                self.latency(None)
            elif isinstance(lat, (int, float)):
                self.latency(float(lat), paths=spec.get("paths"))
            elif isinstance(lat, list):
                self.latency(float(lat[0]), float(lat[1]), paths=spec.get("paths"))
            else:
                self.latency(float(lat.get("min", lat.get("seconds", 0))), lat.get("max"), lat.get("paths"))
        if "error_rate" in spec:
            er = spec["error_rate"]
            if isinstance(er, (int, float)):
                er = {"rate": er, "status": spec.get("status", 500), "paths": spec.get("paths")}
            self.error_rate(float(er.get("rate", 0)), int(er.get("status", 500)), er.get("paths"),
                            er.get("retry_after"))
        if "fail_next" in spec:
            fn = spec["fail_next"]
            if isinstance(fn, int):
                fn = {"count": fn, "status": spec.get("status", 503)}
            self.fail_next(int(fn.get("count", 1)), int(fn.get("status", 503)), fn.get("paths"), fn.get("retry_after"))
        if "rate_limit" in spec:
            rl = spec["rate_limit"] or {}
            self.rate_limit(float(rl.get("rate", 1.0)), float(rl.get("retry_after", 5)), rl.get("paths"))
        if "maintenance" in spec:
            m = spec["maintenance"]
            self.maintenance(bool(m), spec.get("retry_after") if m else None)
        if "slow_body" in spec:
            sb = spec["slow_body"]
            if not sb:
                self.slow_body(off=True)
            else:
                self.slow_body(int(sb.get("chunk_size", 16)), float(sb.get("chunk_delay", 0.05)), sb.get("paths"))
        for name in SHAPES:
            if name in spec:
                value = spec[name]
                if value is False or value is None or value == 0:
                    self.shape(name, off=True)
                else:
                    self.shape(name, None if value is True else float(value))
        if "poison" in spec:
            rules = spec["poison"]
            if not rules:
                self.poison_rules = []
            else:
                for rule in rules if isinstance(rules, list) else [rules]:
                    self.poison(str(rule["uid"]), str(rule.get("mode", "500")))
        if "batch_handler_flush" in spec:
            self.batch_handler_flush(bool(spec["batch_handler_flush"]))
        if "commit_then_drop" in spec:
            cd = spec["commit_then_drop"]
            if isinstance(cd, int):
                cd = {"count": cd}
            self.commit_then_drop(int((cd or {}).get("count", 0)), (cd or {}).get("paths"))


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def failure_response(status: int, retry_after: float | None = None) -> SimResponse:
    """What a failing DHIS2 (500 WebMessage) or its proxy (502/503/504/429 nginx HTML) returns."""
    headers = {"Retry-After": _seconds(retry_after)} if retry_after is not None else {}
    if status == 429 and "Retry-After" not in headers:
        headers["Retry-After"] = "5"
    if status == 500:
        return SimResponse.json(500, web_message(500, UNEXPECTED_ERROR, "ERROR"), headers)
    if status in NGINX_REASONS:
        return SimResponse.html(status, NGINX_PAGE.format(code=status, reason=NGINX_REASONS[status]), headers)
    return SimResponse(status, json.dumps(web_message(status, reason(status), "ERROR")).encode(),
                       {"Content-Type": "application/json;charset=UTF-8", **headers})


TOMCAT_404 = ("<!doctype html><html lang=\"en\"><head><title>HTTP Status 404 \u2013 Not Found</title></head>"
              "<body><h1>HTTP Status 404 \u2013 Not Found</h1></body></html>")

#: What DHIS2 says on every request while its database is down (Hibernate cannot get a connection).
DB_DOWN_MESSAGE = "Could not open JPA EntityManager for transaction; nested exception is " \
                  "org.hibernate.exception.JDBCConnectionException: Unable to acquire JDBC Connection"


def mode_response(mode: str) -> SimResponse:
    """The answer of an outage shape or poison rule that does answer (``500`` or ``404``)."""
    if mode == "404":
        return SimResponse.html(404, TOMCAT_404)
    return SimResponse.json(500, web_message(500, DB_DOWN_MESSAGE, "ERROR"))
