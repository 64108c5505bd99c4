"""Queue control for operators: ``GET /queue``, ``POST /queue/{destination}/pause|resume``.

Per destination the status joins three sources: Redis (ready, processing, delayed, paused), the
dispatcher of this process (in-flight attempts, breaker state — absent in an api-only process)
and PostgreSQL (the oldest row still waiting, which is also right when Redis lost its data).
Redis being down does not fail the request: its numbers are null and ``redis`` is false.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twisted.internet.interfaces import IReactorTime

from dhis2gw.api.routing import OPERATOR, Call, route
from dhis2gw.errors import ApiError
from dhis2gw.operations import schemas
from dhis2gw.queue.connection import RedisUnavailable
from dhis2gw.queue.feed import SubmissionQueue
from dhis2gw.storage.logs import LogStore


def _iso_seconds(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()


class QueueApi:
    """Queue status and the per-destination hand brake (mount under ``/api/v2``).

    :param known_destinations: callable returning the configured destination names.
    :param dispatcher: the Dispatcher of this process, or None (role ``api``).
    :param about: who answers (``name``, ``version``, ``timezone``), shown by the admin dashboard.
    :param urls: destination name → its DHIS2 base URL (no credentials).
    """

    def __init__(self, clock: IReactorTime, queue: SubmissionQueue, logs: LogStore, known_destinations: Any,
                 dispatcher: Any | None = None, about: dict[str, Any] | None = None,
                 urls: dict[str, str] | None = None) -> None:
        self.clock = clock
        self.about = dict(about or {})
        self.urls = dict(urls or {})
        self.queue = queue
        self.logs = logs
        self.known_destinations = known_destinations
        self.dispatcher = dispatcher

    async def destination_status(self, name: str, waiting: dict[str, Any], redis_ok: bool) -> dict[str, Any]:
        """The status of one destination."""
        out: dict[str, Any] = {"destination": name, "url": self.urls.get(name), "ready": None, "processing": None,
                               "delayed": None, "paused": None}
        if redis_ok:
            depth = await self.queue.depth(name)
            out.update(ready=depth.ready, processing=depth.processing, delayed=depth.delayed, paused=depth.paused)
        oldest = waiting.get("oldest")
        out["waiting_rows"] = waiting.get("waiting", 0)
        out["oldest_waiting_at"] = oldest.isoformat() if oldest is not None else None
        out["oldest_waiting_seconds"] = (round(max(0.0, self.clock.seconds() - oldest.timestamp()), 3)
                                         if oldest is not None else None)
        worker = self.dispatcher.workers.get(name) if self.dispatcher is not None else None
        out["in_flight"] = len(worker.in_flight) if worker is not None else None
        breaker = self.dispatcher.breakers.get(name) if self.dispatcher is not None else None
        if breaker is not None:
            snap = breaker.snapshot()
            out["breaker"] = {"state": snap.state, "reason": snap.reason, "since": _iso_seconds(snap.since),
                              "consecutive_failures": snap.consecutive_failures, "opened_count": snap.opened_count}
        else:
            out["breaker"] = None
        return out

    async def _names(self) -> tuple[list[str], bool]:
        names = set(self.known_destinations())
        try:
            names.update(await self.queue.destinations())
            return sorted(names), True
        except RedisUnavailable:
            return sorted(names), False

    @route("GET", "/queue", roles=OPERATOR, summary="Queue status per destination", tags=("queue",),
           response_schema=schemas.QUEUE_STATUS)
    async def status(self, call: Call) -> dict[str, Any]:
        names, redis_ok = await self._names()
        waiting = await self.logs.oldest_waiting()
        names = sorted(set(names) | set(waiting))
        items = []
        for name in names:
            try:
                items.append(await self.destination_status(name, waiting.get(name, {}), redis_ok))
            except RedisUnavailable:
                redis_ok = False
                items.append(await self.destination_status(name, waiting.get(name, {}), False))
        return {"destinations": items, "redis": redis_ok, "gateway": self.about}

    def _known(self, destination: str) -> None:
        if destination not in set(self.known_destinations()):
            raise ApiError(404, "unknown_destination", f"no DHIS2 destination named {destination!r} is configured",
                           {"known": sorted(self.known_destinations())})

    @route("POST", "/queue/<destination>/pause", roles=OPERATOR, summary="Stop deliveries to a destination",
           tags=("queue",), response_schema=schemas.QUEUE_DESTINATION, responses={404: "unknown destination"})
    async def pause(self, call: Call, destination: str) -> dict[str, Any]:
        self._known(destination)
        await self.queue.pause(destination)
        waiting = (await self.logs.oldest_waiting()).get(destination, {})
        return await self.destination_status(destination, waiting, True)

    @route("POST", "/queue/<destination>/resume", roles=OPERATOR, summary="Resume deliveries to a destination",
           tags=("queue",), response_schema=schemas.QUEUE_DESTINATION, responses={404: "unknown destination"})
    async def resume(self, call: Call, destination: str) -> dict[str, Any]:
        self._known(destination)
        await self.queue.resume(destination)
        if self.dispatcher is not None:
            self.dispatcher.wake(destination)
        waiting = (await self.logs.oldest_waiting()).get(destination, {})
        return await self.destination_status(destination, waiting, True)
