"""Extension points: zope Interfaces that built-in parts and integrators' plugins provide.

Contract for every method: it is ``async`` (or returns a Deferred), never blocks the reactor,
and reports expected problems as typed values — ``KindError`` for bad input at ingest, an
``Outcome`` for what DHIS2 said — rather than raising arbitrary exceptions. An unexpected
exception in ``deliver`` is logged and counted as a job-level failure (it spends a retry).

Plugins get the gateway only as a ``dhis2gw.wiring.context.PluginContext``: ``run(context)``,
``api_area(context)`` and, on any plugin object that has one, an optional ``setup(context)``
called once by the loader before the object is registered (to read settings, add ingest checks,
outcome observers, queue lanes or services). Plugins never see the database or the dispatcher.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from dhis2gw.wiring.context import PluginContext


class KindError(Exception):
    """Input a kind cannot accept; answered to the submitter with ``status`` and nothing is queued.

    :param status: 400 (malformed), 422 (well-formed but unusable, e.g. unmapped codes).
    :param code: machine-readable error code.
    :param details: structured details, e.g. ``{"errors": [{"field", "message"}]}``.
    """

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


@dataclass(frozen=True)
class IngestRequest:
    """What a kind's ``prepare`` gets: the validated body and who sent it."""

    body: Any
    submitter_id: int | None
    source_name: str | None
    destination: str
    instance_name: str
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Prepared:
    """A submission ready to be recorded: what will be sent, and how."""

    dhis2_payload: Any
    import_params: dict[str, str] = field(default_factory=dict)
    value_count: int = 0
    destination: str | None = None  # overrides the request's destination when set
    response_extra: dict[str, Any] = field(default_factory=dict)  # merged into the 202 answer


@dataclass(frozen=True)
class IngestDoc:
    """How a kind's ingest route reads in the OpenAPI document (a kind's optional ``ingest_doc``).

    The route itself (``POST /api/v2<endpoint>``, the body schema, roles, Idempotency-Key, the
    202 answer) is built by the gateway from ``endpoint`` and ``request_schema``; this only adds words
    and the kind's own query parameters, answers and 202 schema.
    """

    summary: str = ""
    description: str = ""
    query: tuple[dict[str, Any], ...] = ()  # OpenAPI parameter objects (import options …)
    responses: dict[int, str] = field(default_factory=dict)  # status → description, added to the common ones
    response_schema: dict[str, Any] | None = None  # the 202 answer, when the kind adds to it


class ISubmissionKind(Interface):
    """A kind of submission: how it is accepted, prepared and delivered to DHIS2.

    The gateway serves ``POST /api/v2<endpoint>`` for every kind with an ``endpoint`` and a
    ``request_schema`` (one route per kind, built when the API is mounted). Optional attributes:
    ``ingest_doc`` (an :class:`IngestDoc`) and ``async repeat_answer(row, query) -> dict``, merged
    into the answer to an Idempotency-Key repeat (e.g. the UIDs the first submission got).
    """

    name = Attribute("Unique name stored in submissions.kind, e.g. 'aggregate'.")
    endpoint = Attribute("Ingest path under /api/v2 (e.g. '/aggregate'), or None for internal kinds.")
    request_schema = Attribute("JSON schema (draft 2020-12) of the ingest body, or None for internal kinds.")

    def prepare(request: IngestRequest) -> Any:
        """Turn a validated body into a ``Prepared`` (async). Raise ``KindError`` for bad input."""

    def deliver(client: Any, submission: dict[str, Any], context: Any) -> Any:
        """Send one submission row to DHIS2 with ``client`` (async); return an ``Outcome``.

        ``context`` is the delivery context of this attempt (not the ``PluginContext``): it offers
        ``save_job(job_id)`` (persist an async DHIS2 job before polling) and ``clock``. Must not
        raise for DHIS2-side problems: the client already turns them into Outcomes.
        """


class ICronJob(Interface):
    """A scheduled job run by the gateway's cron (APScheduler, in the reactor thread)."""

    name = Attribute("Unique job name.")
    cron_expression = Attribute("Five-field cron expression, in the configured timezone.")

    def run(context: PluginContext) -> Any:
        """Do the work (async) with what ``context`` offers; return a small JSON-able dict of
        counts for the run log. Runs on worker processes only (roles ``all`` and ``worker``)."""


class IApiExtension(Interface):
    """Extra routes mounted under /api/v2/ext/{name}, behind the gateway's authentication."""

    name = Attribute("Mount name: routes appear under /api/v2/ext/<name>.")

    def api_area(context: PluginContext) -> Any:
        """Return an object whose methods carry ``@route`` declarations (dhis2gw.api.routing),
        built with what it needs from ``context``; called once, after ``setup``."""
