"""``CallbackKind``: the internal submission kind ``callback``, set up from the ``PluginContext``.

It has no ingest endpoint: callbacks are created by the gateway (``CallbackCreator``) in their
own lane, ``_callbacks``, and delivered by ``CallbackSender`` — the DHIS2 client the dispatcher
hands to ``deliver`` is not used.
"""
from __future__ import annotations

from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from dhis2gw.callbacks.creator import CALLBACK_LANE, SWEEP_GRACE, SWEEP_WINDOW, CallbackCreator
from dhis2gw.callbacks.sender import CallbackSender
from dhis2gw.callbacks.service import CallbackService
from dhis2gw.callbacks.settings import CallbackSettings
from dhis2gw.callbacks.submitters import CallbackSubmitters
from dhis2gw.dhis2.outcome import Outcome, OutcomeKind
from dhis2gw.errors import ApiError
from dhis2gw.interfaces import IngestRequest, ISubmissionKind, KindError
from dhis2gw.outbound import Resolver
from dhis2gw.wiring.context import PluginContext

log = Logger(namespace="dhis2gw.plugins.callback")


class LaneClient:
    """The ``_callbacks`` lane's stand-in for a DHIS2 client: callbacks do not use one, and its
    breaker probe is always healthy (a receiver that is down fails its own callbacks only)."""

    async def health_check(self) -> Outcome:
        """Always healthy."""
        return Outcome(OutcomeKind.DELIVERED, reason="callback_lane")


@implementer(ISubmissionKind)
class CallbackKind:
    """Internal kind ``callback`` (no ingest endpoint); ``setup`` wires the outcome observer that
    queues callbacks, the ingest check of ``callback_url`` and the sweep."""

    name = "callback"
    endpoint = None
    request_schema = None

    def __init__(self) -> None:
        self.settings = CallbackSettings()
        #: How host names are resolved at connect time (None: the system's; tests inject one).
        self.resolver: Resolver | None = None
        self.creator: CallbackCreator | None = None
        self.sender: CallbackSender | None = None

    def setup(self, context: PluginContext) -> None:
        """Read the settings, add the ingest check and the service, and (in a process that delivers,
        when a secret is configured) add the ``_callbacks`` lane and watch delivery outcomes."""
        self.settings = CallbackSettings.from_environ(context.environ)
        submitters = CallbackSubmitters(context.users, self.settings)
        self.sender = CallbackSender(context.reactor, self.settings, submitters, self.resolver)
        self.creator = CallbackCreator(self.name, context.submissions, context.queue, self.settings, submitters)
        sweeping = context.runs_worker and self.settings.active
        context.add_service(CallbackService(context.reactor, self.creator, self.sender, sweeping,
                                            self.settings.sweep_seconds))
        context.ingest_checks.append(self.check_body)
        if not context.runs_worker:
            return
        if not self.settings.active:
            log.info("callback plugin inactive: set DHIS2GW_CALLBACK_SECRET (or DHIS2GW_CALLBACK_CONFIG)")
            return
        if not context.queue.has_lane(CALLBACK_LANE):
            context.queue.add_lane(CALLBACK_LANE, LaneClient(), self.settings.concurrency)
        context.outcomes.add(self.creator.observe)

    def check_body(self, principal: Any, body: Any) -> None:
        """Ingest check: a ``callback_url`` the policy refuses is a 422 now, not a silent skip later."""
        url = body.get("callback_url") if isinstance(body, dict) else None
        if url is None:
            return
        problem = "not a string" if not isinstance(url, str) else self.settings.url_problem(url)
        if problem:
            raise ApiError(422, "callback_url_refused", f"callback_url refused: {problem}",
                           {"field": "callback_url"})

    async def sweep(self, window_seconds: float = SWEEP_WINDOW, grace_seconds: float = SWEEP_GRACE) -> int:
        """Queue the callbacks a crash left out (see ``CallbackCreator.sweep``); how many were queued."""
        if self.creator is None:
            raise RuntimeError("the callback kind is not set up")
        return await self.creator.sweep(window_seconds, grace_seconds)

    # --- ISubmissionKind ---------------------------------------------------------------------------
    async def prepare(self, request: IngestRequest) -> Any:
        """Callbacks are created by the gateway itself, never submitted."""
        raise KindError(404, "unknown_kind", "callback submissions are created by the gateway")

    async def deliver(self, client: Any, submission: dict[str, Any], context: Any) -> Outcome:
        """POST the stored document to the callback URL, signed; ``client`` (DHIS2) is not used."""
        if self.sender is None:
            raise RuntimeError("the callback kind is not set up")
        return await self.sender.deliver(submission)
