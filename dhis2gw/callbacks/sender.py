"""``CallbackSender``: the signed POST of one callback, made safely.

Every request goes through ``dhis2gw.outbound``: the name is resolved by the gateway, every
address is checked against the policy and the connection goes to the checked address (no DNS
rebinding); a plain ``Agent`` never follows redirects; at most ``max_response_bytes`` of the
answer is read and only a short excerpt and the status are kept. The whole exchange is bounded by
the settings' timeout on the injected reactor.
"""
from __future__ import annotations

from io import BytesIO
from typing import Any

from twisted.internet import defer
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool
from twisted.web.http_headers import Headers

from dhis2gw.callbacks.settings import CallbackSettings
from dhis2gw.callbacks.signing import SIGNATURE_HEADER, canonical_body, sign
from dhis2gw.callbacks.submitters import CallbackSubmitters
from dhis2gw.dhis2.outcome import Outcome, OutcomeKind
from dhis2gw.outbound import GuardedEndpointFactory, OutboundRefused, Resolver, read_capped
from dhis2gw.wiring.context import IPluginReactor

_RETRYABLE = {408, 425, 429}
#: Characters of the receiver's answer kept for operators.
EXCERPT_CHARS = 300


class CallbackSender:
    """POSTs stored callback documents, signed, and turns the receiver's answer into an ``Outcome``.

    A receiver that is down or answers 5xx/408/425/429 is a job-level retry; a refused address, a
    redirect or another 4xx is a rejection — never a destination failure.
    """

    def __init__(self, reactor: IPluginReactor, settings: CallbackSettings, submitters: CallbackSubmitters,
                 resolver: Resolver | None = None) -> None:
        self.reactor = reactor
        self.settings = settings
        self.submitters = submitters
        #: How host names are resolved at connect time (None: the system resolver; tests inject one).
        self.resolver = resolver
        self.http: Any = None
        self.pool: HTTPConnectionPool | None = None

    def _client(self) -> Any:
        """A plain ``Agent`` (it never follows redirects) over endpoints that enforce the address policy."""
        if self.http is None:
            self.pool = HTTPConnectionPool(self.reactor, persistent=False)
            endpoints = GuardedEndpointFactory(self.reactor, self.settings.policy, self.resolver,
                                               connect_timeout=self.settings.timeout)
            self.http = Agent.usingEndpointFactory(self.reactor, endpoints, pool=self.pool)
        return self.http

    async def deliver(self, submission: dict[str, Any]) -> Outcome:
        """POST a callback submission's stored document to its URL, signed with the applicable secret."""
        url = submission["payload"]["callback_url"]
        _, entry = await self.submitters.entry(submission.get("submitter_id"))
        secret = entry.get("secret") or self.settings.secret
        if not secret:
            return Outcome(OutcomeKind.REJECTED, reason="no_secret", message="no callback secret is configured")
        body = canonical_body(submission["dhis2_payload"])
        headers = {"Content-Type": ["application/json"], SIGNATURE_HEADER: [sign(secret, body)],
                   "X-Dhis2gw-Event": ["submission.final"], "X-Dhis2gw-Delivery": [submission["uid"]],
                   "User-Agent": ["dhis2gw-callback"]}
        started = self.reactor.seconds()
        # Checked again when sent: the allow-list (for URLs from a body) or the networks may have changed.
        problem = self.settings.url_problem(url, from_body=submission["payload"].get("url_from") == "body")
        if problem:
            return Outcome(OutcomeKind.REJECTED, reason="callback_refused", message=f"callback URL refused: {problem}")
        try:
            response, excerpt = await self._post(url, body, headers)
        except OutboundRefused as e:
            return Outcome(OutcomeKind.REJECTED, reason="callback_refused", message=f"callback URL refused: {e}",
                           duration=self.reactor.seconds() - started)
        except Exception as e:  # noqa: BLE001 - any transport problem is worth another try
            return Outcome(OutcomeKind.RETRY, reason="callback_unreachable", message=f"{type(e).__name__}: {e}",
                           duration=self.reactor.seconds() - started)
        code = response.code
        kind = (OutcomeKind.DELIVERED if 200 <= code < 300 else
                OutcomeKind.RETRY if code >= 500 or code in _RETRYABLE else OutcomeKind.REJECTED)
        reason = None if kind is OutcomeKind.DELIVERED else f"callback_http_{code}"
        if 300 <= code < 400:
            reason = "callback_redirect_refused"  # never followed: it could point anywhere
        retry_after = response.headers.getRawHeaders(b"retry-after", [None])[0]
        retry_after = retry_after.decode("ascii", "replace") if isinstance(retry_after, bytes) else retry_after
        return Outcome(kind, reason=reason, http_status=code,
                       body={"receiver_status": code, "excerpt": excerpt},
                       message=f"callback receiver answered {code}",
                       retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
                       duration=self.reactor.seconds() - started)

    async def _post(self, url: str, body: bytes, headers: dict[str, list[str]]) -> tuple[Any, str]:
        """POST ``body``; return the response and an excerpt of its answer, all within the timeout."""

        async def exchange() -> tuple[Any, str]:
            response = await self._client().request(b"POST", url.encode("utf-8"), Headers(headers),
                                                    FileBodyProducer(BytesIO(body)))
            kept, _, _ = await read_capped(response, self.settings.max_response_bytes, keep=EXCERPT_CHARS * 4)
            return response, kept.decode("utf-8", "replace")[:EXCERPT_CHARS]

        d = defer.Deferred.fromCoroutine(exchange())
        d.addTimeout(self.settings.timeout, self.reactor)
        return await d

    async def close(self) -> None:
        """Close the cached connections (the gateway is stopping); a later POST opens a new pool."""
        pool, self.pool, self.http = self.pool, None, None
        if pool is not None:
            await pool.closeCachedConnections()
