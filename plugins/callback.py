"""Optional plugin: tell the submitter a submission's final outcome with a signed HTTP callback.

When a submission reaches a final state (delivered, partial, rejected or failed), the gateway
POSTs a JSON document about it to a callback URL taken from, in this order:

1. the ``callback_url`` field of the submission body as it was received (the aggregate simplified
   form and the example ``event`` kind accept it; it is never sent to DHIS2 by them);
2. the ``url`` configured for the submitting user in the callbacks file (below).

The body is signed with HMAC-SHA256 over the exact bytes sent, in
``X-Dhis2gw-Signature: sha256=<hex>``; the receiver recomputes it with the shared secret and
compares in constant time. ``X-Dhis2gw-Delivery`` is the callback's own submission UID (the same
on every retry: use it to drop duplicates).

Safety (issue 16; the URL is chosen by a user, the request is made from inside the network):

* a ``callback_url`` in a body is only taken from a submitter whose ``callback_allowed`` flag is
  set (``PUT /api/v2/users/<uid>``; ingest answers 403 otherwise), and only when it matches the
  allow-list (scheme, host — exact or ``*.suffix`` — and port; ``dhis2gw.outbound.AllowRule``);
* every callback, including the per-submitter URLs of the callbacks file, goes through
  ``dhis2gw.outbound``: the name is resolved by the gateway, every address is checked (loopback,
  private, link-local, multicast, unspecified, reserved are refused unless their network is in
  ``allowed_networks``) and the connection goes to the checked address, so DNS rebinding does
  not help; redirects are never followed; at most ``DHIS2GW_CALLBACK_MAX_RESPONSE_BYTES`` of the
  answer is read (the rest is not downloaded) and only a short excerpt and the status are kept,
  for operators: a submitter reading its callback in ``GET /submissions/<id>`` does not see them.

Reliability: the callback is itself a submission of kind ``callback`` in the ``_callbacks`` lane
of the queue — its own worker and concurrency (``DHIS2GW_CALLBACK_CONCURRENCY``), so silent
receivers never take the delivery slots of a DHIS2 destination — created with the idempotency key
``callback:<uid>:<attempt>``. It is retried with the normal backoff and ``max_retries``, survives
restarts, and shows in ``GET /api/v2/submissions/<id>`` and the logs like any other submission;
operators can requeue it. Its ``deliver`` ignores the DHIS2 client and uses its own HTTP client;
a receiver that is down or answers 5xx/408/429 is a job-level retry, a refused address, a
redirect or another 4xx a rejection — never a destination failure.
The callback row is created just after the outcome is committed; a crash exactly between the two
is covered by a sweep (at start-up, then every ``DHIS2GW_CALLBACK_SWEEP_SECONDS``) that queues the
callback of every final submission of the last 24 hours that should have one and has none. The
idempotency key makes the sweep and the normal path create it once between them, in any process.

Configuration (environment, e.g. /etc/default/dhis2gw; secrets are never stored in the database):

``DHIS2GW_CALLBACK_SECRET``        default HMAC secret; callbacks are only sent when a secret applies
``DHIS2GW_CALLBACK_CONFIG``        YAML file: ``secret:``, ``allowed_urls: [..]`` (``allowed_url_prefixes``
                                   is read the same way), ``allowed_networks: [..]`` and
                                   ``submitters: {<username>: {url: .., secret: ..}}``
``DHIS2GW_CALLBACK_ALLOWED_URLS``  comma-separated allow-list of ``scheme://host[:port][/path]``; host may be
                                   ``*.example.org``. Empty: no ``callback_url`` from a body is accepted
``DHIS2GW_CALLBACK_ALLOWED_NETWORKS`` comma-separated CIDRs reachable although not public (a LAN receiver)
``DHIS2GW_CALLBACK_TIMEOUT``       seconds for one callback request, answer included (default 10)
``DHIS2GW_CALLBACK_MAX_RESPONSE_BYTES`` bytes of an answer read at most (default 65536)
``DHIS2GW_CALLBACK_CONCURRENCY``   callbacks in flight at once, per process (default 4)
``DHIS2GW_CALLBACK_SWEEP_SECONDS`` how often the sweep runs (default 300; 0: only at start-up)
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from dhis2gw.dhis2.outcome import Outcome, OutcomeKind
from dhis2gw.interfaces import ISubmissionKind
from dhis2gw.outbound import GuardedEndpointFactory, OutboundPolicy, OutboundRefused, Resolver, read_capped

log = Logger(namespace="dhis2gw.plugins.callback")

SIGNATURE_HEADER = "X-Dhis2gw-Signature"
FINAL_STATES = ("delivered", "partial", "rejected", "failed")
_STATUS_KINDS = {"delivered": OutcomeKind.DELIVERED, "partial": OutcomeKind.PARTIAL,
                 "rejected": OutcomeKind.REJECTED, "failed": OutcomeKind.RETRY}
#: The sweep looks at submissions created this long ago at most, finished at least this long ago.
SWEEP_WINDOW = 24 * 3600.0
SWEEP_GRACE = 60.0
_RETRYABLE = {408, 425, 429}
#: The queue lane of callbacks: its own worker and semaphore, never a DHIS2 destination's.
CALLBACK_LANE = "_callbacks"
#: Characters of the receiver's answer kept for operators.
EXCERPT_CHARS = 300


class _NoDHIS2:
    """The lane's stand-in for a DHIS2 client: callbacks do not use one; its probe is always healthy."""

    async def health_check(self) -> Outcome:
        return Outcome(OutcomeKind.DELIVERED, reason="callback_lane")


def canonical_body(document: Any) -> bytes:
    """The exact bytes POSTed for ``document`` (stable, so every retry carries the same signature)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(secret: str, body: bytes) -> str:
    """The ``X-Dhis2gw-Signature`` value of ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: Optional[str]) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


@dataclass
class CallbackSettings:
    """Where callbacks may go and how they are signed (from the environment and the callbacks file)."""

    secret: str = ""
    submitters: dict[str, dict[str, str]] = field(default_factory=dict)  # lower-case username → {url, secret}
    allowed_prefixes: tuple[str, ...] = ()
    timeout: float = 10.0
    sweep_seconds: float = 300.0
    allowed_networks: tuple[str, ...] = ()
    max_response_bytes: int = 65536
    concurrency: int = 4
    policy: OutboundPolicy = field(default_factory=OutboundPolicy)

    def __post_init__(self) -> None:
        self.policy = OutboundPolicy.from_settings(self.allowed_prefixes, self.allowed_networks)

    @classmethod
    def from_environ(cls, environ: Any) -> "CallbackSettings":
        """Read ``DHIS2GW_CALLBACK_*`` (raises ValueError with one clear line when they are bad)."""
        data: dict[str, Any] = {}
        path = environ.get("DHIS2GW_CALLBACK_CONFIG", "")
        if path:
            import yaml

            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}
            if not isinstance(data, dict):
                raise ValueError(f"{path}: expected a mapping")
        submitters = {}
        for username, entry in (data.get("submitters") or {}).items():
            if not isinstance(entry, dict):
                raise ValueError(f"{path}: submitters.{username} must be a mapping with url and/or secret")
            submitters[str(username).lower()] = {k: str(v) for k, v in entry.items() if k in ("url", "secret")}
        prefixes = list(data.get("allowed_urls") or []) + list(data.get("allowed_url_prefixes") or [])
        prefixes += [p.strip() for p in environ.get("DHIS2GW_CALLBACK_ALLOWED_URLS", "").split(",") if p.strip()]
        networks = [str(n) for n in data.get("allowed_networks") or []]
        networks += [n.strip() for n in environ.get("DHIS2GW_CALLBACK_ALLOWED_NETWORKS", "").split(",") if n.strip()]
        timeout = float(environ.get("DHIS2GW_CALLBACK_TIMEOUT") or data.get("timeout") or 10.0)
        numbers = {}
        for name, default in (("MAX_RESPONSE_BYTES", 65536), ("CONCURRENCY", 4)):
            text = environ.get(f"DHIS2GW_CALLBACK_{name}", "").strip()
            try:
                numbers[name] = int(text) if text else default
            except ValueError:
                raise ValueError(f"DHIS2GW_CALLBACK_{name}: {text!r} is not a whole number") from None
            if numbers[name] < 1:
                raise ValueError(f"DHIS2GW_CALLBACK_{name}: must be at least 1")
        sweep = environ.get("DHIS2GW_CALLBACK_SWEEP_SECONDS", "")
        try:
            sweep_seconds = float(sweep) if sweep.strip() else 300.0
        except ValueError:
            raise ValueError(f"DHIS2GW_CALLBACK_SWEEP_SECONDS: {sweep!r} is not a number of seconds") from None
        return cls(secret=environ.get("DHIS2GW_CALLBACK_SECRET") or str(data.get("secret") or ""),
                   submitters=submitters, allowed_prefixes=tuple(prefixes), timeout=timeout,
                   sweep_seconds=max(0.0, sweep_seconds), allowed_networks=tuple(networks),
                   max_response_bytes=numbers["MAX_RESPONSE_BYTES"], concurrency=numbers["CONCURRENCY"])

    @property
    def active(self) -> bool:
        return bool(self.secret or any(e.get("secret") for e in self.submitters.values()))

    def url_problem(self, url: str, from_body: bool = True) -> Optional[str]:
        """Why a callback URL is refused before resolution, or None (``from_body``: it came from a
        request body, so it must be on the allow-list; callbacks-file URLs were set by an operator)."""
        return self.policy.url_refusal(url, check_allow_list=from_body)


@implementer(IPlugin, ISubmissionKind)
class CallbackKind:
    """Internal kind ``callback`` (no ingest endpoint) plus the outcome observer that queues it."""

    name = "callback"
    endpoint = None
    request_schema = None

    def __init__(self) -> None:
        self.settings = CallbackSettings()
        self.gateway: Any = None
        self.users: Any = None
        self.http: Any = None
        self.pool: Any = None
        self.pending: set[defer.Deferred[Any]] = set()
        self._user_ids: dict[int, str] = {}
        #: How host names are resolved at connect time (tests inject one).
        self.resolver: Optional[Resolver] = None

    # --- wiring ------------------------------------------------------------------------------
    def setup(self, gateway: Any) -> None:
        """Read the settings, make an HTTP client, and watch delivery outcomes (plugin loader hook)."""
        from dhis2gw.plugins_loader import outcome_observers
        from dhis2gw.storage.users import UserStore

        self.settings = CallbackSettings.from_environ(os.environ)
        self.gateway = gateway
        self.users = UserStore(gateway.db)
        self.pending = set()
        self._user_ids = {}
        _CallbackService(self).setServiceParent(gateway.service)
        gateway.parts.setdefault("ingest_checks", []).append(self.check_body)
        if gateway.dispatcher is None:
            return
        if not self.settings.active:
            log.info("callback plugin inactive: set DHIS2GW_CALLBACK_SECRET (or DHIS2GW_CALLBACK_CONFIG)")
            return
        if CALLBACK_LANE not in gateway.dispatcher.workers:
            gateway.dispatcher.add_lane(CALLBACK_LANE, _NoDHIS2(), self.settings.concurrency)
        outcome_observers(gateway).append(self.observe)

    def _client(self) -> Any:
        """A plain ``Agent`` (it never follows redirects) over endpoints that enforce the address policy."""
        if self.http is None:
            from twisted.web.client import Agent, HTTPConnectionPool

            reactor = self.gateway.reactor
            self.pool = HTTPConnectionPool(reactor, persistent=False)
            endpoints = GuardedEndpointFactory(reactor, self.settings.policy, self.resolver,
                                               connect_timeout=self.settings.timeout)
            self.http = Agent.usingEndpointFactory(reactor, endpoints, pool=self.pool)
        return self.http

    # --- outcome → callback submission ---------------------------------------------------------
    def observe(self, destination: str, row: dict[str, Any], outcome: Outcome, event: str) -> None:
        """Outcome observer: queue a callback when ``row`` may have become final (never blocks)."""
        if row.get("kind") == self.name or outcome.kind not in (OutcomeKind.DELIVERED, OutcomeKind.PARTIAL,
                                                                 OutcomeKind.REJECTED, OutcomeKind.RETRY):
            return
        if not self._body_url(row) and not (self.settings.submitters and row.get("submitter_id") is not None):
            return
        d = defer.Deferred.fromCoroutine(self._queue_callback(row, outcome))
        d.addErrback(lambda f: log.failure("callback for submission {sid} not queued", f, sid=row.get("id")))
        self.pending.add(d)
        d.addBoth(lambda _: self.pending.discard(d))

    def check_body(self, principal: Any, body: Any) -> None:
        """Ingest check: a ``callback_url`` the policy refuses is a 422 now, not a silent skip later."""
        url = body.get("callback_url") if isinstance(body, dict) else None
        if url is None:
            return
        from dhis2gw.api.errors import ApiError

        problem = "not a string" if not isinstance(url, str) else self.settings.url_problem(url)
        if problem:
            raise ApiError(422, "callback_url_refused", f"callback_url refused: {problem}",
                           {"field": "callback_url"})

    @staticmethod
    def _body_url(row: dict[str, Any]) -> Optional[str]:
        payload = row.get("payload")
        url = payload.get("callback_url") if isinstance(payload, dict) else None
        return url if isinstance(url, str) and url else None

    async def _submitter(self, submitter_id: Optional[int]) -> tuple[Optional[str], dict[str, str]]:
        """(username, its callbacks-file entry) of a submitter id; usernames resolved once and cached."""
        if submitter_id is None or not self.settings.submitters:
            return None, {}
        if submitter_id not in self._user_ids:
            for username in self.settings.submitters:
                rows, _ = await self.users.list(username=username, page_size=1)
                for user in rows:
                    self._user_ids[int(user["id"])] = username
        username = self._user_ids.get(submitter_id)
        return username, self.settings.submitters.get(username or "", {})

    async def _queue_callback(self, row: dict[str, Any], outcome: Outcome) -> bool:
        """Create (and push) the callback of ``row`` if it is final; True when a new one was created."""
        from dhis2gw.dhis2.uids import generate_uid
        from dhis2gw.storage.submissions import NewSubmission

        store, sid = self.gateway.store, row["id"]
        url = self._body_url(row)
        if url is not None:
            problem = self.settings.url_problem(url)
            if problem is None and not await self._may_name_url(row.get("submitter_id")):
                problem = "the submitter may not name a callback_url"
            if problem:
                log.warn("submission {sid}: callback_url refused ({problem})", sid=sid, problem=problem)
                return False
        else:
            url = (await self._submitter(row.get("submitter_id")))[1].get("url")
            if not url or self.settings.url_problem(url, from_body=False):
                return False
        current = await store.get(sid, with_payloads=False)
        if current is None or current["status"] not in FINAL_STATES:
            return False  # a retry is scheduled: the callback waits for the final outcome
        document = {
            "event": "submission.final",
            "submission": {key: (value.isoformat() if hasattr(value, "isoformat") else value)
                           for key, value in current.items()
                           if key in ("id", "uid", "kind", "destination", "status", "attempts", "http_status",
                                      "value_count", "import_count", "error", "created_at", "finished_at")},
            "status_url": f"/api/v2/submissions/{sid}",
            "outcome": {"kind": outcome.kind.value, "reason": outcome.reason, "http_status": outcome.http_status,
                        "dhis2_status": outcome.dhis2_status, "conflicts": len(outcome.conflicts)
                        + len(outcome.error_reports)},
        }
        created = await store.create(NewSubmission(
            uid=generate_uid(), kind=self.name, destination=CALLBACK_LANE,
            submitter_id=row.get("submitter_id"), endpoint=f"/api/v2/submissions/{sid}",
            payload={"callback_url": url, "for_submission": sid, "for_uid": current["uid"],
                     "url_from": "body" if self._body_url(row) is not None else "callbacks_file"},
            dhis2_payload=document, import_params={}, value_count=0,
            idempotency_key=f"callback:{current['uid']}:{current['attempts']}"))
        if created.existing:
            return False
        from dhis2gw.queue.connection import RedisUnavailable

        try:
            await self.gateway.queue.enqueue(CALLBACK_LANE, created.row["id"], timeout=2)
        except RedisUnavailable as e:
            log.warn("callback {cid} recorded but not pushed ({error}); the reconciler will queue it",
                     cid=created.row["id"], error=e)
            return True
        if self.gateway.dispatcher is not None:
            self.gateway.dispatcher.wake(CALLBACK_LANE)
        return True

    async def _may_name_url(self, submitter_id: Optional[int]) -> bool:
        """The submitter's ``callback_allowed`` flag (no submitter: a gateway-made row, allowed)."""
        if submitter_id is None:
            return True
        row = await self.gateway.db.fetch_one("callback.may_name_url",
                                              "SELECT callback_allowed FROM users WHERE id = %s", (submitter_id,))
        return bool(row and row["callback_allowed"])

    # --- the sweep: callbacks a crash between outcome and callback row left out --------------------
    async def sweep(self, window_seconds: float = SWEEP_WINDOW, grace_seconds: float = SWEEP_GRACE) -> int:
        """Queue the missing callback of every final submission that finished more than
        ``grace_seconds`` ago (the normal path has had its chance) and was created within
        ``window_seconds``; returns how many were queued."""
        submitter_ids = await self._submitter_ids()
        queued, after = 0, 0
        while True:  # in pages by id, so rows that never get a callback (refused URL) cannot starve the rest
            rows = await self.gateway.db.fetch(
                "callback.sweep",
                "SELECT s.id, s.uid, s.kind, s.destination, s.submitter_id, s.status, s.http_status, s.payload"
                " FROM submissions s WHERE s.status IN ('delivered', 'partial', 'rejected', 'failed')"
                " AND s.kind <> %s AND s.created_at > now() - make_interval(secs => %s)"
                " AND s.finished_at < now() - make_interval(secs => %s) AND s.id > %s"
                " AND (s.payload ? 'callback_url' OR s.submitter_id = ANY(%s))"
                " AND NOT EXISTS (SELECT 1 FROM submissions c WHERE c.kind = %s"
                " AND c.submitter_id IS NOT DISTINCT FROM s.submitter_id"
                " AND c.idempotency_key = 'callback:' || s.uid || ':' || s.attempts)"
                " ORDER BY s.id LIMIT 500",
                (self.name, window_seconds, grace_seconds, after, submitter_ids, self.name))
            for row in rows:
                outcome = Outcome(_STATUS_KINDS[row["status"]], reason="recovered", http_status=row["http_status"])
                queued += await self._queue_callback(row, outcome)
            if len(rows) < 500:
                break
            after = rows[-1]["id"]
        if queued:
            log.warn("callback sweep: queued {n} callback(s) missed by an interrupted gateway", n=queued)
        return queued

    async def _submitter_ids(self) -> list[int]:
        """Ids of the users with a callback URL in the callbacks file."""
        ids = []
        for username, entry in self.settings.submitters.items():
            if not entry.get("url"):
                continue
            rows, _ = await self.users.list(username=username, page_size=1)
            ids += [int(user["id"]) for user in rows]
        return ids

    # --- ISubmissionKind ---------------------------------------------------------------------------
    async def prepare(self, request: Any) -> Any:
        """Callbacks are created by the gateway itself, never submitted."""
        from dhis2gw.interfaces import KindError

        raise KindError(404, "unknown_kind", "callback submissions are created by the gateway")

    async def deliver(self, client: Any, submission: dict[str, Any], context: Any) -> Outcome:
        """POST the stored document to the callback URL, signed; ``client`` (DHIS2) is not used."""
        url = submission["payload"]["callback_url"]
        _, entry = await self._submitter(submission.get("submitter_id"))
        secret = entry.get("secret") or self.settings.secret
        if not secret:
            return Outcome(OutcomeKind.REJECTED, reason="no_secret", message="no callback secret is configured")
        body = canonical_body(submission["dhis2_payload"])
        headers = {"Content-Type": ["application/json"], SIGNATURE_HEADER: [sign(secret, body)],
                   "X-Dhis2gw-Event": ["submission.final"], "X-Dhis2gw-Delivery": [submission["uid"]],
                   "User-Agent": ["dhis2gw-callback"]}
        reactor = self.gateway.reactor
        started = reactor.seconds()
        # Checked again when sent: the allow-list (for URLs from a body) or the networks may have changed.
        problem = self.settings.url_problem(url, from_body=submission["payload"].get("url_from") == "body")
        if problem:
            return Outcome(OutcomeKind.REJECTED, reason="callback_refused", message=f"callback URL refused: {problem}")
        try:
            response, excerpt = await self._post(url, body, headers)
        except OutboundRefused as e:
            return Outcome(OutcomeKind.REJECTED, reason="callback_refused", message=f"callback URL refused: {e}",
                           duration=reactor.seconds() - started)
        except Exception as e:  # noqa: BLE001 - any transport problem is worth another try
            return Outcome(OutcomeKind.RETRY, reason="callback_unreachable", message=f"{type(e).__name__}: {e}",
                           duration=reactor.seconds() - started)
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
                       duration=reactor.seconds() - started)

    async def _post(self, url: str, body: bytes, headers: dict[str, list[str]]) -> tuple[Any, str]:
        """POST ``body``; return the response and an excerpt of its answer, all within the timeout."""
        from io import BytesIO

        from twisted.web.client import FileBodyProducer
        from twisted.web.http_headers import Headers

        reactor = self.gateway.reactor

        async def exchange() -> tuple[Any, str]:
            response = await self._client().request(b"POST", url.encode("utf-8"), Headers(headers),
                                                    FileBodyProducer(BytesIO(body)))
            kept, _, _ = await read_capped(response, self.settings.max_response_bytes, keep=EXCERPT_CHARS * 4)
            return response, kept.decode("utf-8", "replace")[:EXCERPT_CHARS]

        d = defer.Deferred.fromCoroutine(exchange())
        d.addTimeout(self.settings.timeout, reactor)
        return await d


class _CallbackService(service.Service):
    """Waits for callbacks being queued, then closes the HTTP client, when the gateway stops."""

    name = "callback-plugin"

    def __init__(self, kind: CallbackKind) -> None:
        self.kind = kind
        self.loop: Any = None
        self.first: Any = None

    def startService(self) -> None:  # noqa: N802
        super().startService()
        kind = self.kind
        if kind.gateway.dispatcher is None or not kind.settings.active:
            return
        from twisted.internet.task import LoopingCall

        def sweep() -> defer.Deferred[Any]:
            d = defer.Deferred.fromCoroutine(kind.sweep())
            d.addErrback(lambda f: log.failure("callback sweep failed", f))
            kind.pending.add(d)  # stopService waits for it
            d.addBoth(lambda _: kind.pending.discard(d))
            return d

        self.loop = LoopingCall(sweep)
        self.loop.clock = kind.gateway.reactor
        # First run once the gateway is up (the database pool may still be connecting now).
        self.first = kind.gateway.reactor.callLater(SWEEP_GRACE / 4, self._begin, kind.settings.sweep_seconds)

    def _begin(self, interval: float) -> None:
        self.first = None
        if interval > 0:
            self.loop.start(interval, now=True)
        else:
            self.loop.f()

    def stopService(self) -> defer.Deferred[None]:  # noqa: N802
        super().stopService()
        if self.first is not None and self.first.active():
            self.first.cancel()
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        return defer.Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self.kind.pending:
            await defer.DeferredList(list(self.kind.pending), consumeErrors=True)
        pool, self.kind.pool, self.kind.http = self.kind.pool, None, None
        if pool is not None:
            await pool.closeCachedConnections()


#: The object ``getPlugins`` finds.
callback = CallbackKind()
