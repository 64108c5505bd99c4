"""Validation rules of the tracker importer, producing DHIS2 E1xxx/E4xxx/E5000 errors.

Messages follow ``ValidationCode`` (2.42 wording, shared by 2.40–2.42); 2.36–2.39 render a few
of them the old way (``OrganisationUnit (uid)``, "dont match") as captured by client fixtures.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from dhis2gw.sim.conflicts import value_type_error
from dhis2gw.sim.metadata import Metadata
from dhis2gw.sim.store import Store
from dhis2gw.sim.versions import Version

TEMPLATES = {
    "E1002": "TrackedEntity: `{0}`, already exists.",
    "E1005": "Could not find TrackedEntityType: `{0}`.",
    "E1006": "Attribute: `{0}` does not exist.",
    "E1007": "Error validating attribute value type: `{0}`; Error: `{1}`.",
    "E1010": "Could not find Program: `{0}`, linked to Event.",
    "E1011": "Could not find OrganisationUnit: `{0}`, linked to Event.",
    "E1013": "Could not find ProgramStage: `{0}`, linked to Event.",
    "E1014": ("Provided Program: `{0}` is a Program without registration. An Enrollment cannot be created "
              "into Program without registration."),
    "E1018": "Attribute: `{0}` is mandatory in Program `{1}` but not declared in Enrollment `{2}`.",
    "E1025": "Property enrolledAt is null.",
    "E1029": "Event OrganisationUnit: `{0}` and Program: `{1}`, do not match.",
    "E1030": "Event: `{0}` already exists.",
    "E1031": "Event occurredAt date is missing.",
    "E1032": "Event: `{0}` do not exist.",
    "E1033": "Event: `{0}` Enrollment value is null.",
    "E1041": "Enrollment OrganisationUnit: `{0}` and Program: `{1}` do not match.",
    "E1048": "Object: `{0}`, uid: `{1}`, has an invalid uid format.",
    "E1049": "Could not find OrganisationUnit: `{0}` linked to TrackedEntity.",
    "E1050": "Event ScheduledAt date is missing.",
    "E1063": "TrackedEntity: `{0}`, does not exist.",
    "E1068": "Could not find TrackedEntity: `{0}` linked to Enrollment.",
    "E1069": "Could not find Program: `{0}` linked to Enrollment.",
    "E1070": "Could not find OrganisationUnit: `{0}` linked to Enrollment.",
    "E1080": "Enrollment: `{0}`, already exists.",
    "E1081": "Enrollment: `{0}`, do not exist.",
    "E1089": "Event: `{0}`, references a Program Stage `{1}` that does not belong to Program `{2}`.",
    "E1090": "Attribute: `{0}` is mandatory in TrackedEntityType `{1}` but not found in TrackedEntity `{2}`.",
    "E1121": "Missing required trackedEntity property: `{0}`.",
    "E1122": "Missing required enrollment property: `{0}`.",
    "E1123": "Missing required event property: `{0}`.",
    "E1124": "Missing required relationship property: `{0}`.",
    "E1302": "DataElement `{0}` is not valid: `{1}`.",
    "E1304": "DataElement `{0}` is not a valid DataElement.",
    "E1305": "DataElement `{0}` is not part of ProgramStage `{1}`.",
    "E4001": ("RelationshipItem `{0}` for Relationship `{1}` is invalid as an item must be associated with "
              "exactly one of TrackedEntity, Enrollment, Event."),
    "E4006": "Could not find RelationshipType: `{0}`.",
    "E4012": "Could not find `{0}`: `{1}`, linked to relationship.",
    "E4015": "Relationship: `{0}` already exists.",
    "E4016": "Relationship: `{0}` do not exist.",
    "E5000": "{0} `{1}` cannot be created because {2} `{3}` referenced by it could not be created.",
}
OLD_TEMPLATES = {
    "E1029": "Event OrganisationUnit: `OrganisationUnit ({0})`, and Program: `Program ({1})`, dont match.",
    "E1041": "Enrollment OrganisationUnit: `OrganisationUnit ({0})`, and Program: `Program ({1})`, dont match.",
    "E1033": "Event: `{0}`, Enrollment value is NULL.",
}
TYPE_NAMES = {"TRACKED_ENTITY": "TrackedEntity", "ENROLLMENT": "Enrollment", "EVENT": "Event",
              "RELATIONSHIP": "Relationship"}


@dataclass
class TrackerError:
    """One validation error of one object."""

    code: str
    tracker_type: str
    uid: str
    args: list[str] = field(default_factory=list)

    def render(self, version: Version) -> dict[str, Any]:
        """The errorReport dict for *version*."""
        template = (OLD_TEMPLATES.get(self.code) if version.old_tracker_messages else None) or TEMPLATES[self.code]
        message = template.format(*self.args) if self.args else template
        out: dict[str, Any] = {"message": message, "errorCode": self.code, "trackerType": self.tracker_type,
                               "uid": self.uid}
        if version.tracker_error_args:
            out["args"] = list(self.args)
        return out


class TrackerValidator:
    """Checks flattened tracker objects against metadata, the store and the payload."""

    def __init__(self, metadata: Metadata, store: Store, schemes: dict[str, str], strategy: str,
                 payload_uids: dict[str, set[str]], today: dt.date) -> None:
        """*payload_uids* maps tracker type to the UIDs present in this payload."""
        self.md, self.store, self.schemes, self.strategy = metadata, store, schemes, strategy
        self.payload_uids = payload_uids
        self.today = today

    def _scheme(self, key: str) -> str:
        return self.schemes.get(key) or self.schemes.get("idScheme") or "UID"

    def _existence(self, ttype: str, uid: str, exists_code: str, missing_code: str) -> list[TrackerError] | None:
        """The import strategy's existence check: its error, ``[]`` for a DELETE of a stored object
        (nothing else is validated), None when the other rules decide."""
        exists = uid in self.store.tracker_collection(ttype)
        if self.strategy == "CREATE" and exists:
            return [TrackerError(exists_code, ttype, uid, [uid])]
        if self.strategy in ("UPDATE", "DELETE") and not exists:
            return [TrackerError(missing_code, ttype, uid, [uid])]
        return [] if self.strategy == "DELETE" else None

    def _known(self, ttype: str, uid: str | None) -> bool:
        return bool(uid) and (uid in self.store.tracker_collection(ttype) or uid in self.payload_uids[ttype])

    def _attributes(self, ttype: str, uid: str, attrs: list[dict[str, Any]]) -> list[TrackerError]:
        errors = []
        for a in attrs or []:
            tea = self.md.get("trackedEntityAttributes", a.get("attribute"))
            if not tea:
                errors.append(TrackerError("E1006", ttype, uid, [str(a.get("attribute"))]))
            elif a.get("value") not in (None, ""):
                problem = value_type_error(tea["valueType"], str(a["value"]))
                if problem:
                    errors.append(TrackerError("E1007", ttype, uid, [tea["valueType"], problem[1]]))
        return errors

    def tracked_entity(self, te: dict[str, Any]) -> list[TrackerError]:
        """Errors of one tracked entity."""
        uid = te["trackedEntity"]
        settled = self._existence("TRACKED_ENTITY", uid, "E1002", "E1063")
        if settled is not None:
            return settled
        if not te.get("trackedEntityType"):
            return [TrackerError("E1121", "TRACKED_ENTITY", uid, ["trackedEntityType"])]
        tet = self.md.lookup("trackedEntityTypes", te["trackedEntityType"], self._scheme("idScheme"))
        if not tet:
            return [TrackerError("E1005", "TRACKED_ENTITY", uid, [te["trackedEntityType"]])]
        if not te.get("orgUnit"):
            return [TrackerError("E1121", "TRACKED_ENTITY", uid, ["orgUnit"])]
        if not self.md.lookup("organisationUnits", te["orgUnit"], self._scheme("orgUnitIdScheme")):
            return [TrackerError("E1049", "TRACKED_ENTITY", uid, [te["orgUnit"]])]
        errors = self._attributes("TRACKED_ENTITY", uid, te.get("attributes", []))
        present = {a.get("attribute") for a in te.get("attributes", []) if a.get("value") not in (None, "")}
        stored = self.store.tracked_entities.get(uid)
        if stored:
            present |= {a.get("attribute") for a in stored.get("attributes", [])}
        for tta in tet.get("trackedEntityTypeAttributes", []):
            if tta.get("mandatory") and tta["trackedEntityAttribute"] not in present:
                errors.append(TrackerError("E1090", "TRACKED_ENTITY", uid,
                                           [tta["trackedEntityAttribute"], tet["id"], uid]))
        return errors

    def enrollment(self, en: dict[str, Any], tes_in_payload: dict[str, dict[str, Any]]) -> list[TrackerError]:
        """Errors of one enrollment."""
        uid = en["enrollment"]
        settled = self._existence("ENROLLMENT", uid, "E1080", "E1081")
        if settled is not None:
            return settled
        for prop in ("program", "trackedEntity", "orgUnit"):
            if not en.get(prop):
                return [TrackerError("E1122", "ENROLLMENT", uid, [prop])]
        program = self.md.lookup("programs", en["program"], self._scheme("programIdScheme"))
        if not program:
            return [TrackerError("E1069", "ENROLLMENT", uid, [en["program"]])]
        if program.get("programType") != "WITH_REGISTRATION":
            return [TrackerError("E1014", "ENROLLMENT", uid, [program["id"]])]
        ou = self.md.lookup("organisationUnits", en["orgUnit"], self._scheme("orgUnitIdScheme"))
        if not ou:
            return [TrackerError("E1070", "ENROLLMENT", uid, [en["orgUnit"]])]
        if not self._known("TRACKED_ENTITY", en["trackedEntity"]):
            return [TrackerError("E1068", "ENROLLMENT", uid, [en["trackedEntity"]])]
        errors = []
        if ou["id"] not in program["organisationUnits"]:
            errors.append(TrackerError("E1041", "ENROLLMENT", uid, [ou["id"], program["id"]]))
        if not en.get("enrolledAt"):
            errors.append(TrackerError("E1025", "ENROLLMENT", uid, []))
        errors += self._attributes("ENROLLMENT", uid, en.get("attributes", []))
        present = {a.get("attribute") for a in en.get("attributes", []) if a.get("value") not in (None, "")}
        te = tes_in_payload.get(en["trackedEntity"]) or self.store.tracked_entities.get(en["trackedEntity"]) or {}
        present |= {a.get("attribute") for a in te.get("attributes", []) if a.get("value") not in (None, "")}
        for pta in program.get("programTrackedEntityAttributes", []):
            if pta.get("mandatory") and pta["trackedEntityAttribute"] not in present:
                errors.append(TrackerError("E1018", "ENROLLMENT", uid, [pta["trackedEntityAttribute"],
                                                                       program["id"], uid]))
        return errors

    def event(self, ev: dict[str, Any]) -> list[TrackerError]:
        """Errors of one event."""
        uid = ev["event"]
        settled = self._existence("EVENT", uid, "E1030", "E1032")
        if settled is not None:
            return settled
        if not ev.get("programStage"):
            return [TrackerError("E1123", "EVENT", uid, ["programStage"])]
        stage = self.md.lookup("programStages", ev["programStage"], self._scheme("programStageIdScheme"))
        if not stage:
            return [TrackerError("E1013", "EVENT", uid, [ev["programStage"]])]
        program = self.md.get("programs", stage["program"])
        if ev.get("program"):
            given = self.md.lookup("programs", ev["program"], self._scheme("programIdScheme"))
            if not given:
                return [TrackerError("E1010", "EVENT", uid, [ev["program"]])]
            if given["id"] != stage["program"]:
                return [TrackerError("E1089", "EVENT", uid, [uid, stage["id"], given["id"]])]
        if not ev.get("orgUnit"):
            return [TrackerError("E1123", "EVENT", uid, ["orgUnit"])]
        ou = self.md.lookup("organisationUnits", ev["orgUnit"], self._scheme("orgUnitIdScheme"))
        if not ou:
            return [TrackerError("E1011", "EVENT", uid, [ev["orgUnit"]])]
        errors = []
        if program and program.get("programType") == "WITH_REGISTRATION":
            if not ev.get("enrollment"):
                return [TrackerError("E1033", "EVENT", uid, [uid])]
            if not self._known("ENROLLMENT", ev["enrollment"]):
                return [TrackerError("E1081", "EVENT", uid, [ev["enrollment"]])]
        if program and ou["id"] not in program["organisationUnits"]:
            errors.append(TrackerError("E1029", "EVENT", uid, [ou["id"], program["id"]]))
        status = ev.get("status", "ACTIVE")
        if status == "SCHEDULE":
            if not ev.get("scheduledAt"):
                errors.append(TrackerError("E1050", "EVENT", uid, []))
        elif status != "SKIPPED" and not ev.get("occurredAt"):
            errors.append(TrackerError("E1031", "EVENT", uid, []))
        stage_des = {p["dataElement"] for p in stage.get("programStageDataElements", [])}
        for dv in ev.get("dataValues", []) or []:
            de = self.md.lookup("dataElements", dv.get("dataElement"), self._scheme("dataElementIdScheme"))
            if not de:
                errors.append(TrackerError("E1304", "EVENT", uid, [str(dv.get("dataElement"))]))
            elif de["id"] not in stage_des:
                errors.append(TrackerError("E1305", "EVENT", uid, [de["id"], stage["id"]]))
            elif dv.get("value") not in (None, ""):
                problem = value_type_error(de["valueType"], str(dv["value"]))
                if problem:
                    errors.append(TrackerError("E1302", "EVENT", uid, [de["id"], problem[1]]))
        return errors

    def relationship(self, rel: dict[str, Any]) -> list[TrackerError]:
        """Errors of one relationship (items already normalised to ``{type: uid}``)."""
        uid = rel["relationship"]
        settled = self._existence("RELATIONSHIP", uid, "E4015", "E4016")
        if settled is not None:
            return settled
        if not rel.get("relationshipType"):
            return [TrackerError("E1124", "RELATIONSHIP", uid, ["relationshipType"])]
        if not self.md.get("relationshipTypes", rel["relationshipType"]):
            return [TrackerError("E4006", "RELATIONSHIP", uid, [rel["relationshipType"]])]
        errors = []
        for side in ("from", "to"):
            item = rel.get(side)
            if not item:
                errors.append(TrackerError("E1124", "RELATIONSHIP", uid, [side]))
                continue
            if len(item) != 1:
                errors.append(TrackerError("E4001", "RELATIONSHIP", uid, [side, uid]))
                continue
            (key, ref), = item.items()
            ttype = {"trackedEntity": "TRACKED_ENTITY", "enrollment": "ENROLLMENT", "event": "EVENT"}.get(key)
            if not ttype or not self._known(ttype, ref):
                errors.append(TrackerError("E4012", "RELATIONSHIP", uid, [TYPE_NAMES.get(ttype or "", key), str(ref)]))
        return errors
