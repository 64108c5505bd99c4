"""The ``orgunit`` kind: a batch of org-unit writes for one CC server (internal, no ingest endpoint).

Submissions are made by `dhis2gw.sync.planner.PropagationPlanner`: ``dhis2_payload`` is
``{"operations": [...]}``, parents before children, each operation one of

* ``{"op": "create", "uid", "hash", "body"}`` — ``POST /api/organisationUnits`` keeping the UID;
  when DHIS2 says the object already exists (E5003, HTTP 409) it becomes a ``PUT``;
* ``{"op": "update", "uid", "hash", "body"}`` — ``PUT /api/organisationUnits/{uid}``; a 404
  (the server does not have it yet) becomes a ``POST``;
* ``{"op": "group", "uid", "hash", "groups": [...]}`` — ``POST
  /api/organisationUnitGroups/{g}/organisationUnits/{uid}`` for each group (adding twice is harmless).

So a repeat is an update, never a duplicate. Progress is kept per unit in
``orgunit_propagation``: an attempt skips what an earlier attempt already delivered with the same
hash, so a batch interrupted by an outage resumes where it stopped. A destination-level failure
or a job-level retry ends the attempt with that outcome (same breaker and retry rules as every
kind); a unit DHIS2 refuses is recorded ``rejected`` and the batch goes on. The batch ends
``delivered`` (all written), ``partial`` (some refused) or ``rejected`` (all refused).
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.logger import Logger
from zope.interface import implementer

from dhis2gw.dhis2.outcome import Outcome, OutcomeKind
from dhis2gw.interfaces import IngestRequest, ISubmissionKind, KindError
from dhis2gw.storage.orgunit_propagation import PropagationStore

_OK = (OutcomeKind.DELIVERED, OutcomeKind.PARTIAL)
FLUSH_EVERY = 50  # progress rows written per this many units (and always before the attempt ends)


def _already_exists(outcome: Outcome) -> bool:
    if outcome.kind is not OutcomeKind.REJECTED:
        return False
    if any(r.get("code") == "E5003" for r in outcome.error_reports):
        return True
    return outcome.http_status == 409 and "already exists" in (outcome.message or "")


def _not_found(outcome: Outcome) -> bool:
    return outcome.kind is OutcomeKind.REJECTED and outcome.http_status == 404


@implementer(ISubmissionKind)
class OrgUnitKind:
    """Delivers org-unit batches to a CC server (see module docstring)."""

    name = "orgunit"
    endpoint = None
    request_schema = None
    log = Logger()

    def __init__(self, propagation: PropagationStore) -> None:
        self.propagation = propagation

    async def prepare(self, request: IngestRequest) -> Any:
        """Not accepted over HTTP: org-unit batches come from the sync planner only."""
        raise KindError(404, "unknown_kind", "orgunit submissions are made by the org-unit sync, not by clients")

    async def _write_unit(self, client: Any, op: dict[str, Any]) -> tuple[Outcome, str]:
        """POST or PUT one unit with the fall-backs; returns the outcome and what was done."""
        uid, body = op["uid"], op["body"]
        if op["op"] == "create":
            outcome = await client.create_org_unit(body)
            if _already_exists(outcome):
                return await client.update_org_unit(uid, body), "updated"
            return outcome, "created"
        outcome = await client.update_org_unit(uid, body)
        if _not_found(outcome):
            return await client.create_org_unit(body), "created"
        return outcome, "updated"

    async def _add_groups(self, client: Any, op: dict[str, Any]) -> tuple[Outcome, str]:
        last = Outcome(OutcomeKind.DELIVERED)
        refused: list[Outcome] = []
        for group in op["groups"]:
            outcome = await client.add_org_unit_to_group(group, op["uid"])
            if outcome.kind in _OK:
                last = outcome
            elif outcome.kind is OutcomeKind.REJECTED:
                refused.append(outcome)
            else:
                return outcome, "group"
        return (refused[0] if refused else last), "grouped"

    async def deliver(self, client: Any, submission: dict[str, Any], context: Any) -> Outcome:
        """Apply the batch in order, skipping operations an earlier attempt delivered."""
        server = submission["destination"]
        ops = (submission.get("dhis2_payload") or {}).get("operations") or []
        states = await self.propagation.states(server, [op["uid"] for op in ops])
        counts: Counter[str] = Counter()
        reports: list[dict[str, Any]] = []
        marks: list[tuple[str, str, str, str]] = []
        sid = submission.get("id")

        async def flush() -> None:
            if marks:
                await self.propagation.mark(server, list(marks), sid)
                marks.clear()

        for op in ops:
            key = "group" if op["op"] == "group" else "unit"
            state = states.get((op["uid"], key))
            if state is not None and state["status"] == "delivered" and state["content_hash"] == op["hash"]:
                counts["skipped"] += 1
                continue
            if key == "group":
                outcome, done = await self._add_groups(client, op)
            else:
                outcome, done = await self._write_unit(client, op)
            if outcome.kind in _OK:
                counts[done] += 1
                marks.append((op["uid"], key, op["hash"], "delivered"))
            elif outcome.kind is OutcomeKind.REJECTED:
                counts["rejected"] += 1
                marks.append((op["uid"], key, op["hash"], "rejected"))
                if len(reports) < 50:
                    first = outcome.error_reports[0] if outcome.error_reports else {}
                    reports.append({"uid": op["uid"], "op": op["op"], "code": first.get("code"),
                                    "message": first.get("message") or outcome.message,
                                    "http_status": outcome.http_status})
            else:
                # Destination down, rate limited or a retryable error: keep what is done, let the
                # dispatcher decide (no retry spent for the destination, backoff for RETRY).
                await flush()
                done_so_far = sum(counts[k] for k in ("created", "updated", "grouped"))
                return Outcome(outcome.kind, outcome.reason, http_status=outcome.http_status,
                               retry_after=outcome.retry_after, body=outcome.body,
                               message=f"{outcome.message or outcome.reason} (at {op['uid']};"
                                       f" {done_so_far} written this attempt)")
            if len(marks) >= FLUSH_EVERY:
                await flush()
        await flush()
        written = counts["created"] + counts["updated"] + counts["grouped"]
        stats = {"created": counts["created"], "updated": counts["updated"] + counts["grouped"],
                 "deleted": 0, "ignored": counts["skipped"] + counts["rejected"], "total": len(ops)}
        message = (f"{counts['created']} created, {counts['updated']} updated, {counts['grouped']} group adds, "
                   f"{counts['skipped']} already done, {counts['rejected']} refused")
        if not counts["rejected"]:
            kind = OutcomeKind.DELIVERED
        else:
            kind = OutcomeKind.PARTIAL if written or counts["skipped"] else OutcomeKind.REJECTED
        return Outcome(kind, None if kind is OutcomeKind.DELIVERED else "orgunits_refused",
                       dhis2_status="OK" if kind is OutcomeKind.DELIVERED else "WARNING", stats=stats,
                       error_reports=tuple(reports), body={"summary": dict(counts), "refused": reports},
                       message=message)
