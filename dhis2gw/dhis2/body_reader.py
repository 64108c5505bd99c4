"""Reading an HTTP response body with a size cap and a cancellable Deferred.

treq's default buffering reads any body whole into memory; a misbehaving proxy
or a huge error page must not be able to do that to the gateway.  The reader
stops the transport as soon as the cap is passed, and cancelling its Deferred
(our body timeout) drops the connection so the pool never reuses it.
"""

from __future__ import annotations

from typing import cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import PotentialDataLoss, ResponseDone
from twisted.web.iweb import UNKNOWN_LENGTH, IResponse

from dhis2gw.dhis2.failures import ResponseTooLarge


class _CappedCollector(Protocol):
    """Collects body chunks; errbacks `ResponseTooLarge` past ``limit`` bytes."""

    def __init__(self, finished: Deferred[bytes], limit: int) -> None:
        self._finished: Deferred[bytes] | None = finished
        self._limit = limit
        self._size = 0
        self._chunks: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self._finished is None:
            return
        self._size += len(data)
        if self._size > self._limit:
            finished, self._finished = self._finished, None
            self._chunks = []
            self.stop()
            finished.errback(ResponseTooLarge(self._limit))
            return
        self._chunks.append(data)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]  # noqa: N802
        if self._finished is None:
            return
        finished, self._finished = self._finished, None
        if reason.check(ResponseDone, PotentialDataLoss):
            finished.callback(b"".join(self._chunks))
        else:
            finished.errback(reason)

    def stop(self) -> None:
        """Stop reading: the connection is closed, not returned to the pool."""
        self._finished = None
        if self.transport is not None:
            cast(IPushProducer, self.transport).stopProducing()  # a response body's transport


def read_body(response: IResponse, limit: int) -> Deferred[bytes]:
    """The whole body of ``response``, at most ``limit`` bytes (else `ResponseTooLarge`).

    Cancelling the returned Deferred stops the transport.
    """
    if response.length == 0:
        return succeed(b"")
    if response.length is not UNKNOWN_LENGTH and response.length > limit:
        # Announced too big: do not read it; stopping the transport drops the connection.
        ignored: Deferred[bytes] = Deferred()
        ignored.addErrback(lambda _failure: None)
        collector = _CappedCollector(ignored, 0)
        response.deliverBody(collector)
        collector.stop()
        return fail(ResponseTooLarge(limit))
    holder: list[_CappedCollector] = []

    def cancel(_d: Deferred[bytes]) -> None:
        if holder:
            holder[0].stop()

    finished: Deferred[bytes] = Deferred(cancel)
    collector = _CappedCollector(finished, limit)
    holder.append(collector)
    response.deliverBody(collector)
    return finished

