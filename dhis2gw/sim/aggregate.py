"""Aggregate data import (``POST /api/dataValueSets``) with DHIS2's validation and counting.

:class:`AggregateImporter` turns a JSON payload plus query parameters into an ``ImportSummary``
dict exactly shaped for the simulated version (see ``reference/dhis2-api.md`` §1) and writes the
accepted values into the :class:`~dhis2gw.sim.store.Store`.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from dhis2gw.sim.conflicts import Conflicts, value_type_error
from dhis2gw.sim.metadata import DEFAULT_COC, Metadata
from dhis2gw.sim.periods import Period, parse_period
from dhis2gw.sim.store import DataValueRecord, Overlay, Store
from dhis2gw.sim.value_rules import (
    completion_key,
    insignificant_zero,
    latest_open,
    normalised,
    outside_hierarchy,
    zero_counts,
)
from dhis2gw.sim.versions import Version
from dhis2gw.sim.webmessage import import_options

STRATEGY_ALIASES = {"NEW_AND_UPDATES": "CREATE_AND_UPDATE", "NEW": "CREATE", "UPDATES": "UPDATE",
                    "DELETES": "DELETE"}
EMPTY_INPUT = ("com.fasterxml.jackson.databind.exc.MismatchedInputException: No content to map due to "
               "end-of-input\n at [Source: (BufferedInputStream); line: 1, column: 0]")
FLAGS = ("dryRun", "strictPeriods", "strictDataElements", "strictCategoryOptionCombos",
         "strictAttributeOptionCombos", "strictOrganisationUnits", "strictDataSetLocking",
         "requireCategoryOptionCombo", "requireAttributeOptionCombo", "skipExistingCheck", "force", "skipAudit",
         "preheatCache")
SCHEMES = ("idScheme", "dataElementIdScheme", "orgUnitIdScheme", "categoryOptionComboIdScheme", "dataSetIdScheme")
#: The payload header's references, checked in this order: (field, metadata kind, id scheme option,
#: conflict code, conflict object key, message subject, legacy conflict value).
HEADER_CHECKS = (
    ("dataSet", "dataSets", "dataSetIdScheme", "E7600", "dataSet", "Data set",
     "Data set not found or not accessible"),
    ("orgUnit", "organisationUnits", "orgUnitIdScheme", "E7603", "organisationUnit", "Org unit",
     "Org unit not found or not accessible"),
    ("attributeOptionCombo", "categoryOptionCombos", "categoryOptionComboIdScheme", "E7604", "attributeOptionCombo",
     "Attribute option combo", "Invalid attribute option combo"),
)


class AggregateImporter:
    """Validates and stores one data value set."""

    def __init__(self, metadata: Metadata, store: Store, version: Version,
                 now: Callable[[], dt.datetime]) -> None:
        """Use *metadata* for lookups, write into *store*; *now* gives the server time."""
        self.metadata = metadata
        self.store = store
        self.version = version
        self.now = now

    def options(self, query: dict[str, str], payload: dict[str, Any] | None) -> dict[str, Any]:
        """Import options from query parameters, overridden by payload header keys."""
        opts: dict[str, Any] = {}
        sources = [query] + ([payload] if isinstance(payload, dict) else [])
        for source in sources:
            for key in SCHEMES:
                if source.get(key):
                    opts[key] = str(source[key]).upper()
            for key in FLAGS:
                if key in source:
                    opts[key] = str(source[key]).lower() == "true"
            strategy = source.get("importStrategy") or source.get("strategy")
            if strategy:
                strategy = str(strategy).upper()
                opts["importStrategy"] = STRATEGY_ALIASES.get(strategy, strategy)
        opts.setdefault("importStrategy", "CREATE_AND_UPDATE")
        return opts

    def scheme(self, opts: dict[str, Any], key: str) -> str:
        """The effective id scheme for one kind of object."""
        return opts.get(key) or opts.get("idScheme") or "UID"

    def _user(self, username: str) -> tuple[dict[str, Any], list[str]]:
        """The importing user (``{}`` when unknown) and the paths of the org units it is restricted to."""
        units = self.metadata.objects["organisationUnits"]
        user = next((u for u in self.metadata.objects["users"].values() if u["username"] == username), None) or {}
        return user, [units[u]["path"] for u in user.get("organisationUnits", []) if u in units]

    def _option_combo(self, raw: Any, scheme: str, fallback: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The category option combo *raw* names (None when unknown); without *raw*, *fallback* or the default."""
        if raw:
            return self.metadata.lookup("categoryOptionCombos", raw, scheme)
        return fallback or self.metadata.get("categoryOptionCombos", DEFAULT_COC)

    def _complete(self, key: tuple[str, str, str, str], cdate: Any, today: dt.date, opts: dict[str, Any],
                  username: str) -> str:
        """Register the data set as complete under *key* (not on ``dryRun``); return the ``dataSetComplete`` date."""
        complete = min(today.isoformat() if str(cdate).lower() == "true" else str(cdate)[:10], today.isoformat())
        if not opts.get("dryRun"):
            ds, period, ou, aoc = key
            self.store.completions[key] = {"dataSet": ds, "period": period, "orgUnit": ou,
                                           "attributeOptionCombo": aoc, "completeDate": complete,
                                           "storedBy": username}
        return complete

    def _commit(self, overlay: dict[tuple[str, str, str, str, str], DataValueRecord], opts: dict[str, Any]) -> None:
        """Write the import's values into the store (not on ``dryRun``)."""
        if not opts.get("dryRun"):
            for key, record in overlay.items():
                self.store.data_values[key] = record
                self.store.write_counts[key] += 1

    def run(self, body: bytes, query: dict[str, str], username: str, async_: bool = False) -> dict[str, Any]:
        """Import *body*; return the ImportSummary dict."""
        try:
            if not body.strip():
                raise ValueError(EMPTY_INPUT)
            payload = json.loads(body)
            if not isinstance(payload, dict):
                raise ValueError("com.fasterxml.jackson.databind.exc.MismatchedInputException: Cannot deserialize "
                                 "value of type `org.hisp.dhis.dxf2.datavalueset.DataValueSet` from Array value")
        except (ValueError, UnicodeDecodeError) as e:
            text = str(e) if str(e).startswith("com.fasterxml") else (
                f"com.fasterxml.jackson.core.JsonParseException: {e}")
            opts = self.options(query, None)
            return self._summary("ERROR", opts, async_, f"The import process failed: {text}", zero_counts(), [], [],
                                 None)
        opts = self.options(query, payload)
        return self._import(payload, opts, username, async_)

    # ------------------------------------------------------------------------
    def _summary(self, status: str, opts: dict[str, Any], async_: bool, description: str,
                 counts: dict[str, int], conflicts: list[dict[str, Any]], rejected: list[int],
                 complete: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"responseType": "ImportSummary", "status": status,
                               "importOptions": import_options(self.version, opts, async_),
                               "description": description, "importCount": counts, "conflicts": conflicts}
        if self.version.rejected_indexes:
            out["rejectedIndexes"] = rejected
        if complete is not None:
            out["dataSetComplete"] = complete
        return out

    def _import(self, payload: dict[str, Any], opts: dict[str, Any], username: str, async_: bool) -> dict[str, Any]:
        md = self.metadata
        conflicts = Conflicts(self.version)
        counts = zero_counts()
        values = payload.get("dataValues") or []
        if not isinstance(values, list):
            values = []
        # Header-level checks: the first failure aborts the whole import (status ERROR).
        header: dict[str, dict[str, Any] | None] = {"dataSet": None, "orgUnit": None, "attributeOptionCombo": None}
        for field, kind, scheme, code, label, what, legacy in HEADER_CHECKS:
            raw = payload.get(field)
            if not raw:
                continue
            header[field] = md.lookup(kind, raw, self.scheme(opts, scheme))
            if not header[field]:
                conflicts.add(code, {label: raw}, field, f"{what} not found or not accessible: `{raw}`", (raw, legacy))
                break
        header_ds, header_ou, header_aoc = header["dataSet"], header["orgUnit"], header["attributeOptionCombo"]
        if conflicts.items:
            counts["ignored"] = 0
            return self._summary("ERROR", opts, async_, "Import process was aborted", counts,
                                 conflicts.items, [], None)

        now = self.now()
        today = now.date()
        overlay: dict[tuple[str, str, str, str, str], DataValueRecord] = {}
        rejected: list[int] = []
        _, user_paths = self._user(username)
        for index, dv in enumerate(values):
            if not isinstance(dv, dict):
                dv = {}
            outcome = self._value(dv, index, opts, conflicts, header_ds, header_ou, header_aoc, payload,
                                  today, username, user_paths, overlay)
            if outcome == "rejected":
                rejected.append(index)
                counts["ignored"] += 1
            else:
                counts[outcome] += 1

        complete = "false"
        cdate = payload.get("completeDate")
        period = parse_period(payload.get("period"))
        if cdate and str(cdate).lower() != "false" and header_ds and header_ou and period:
            complete = self._complete(completion_key(header_ds, period, header_ou, header_aoc), cdate, today, opts,
                                      username)
        self._commit(overlay, opts)
        status = "WARNING" if conflicts.items else "SUCCESS"
        return self._summary(status, opts, async_, "Import process completed successfully", counts,
                             conflicts.items, rejected, complete)

    def _value(self, dv: dict[str, Any], index: int, opts: dict[str, Any], conflicts: Conflicts,
               header_ds: dict[str, Any] | None, header_ou: dict[str, Any] | None,
               header_aoc: dict[str, Any] | None, payload: dict[str, Any], today: dt.date, username: str,
               user_paths: list[str], overlay: Overlay) -> str:
        """Validate and apply one value; return the counter to bump or ``"rejected"``."""
        md, v = self.metadata, self.version

        def reject(code: str, objects: dict[str, str], prop: str, message: str, legacy: tuple[str, str]) -> str:
            conflicts.add(code, objects, prop, message, legacy, index)
            return "rejected"

        de_raw = dv.get("dataElement")
        de = md.lookup("dataElements", de_raw, self.scheme(opts, "dataElementIdScheme"))
        if not de:
            return reject("E7610", {"dataElement": str(de_raw)}, "dataElement",
                          f"Data element not found or not accessible: `{de_raw}`",
                          (str(de_raw), "Data element not found or not accessible"))
        pe_raw = dv.get("period") or payload.get("period")
        period = parse_period(pe_raw)
        if not period:
            return reject("E7611", {"period": str(pe_raw)}, "period", f"Period not valid: `{pe_raw}`",
                          (str(pe_raw), "Period not valid"))
        ou_raw = dv.get("orgUnit")
        ou = md.lookup("organisationUnits", ou_raw, self.scheme(opts, "orgUnitIdScheme")) if ou_raw else header_ou
        if not ou:
            return reject("E7612", {"organisationUnit": str(ou_raw)}, "orgUnit",
                          f"Organisation unit not found or not accessible: `{ou_raw}`",
                          (str(ou_raw), "Organisation unit not found or not accessible"))
        coc_scheme = self.scheme(opts, "categoryOptionComboIdScheme")
        coc_raw = dv.get("categoryOptionCombo")
        if not coc_raw and opts.get("requireCategoryOptionCombo"):
            return reject("E7630", {"dataElement": de["id"]}, "categoryOptionCombo",
                          "Category option combo is required but is not specified",
                          (de["id"], "Category option combo is required but is not specified"))
        coc = self._option_combo(coc_raw, coc_scheme)
        if not coc:
            return reject("E7613", {"categoryOptionCombo": str(coc_raw)}, "categoryOptionCombo",
                          f"Category option combo not found or not accessible for writing data: `{coc_raw}`",
                          (str(coc_raw), "Category option combo not found or not accessible"))
        aoc_raw = dv.get("attributeOptionCombo")
        if not aoc_raw and not header_aoc and opts.get("requireAttributeOptionCombo"):
            return reject("E7631", {"dataElement": de["id"]}, "attributeOptionCombo",
                          "Attribute option combo is required but is not specified",
                          (de["id"], "Attribute option combo is required but is not specified"))
        aoc = self._option_combo(aoc_raw, coc_scheme, header_aoc)
        if not aoc:
            return reject("E7615", {"attributeOptionCombo": str(aoc_raw)}, "attributeOptionCombo",
                          f"Attribute option combo not found or not accessible for writing data: `{aoc_raw}`",
                          (str(aoc_raw), "Attribute option combo not found or not accessible"))
        if outside_hierarchy(ou, user_paths):
            return reject("E7617", {"organisationUnit": ou["id"], "user": username}, "orgUnit",
                          f"Organisation unit: `{ou['id']}` not in hierarchy of current user: `{username}`",
                          (ou["id"], f"Organisation unit not in hierarchy of current user: {username}"))
        delete = opts["importStrategy"] == "DELETE" or dv.get("deleted") in (True, "true")
        value = dv.get("value")
        value = None if value is None else str(value)
        comment = dv.get("comment")
        if not delete and (value is None or value == "") and not comment:
            return reject("E7618", {"dataElement": de["id"]}, "value",
                          f"Data value or comment not specified for data element: `{de['id']}`",
                          (de["id"], "Data value or comment not specified"))
        if not delete and value:
            problem = value_type_error(de["valueType"], value)
            if problem:
                key, text = problem
                message = (f"Value must match value type of data element `{de['id']}`: `{text}`"
                           if v.new_value_wording else
                           f"Value must match data element's `{de['id']}` type constraints: {text}")
                return reject("E7619", {"dataElement": de["id"], "value": key}, "value", message,
                              (value, f"{text}, must match data element type: {de['id']}"))
        targets = [header_ds] if header_ds else md.data_sets_of(de["id"])
        strict = self._strict(opts, de, period, ou, coc, aoc, header_ds, targets, reject)
        if strict:
            return strict
        locked = self._locked(opts, de, period, targets, today, reject)
        if locked:
            return locked
        value = normalised(de, value)
        if insignificant_zero(de, value, delete):
            return "ignored"  # DHIS2 silently skips insignificant zeros
        return self._apply(de, period, ou, coc, aoc, value, comment, dv, delete, opts, username, overlay)

    def _strict(self, opts: dict[str, Any], de: dict[str, Any], period: Period, ou: dict[str, Any],
                coc: dict[str, Any], aoc: dict[str, Any], header_ds: dict[str, Any] | None,
                targets: list[dict[str, Any]], reject: Callable[..., str]) -> str | None:
        md, v = self.metadata, self.version
        if opts.get("strictPeriods") and period.period_type not in {d["periodType"] for d in md.data_sets_of(de["id"])}:
            return reject("E7632", {"period": period.iso, "dataElement": de["id"]}, "period",
                          f"Period type of period: `{period.iso}` not valid for data element: `{de['id']}`",
                          (period.iso, "Period type of period not valid for data element"))
        if opts.get("strictDataElements"):
            ds_ids = [header_ds["id"]] if header_ds else []
            if (header_ds and not any(e["dataElement"] == de["id"] for e in header_ds["dataSetElements"])) or (
                    not header_ds and not md.data_sets_of(de["id"])):
                word = "dataset(s)" if v.new_value_wording else "dataset"
                objects = {"dataElement": de["id"]}
                if ds_ids:
                    objects["dataSet"] = ds_ids[0]
                return reject("E7633", objects, "dataElement",
                              f"Data element: `{de['id']}` is not part of {word}: `{', '.join(ds_ids)}`",
                              (de["id"], "Data element is not part of dataset"))
        if opts.get("strictCategoryOptionCombos") and coc["id"] not in md.valid_cocs_for(de["id"]):
            return reject("E7634", {"categoryOptionCombo": coc["id"], "dataElement": de["id"]}, "categoryOptionCombo",
                          f"Category option combo: `{coc['id']}` must be part of category combo of data element: "
                          f"`{de['id']}`", (coc["id"], "Category option combo must be part of category combo"))
        if opts.get("strictAttributeOptionCombos"):
            allowed = set().union(*(md.coc_ids_of_combo(d["categoryCombo"]) for d in targets)) if targets else set()
            if aoc["id"] not in allowed:
                return reject("E7635", {"attributeOptionCombo": aoc["id"], "dataElement": de["id"]},
                              "attributeOptionCombo",
                              f"Attribute option combo: `{aoc['id']}` must be part of category combo of data sets "
                              f"of data element: `{de['id']}`",
                              (aoc["id"], "Attribute option combo must be part of category combo of data sets"))
        if opts.get("strictOrganisationUnits") and not any(
                ou["id"] in d["organisationUnits"] for d in md.data_sets_of(de["id"])):
            return reject("E7636", {"organisationUnit": ou["id"], "dataElement": de["id"]}, "orgUnit",
                          f"Data element: `{de['id']}` must be assigned through data sets to organisation unit: "
                          f"`{ou['id']}`", (ou["id"], "Data element must be assigned through data sets"))
        return None

    def _locked(self, opts: dict[str, Any], de: dict[str, Any], period: Period, targets: list[dict[str, Any]],
                today: dt.date, reject: Callable[..., str]) -> str | None:
        """E7641 (beyond open future periods) and E7640 (past expiry days), unless ``force``."""
        if opts.get("force") or not targets:
            return None
        v = self.version
        future = []
        for ds in targets:
            latest = latest_open(ds, today)
            if period.start > latest[1]:
                future.append((ds, latest[0]))
        if len(future) == len(targets):
            ds, latest_iso = future[0]
            if v.new_value_wording:
                message = (f"Period: `{period.iso}` is after latest open future period: `{latest_iso}` for data "
                           f"element: `{de['id']}` and data set: `{ds['id']}`")
                objects = {"period": period.iso, "dataElement": de["id"], "dataSet": ds["id"]}
            else:
                message = (f"Period: `{period.iso}` is after latest open future period: `{latest_iso}` for data "
                           f"element: `{de['id']}`")
                objects = {"period": period.iso, "dataElement": de["id"]}
            return reject("E7641", objects, "period", message,
                          (period.iso, f"Period: {period.iso} is after latest open future period: {latest_iso}"))
        expired = [ds for ds in targets if ds.get("expiryDays", 0) > 0
                   and today > period.end + dt.timedelta(days=ds["expiryDays"])]
        if expired and (len(expired) == len(targets) or opts.get("strictDataSetLocking")):
            ds = expired[0]
            return reject("E7640", {"period": period.iso, "dataSet": ds["id"]}, "period",
                          f"Current date is past expiry days for period: `{period.iso}` and data set: `{ds['id']}`",
                          (period.iso, f"Current date is past expiry days for period {period.iso} and data set: "
                                       f"{ds['id']}"))
        return None

    def _apply(self, de: dict[str, Any], period: Period, ou: dict[str, Any], coc: dict[str, Any],
               aoc: dict[str, Any], value: str | None, comment: str | None, dv: dict[str, Any], delete: bool,
               opts: dict[str, Any], username: str, overlay: Overlay) -> str:
        """Upsert by natural key; return the import-count bucket."""
        key = (de["id"], period.iso, ou["id"], coc["id"], aoc["id"])
        existing = overlay.get(key) or self.store.data_values.get(key)
        strategy = opts["importStrategy"]
        now = self.now().timestamp()
        followup = bool(dv.get("followup") or dv.get("followUp"))
        live = existing is not None and not existing.deleted
        if delete:
            if existing is None or not live:
                return "ignored"
            overlay[key] = DataValueRecord(*key, value=existing.value, comment=existing.comment,
                                           followup=existing.followup, storedBy=username, deleted=True,
                                           created=existing.created, lastUpdated=now)
            return "deleted"
        if existing is not None and live:
            if strategy == "CREATE":
                return "ignored"
            unchanged = (existing.value == value and (existing.comment or None) == (comment or None)
                         and existing.followup == followup)
            if unchanged and self.version.unchanged_is_ignored:
                return "ignored"
            overlay[key] = DataValueRecord(*key, value=value, comment=comment, followup=followup,
                                           storedBy=username, created=existing.created, lastUpdated=now)
            return "updated"
        if strategy == "UPDATE":
            return "ignored"
        overlay[key] = DataValueRecord(*key, value=value, comment=comment, followup=followup, storedBy=username,
                                       created=now, lastUpdated=now)
        return "imported"
