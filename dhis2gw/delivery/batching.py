"""Aggregate batching: several submissions in ONE ``dataValueSets`` request, answers attributed back.

DHIS2 import calls are slow (100 ms to seconds) and national servers are shared, so the number of
round trips bounds throughput. Submissions for the same destination, data set and import options
are merged into one payload: header fields (``period``, ``orgUnit``, ``attributeOptionCombo``)
move onto each value, and each submission owns a contiguous span of ``dataValues``.

Attribution (each submission must get the result it would have got alone):

* SUCCESS → every submission delivered;
* WARNING with conflicts that carry ``indexes`` (DHIS2 2.37+; ``rejectedIndexes`` 2.39+) → a
  submission with a rejected value is ``partial`` with its own conflicts (indexes renumbered to
  its own payload), the others ``delivered`` — exactly what a lone import would have said;
* a header-level ERROR, a job-level failure (500, timeout) or a destination failure applies to
  every submission of the batch (they share the header and the request);
* anything that cannot be attributed — DHIS2 2.36 (conflicts without indexes), a conflict with no
  index, an ERROR that stored something — is ``None`` for every submission: the caller delivers
  each alone (re-importing the values that were stored is idempotent);
* a submission whose values were ALL rejected is ``None`` too: alone, some of those conflicts
  (an unknown org unit or attribute combo on its header) would have aborted the whole import as
  ERROR (rejected) rather than WARNING, so only a lone import can tell.

Import counts are per batch in DHIS2's answer. A submission gets exact counts when they can be
derived (everything it sent was imported, or everything updated, or everything ignored);
otherwise ``{"accepted": n, "rejected": m}`` plus the batch totals under ``"batch"``.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from dhis2gw.dhis2.outcome import Outcome, OutcomeKind

_HEADER_INLINE = ("period", "orgUnit", "attributeOptionCombo")


@dataclass(frozen=True)
class BatchSettings:
    """Limits of one batched request (``delivery.batch_*`` configuration keys)."""

    max_values: int = 5000
    max_bytes: int = 2 * 1024 * 1024
    linger: float = 0.05  # seconds to wait for more submissions when fewer than a full batch are ready
    max_submissions: int = 500


def batch_key(row: dict[str, Any]) -> Optional[tuple[str, str, str]]:
    """(destination, data set, import options) for batchable rows; None when it must go alone.

    A submission that registers completeness (``completeDate``) or is a native payload with
    values lacking period/orgUnit goes alone.
    """
    if row.get("kind") != "aggregate":
        return None
    payload = row.get("dhis2_payload")
    if not isinstance(payload, dict) or payload.get("completeDate") or not payload.get("dataValues"):
        return None
    params = json.dumps(row.get("import_params") or {}, sort_keys=True)
    return (str(row.get("destination")), str(payload.get("dataSet") or ""), params)


@dataclass(frozen=True)
class Batch:
    """A merged payload and where each submission's values sit in it."""

    rows: tuple[dict[str, Any], ...]
    payload: dict[str, Any]
    spans: tuple[tuple[int, int], ...]  # [start, end) per row

    @property
    def size(self) -> int:
        return len(self.rows)


def merge(rows: Sequence[dict[str, Any]]) -> Batch:
    """Merge rows (same ``batch_key``) into one dataValueSet."""
    values: list[dict[str, Any]] = []
    spans: list[tuple[int, int]] = []
    data_set = ""
    for row in rows:
        payload = row["dhis2_payload"]
        data_set = payload.get("dataSet") or data_set
        start = len(values)
        for dv in payload["dataValues"]:
            entry = dict(dv)
            for key in _HEADER_INLINE:
                if key not in entry and payload.get(key):
                    entry[key] = payload[key]
            values.append(entry)
        spans.append((start, len(values)))
    merged: dict[str, Any] = {"dataValues": values}
    if data_set:
        merged["dataSet"] = data_set
    return Batch(tuple(rows), merged, tuple(spans))


def payload_size(row: dict[str, Any]) -> int:
    """Approximate JSON size of a row's DHIS2 payload (for the batch byte limit)."""
    return len(json.dumps(row.get("dhis2_payload"), separators=(",", ":")))


def _count_for(total: dict[str, int], sent: int, rejected: int) -> dict[str, Any]:
    accepted = sent - rejected
    imported, updated, ignored = (int(total.get(k, 0)) for k in ("imported", "updated", "ignored"))
    stored = imported + updated + ignored
    for key, value in (("imported", imported), ("updated", updated), ("ignored", ignored)):
        if value == stored:  # every accepted value of the batch is of this one kind
            counts = {"imported": 0, "updated": 0, "ignored": 0, "deleted": 0}
            counts[key] = accepted
            return counts
    return {"accepted": accepted, "rejected": rejected, "batch": dict(total)}


def _local_conflicts(conflicts: Sequence[dict[str, Any]], start: int, end: int) -> list[dict[str, Any]]:
    out = []
    for conflict in conflicts:
        mine = [i - start for i in conflict.get("indexes") or () if start <= i < end]
        if mine:
            out.append(dict(conflict, indexes=mine))
    return out


def attribute(batch: Batch, outcome: Outcome) -> list[Optional[Outcome]]:
    """One Outcome per row of ``batch``; None for a row that must be delivered alone (module docstring)."""
    split: list[Optional[Outcome]] = [None] * batch.size
    shared = (OutcomeKind.RETRY, OutcomeKind.DESTINATION_FAILURE, OutcomeKind.RATE_LIMITED)
    if outcome.kind in shared:
        return [outcome] * batch.size
    if outcome.kind is OutcomeKind.REJECTED:
        count = outcome.import_count or {}
        if any(int(count.get(k, 0)) for k in ("imported", "updated", "deleted")):
            return split
        return [outcome] * batch.size  # header-level: the same verdict alone
    if outcome.kind is OutcomeKind.DELIVERED:
        total = dict(outcome.import_count or {})
        return [dataclasses.replace(outcome, import_count=_count_for(total, end - start, 0), body=None)
                for start, end in batch.spans]
    if outcome.kind is not OutcomeKind.PARTIAL:
        return split
    conflicts = [dict(c) for c in outcome.conflicts]
    if not conflicts or any(not c.get("indexes") for c in conflicts):
        return split  # 2.36, or a conflict we cannot place
    rejected = set(outcome.rejected_indexes) or {i for c in conflicts for i in c["indexes"]}
    total = dict(outcome.import_count or {})
    results: list[Optional[Outcome]] = []
    for start, end in batch.spans:
        mine = _local_conflicts(conflicts, start, end)
        rejected_here = sorted(i - start for i in rejected if start <= i < end)
        counts = _count_for(total, end - start, len(rejected_here))
        if len(rejected_here) == end - start:
            results.append(None)
        elif mine or rejected_here:
            results.append(dataclasses.replace(
                outcome, kind=OutcomeKind.PARTIAL, conflicts=tuple(mine), rejected_indexes=tuple(rejected_here),
                import_count=counts, body=None,
                message=f"{len(rejected_here)} of {end - start} values rejected"))
        else:
            results.append(dataclasses.replace(outcome, kind=OutcomeKind.DELIVERED, conflicts=(),
                                               rejected_indexes=(), import_count=counts, body=None,
                                               reason=None, message="imported (in a batch)"))
    return results
