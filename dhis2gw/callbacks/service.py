"""``CallbackService``: runs the sweep on its schedule; on stop, waits for callbacks being queued
and closes the HTTP client."""
from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from dhis2gw.callbacks.creator import SWEEP_GRACE, CallbackCreator
from dhis2gw.callbacks.sender import CallbackSender
from dhis2gw.wiring.context import IPluginReactor

log = Logger(namespace="dhis2gw.plugins.callback")


class CallbackService(service.Service):
    """The sweep (first run shortly after start-up, then every ``sweep_seconds``; 0: once) when
    ``sweeping``, and the orderly stop of the callback machinery in every process."""

    name = "callback-plugin"

    def __init__(self, reactor: IPluginReactor, creator: CallbackCreator, sender: CallbackSender,
                 sweeping: bool, sweep_seconds: float) -> None:
        self.reactor = reactor
        self.creator = creator
        self.sender = sender
        self.sweeping = sweeping
        self.sweep_seconds = sweep_seconds
        self.loop: LoopingCall | None = None
        self.first: IDelayedCall | None = None

    def startService(self) -> None:  # noqa: N802
        super().startService()
        if not self.sweeping:
            return
        self.loop = LoopingCall(self._sweep)
        self.loop.clock = self.reactor
        # First run once the gateway is up (the database pool may still be connecting now).
        self.first = self.reactor.callLater(SWEEP_GRACE / 4, self._begin)

    def _sweep(self) -> defer.Deferred[Any]:
        d = defer.Deferred.fromCoroutine(self.creator.sweep())
        d.addErrback(lambda f: log.failure("callback sweep failed", f))
        return self.creator.track(d)  # stopService waits for it

    def _begin(self) -> None:
        self.first = None
        assert self.loop is not None
        if self.sweep_seconds > 0:
            self.loop.start(self.sweep_seconds, now=True)
        else:
            self._sweep()

    def stopService(self) -> defer.Deferred[None]:  # noqa: N802
        super().stopService()
        if self.first is not None and self.first.active():
            self.first.cancel()
        self.first = None
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self.creator.pending:
            await defer.DeferredList(list(self.creator.pending), consumeErrors=True)
        await self.sender.close()
