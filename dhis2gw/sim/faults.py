"""Fault injection: latency, error rates, maintenance, 429, slow bodies, commit-then-drop.

Faults are plain settings on :class:`Faults`; the request pipeline in :mod:`dhis2gw.sim.app`
asks it what to do. Every rule can be limited to paths containing one of ``paths`` (matched
against the API path without the ``/api[/NN]`` prefix, e.g. ``"dataValueSets"``). Outages
(connection refused) need the listening port and live in :class:`dhis2gw.sim.server.SimulatorServer`.
"""
from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

from dhis2gw.sim.webmessage import (MAINTENANCE_PAGE, NGINX_PAGE, NGINX_REASONS, UNEXPECTED_ERROR, SimResponse,
                                    reason, web_message)


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

    def clear(self) -> None:
        """Switch every fault off."""
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
                "maintenance": self.maintenance_on}

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
