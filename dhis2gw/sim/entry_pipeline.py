"""The DHIS2 2.43+ aggregate import ("data entry pipeline") for ``POST /api/dataValueSets``.

2.43 rewrote the aggregate import (reference ``dhis2-2.43-2.44.md`` §1-§3). What differs from
:class:`~dhis2gw.sim.aggregate.AggregateImporter`, and is reproduced here:

* values are validated and written per data set ("group"); without a top-level ``dataSet`` the
  set is detected per data element, and a data element in several sets (E8002) or in none
  (E8003) aborts the whole import;
* two values with the same (data element, period, org unit, COC, AOC) refuse the whole import
  (E8128 "… all affect the same data value"): 2.42 let the last row win;
* the conflicts are E80xx/E81xx; E8122 carries only ``objects.args`` =
  ``"<index>-<value>-<valueType>-<i18nKey>"``; E8023/E8024/E8030 name a data set and list ids;
  ``force`` and the ``strict*`` flags do not bypass E8023/E8024;
* counting: ``imported`` is always 0 (first writes are ``updated``), ``CREATE`` overwrites, a
  ``DELETE`` of a never-written value leaves a tombstone (``deleted``), an inline ``deleted:true``
  counts as ``updated``; E802x/E803x refusals are counted nowhere, E81xx ones as ``ignored``;
* status: nothing refused → SUCCESS; something refused and something stored → WARNING (HTTP 200
  from 2.43.1, 409 on 2.43.0); nothing stored → ERROR (409) even for value-level refusals;
* from 2.43.1 a superuser (ALL) is not held to ``openFuturePeriods``; ``completeDate`` registers
  nothing when every value was refused, nor with ``dryRun``;
* 2.43.2+: ``dryRun=true`` with a TRUE_ONLY or LONG_TEXT value is a deterministic 500 NPE;
* the transient 409 "Failed to flush BatchHandler" on the first completeness registration of a
  new period, when the simulator's ``batch_handler_flush`` fault is on.

Codes that nobody observed for a case are chosen from the 2.43.2 ``ErrorCode`` enum and marked
*chosen* in :data:`CODES`; their messages are the simulator's own wording.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from dhis2gw.sim.aggregate import AggregateImporter
from dhis2gw.sim.conflicts import value_type_error
from dhis2gw.sim.metadata import Metadata
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

#: Which code for which refusal. Observed (dhis2w DHIS2_ISSUES.md): E8002, E8003, E8023, E8024,
#: E8030, E8120, E8122, E8128; E7611/E7617 survive in the 2.43.2 enum. The rest are *chosen*.
CODES = {
    "data_set_not_found": "E8000",      # chosen
    "multiple_sets": "E8002",
    "no_set": "E8003",
    "org_unit_not_found": "E8004",      # chosen
    "coc_not_found": "E8005",           # chosen
    "aoc_not_found": "E8006",           # chosen
    "period_invalid": "E7611",
    "not_in_hierarchy": "E7617",
    "not_in_data_set": "E8020",         # chosen
    "period_type": "E8021",             # chosen
    "org_unit_not_assigned": "E8022",   # observed code, message not quoted
    "aoc_not_usable": "E8023",
    "coc_not_usable": "E8024",
    "untimely": "E8030",
    "value_required": "E8120",
    "value_invalid": "E8122",
    "duplicate": "E8128",
}

#: Value types whose ``dryRun`` import dies with the NPE on 2.43.2+ (dhis2w #129).
DRY_RUN_NPE_TYPES = frozenset({"TRUE_ONLY", "LONG_TEXT"})
DRY_RUN_NPE = 'Cannot invoke "org.hisp.dhis.datavalue.DataEntryGroup.values()" because "valid" is null'
FLUSH_FAILED = "The import process failed: Failed to flush BatchHandler"

#: Refusals DHIS2 2.43 counts nowhere (dhis2w #6 #110 #139): the rest count as ``ignored``.
_UNCOUNTED = {"E8020", "E8022", "E8023", "E8024", "E8030"}


class ServerFault(Exception):
    """DHIS2 failed inside the import: the endpoint answers a 500 WebMessage with this message."""


class _Abort(Exception):
    """A refusal of the whole import (header, data set detection, duplicate keys)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class DataEntryImporter(AggregateImporter):
    """Validates and stores one data value set the way DHIS2 2.43/2.44 do (module docstring)."""

    def __init__(self, metadata: Metadata, store: Store, version: Version, now: Callable[[], dt.datetime],
                 flush_fails: Callable[[tuple[str, str, str, str]], bool] = lambda key: False) -> None:
        """*flush_fails(registration key)* says whether this registration meets the BatchHandler 409."""
        super().__init__(metadata, store, version, now)
        self.flush_fails = flush_fails

    def _list(self, ids: list[str]) -> str:
        text = "[" + ", ".join(ids) + "]"
        return f"`{text}`" if self.version.backticked_args else text

    # ------------------------------------------------------------------------
    def _summary(self, status: str, opts: dict[str, Any], async_: bool, description: str,
                 counts: dict[str, int], conflicts: list[dict[str, Any]], rejected: list[int] | None,
                 complete: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"responseType": "ImportSummary", "status": status,
                               "importOptions": import_options(self.version, opts, async_),
                               "description": description, "importCount": counts}
        if rejected is not None:
            out["rejectedIndexes"] = rejected
        out["conflicts"] = conflicts
        if complete is not None:
            out["dataSetComplete"] = complete
        return out

    def _aborted(self, opts: dict[str, Any], async_: bool, code: str, message: str) -> dict[str, Any]:
        return self._summary("ERROR", opts, async_, "Import process was aborted", zero_counts(),
                             [{"errorCode": code, "value": message}], None, None)

    def _import(self, payload: dict[str, Any], opts: dict[str, Any], username: str, async_: bool) -> dict[str, Any]:
        values = [dv if isinstance(dv, dict) else {} for dv in (payload.get("dataValues") or [])
                  ] if isinstance(payload.get("dataValues"), list) else []
        try:
            header = self._header(payload, opts)
            resolved = [self._resolve(dv, payload, opts, header) for dv in values]
            self._check_dry_run(opts, resolved)
            groups = self._detect(resolved, header["dataSet"])
            self._check_duplicates(resolved)
        except _Abort as abort:
            return self._aborted(opts, async_, abort.code, abort.message)
        md = self.metadata
        user, user_paths = self._user(username)
        superuser = "ALL" in user.get("authorities", [])
        today = self.now().date()
        counts = zero_counts()
        conflicts: list[dict[str, Any]] = []
        grouped: dict[tuple[str, str, str], dict[str, Any]] = {}
        rejected: list[int] = []
        overlay: dict[tuple[str, str, str, str, str], DataValueRecord] = {}

        def refuse(index: int, key: str, message: str | None = None, group: tuple[str, str] | None = None,
                   item: str | None = None, args: str | None = None) -> None:
            code = CODES[key]
            rejected.append(index)
            if code not in _UNCOUNTED:
                counts["ignored"] += 1
            if args is not None:
                conflicts.append({"errorCode": code, "objects": {"args": args}})
            elif group is not None:
                entry = grouped.get((code, *group))
                if entry is None:
                    entry = grouped[(code, *group)] = {"errorCode": code, "value": "", "_items": []}
                    conflicts.append(entry)
                if item not in entry["_items"]:
                    entry["_items"].append(item)
            else:
                conflicts.append({"errorCode": code, "value": message})

        for index, (dv, r) in enumerate(zip(values, resolved)):
            ds = groups[index]
            problem = r.get("problem")
            if problem:
                refuse(index, problem[0], problem[1])
                continue
            de, period, ou, coc, aoc = r["de"], r["period"], r["ou"], r["coc"], r["aoc"]
            if ds is not None and not any(e["dataElement"] == de["id"] for e in ds["dataSetElements"]):
                refuse(index, "not_in_data_set", f"Data element `{de['id']}` is not part of data set `{ds['id']}`")
                continue
            if outside_hierarchy(ou, user_paths):
                refuse(index, "not_in_hierarchy",
                       f"Organisation unit: `{ou['id']}` not in hierarchy of current user: `{username}`")
                continue
            delete = opts["importStrategy"] == "DELETE"
            inline_deleted = dv.get("deleted") in (True, "true")
            value = dv.get("value")
            value = None if value is None else str(value)
            if not delete and not inline_deleted and (value is None or value == ""):
                refuse(index, "value_required", f"Value #{index} value is required")
                continue
            if not delete and value:
                bad = value_type_error(de["valueType"], value)
                if bad:
                    refuse(index, "value_invalid", args=f"{index}-{value}-{de['valueType']}-{bad[0]}")
                    continue
            if ds is not None and ou["id"] not in ds.get("organisationUnits", []):
                refuse(index, "org_unit_not_assigned", None, (ds["id"], ""), ou["id"])
                continue
            if ds is not None and aoc["id"] not in md.coc_ids_of_combo(ds["categoryCombo"]):
                refuse(index, "aoc_not_usable", None, (ds["id"], ""), aoc["id"])
                continue
            if ds is not None and coc["id"] not in _cocs_in(md, ds, de):
                refuse(index, "coc_not_usable", None, (ds["id"], de["id"]), coc["id"])
                continue
            if ds is not None and period.period_type != ds.get("periodType"):
                refuse(index, "period_type", f"Period `{period.iso}` is not a {ds.get('periodType')} period of data "
                                             f"set `{ds['id']}`")
                continue
            if ds is not None and self._untimely(ds, period, today, superuser):
                refuse(index, "untimely", None, (ds["id"], ""), period.iso)
                continue
            value = normalised(de, value)
            if insignificant_zero(de, value, delete):
                counts["ignored"] += 1
                continue
            bucket = self._write(de, period, ou, coc, aoc, value, dv.get("comment"), dv, delete, inline_deleted,
                                 opts, username, overlay)
            counts[bucket] += 1
        for (code, ds_id, de_id), entry in grouped.items():
            entry["value"] = _message(code, ds_id, de_id, self._list(entry.pop("_items")))

        landed = counts["updated"] + counts["deleted"]
        complete = "false"
        cdate = payload.get("completeDate")
        header_ds, header_ou, header_aoc = header["dataSet"], header["orgUnit"], header["aoc"]
        period = parse_period(payload.get("period"))
        registers = (bool(cdate) and str(cdate).lower() != "false" and header_ds is not None
                     and header_ou is not None and period is not None
                     and not (values and len(rejected) == len(values)))
        if registers and header_ds and header_ou and period:
            key = completion_key(header_ds, period, header_ou, header_aoc)
            if not opts.get("dryRun") and key not in self.store.completions and self.flush_fails(key):
                return self._summary("ERROR", opts, async_, FLUSH_FAILED, zero_counts(), [], None, None)
            complete = self._complete(key, cdate, today, opts, username)
        self._commit(overlay, opts)
        if not conflicts:
            status = "SUCCESS"
        elif landed:
            status = "WARNING"
        else:
            status = "ERROR"
        description = ("Import process completed successfully" if status != "ERROR"
                       else "Import process completed with errors")
        return self._summary(status, opts, async_, description, counts, conflicts, rejected, complete)

    # -- the whole-import checks -------------------------------------------------
    def _header(self, payload: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
        md = self.metadata
        out: dict[str, Any] = {"dataSet": None, "orgUnit": None, "aoc": None}
        for field, kind, scheme, key, what in (
                ("dataSet", "dataSets", "dataSetIdScheme", "data_set_not_found", "Data set"),
                ("orgUnit", "organisationUnits", "orgUnitIdScheme", "org_unit_not_found", "Organisation unit"),
                ("attributeOptionCombo", "categoryOptionCombos", "categoryOptionComboIdScheme", "aoc_not_found",
                 "Attribute option combo")):
            raw = payload.get(field)
            if not raw:
                continue
            found = md.lookup(kind, raw, self.scheme(opts, scheme))
            if not found:
                raise _Abort(CODES[key], f"{what} not found or not accessible: `{raw}`")
            out["aoc" if field == "attributeOptionCombo" else field] = found
        return out

    def _resolve(self, dv: dict[str, Any], payload: dict[str, Any], opts: dict[str, Any],
                 header: dict[str, Any]) -> dict[str, Any]:
        """Look up the ids of one value; ``problem`` = (code key, message) when one is unknown."""
        md = self.metadata
        de_raw = dv.get("dataElement")
        de = md.lookup("dataElements", de_raw, self.scheme(opts, "dataElementIdScheme"))
        out: dict[str, Any] = {"de": de, "raw_de": str(de_raw)}
        pe_raw = dv.get("period") or payload.get("period")
        period = parse_period(pe_raw)
        ou_raw = dv.get("orgUnit")
        ou = md.lookup("organisationUnits", ou_raw, self.scheme(opts, "orgUnitIdScheme")) if ou_raw \
            else header["orgUnit"]
        coc_scheme = self.scheme(opts, "categoryOptionComboIdScheme")
        coc_raw = dv.get("categoryOptionCombo")
        coc = self._option_combo(coc_raw, coc_scheme)
        aoc_raw = dv.get("attributeOptionCombo")
        aoc = self._option_combo(aoc_raw, coc_scheme, header["aoc"])
        out.update(period=period, ou=ou, coc=coc, aoc=aoc)
        if not period:
            out["problem"] = ("period_invalid", f"Period not valid: `{pe_raw}`")
        elif not ou:
            out["problem"] = ("org_unit_not_found", f"Organisation unit not found or not accessible: `{ou_raw}`")
        elif not coc:
            out["problem"] = ("coc_not_found", f"Category option combo not found or not accessible: `{coc_raw}`")
        elif not aoc:
            out["problem"] = ("aoc_not_found", f"Attribute option combo not found or not accessible: `{aoc_raw}`")
        return out

    def _check_dry_run(self, opts: dict[str, Any], resolved: list[dict[str, Any]]) -> None:
        if opts.get("dryRun") and self.version.dry_run_npe and any(
                r["de"] and r["de"]["valueType"] in DRY_RUN_NPE_TYPES for r in resolved):
            raise ServerFault(DRY_RUN_NPE)

    def _detect(self, resolved: list[dict[str, Any]], header_ds: dict[str, Any] | None) -> list[Any]:
        """The data set (group) of each value; aborts on E8002/E8003."""
        if header_ds is not None:
            for r in resolved:
                if r["de"] is None and "problem" not in r:
                    r["problem"] = ("not_in_data_set",
                                    f"Data element `{r['raw_de']}` is not part of data set `{header_ds['id']}`")
            return [header_ds] * len(resolved)
        none_found = [r["raw_de"] for r in resolved if r["de"] is None
                      or not self.metadata.data_sets_of(r["de"]["id"])]
        if none_found:
            raise _Abort(CODES["no_set"], "Data set detection failed, found no set for data element(s): "
                                          + self._list(sorted(set(none_found))))
        groups = []
        for r in resolved:
            sets = self.metadata.data_sets_of(r["de"]["id"])
            if len(sets) > 1:
                raise _Abort(CODES["multiple_sets"], "Data set detection failed, found multiple sets: "
                                                     + self._list(sorted(d["id"] for d in sets)))
            groups.append(sets[0])
        return groups

    def _check_duplicates(self, resolved: list[dict[str, Any]]) -> None:
        seen: dict[tuple[str, ...], int] = {}
        for index, r in enumerate(resolved):
            if "problem" in r or r["de"] is None:
                continue
            key = (r["de"]["id"], r["period"].iso, r["ou"]["id"], r["coc"]["id"], r["aoc"]["id"])
            if key in seen:
                raise _Abort(CODES["duplicate"], f"Value #{seen[key]} and #{index} all affect the same data value")
            seen[key] = index

    # -- per value ------------------------------------------------------------
    def _untimely(self, ds: dict[str, Any], period: Period, today: dt.date, superuser: bool) -> bool:
        if not (superuser and self.version.superuser_skips_future_periods):
            if period.start > latest_open(ds, today)[1]:
                return True
        expiry = int(ds.get("expiryDays") or 0)
        return expiry > 0 and today > period.end + dt.timedelta(days=expiry)

    def _write(self, de: dict[str, Any], period: Period, ou: dict[str, Any], coc: dict[str, Any],
               aoc: dict[str, Any], value: str | None, comment: str | None, dv: dict[str, Any], delete: bool,
               inline_deleted: bool, opts: dict[str, Any], username: str, overlay: Overlay) -> str:
        """Upsert by natural key with the 2.43 counting; return the import-count bucket."""
        key = (de["id"], period.iso, ou["id"], coc["id"], aoc["id"])
        existing = overlay.get(key) or self.store.data_values.get(key)
        live = existing is not None and not existing.deleted
        now = self.now().timestamp()
        followup = bool(dv.get("followup") or dv.get("followUp"))
        created = existing.created if existing is not None else now
        if delete:  # a DELETE of a never-written value leaves a tombstone carrying the payload value
            overlay[key] = DataValueRecord(*key, value=existing.value if live and existing else value,
                                           comment=comment, followup=followup, storedBy=username, deleted=True,
                                           created=created, lastUpdated=now)
            return "deleted"
        if inline_deleted:
            overlay[key] = DataValueRecord(*key, value=value, comment=comment, followup=followup, storedBy=username,
                                           deleted=True, created=created, lastUpdated=now)
            return "updated"
        if live and existing is not None:
            unchanged = (existing.value == value and (existing.comment or None) == (comment or None)
                         and existing.followup == followup)
            if unchanged:
                return "ignored"
        elif opts["importStrategy"] == "UPDATE":
            return "ignored"
        overlay[key] = DataValueRecord(*key, value=value, comment=comment, followup=followup, storedBy=username,
                                       created=created, lastUpdated=now)
        return "updated"  # CREATE overwrites too; first writes count as updated (imported is always 0)


def _cocs_in(md: Metadata, ds: dict[str, Any], de: dict[str, Any]) -> set[str]:
    """COCs of the data element's combo in this data set (the data set element override wins)."""
    combo = next((e.get("categoryCombo") for e in ds["dataSetElements"] if e["dataElement"] == de["id"]), None)
    return md.coc_ids_of_combo(combo or de["categoryCombo"])


def _message(code: str, ds_id: str, de_id: str, items: str) -> str:
    if code == "E8023":
        return f"Data set {ds_id} not usable with attribute option combo(s): {items}"
    if code == "E8024":
        return f"Data set {ds_id} + data element {de_id} not usable with category option combo(s): {items}"
    if code == "E8030":
        return f"Untimely data entry for data set {ds_id} and period(s): {items}"
    return f"Data set {ds_id} is not assigned to organisation unit(s): {items}"  # E8022 (not quoted)
