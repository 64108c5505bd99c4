"""The status vocabulary of a submission, defined once.

A submission is ``queued``, then ``processing`` while an attempt holds it, then either final
(``delivered``, ``partial``, ``rejected``, ``failed``) or ``retrying`` until its next attempt.
The ``submissions.status`` CHECK constraint (migrations/0001_initial.sql) lists the same seven.
Everything else — the store's SQL, the delivery worker, the log filters and their OpenAPI
schemas, the org-unit sync planner — takes its statuses from here.
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from dhis2gw.dhis2.outcome import OutcomeKind

QUEUED = "queued"
PROCESSING = "processing"
RETRYING = "retrying"
DELIVERED = "delivered"
PARTIAL = "partial"
REJECTED = "rejected"
FAILED = "failed"

#: Every status, in the order the API documents them (docs/operations.md, the CHECK constraint).
STATUSES = (QUEUED, PROCESSING, DELIVERED, PARTIAL, REJECTED, RETRYING, FAILED)

#: Not final: the submission is still to be delivered (the reconciler keeps these in Redis).
PENDING_STATES = (QUEUED, PROCESSING, RETRYING)

#: Final: nothing more happens unless an operator requeues.
FINAL_STATES = (DELIVERED, PARTIAL, REJECTED, FAILED)

#: Final states an operator may requeue without ``force`` (``delivered`` needs it).
REQUEUEABLE = (PARTIAL, REJECTED, FAILED)

#: The final status an application-level answer of DHIS2 gives a submission.
FINAL_STATUS: Mapping[OutcomeKind, str] = MappingProxyType({
    OutcomeKind.DELIVERED: DELIVERED, OutcomeKind.PARTIAL: PARTIAL, OutcomeKind.REJECTED: REJECTED})


def sql_list(statuses: tuple[str, ...]) -> str:
    """``('queued', 'processing', …)`` for a SQL ``IN``: only for these constants, never for input."""
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise ValueError(f"not a submission status: {unknown[0]!r}")
    return "(" + ", ".join(f"'{s}'" for s in statuses) + ")"
