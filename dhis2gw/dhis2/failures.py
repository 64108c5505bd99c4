"""Transport failures (no usable HTTP answer) turned into `Outcome` values.

Rules (DESIGN.md section 4), with the choices made where it is silent:

* Could not reach DHIS2 at all - connection refused, connect timeout, no route,
  DNS failure, TLS handshake/verification failure - and a connection that broke
  *while the request was being sent* (``RequestTransmissionFailed``,
  ``RequestNotSent``): DESTINATION_FAILURE.  The request never arrived whole, so
  nothing was committed, and the next payload would fail the same way: no retry
  is spent, the breaker counts it.
* The request was sent but the answer never came or broke off - our read
  timeout (headers or body), ``ResponseNeverReceived``, ``ResponseFailed``,
  a bare ``ConnectionLost``/``ConnectionDone``: SUSPECT (reasons ``timeout``,
  ``connection_lost``).  Either this payload breaks DHIS2 (a poison payload) or
  DHIS2 is unwell (hung, restarting, behind a resetting proxy); DHIS2 may also
  have committed it ("commit then drop").  The delivery engine reads the data
  back, counts it for the breaker, and spends a retry only when DHIS2 is shown
  healthy for other work (``dhis2gw.delivery.outcome_rules``).
* A body bigger than the configured cap: RETRY (reason ``response_too_large``):
  DHIS2 answered; the answer is this payload's.
* Anything unexpected: SUSPECT (reason ``unexpected_error``), so it is bounded and visible.

A caller's own cancellation (``CancelledError`` not caused by our timeouts) is
not a transport failure: the client lets it propagate.  Given one directly,
this module maps it to SUSPECT ``timeout`` (that is what a ``Deferred.addTimeout``
cancellation looks like when it was not converted).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from twisted.internet import defer, error
from twisted.python.failure import Failure
from twisted.web.client import (
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)

from dhis2gw.dhis2.outcome import Outcome, OutcomeKind

try:  # pyOpenSSL is present with Twisted[tls]; keep working without it.
    from OpenSSL.SSL import Error as _OpenSSLError
except ImportError:  # pragma: no cover
    _OpenSSLError = None  # type: ignore[assignment,misc]


class ConnectTimeout(Exception):
    """The TCP (or TLS) connection was not established within the connect timeout."""


class ReadTimeout(Exception):
    """The response headers or body did not arrive within the read timeout.

    ``phase`` is ``"headers"`` or ``"body"``.
    """

    def __init__(self, phase: str, seconds: float) -> None:
        super().__init__(f"no {phase} from DHIS2 within {seconds:g} s")
        self.phase = phase
        self.seconds = seconds


class ResponseTooLarge(Exception):
    """The response body exceeded the client's ``max_response_bytes``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body larger than {limit} bytes")
        self.limit = limit


_TLS_ERRORS: tuple[type[BaseException], ...] = (
    error.SSLError,
    error.VerifyError,
    error.CertificateError,
) + ((_OpenSSLError,) if _OpenSSLError is not None else ())

_DNS_ERRORS = (error.DNSLookupError, error.UnknownHostError, error.ServiceNameUnknownError)

_NOT_SENT = (RequestTransmissionFailed, RequestNotSent)

_LOST_AFTER_SEND = (
    ResponseNeverReceived,
    ResponseFailed,
    error.ConnectionLost,
    error.ConnectionDone,
    error.ConnectionAborted,
)


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and, recursively, the reasons wrapped by twisted.web's wrapper exceptions."""
    yield exc
    for reason in getattr(exc, "reasons", None) or ():
        inner = reason.value if isinstance(reason, Failure) else reason
        if isinstance(inner, BaseException):
            yield from exception_chain(inner)


def _describe(exc: BaseException) -> str:
    inner = list(exception_chain(exc))[1:]
    text = f"{type(exc).__name__}: {exc}".rstrip(": ")
    if inner:
        text += " (" + ", ".join(f"{type(e).__name__}: {e}" for e in inner[:2]) + ")"
    return text[:300]


def interpret_failure(
    failure: Failure | BaseException, *, http_status: int | None = None
) -> Outcome:
    """Map a transport failure to an Outcome (rules in the module docstring).

    ``http_status`` is passed when the headers had arrived and the body read failed.
    """
    # A Failure always holds its exception (Twisted types the attribute as optional).
    exc = cast(BaseException, failure.value) if isinstance(failure, Failure) else failure
    chain = list(exception_chain(exc))
    text = _describe(exc)

    def outcome(kind: OutcomeKind, reason: str) -> Outcome:
        return Outcome(kind, reason, http_status=http_status, message=text)

    def any_of(types: tuple[type[BaseException], ...]) -> bool:
        return any(isinstance(e, types) for e in chain)

    if any_of((ConnectTimeout, error.TimeoutError, error.TCPTimedOutError)):
        return outcome(OutcomeKind.DESTINATION_FAILURE, "connect_timeout")
    if any_of((ReadTimeout, defer.TimeoutError, defer.CancelledError)):
        return outcome(OutcomeKind.SUSPECT, "timeout")
    if any_of(_DNS_ERRORS):
        return outcome(OutcomeKind.DESTINATION_FAILURE, "dns")
    if any_of(_TLS_ERRORS):
        return outcome(OutcomeKind.DESTINATION_FAILURE, "tls")
    if any_of((error.ConnectionRefusedError,)):
        return outcome(OutcomeKind.DESTINATION_FAILURE, "connection_refused")
    if any_of((error.ConnectError,)):
        return outcome(OutcomeKind.DESTINATION_FAILURE, "connect_error")
    if isinstance(exc, _NOT_SENT):
        return outcome(OutcomeKind.DESTINATION_FAILURE, "connection_reset")
    if any_of(_LOST_AFTER_SEND):
        return outcome(OutcomeKind.SUSPECT, "connection_lost")
    if isinstance(exc, ResponseTooLarge):
        return outcome(OutcomeKind.RETRY, "response_too_large")
    return outcome(OutcomeKind.SUSPECT, "unexpected_error")
