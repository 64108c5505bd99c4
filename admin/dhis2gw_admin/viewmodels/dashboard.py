"""DashboardVM: counts per status (24 h / 7 d), queue per destination, pause/resume, auto-refresh.

The counts come from ``GET /logs/stats`` (every status for the last 24 hours and 7 days, in one
request); the queue from ``GET /queue``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from twisted.internet import defer

from dhis2gw_admin.api import GatewayApi
from dhis2gw_admin.observable import Field
from dhis2gw_admin.viewmodels.base import ViewModel, age_text

STATUSES = ("queued", "processing", "retrying", "delivered", "partial", "rejected", "failed")
WINDOWS = ("24h", "7d")


def destination_row(item: dict[str, Any]) -> dict[str, Any]:
    """One destination of ``GET /queue`` with display texts added."""
    breaker = item.get("breaker") or {}
    state = breaker.get("state") or "unknown (no worker in this process)"
    reason = breaker.get("reason") or ""
    row = dict(item)
    row["title"] = f"{item['destination']}: DHIS2 at {item['url']}" if item.get("url") else item["destination"]
    row["stale"] = False
    row["breaker_text"] = f"{state}: {reason}" if reason else state
    row["oldest_text"] = age_text(item.get("oldest_waiting_seconds"))
    row["depth_text"] = (f"ready {item.get('ready') if item.get('ready') is not None else '?'}, "
                         f"processing {item.get('processing') if item.get('processing') is not None else '?'}, "
                         f"delayed {item.get('delayed') if item.get('delayed') is not None else '?'}, "
                         f"in flight {item.get('in_flight') if item.get('in_flight') is not None else '?'}")
    row["paused_text"] = "PAUSED" if item.get("paused") else "running"
    return row


def stale_row(row: dict[str, Any], when: str) -> dict[str, Any]:
    """A destination as last seen, once the gateway stopped answering: nothing in it is claimed as
    current (no "running / breaker closed" under an error saying the gateway cannot be reached)."""
    unknown = "unknown: the gateway did not answer"
    if when:
        unknown += f" (last seen {when})"
    return {**row, "stale": True, "paused_text": "state unknown", "breaker_text": unknown,
            "depth_text": "unknown", "oldest_text": "unknown"}


class DashboardVM(ViewModel):
    """Counts, queues and the per-destination hand brake."""

    counts = Field({})          # {"24h": {status: n}, "7d": {status: n}}
    destinations = Field([])    # destination_row() dicts
    redis_ok = Field(True)
    updated_at = Field("")
    gateway_text = Field("")    # which gateway this is: name, address, version, time zone

    def __init__(self, api: GatewayApi, clock: Any, interval: float = 15.0) -> None:
        self.api = api
        self.clock = clock
        self.interval = interval
        self._timer: Any | None = None
        self._auto = False

    async def _load(self) -> bool:
        now = self.clock.seconds()
        stats = defer.Deferred.fromCoroutine(self.api.log_stats())
        try:
            queue = await self.api.queue_status()
        finally:
            windows = (await stats)["windows"]  # awaited either way, so its failure is never left unhandled
        self.counts = {w: {s: int(windows.get(w, {}).get(s, 0)) for s in STATUSES} for w in WINDOWS}
        about = queue.get("gateway") or {}
        address = getattr(getattr(self.api, "client", None), "base_url", "")
        details = ", ".join(x for x in (f"dhis2gw {about['version']}" if about.get("version") else "",
                                        about.get("timezone", "")) if x)
        self.gateway_text = (f"Gateway {about.get('name') or address} at {address}"
                             + (f" ({details})" if details else ""))
        self.redis_ok = bool(queue.get("redis", True))
        self.destinations = [destination_row(d) for d in queue.get("destinations", [])]
        self.updated_at = datetime.fromtimestamp(now).strftime("%H:%M:%S")
        return True

    async def refresh(self) -> bool:
        """Reload everything; True on success. On failure the error is shown and what was shown
        before is marked unknown (it no longer describes the gateway)."""
        if await self.guard(self._load()):
            return True
        if self.destinations and not all(d.get("stale") for d in self.destinations):
            self.destinations = [stale_row(d, self.updated_at) for d in self.destinations]
        return False

    async def pause(self, destination: str) -> None:
        await self.act(self.api.pause(destination), lambda _: f"Deliveries to {destination} paused", self.refresh)

    async def resume(self, destination: str) -> None:
        await self.act(self.api.resume(destination), lambda _: f"Deliveries to {destination} resumed", self.refresh)

    # --- auto-refresh -----------------------------------------------------------------------
    def start_auto_refresh(self) -> None:
        """Refresh now and every ``interval`` seconds until ``stop_auto_refresh``."""
        self.stop_auto_refresh()
        self._auto = True
        self._tick()

    def _tick(self) -> None:
        d = self.spawn(self.refresh())
        d.addBoth(lambda _: self._schedule())

    def _schedule(self) -> None:
        if not self._auto or self._timer is not None or self.interval <= 0:
            return
        self._timer = self.clock.callLater(self.interval, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._tick()

    def stop_auto_refresh(self) -> None:
        self._auto = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    @property
    def auto_refreshing(self) -> bool:
        return self._auto
