"""Pre-validation of an aggregate payload against the metadata cache (before queueing).

The checks, each reported with the value's index, the payload field and DHIS2's own error code
(reference/dhis2-api.md §1.4) so a submitter sees at ingest what DHIS2 would answer later:

* E7610 data element unknown; E7633 data element not in the data set;
* E7613 category option combo unknown; E7634 COC not valid for the element in this data set
  (a data-set-element category-combo override decides); a missing COC means ``default``, which
  must then be valid;
* E7612 org unit unknown; E7636 org unit not assigned the data set;
* E7632 period type differs from the data set's;
* E7619 value does not fit the value type (number, integer, positive / zero-or-positive /
  negative integer, percentage, unit interval, boolean, true-only, date, text lengths);
  E7618 no value and no comment.

Checks run only when the cache knows the data set and its snapshot is fresh, and only for UID
id schemes; otherwise the answer is ``{"checked": false, "reason": …}`` and DHIS2 decides.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any, Optional, Sequence

from dhis2gw.dhis2.periods import period_type
from dhis2gw.interfaces import KindError
from dhis2gw.mapping.metadata_cache import MetadataCache, iso

_NUMBER = re.compile(r"^[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$")
_INTEGER = re.compile(r"^[-+]?[0-9]+$")
_BOOL = {"true", "false", "True", "False", "TRUE", "FALSE", "1", "0", "t", "f"}
_MAX_TEXT = {"TEXT": 50000, "LONG_TEXT": 50000, "LETTER": 1}
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_SCHEME_KEYS = ("idScheme", "dataElementIdScheme", "orgUnitIdScheme", "categoryOptionComboIdScheme",
                "dataSetIdScheme")


def value_type_problem(value_type: Optional[str], value: str) -> Optional[str]:
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
                    keys: Optional[Sequence[str]] = None) -> dict[str, Any]:
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
        ds_uid = payload.get("dataSet")
        if not ds_uid:
            return {"checked": False, "reason": "the submission names no data set"}
        ds = snapshot.data_sets.get(ds_uid)
        if ds is None:
            return {"checked": False, "reason": f"data set {ds_uid!r} is not in the cached metadata "
                                                f"(fetched {iso(snapshot.fetched_at)}); DHIS2 will check it"}
        errors = self._errors(payload, snapshot, ds, keys)
        verdict = {"checked": True, "data_set": ds_uid, "metadata_fetched_at": iso(snapshot.fetched_at)}
        if errors:
            raise KindError(422, "dhis2_validation_failed",
                            f"{len(errors)} problem(s) DHIS2 would refuse; nothing was queued",
                            {"errors": errors, "validation": verdict})
        return verdict

    def _errors(self, payload: dict[str, Any], snapshot: Any, ds: Any,
                keys: Optional[Sequence[str]]) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        header_ou, header_pe = payload.get("orgUnit"), payload.get("period")
        default_coc = snapshot.default_coc or "HllvX50cXC0"

        for index, dv in enumerate(payload.get("dataValues") or []):
            def fail(field: str, code: str, message: str, value: Any = None) -> None:
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
                fail("dataElement", "E7610", f"Data element not found or not accessible: `{de}`", de)
            elif in_set is None:
                fail("dataElement", "E7633", f"Data element: `{de}` is not part of dataset: `{ds.id}`", de)
            coc = dv.get("categoryOptionCombo")
            if coc and coc not in snapshot.cocs:
                fail("categoryOptionCombo", "E7613",
                     f"Category option combo not found or not accessible for writing data: `{coc}`", coc)
            elif in_set is not None and (coc or default_coc) not in in_set.category_option_combos:
                fail("categoryOptionCombo", "E7634",
                     f"Category option combo: `{coc or default_coc}` must be part of category combo of data element:"
                     f" `{de}`" + ("" if coc else " (no categoryOptionCombo given: the default is used)"),
                     coc or default_coc)
            ou = dv.get("orgUnit") or header_ou
            if ou not in snapshot.org_units:
                fail("orgUnit", "E7612", f"Organisation unit not found or not accessible: `{ou}`", ou)
            elif ou not in ds.organisation_units:
                fail("orgUnit", "E7636",
                     f"Data element: `{de}` must be assigned through data sets to organisation unit: `{ou}`"
                     f" (data set `{ds.id}` is not assigned to it)", ou)
            pe = dv.get("period") or header_pe
            kind = period_type(pe) if isinstance(pe, str) else None
            if ds.period_type and kind != ds.period_type:
                fail("period", "E7632", f"Period type of period: `{pe}` not valid for data element: `{de}`"
                                        f" (data set `{ds.id}` is {ds.period_type}, the period is {kind})", pe)
            value = dv.get("value")
            if (value is None or value == "") and not dv.get("comment") and not dv.get("deleted"):
                fail("value", "E7618", f"Data value or comment not specified for data element: `{de}`")
            elif value not in (None, "") and (in_set is not None or element is not None):
                value_type = in_set.value_type if in_set is not None else element["valueType"]
                problem = value_type_problem(value_type, str(value))
                if problem:
                    fail("value", "E7619", f"Value must match value type of data element `{de}`: `{problem}`"
                                           f" ({value_type})", value)
        return errors
