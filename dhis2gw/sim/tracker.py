"""Tracker import (``POST /api/tracker``): payload parsing, atomic modes, commit and report.

:meth:`TrackerImporter.parse` runs at request time (JSON errors and 2.42 invalid UIDs are
HTTP 400 immediately); :meth:`TrackerImporter.execute` validates and commits, synchronously or
when the async job runs, and returns the ``ImportReport`` dict for the simulated version.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dhis2gw.sim.metadata import Metadata
from dhis2gw.sim.store import Store
from dhis2gw.sim.tracker_rules import TYPE_NAMES, TrackerError, TrackerValidator
from dhis2gw.sim.uids import is_uid, new_uid
from dhis2gw.sim.versions import Version

TYPES = ("TRACKED_ENTITY", "ENROLLMENT", "EVENT", "RELATIONSHIP")
ID_KEYS = {"TRACKED_ENTITY": "trackedEntity", "ENROLLMENT": "enrollment", "EVENT": "event",
           "RELATIONSHIP": "relationship"}
ENUMS = {"importStrategy": ["CREATE", "UPDATE", "CREATE_AND_UPDATE", "DELETE"],
         "atomicMode": ["ALL", "OBJECT"], "importMode": ["COMMIT", "VALIDATE"],
         "reportMode": ["FULL", "ERRORS", "WARNINGS"], "validationMode": ["FULL", "FAIL_FAST", "SKIP"],
         "flushMode": ["AUTO", "OBJECT"]}
DEFAULTS = {"importStrategy": "CREATE_AND_UPDATE", "atomicMode": "ALL", "importMode": "COMMIT",
            "reportMode": "ERRORS", "validationMode": "FULL", "flushMode": "AUTO"}
SCHEME_KEYS = ("idScheme", "orgUnitIdScheme", "programIdScheme", "programStageIdScheme", "dataElementIdScheme")


class TrackerBadRequest(Exception):
    """A request DHIS2 rejects with HTTP 400 before importing."""


@dataclass
class TrackerBundle:
    """A parsed, flattened payload with its import parameters."""

    params: dict[str, str]
    schemes: dict[str, str]
    objects: dict[str, list[dict[str, Any]]]
    invalid_uids: list[TrackerError] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Number of objects in the payload."""
        return sum(len(v) for v in self.objects.values())


class TrackerImporter:
    """Imports tracker payloads into the store."""

    def __init__(self, metadata: Metadata, store: Store, version: Version, now: Callable[[], dt.datetime],
                 rng: random.Random) -> None:
        """*rng* generates server-side UIDs."""
        self.metadata, self.store, self.version, self.now, self.rng = metadata, store, version, now, rng

    # -- request-time parsing --------------------------------------------------
    def parse(self, body: bytes, query: dict[str, str]) -> TrackerBundle:
        """Validate parameters, parse and flatten the payload (raises TrackerBadRequest)."""
        params = {}
        for key, allowed in ENUMS.items():
            raw = query.get(key)
            if raw is None or raw == "":
                params[key] = DEFAULTS[key]
                continue
            value = raw.upper() if self.version.minor >= 40 else raw
            if key == "importStrategy" and value == "PATCH" and self.version.minor <= 40:
                value = "UPDATE"
            if value not in allowed:
                if self.version.minor <= 37:
                    value = DEFAULTS[key]  # 2.36/2.37 silently fall back to the default
                else:
                    raise TrackerBadRequest(f"Value '{raw}' is not valid for parameter {key}. "
                                            f"Valid values are: {list(allowed)}".replace("'", "'"))
            params[key] = value
        schemes = {k: query[k].upper() for k in SCHEME_KEYS if query.get(k)}
        try:
            payload = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError) as e:
            raise TrackerBadRequest(f"JSON parse error: {e}") from e
        if not isinstance(payload, dict):
            raise TrackerBadRequest("JSON parse error: Cannot deserialize value of type "
                                    "`org.hisp.dhis.webapi.controller.tracker.imports.Body` from Array value")
        objects: dict[str, list[dict[str, Any]]] = {t: [] for t in TYPES}
        payload = copy.deepcopy(payload)
        for te in payload.get("trackedEntities") or []:
            self._take("TRACKED_ENTITY", te, objects)
        for en in payload.get("enrollments") or []:
            self._take("ENROLLMENT", en, objects)
        for ev in payload.get("events") or []:
            self._take("EVENT", ev, objects)
        for rel in payload.get("relationships") or []:
            self._take("RELATIONSHIP", rel, objects)
        bundle = TrackerBundle(params, schemes, objects)
        self._check_uids(bundle)
        return bundle

    def _take(self, ttype: str, obj: dict[str, Any], objects: dict[str, list[dict[str, Any]]],
              parent: dict[str, Any] | None = None) -> None:
        """Flatten one object (and its nested children) into *objects*."""
        if not isinstance(obj, dict):
            raise TrackerBadRequest("JSON parse error: tracker object must be a JSON object")
        key = ID_KEYS[ttype]
        if not obj.get(key):
            obj[key] = new_uid(self.rng)
        uid = obj[key]
        children = {"TRACKED_ENTITY": [("enrollments", "ENROLLMENT")], "ENROLLMENT": [("events", "EVENT")],
                    "EVENT": []}.get(ttype, [])
        nested: list[tuple[str, dict[str, Any]]] = []
        for field_name, child_type in children:
            for child in obj.pop(field_name, None) or []:
                if isinstance(child, dict):
                    child[key] = uid
                    if ttype == "ENROLLMENT" and obj.get("program") and not child.get("program"):
                        child["program"] = obj["program"]
                nested.append((child_type, child))
        rels = obj.pop("relationships", None) or [] if ttype != "RELATIONSHIP" else []
        if ttype == "RELATIONSHIP":
            self._normalise_items(obj)
        objects[ttype].append(obj)
        for child_type, child in nested:
            self._take(child_type, child, objects)
        for rel in rels:
            self._take("RELATIONSHIP", rel, objects)

    def _normalise_items(self, rel: dict[str, Any]) -> None:
        """Accept the RelationshipItem shape of the simulated version and flatten it to ``{type: uid}``."""
        for side in ("from", "to"):
            item = rel.get(side)
            if not isinstance(item, dict):
                continue
            flat = {}
            for k, v in item.items():
                if self.version.nested_relationship_items:
                    if not isinstance(v, dict):
                        raise TrackerBadRequest(f"JSON parse error: Cannot construct instance of "
                                                f"`org.hisp.dhis.webapi.controller.tracker.view.{k[0].upper()}{k[1:]}`"
                                                f": no String-argument constructor/factory method to deserialize "
                                                f"from String value ('{v}')")
                    flat[k] = v.get(k)
                else:
                    if isinstance(v, dict):
                        raise TrackerBadRequest("JSON parse error: Cannot deserialize value of type "
                                                "`java.lang.String` from Object value")
                    flat[k] = v
            rel[side] = flat

    def _check_uids(self, bundle: TrackerBundle) -> None:
        """Invalid UIDs: 400 on 2.42, E1048 errors before."""
        for ttype in TYPES:
            for obj in bundle.objects[ttype]:
                uid = obj[ID_KEYS[ttype]]
                refs = [uid] + [obj.get(k) for k in ("trackedEntity", "enrollment") if k != ID_KEYS[ttype]]
                for ref in refs:
                    if ref is not None and not is_uid(ref):
                        if self.version.tracker_invalid_uid_400:
                            raise TrackerBadRequest(
                                "JSON parse error: Cannot construct instance of `org.hisp.dhis.common.UID`, "
                                "problem: UID must be an alphanumeric string of 11 characters starting with a "
                                f"letter, but was: {ref}")
                        bundle.invalid_uids.append(TrackerError("E1048", ttype, str(uid),
                                                                [TYPE_NAMES[ttype], str(ref)]))
                        break

    # -- validation and commit ---------------------------------------------------
    def execute(self, bundle: TrackerBundle, username: str) -> tuple[int, dict[str, Any]]:
        """Validate, commit per atomicMode/importMode; return (sync HTTP status, ImportReport)."""
        params, objects = bundle.params, bundle.objects
        strategy = params["importStrategy"]
        payload_uids = {t: {o[ID_KEYS[t]] for o in objects[t]} for t in TYPES}
        validator = TrackerValidator(self.metadata, self.store, bundle.schemes, strategy, payload_uids,
                                     self.now().date())
        errors: list[TrackerError] = list(bundle.invalid_uids)
        failed: set[str] = {e.uid for e in errors}
        tes = {te["trackedEntity"]: te for te in objects["TRACKED_ENTITY"]}
        parents = {"ENROLLMENT": ("TRACKED_ENTITY", "trackedEntity"), "EVENT": ("ENROLLMENT", "enrollment")}
        for ttype in TYPES:
            for obj in objects[ttype]:
                uid = obj[ID_KEYS[ttype]]
                if uid in failed:
                    continue
                dependant = None
                if ttype in parents and obj.get(parents[ttype][1]) in failed:
                    dependant = (parents[ttype][0], obj[parents[ttype][1]])
                if ttype == "RELATIONSHIP":
                    for item in (obj.get("from") or {}, obj.get("to") or {}):
                        for k, ref in item.items():
                            if ref in failed:
                                dependant = ({"trackedEntity": "TRACKED_ENTITY", "enrollment": "ENROLLMENT"}
                                             .get(k, "EVENT"), ref)
                if dependant:
                    errs = [TrackerError("E5000", ttype, uid, [TYPE_NAMES[ttype], uid, TYPE_NAMES[dependant[0]],
                                                               dependant[1]])]
                elif ttype == "TRACKED_ENTITY":
                    errs = validator.tracked_entity(obj)
                elif ttype == "ENROLLMENT":
                    errs = validator.enrollment(obj, tes)
                elif ttype == "EVENT":
                    errs = validator.event(obj)
                else:
                    errs = validator.relationship(obj)
                if errs:
                    failed.add(uid)
                    errors.extend(errs)
        total = bundle.total
        stats = {t: {"created": 0, "updated": 0, "deleted": 0, "ignored": 0, "total": 0} for t in TYPES}
        object_reports: dict[str, list[dict[str, Any]]] = {t: [] for t in TYPES}
        commit = params["importMode"] == "COMMIT" and (not errors or params["atomicMode"] == "OBJECT")
        if commit:
            for ttype in TYPES:
                for index, obj in enumerate(objects[ttype]):
                    uid = obj[ID_KEYS[ttype]]
                    s = stats[ttype]
                    s["total"] += 1
                    if uid in failed:
                        s["ignored"] += 1
                        continue
                    s[self._commit(ttype, obj, strategy, username)] += 1
                    object_report: dict[str, Any] = {"trackerType": ttype, "uid": uid}
                    if self.version.tracker_object_index:
                        object_report["index"] = index
                    object_report["errorReports"] = []
                    object_reports[ttype].append(object_report)
        status = "ERROR" if errors else "OK"
        overall = {k: sum(stats[t][k] for t in TYPES) for k in ("created", "updated", "deleted", "ignored", "total")}
        if not commit:
            overall = {"created": 0, "updated": 0, "deleted": 0, "ignored": total if errors else 0, "total": total}
        validation: dict[str, Any] = {"errorReports": [e.render(self.version) for e in errors]}
        if self.version.minor >= 40:
            validation["warningReports"] = []
        report: dict[str, Any] = {"status": status, "validationReport": validation, "stats": overall}
        if self.version.tracker_timings and params["reportMode"] == "FULL":
            report["timingsStats"] = {"timers": {n: "0.001 sec." for n in (
                "preheat", "preprocess", "validation", "programrule", "commit", "totalImport")}}
        if commit or (params["importMode"] == "VALIDATE" and not errors):
            type_map = {}
            if commit:
                for ttype in ("EVENT", "ENROLLMENT", "RELATIONSHIP", "TRACKED_ENTITY"):
                    type_map[ttype] = {"trackerType": ttype, "stats": stats[ttype],
                                       "objectReports": object_reports[ttype]}
            bundle_report: dict[str, Any] = {}
            if self.version.tracker_bundle_status:
                bundle_report["status"] = status
            bundle_report["typeReportMap"] = type_map
            if self.version.tracker_bundle_status:
                bundle_report["stats"] = overall
            report["bundleReport"] = bundle_report
        return (409 if status == "ERROR" else 200), report

    def _commit(self, ttype: str, obj: dict[str, Any], strategy: str, username: str) -> str:
        """Write one valid object; return the stats bucket."""
        collection = self.store.tracker_collection(ttype)
        uid = obj[ID_KEYS[ttype]]
        now = self.now().isoformat(timespec="milliseconds").replace("+00:00", "")
        self.store.write_counts[uid] += 1
        if strategy == "DELETE":
            collection.pop(uid, None)
            return "deleted"
        existing = collection.get(uid)
        record = copy.deepcopy(obj)
        record["updatedAt"] = now
        record["storedBy"] = username
        if existing:
            record["createdAt"] = existing.get("createdAt", now)
            for list_key, id_key in (("attributes", "attribute"), ("dataValues", "dataElement")):
                if list_key in existing:
                    merged = {a[id_key]: a for a in existing[list_key] if isinstance(a, dict)}
                    for a in record.get(list_key, []) or []:
                        if a.get("value") is None:
                            merged.pop(a.get(id_key), None)  # null deletes the value
                        else:
                            merged[a.get(id_key)] = a
                    record[list_key] = list(merged.values())
            collection[uid] = record
            return "updated"
        record["createdAt"] = now
        collection[uid] = record
        return "created"
