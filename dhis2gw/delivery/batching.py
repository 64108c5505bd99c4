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

DHIS2 2.43+ (the data entry pipeline) adds three rules, kept for every version:

* **no two values with the same key in one import.** 2.43 refuses an import in which two values
  share (data element, period, org unit, category option combo, attribute option combo) as a
  whole (E8128), and 2.42 let the last one win anyway. `plan` puts a submission that writes a
  key an earlier one of the same claim writes into a later *wave*; waves are sent in order, so
  the last write still wins in submission order;
* **a top-level ``dataSet``** whenever the submissions named one (it is part of the batch key);
  without it a data element in several data sets aborts the whole import (E8002);
* **attribution when 2.43 refuses the whole import.** A refusal that names no row
  (E8002/E8003/E8128: one submission can cause it for all) or that names rows
  (``rejectedIndexes`` of a 409 ERROR) leaves every submission to be delivered alone; only a
  refusal of what all submissions share (an unknown top-level data set) applies to all.
  Conflicts placed by ``indexes`` go to their submission; a 2.43 conflict that names no row
  (E8030 "period(s): [...]", E8023/E8024 lists) goes to the submissions whose refused values
  (known from ``rejectedIndexes``) it names by id or period — to each with a refused value when
  it names none of them.

Import counts are per batch in DHIS2's answer. A submission gets exact counts when they can be
derived (everything it sent was imported, or everything updated, or everything ignored);
otherwise ``{"accepted": n, "rejected": m}`` plus the batch totals under ``"batch"``.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dhis2gw.dhis2.outcome import Outcome, OutcomeKind

_HEADER_INLINE = ("period", "orgUnit", "attributeOptionCombo")
_DEFAULT_COMBO = "HllvX50cXC0"

#: 2.43+ codes that refuse a whole import because of one value or one submission.
WHOLE_IMPORT_CODES = frozenset({"E8002", "E8003", "E8128"})


@dataclass(frozen=True)
class BatchSettings:
    """Limits of one batched request (``delivery.batch_*`` configuration keys)."""

    max_values: int = 5000
    max_bytes: int = 2 * 1024 * 1024
    linger: float = 0.05  # seconds to wait for more submissions when fewer than a full batch are ready
    max_submissions: int = 500


def batch_key(row: dict[str, Any]) -> tuple[str, str, str] | None:
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


def value_keys(row: dict[str, Any]) -> set[tuple[str, str, str, str, str]]:
    """The data value keys a row writes: (data element, period, org unit, COC, AOC), header fields inlined.

    A missing or default combo is one key (``""``); ids are compared as sent (one id scheme per batch key).
    """
    payload = row.get("dhis2_payload")
    if not isinstance(payload, dict) or not isinstance(payload.get("dataValues"), list):
        return set()
    keys = set()
    for dv in payload["dataValues"]:
        if not isinstance(dv, dict):
            continue
        coc = str(dv.get("categoryOptionCombo") or "")
        aoc = str(dv.get("attributeOptionCombo") or payload.get("attributeOptionCombo") or "")
        keys.add((str(dv.get("dataElement") or ""), str(dv.get("period") or payload.get("period") or ""),
                  str(dv.get("orgUnit") or payload.get("orgUnit") or ""),
                  "" if coc == _DEFAULT_COMBO else coc, "" if aoc == _DEFAULT_COMBO else aoc))
    return keys


def plan(rows: Sequence[dict[str, Any]], settings: BatchSettings) -> list[list[dict[str, Any]]]:
    """The requests for claimed rows, in the order they must be sent (module docstring).

    Rows are taken in submission order (id). A row goes into wave ``1 + the latest wave of an
    earlier row writing one of its keys`` (wave 0 when none does), so no request holds a key twice
    and overlapping submissions reach DHIS2 in the order they were made. Within a wave, rows of the
    same batch key share requests within the value and byte limits; unbatchable rows go alone.
    """
    ordered = sorted(rows, key=lambda r: r.get("id", 0))
    wave_of_key: dict[tuple[str, ...], int] = {}
    waves: list[list[dict[str, Any]]] = []
    for row in ordered:
        keys = value_keys(row)
        wave = max((wave_of_key[k] + 1 for k in keys if k in wave_of_key), default=0)
        for k in keys:
            wave_of_key[k] = wave
        while len(waves) <= wave:
            waves.append([])
        waves[wave].append(row)
    chunks: list[list[dict[str, Any]]] = []
    for members in waves:
        groups: dict[Any, list[list[dict[str, Any]]]] = {}
        sizes: dict[int, tuple[int, int]] = {}
        for row in members:
            key = batch_key(row)
            if key is None:
                chunks.append([row])
                continue
            values, size = len(row["dhis2_payload"]["dataValues"]), payload_size(row)
            group = groups.setdefault(key, [[]])
            current = group[-1]
            used_values, used_bytes = sizes.get(id(current), (0, 0))
            if current and (used_values + values > settings.max_values or used_bytes + size > settings.max_bytes):
                current = []
                group.append(current)
                used_values, used_bytes = 0, 0
            current.append(row)
            sizes[id(current)] = (used_values + values, used_bytes + size)
        chunks.extend(c for group in groups.values() for c in group if c)
    return chunks


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


def _names(values: Sequence[Any], rows: set[int], unplaced: Sequence[dict[str, Any]]) -> set[int]:
    """Which of the unplaced conflicts name an id or period of one of these refused rows."""
    found: set[int] = set()
    for n, conflict in enumerate(unplaced):
        text = f"{conflict.get('value') or conflict.get('message') or ''} {json.dumps(conflict.get('objects') or {})}"
        for i in rows:
            dv = values[i] if i < len(values) and isinstance(values[i], dict) else {}
            if any(str(dv.get(k) or "") and str(dv[k]) in text
                   for k in ("dataElement", "period", "orgUnit", "categoryOptionCombo", "attributeOptionCombo")):
                found.add(n)
                break
    return found


def attribute(batch: Batch, outcome: Outcome) -> list[Outcome | None]:
    """One Outcome per row of ``batch``; None for a row that must be delivered alone (module docstring)."""
    split: list[Outcome | None] = [None] * batch.size
    shared = (OutcomeKind.RETRY, OutcomeKind.DESTINATION_FAILURE, OutcomeKind.RATE_LIMITED)
    if outcome.kind in shared:
        return [outcome] * batch.size
    if outcome.kind is OutcomeKind.REJECTED:
        count = outcome.import_count or {}
        if any(int(count.get(k, 0)) for k in ("imported", "updated", "deleted")):
            return split
        if outcome.rejected_indexes or any(c.get("indexes") or c.get("errorCode") in WHOLE_IMPORT_CODES
                                           for c in outcome.conflicts):
            return split  # value-level refusals (2.43: 409 ERROR) or a refusal one submission caused
        return [outcome] * batch.size  # header-level (the shared data set): the same verdict alone
    if outcome.kind is OutcomeKind.DELIVERED:
        total = dict(outcome.import_count or {})
        return [dataclasses.replace(outcome, import_count=_count_for(total, end - start, 0), body=None)
                for start, end in batch.spans]
    if outcome.kind is not OutcomeKind.PARTIAL:
        return split
    conflicts = [dict(c) for c in outcome.conflicts]
    unplaced = [c for c in conflicts if not c.get("indexes")]
    if not conflicts or (unplaced and not outcome.rejected_indexes):
        return split  # 2.36, or a conflict we cannot place
    rejected = set(outcome.rejected_indexes) or {i for c in conflicts for i in c["indexes"]}
    total = dict(outcome.import_count or {})
    results: list[Outcome | None] = []
    values = batch.payload.get("dataValues") or []
    named = [_names(values, {i for i in rejected if start <= i < end}, unplaced) for start, end in batch.spans]
    for (start, end), names in zip(batch.spans, named):
        rejected_here = sorted(i - start for i in rejected if start <= i < end)
        mine = _local_conflicts(conflicts, start, end)
        if rejected_here:
            mine += [c for n, c in enumerate(unplaced) if n in names or not any(n in other for other in named)]
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
