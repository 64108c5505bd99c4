"""Pre-validation of an aggregate payload against the metadata cache (before queueing).

The checks, each reported with the value's index, the payload field and the error code DHIS2
answers **for the destination's version** (read from ``/api/system/info`` when the snapshot was
taken; ≤2.42 codes when unknown), so a submitter sees at ingest what DHIS2 would answer later:

=============================================  ==========  =========  ==========================
check                                          2.36-2.42   2.43+      2.43 note
=============================================  ==========  =========  ==========================
data element unknown / not in the data set     E7610/E7633 E8020      *chosen*
category option combo unknown                  E7613       E8005      *chosen*
COC not valid for the element in this set      E7634       E8024      default COC refused too
attribute option combo unknown                 E7615       E8006      *chosen*
AOC not in the data set's category combo       (accepted)  E8023      2.42 accepted the default
org unit unknown / data set not assigned       E7612/E7636 E8004/E8022
period type differs from the data set's        E7632       E8021      *chosen*
beyond ``openFuturePeriods``                   E7641       E8030
past ``expiryDays``                            E7640       E8030
outside the data set's ``dataInputPeriods``    E7643       E8030
value does not fit the value type              E7619       E8122
no value and no comment                        E7618       E8120
two values with the same key                   (last wins) E8128      whole import refused
no ``dataSet``, element in several / no set    (picked)    E8002/E8003 whole import refused
=============================================  ==========  =========  ==========================

A missing COC/AOC means ``default``, which must then be valid. *chosen*: the 2.43 code DHIS2
uses for that case was not observed; the simulator answers the same code. Future periods are
refused whatever the service user's authorities (2.43.1+ exempts superusers, which hides the
refusal real users get: reference dhis2-2.43-2.44.md §8). Dates are the gateway clock's UTC day.

Checks run only when the cache knows the data set and its snapshot is fresh, and only for UID
id schemes; otherwise the answer is ``{"checked": false, "reason": …}`` and DHIS2 decides.
Without a ``dataSet`` a 2.43+ destination still gets the data set detection check (E8002/E8003).
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from dhis2gw.dhis2.metadata import DataSetStructure
from dhis2gw.dhis2.periods import InvalidPeriod, Period, parse_period, period_for_date, period_type
from dhis2gw.dhis2.versions import Version, data_entry_pipeline, parse_version
from dhis2gw.interfaces import KindError
from dhis2gw.mapping.metadata_cache import MetadataCache, iso

_NUMBER = re.compile(r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$")
_INTEGER = re.compile(r"^[-+]?[0-9]+$")
_BOOL = {"true", "false", "True", "False", "TRUE", "FALSE", "1", "0", "t", "f"}
_MAX_TEXT = {"TEXT": 50000, "LONG_TEXT": 50000, "LETTER": 1}
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
#: check -> (code on 2.36-2.42, code on 2.43+); the module docstring's table.
CODES: dict[str, tuple[str, str]] = {
    "de_unknown": ("E7610", "E8020"), "de_not_in_set": ("E7633", "E8020"),
    "coc_unknown": ("E7613", "E8005"), "coc_invalid": ("E7634", "E8024"),
    "aoc_unknown": ("E7615", "E8006"), "aoc_invalid": ("E7635", "E8023"),
    "ou_unknown": ("E7612", "E8004"), "ou_not_assigned": ("E7636", "E8022"),
    "period_type": ("E7632", "E8021"), "future": ("E7641", "E8030"), "expired": ("E7640", "E8030"),
    "input_period": ("E7643", "E8030"), "value_invalid": ("E7619", "E8122"), "value_missing": ("E7618", "E8120"),
    "duplicate": ("", "E8128"), "multiple_sets": ("", "E8002"), "no_set": ("", "E8003"),
}
_SCHEME_KEYS = ("idScheme", "dataElementIdScheme", "orgUnitIdScheme", "categoryOptionComboIdScheme",
                "dataSetIdScheme")


def value_type_problem(value_type: str | None, value: str) -> str | None:
    """Why ``value`` does not fit ``value_type`` (DHIS2's wording), or None."""
    vt = value_type or "TEXT"
    if vt in ("NUMBER", "PERCENTAGE", "UNIT_INTERVAL"):
        if not _NUMBER.match(value):
            return "Data value is not numeric"
        number = float(value)
        if vt == "PERCENTAGE" and not 0 <= number <= 100:
            return "Data value is not a percentage"
        if vt == "UNIT_INTERVAL" and not 0 <= number <= 1:
            return "Data value is not a unit interval"
        return None
    if vt.startswith("INTEGER"):
        if not _INTEGER.match(value):
            return "Data value is not an integer"
        number_i = int(value)
        if vt == "INTEGER_POSITIVE" and number_i <= 0:
            return "Data value is not a positive integer"
        if vt == "INTEGER_ZERO_OR_POSITIVE" and number_i < 0:
            return "Data value is not a zero or positive integer"
        if vt == "INTEGER_NEGATIVE" and number_i >= 0:
            return "Data value is not a negative integer"
        return None
    if vt == "BOOLEAN" and value not in _BOOL:
        return "Data value is not a boolean"
    if vt == "TRUE_ONLY" and value not in ("true", "True", "TRUE", "1", "t"):
        return "Data value is not true (true-only value type)"
    if vt == "DATE":
        try:
            if not _DATE.match(value):
                raise ValueError(value)
            dt.date.fromisoformat(value)
        except ValueError:
            return "Data value is not a valid date"
    if vt in _MAX_TEXT and len(value) > _MAX_TEXT[vt]:
        return "Data value is greater than max length"
    return None


class PreValidator:
    """Checks prepared aggregate payloads against a :class:`MetadataCache`."""

    def __init__(self, cache: MetadataCache) -> None:
        self.cache = cache

    async def check(self, payload: dict[str, Any], params: dict[str, str], destination: str,
                    keys: Sequence[str] | None = None) -> dict[str, Any]:
        """The verdict for a payload that passes; raise KindError(422) listing every failure.

        ``keys`` are the submitter's codes in value order (simplified form), echoed in errors.
        """
        schemes = {k: params[k].upper() for k in _SCHEME_KEYS if params.get(k) and params[k].upper() != "UID"}
        if schemes:
            return {"checked": False, "reason": f"id scheme {schemes} is not UID; DHIS2 will check the values"}
        state = self.cache.state(destination)
        snapshot = await self.cache.current(destination)
        if snapshot is None or state == "empty":
            return {"checked": False, "reason": f"no DHIS2 metadata is cached for destination {destination!r} yet"}
        if state == "stale":
            return {"checked": False, "reason": f"the cached DHIS2 metadata of {destination!r} is stale "
                                                f"(fetched {iso(snapshot.fetched_at)})"}
        version = parse_version(getattr(snapshot, "dhis2_version", None))
        ds_uid = payload.get("dataSet")
        if not ds_uid:
            if data_entry_pipeline(version):
                detection = self._detection_errors(payload, snapshot, version, keys)
                if detection:
                    raise KindError(422, "dhis2_validation_failed",
                                    f"{len(detection)} problem(s) DHIS2 would refuse; nothing was queued",
                                    {"errors": detection, "validation": {
                                        "checked": True, "dhis2_version": snapshot.dhis2_version,
                                        "metadata_fetched_at": iso(snapshot.fetched_at)}})
            return {"checked": False, "reason": "the submission names no data set"}
        ds = snapshot.data_sets.get(ds_uid)
        if ds is None:
            return {"checked": False, "reason": f"data set {ds_uid!r} is not in the cached metadata "
                                                f"(fetched {iso(snapshot.fetched_at)}); DHIS2 will check it"}
        today = dt.datetime.fromtimestamp(self.cache.clock.seconds(), dt.UTC).date()
        errors = self._errors(payload, snapshot, ds, keys, version, today)
        verdict = {"checked": True, "data_set": ds_uid, "metadata_fetched_at": iso(snapshot.fetched_at),
                   "dhis2_version": snapshot.dhis2_version}
        if errors:
            raise KindError(422, "dhis2_validation_failed",
                            f"{len(errors)} problem(s) DHIS2 would refuse; nothing was queued",
                            {"errors": errors, "validation": verdict})
        return verdict

    def _detection_errors(self, payload: dict[str, Any], snapshot: Any, version: Version | None,
                          keys: Sequence[str] | None) -> list[dict[str, Any]]:
        """2.43+ without a top-level data set: each element must be in exactly one cached data set."""
        errors: list[dict[str, Any]] = []
        for index, dv in enumerate(payload.get("dataValues") or []):
            de = dv.get("dataElement")
            sets = sorted(uid for uid, ds in snapshot.data_sets.items() if de in ds.elements)
            if len(sets) == 1:
                continue
            check = "multiple_sets" if sets else "no_set"
            message = (f"Data set detection failed, found multiple sets: [{', '.join(sets)}]" if sets else
                       f"Data set detection failed, found no set for data element(s): [{de}]")
            error = {"index": index, "field": f"dataValues/{index}/dataElement", "code": _code(check, version),
                     "message": message + " (name the data set: dataSet)", "value": de}
            if keys is not None and index < len(keys):
                error["key"] = keys[index]
            errors.append(error)
        return errors

    def _errors(self, payload: dict[str, Any], snapshot: Any, ds: Any, keys: Sequence[str] | None,
                version: Version | None, today: dt.date) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        header_ou, header_pe = payload.get("orgUnit"), payload.get("period")
        header_aoc = payload.get("attributeOptionCombo")
        default_coc = snapshot.default_coc or "HllvX50cXC0"
        new = data_entry_pipeline(version)
        seen: dict[tuple[Any, ...], int] = {}

        for index, dv in enumerate(payload.get("dataValues") or []):
            def fail(field: str, check: str, message: str, value: Any = None, index: int = index) -> None:
                code = _code(check, version)
                error = {"index": index, "field": f"dataValues/{index}/{field}", "code": code, "message": message}
                if keys is not None and index < len(keys):
                    error["key"] = keys[index]
                if value is not None:
                    error["value"] = value
                errors.append(error)

            de = dv.get("dataElement")
            element = snapshot.data_elements.get(de)
            in_set = ds.elements.get(de)
            if element is None and in_set is None:
                fail("dataElement", "de_unknown", f"Data element not found or not accessible: `{de}`", de)
            elif in_set is None:
                fail("dataElement", "de_not_in_set", f"Data element: `{de}` is not part of dataset: `{ds.id}`", de)
            coc = dv.get("categoryOptionCombo")
            if coc and coc not in snapshot.cocs:
                fail("categoryOptionCombo", "coc_unknown",
                     f"Category option combo not found or not accessible for writing data: `{coc}`", coc)
            elif in_set is not None and (coc or default_coc) not in in_set.category_option_combos:
                fail("categoryOptionCombo", "coc_invalid",
                     f"Category option combo: `{coc or default_coc}` must be part of category combo of data element:"
                     f" `{de}`" + ("" if coc else " (no categoryOptionCombo given: the default is used)"),
                     coc or default_coc)
            ou = dv.get("orgUnit") or header_ou
            if ou not in snapshot.org_units:
                fail("orgUnit", "ou_unknown", f"Organisation unit not found or not accessible: `{ou}`", ou)
            elif ou not in ds.organisation_units:
                fail("orgUnit", "ou_not_assigned",
                     f"Data element: `{de}` must be assigned through data sets to organisation unit: `{ou}`"
                     f" (data set `{ds.id}` is not assigned to it)", ou)
            pe = dv.get("period") or header_pe
            kind = period_type(pe) if isinstance(pe, str) else None
            if ds.period_type and kind != ds.period_type:
                fail("period", "period_type", f"Period type of period: `{pe}` not valid for data element: `{de}`"
                                        f" (data set `{ds.id}` is {ds.period_type}, the period is {kind})", pe)
            aoc = dv.get("attributeOptionCombo") or header_aoc
            if aoc and aoc not in snapshot.cocs:
                fail("attributeOptionCombo", "aoc_unknown",
                     f"Attribute option combo not found or not accessible for writing data: `{aoc}`", aoc)
            elif new and ds.attribute_option_combos and (aoc or default_coc) not in ds.attribute_option_combos:
                fail("attributeOptionCombo", "aoc_invalid",
                     f"Data set {ds.id} not usable with attribute option combo(s): [{aoc or default_coc}]"
                     + ("" if aoc else " (no attributeOptionCombo given: the default is used)"), aoc or default_coc)
            if kind == ds.period_type and isinstance(pe, str):  # (a period that is no string is never open)
                untimely = _untimely(ds, pe, today)
                if untimely:
                    fail("period", untimely[0], untimely[1], pe)
            if new:
                key = (de, pe, ou, coc or default_coc, aoc or default_coc)
                if key in seen:
                    fail("dataElement", "duplicate", f"Value #{seen[key]} and #{index} all affect the same data "
                                                     "value (send one of them)", de)
                seen.setdefault(key, index)
            value = dv.get("value")
            if (value is None or value == "") and not dv.get("comment") and not dv.get("deleted"):
                fail("value", "value_missing", f"Data value or comment not specified for data element: `{de}`")
            elif value not in (None, "") and (in_set is not None or element is not None):
                value_type = in_set.value_type if in_set is not None else element["valueType"]
                problem = value_type_problem(value_type, str(value))
                if problem:
                    fail("value", "value_invalid", f"Value must match value type of data element `{de}`: `{problem}`"
                                           f" ({value_type})", value)
        return errors


def _code(check: str, version: Version | None) -> str:
    """The error code DHIS2 answers for ``check`` at ``version`` (≤2.42 codes when unknown)."""
    old, new = CODES[check]
    return new if data_entry_pipeline(version) else old


def _next(period: Period) -> Period:
    return period_for_date(period.period_type, period.end + dt.timedelta(days=1))


def _untimely(ds: DataSetStructure, iso_period: str, today: dt.date) -> tuple[str, str] | None:
    """(check, message) when the data set is not open for ``iso_period`` today, else None."""
    try:
        period = parse_period(iso_period)
        latest = period_for_date(period.period_type, today)
    except (InvalidPeriod, ValueError):
        return None
    for _ in range(max(0, ds.open_future_periods)):
        latest = _next(latest)
    if period.start > latest.end:
        return ("future", f"Period: `{period.iso}` is after latest open future period: `{latest.iso}` for data set: "
                          f"`{ds.id}` (openFuturePeriods {ds.open_future_periods})")
    if ds.expiry_days > 0 and today > period.end + dt.timedelta(days=ds.expiry_days):
        return ("expired", f"Current date is past expiry days for period: `{period.iso}` and data set: `{ds.id}` "
                           f"(expiryDays {ds.expiry_days}: closed since "
                           f"{(period.end + dt.timedelta(days=ds.expiry_days + 1)).isoformat()})")
    if ds.input_periods:
        window = next((w for w in ds.input_periods if w[0] == period.iso), None)
        day = today.isoformat()
        if window is None or (window[1] and day < window[1]) or (window[2] and day > window[2]):
            return ("input_period", f"Period: `{period.iso}` is not open for this data set at this time: `{ds.id}`"
                                    + (f" (open {window[1] or '…'} to {window[2] or '…'})" if window else
                                       " (not one of its data input periods)"))
    return None
