"""What one call to DHIS2 came to: the `Outcome` every client method returns.

An `Outcome` is the single value the delivery engine branches on.  Its `kind`
follows the outcome rules of DESIGN.md section 4:

==========================  ===============================================  =============  ===============
kind                        when                                             spends retry?  breaker counts?
==========================  ===============================================  =============  ===============
DELIVERED                   body status SUCCESS / OK                         --             --
PARTIAL                     WARNING, or ERROR with some objects stored       --             --
REJECTED                    ERROR with nothing stored, 400/404/413/415/422   --             --
RETRY                       DHIS2 answered "try again" (a transient 409,     yes            no
                            a finished job asking for a parent), a bug
SUSPECT                     500 with a DHIS2 body, read timeout, answer      only while     yes
                            lost after sending, unexpected transport error   DHIS2 is
                            (ambiguous: this payload or the destination?)    healthy
DESTINATION_FAILURE         refused/reset/DNS/TLS, 502/503/504, 401/403,     no             yes
                            302 to the login page, non-JSON 200, HTML 404
RATE_LIMITED                429 (delay by ``retry_after``)                   no             yes
ACCEPTED_ASYNC              DHIS2 queued an async job (see ``job``)          --             --
PENDING                     a polled async job is not finished yet           --             --
==========================  ===============================================  =============  ===============

The interpretation lives in `dhis2gw.dhis2.interpret` (HTTP answers) and
`dhis2gw.dhis2.failures` (transport errors); this module only holds the types.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class OutcomeKind(enum.Enum):
    """How the delivery engine must treat one attempt (see the module table)."""

    DELIVERED = "delivered"
    PARTIAL = "partial"
    REJECTED = "rejected"
    RETRY = "retry"
    SUSPECT = "suspect"
    DESTINATION_FAILURE = "destination_failure"
    RATE_LIMITED = "rate_limited"
    ACCEPTED_ASYNC = "accepted_async"
    PENDING = "pending"


#: Kinds after which the submission reaches a final state (delivered/partial/rejected).
FINAL_KINDS = frozenset({OutcomeKind.DELIVERED, OutcomeKind.PARTIAL, OutcomeKind.REJECTED})

#: Kinds that are the destination's fault: they never spend a retry, the breaker counts them.
DESTINATION_KINDS = frozenset({OutcomeKind.DESTINATION_FAILURE, OutcomeKind.RATE_LIMITED})

#: Kinds that may be this payload's fault or the destination's: the breaker counts them, and the
#: delivery engine spends a retry only when DHIS2 is shown healthy for other work
#: (``dhis2gw.delivery.outcome_rules``).
AMBIGUOUS_KINDS = frozenset({OutcomeKind.SUSPECT})


@dataclass(frozen=True)
class JobRef:
    """An asynchronous DHIS2 job the caller has to poll.

    ``job_type`` is DHIS2's job type (``DATAVALUE_IMPORT`` or ``TRACKER_IMPORT_JOB``);
    ``location`` is the polling URL DHIS2 gave, when it gave one.  ``completed``
    and ``last_message`` describe progress when the job was polled.
    """

    id: str
    job_type: str
    location: str | None = None
    completed: bool | None = None
    last_message: str | None = None


@dataclass(frozen=True)
class Outcome:
    """The interpreted result of one call to DHIS2.

    Fields:
      kind: the `OutcomeKind`.
      reason: short machine-readable cause, e.g. ``"connection_refused"``,
        ``"timeout"``, ``"http_502"``, ``"auth"``, ``"conflicts"``.  None on plain success.
      http_status: the HTTP status, None when no response arrived.
      retry_after: seconds to wait before the next attempt (from ``Retry-After``), or None.
      dhis2_status: the import status in the body (``SUCCESS``/``OK``/``WARNING``/``ERROR``).
      import_count: aggregate ``{imported, updated, ignored, deleted}`` or None.
      stats: tracker/metadata ``{created, updated, deleted, ignored, total}`` or None.
      conflicts: normalised aggregate conflicts, each a dict with the keys
        ``object, objects, value, message, errorCode, property, indexes``.
      rejected_indexes: 0-based positions in ``dataValues[]`` that were not stored.
      error_reports / warning_reports: normalised tracker or metadata reports, each
        ``{code, message, trackerType, uid, args}`` (metadata adds ``property``).
      job: the async job to poll (kind ACCEPTED_ASYNC or PENDING), else None.
      body: the parsed JSON body, or a short text excerpt when it was not JSON.
      message: one human-readable line for logs and the submission's event trail.
      duration: seconds the call took on the client's clock (set by the client).
    """

    kind: OutcomeKind
    reason: str | None = None
    http_status: int | None = None
    retry_after: float | None = None
    dhis2_status: str | None = None
    import_count: Mapping[str, int] | None = None
    stats: Mapping[str, int] | None = None
    conflicts: tuple[Mapping[str, Any], ...] = ()
    rejected_indexes: tuple[int, ...] = ()
    error_reports: tuple[Mapping[str, Any], ...] = ()
    warning_reports: tuple[Mapping[str, Any], ...] = ()
    job: JobRef | None = None
    body: Any = None
    message: str = ""
    duration: float | None = field(default=None, compare=False)

    @property
    def spends_retry(self) -> bool:
        """True when this attempt surely uses up one of the submission's retries (SUSPECT: it depends)."""
        return self.kind is OutcomeKind.RETRY

    @property
    def counts_for_breaker(self) -> bool:
        """True when the destination's circuit breaker must count this failure."""
        return self.kind in DESTINATION_KINDS or self.kind in AMBIGUOUS_KINDS

    @property
    def is_auth_failure(self) -> bool:
        """True for 401/403/login redirects: the breaker opens with reason ``auth``."""
        return self.reason == "auth"

    @property
    def is_final(self) -> bool:
        """True when the submission reaches delivered, partial or rejected."""
        return self.kind in FINAL_KINDS

    def with_duration(self, seconds: float) -> Outcome:
        """Return a copy carrying the measured call duration."""
        return dataclasses.replace(self, duration=seconds)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for the submission row, events and API answers)."""
        return {
            "kind": self.kind.value,
            "reason": self.reason,
            "http_status": self.http_status,
            "retry_after": self.retry_after,
            "dhis2_status": self.dhis2_status,
            "import_count": dict(self.import_count) if self.import_count is not None else None,
            "stats": dict(self.stats) if self.stats is not None else None,
            "conflicts": [dict(c) for c in self.conflicts],
            "rejected_indexes": list(self.rejected_indexes),
            "error_reports": [dict(r) for r in self.error_reports],
            "warning_reports": [dict(r) for r in self.warning_reports],
            "job": dataclasses.asdict(self.job) if self.job is not None else None,
            "message": self.message,
            "duration": self.duration,
        }


@dataclass(frozen=True)
class JobProgress:
    """Progress of an async job read from its notification list (newest first).

    ``known`` is False when DHIS2 returned an empty list: the job id is unknown
    (never existed, or forgotten after a restart / on another node).
    """

    completed: bool
    known: bool
    level: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class ReadBack:
    """What reading a submission back from DHIS2 showed, after an answer was lost or timed out.

    ``state``: ``"confirmed"`` (every value/object is there as sent: delivered without a second
    import), ``"missing"`` (DHIS2 answered; something is not there: post again), or ``"failed"``
    (the read-back itself got no answer at the application level: nothing is known, and DHIS2 is
    not healthy). ``outcome`` is the read's own Outcome; ``message`` one line for the trail.
    """

    state: str
    outcome: Outcome | None = None
    message: str = ""

    @property
    def answered(self) -> bool:
        """True when DHIS2 answered the read at the application level (it is healthy)."""
        return self.state in ("confirmed", "missing")
