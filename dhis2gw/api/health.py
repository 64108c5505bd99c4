"""Liveness and readiness: ``/health`` and ``/ready`` (unversioned, no authentication).

``/health`` says the process is alive. ``/ready`` checks each dependency the gateway needs
to do its work and answers 503 when one is down, naming it, so a load balancer stops sending
submissions to an instance that cannot record them.
"""
from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from dhis2gw import __version__
from dhis2gw.api.routing import Call, Response, route

Check = Callable[[], Coroutine[Any, Any, dict[str, Any]]]


class HealthApi:
    """``/health`` and ``/ready``.

    :param checks: name → async callable returning ``{"ok": bool, ...details}``. A check that
        raises or takes longer than ``timeout`` counts as down.
    :param required: names whose failure makes the instance not ready (others are reported only).
    """

    def __init__(self, clock: IReactorTime, checks: dict[str, Check], required: set[str] | None = None,
                 timeout: float = 2.0) -> None:
        self.clock = clock
        self.checks = checks
        self.required = set(checks) if required is None else required
        self.timeout = timeout

    @route("GET", "/health", public=True, summary="Liveness: the process answers", tags=("health",))
    async def health(self, call: Call) -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    async def _run(self, name: str, check: Check) -> dict[str, Any]:
        d = defer.Deferred.fromCoroutine(check())
        d.addTimeout(self.timeout, self.clock)
        try:
            result = await d
        except defer.TimeoutError:
            return {"ok": False, "error": f"no answer within {self.timeout:g}s"}
        except Exception as e:  # noqa: BLE001 - a failing check is a report, not a crash
            return {"ok": False, "error": str(e) or type(e).__name__}
        return result

    @route("GET", "/ready", public=True, summary="Readiness: PostgreSQL, Redis and destinations",
           tags=("health",), responses={503: "a required dependency is down"})
    async def ready(self, call: Call) -> Response:
        names = list(self.checks)
        results = await defer.gatherResults(
            [defer.Deferred.fromCoroutine(self._run(n, self.checks[n])) for n in names])
        report = dict(zip(names, results))
        ok = all(report[n].get("ok") for n in names if n in self.required)
        return Response({"status": "ready" if ok else "not_ready", "checks": report},
                        status=200 if ok else 503)
