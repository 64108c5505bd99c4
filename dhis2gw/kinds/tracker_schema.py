"""What ``POST /api/v2/tracker`` accepts: the body's JSON schema and the import options.

The body is a DHIS2 tracker payload (reference/dhis2-api.md §3.1) in the flat form (top-level
``trackedEntities``, ``enrollments``, ``events``, ``relationships``) or nested (enrollments in
tracked entities, events in enrollments, relationships in any of them), plus the gateway's
``destination`` and per-object ``reference`` extensions. Object ids must be UIDs when given;
parent references (``trackedEntity`` of an enrollment, ``enrollment`` of an event, relationship
ends) may be UIDs or the submitter's references. Metadata fields are plain strings, because
``idScheme=CODE`` etc. allow codes and names there. Unknown object properties are passed on
(DHIS2 has many optional ones); unknown top-level keys are refused (a typo such as
``trackedEntityInstances`` would otherwise import nothing).

Import options are query parameters, as in DHIS2 (§3.2); every bad one is listed in one 400.
"""
from __future__ import annotations

from typing import Any

from dhis2gw.dhis2.uids import is_valid_uid
from dhis2gw.interfaces import KindError

UID_PATTERN = "^[A-Za-z][A-Za-z0-9]{10}$"
UID = {"type": "string", "pattern": UID_PATTERN, "description": "DHIS2 UID (assigned by the gateway if absent)"}
REF = {"type": "string", "minLength": 1, "maxLength": 255,
       "description": "a UID, or the reference of an object in this payload or sent before"}
REFERENCE = {"type": ["string", "integer"], "minLength": 1, "maxLength": 255,
             "description": "the submitter's own id for this object (gateway extension; not sent to DHIS2)"}
META = {"type": "string", "minLength": 1, "maxLength": 255}
DATE = {"type": "string", "minLength": 4, "maxLength": 40}
VALUE = {"type": ["string", "number", "boolean", "null"]}
GEOMETRY = {"type": ["object", "null"]}

NOTE = {"type": "object", "required": ["value"],
        "properties": {"note": UID, "value": {"type": "string", "maxLength": 50000}}}
ATTRIBUTE = {"type": "object", "required": ["attribute"], "properties": {"attribute": META, "value": VALUE}}
DATA_VALUE = {"type": "object", "required": ["dataElement"],
              "properties": {"dataElement": META, "value": VALUE, "providedElsewhere": {"type": "boolean"}}}
ITEM_SIDE = {"anyOf": [REF, {"type": "object", "minProperties": 1}]}
RELATIONSHIP_ITEM = {
    "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
    "properties": {"trackedEntity": ITEM_SIDE, "enrollment": ITEM_SIDE, "event": ITEM_SIDE},
    "description": "2.36–2.37 shape {\"trackedEntity\": \"UID\"} or 2.38+ shape "
                   "{\"trackedEntity\": {\"trackedEntity\": \"UID\"}}; sent in the destination's shape",
}
RELATIONSHIP = {
    "type": "object",
    "properties": {"relationship": UID, "relationshipType": META, "from": RELATIONSHIP_ITEM,
                   "to": RELATIONSHIP_ITEM, "bidirectional": {"type": "boolean"}, "reference": REFERENCE},
}
RELATIONSHIPS = {"type": "array", "items": RELATIONSHIP}
EVENT = {
    "type": "object",
    "properties": {
        "event": UID, "reference": REFERENCE, "programStage": META, "program": META, "enrollment": REF,
        "trackedEntity": REF, "orgUnit": META,
        "status": {"enum": ["ACTIVE", "COMPLETED", "VISITED", "SCHEDULE", "OVERDUE", "SKIPPED"]},
        "occurredAt": DATE, "scheduledAt": DATE, "completedAt": DATE, "attributeOptionCombo": META,
        "attributeCategoryOptions": {"type": "string"}, "geometry": GEOMETRY,
        "dataValues": {"type": "array", "items": DATA_VALUE}, "notes": {"type": "array", "items": NOTE},
        "relationships": RELATIONSHIPS,
    },
}
ENROLLMENT = {
    "type": "object",
    "properties": {
        "enrollment": UID, "reference": REFERENCE, "program": META, "trackedEntity": REF, "orgUnit": META,
        "status": {"enum": ["ACTIVE", "COMPLETED", "CANCELLED"]}, "enrolledAt": DATE, "occurredAt": DATE,
        "completedAt": DATE, "followUp": {"type": "boolean"}, "geometry": GEOMETRY,
        "attributes": {"type": "array", "items": ATTRIBUTE}, "events": {"type": "array", "items": EVENT},
        "notes": {"type": "array", "items": NOTE}, "relationships": RELATIONSHIPS,
    },
}
TRACKED_ENTITY = {
    "type": "object",
    "properties": {
        "trackedEntity": UID, "reference": REFERENCE, "trackedEntityType": META, "orgUnit": META,
        "inactive": {"type": "boolean"}, "geometry": GEOMETRY, "createdAtClient": DATE, "updatedAtClient": DATE,
        "attributes": {"type": "array", "items": ATTRIBUTE},
        "enrollments": {"type": "array", "items": ENROLLMENT}, "relationships": RELATIONSHIPS,
    },
}

REQUEST_SCHEMA: dict[str, Any] = {
    "title": "Tracker submission",
    "description": "A DHIS2 tracker payload, flat or nested. Objects without a UID get one at acceptance; "
                   "the answer maps each object's reference (or its position) to its UID.",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "trackedEntities": {"type": "array", "items": TRACKED_ENTITY},
        "enrollments": {"type": "array", "items": ENROLLMENT},
        "events": {"type": "array", "items": EVENT},
        "relationships": RELATIONSHIPS,
        "destination": {"type": "string", "pattern": "^[a-z0-9_-]+$"},
    },
}

ACCEPTED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "submission_id": {"type": "integer"}, "uid": {"type": "string"}, "status": {"type": "string"},
        "status_url": {"type": "string"}, "value_count": {"type": "integer"}, "payload": {"type": "object"},
        "uids": {"type": "object", "description": "per collection: reference (or JSON path) → UID",
                 "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}}},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
}

# Import options forwarded to DHIS2: name → allowed values (None: a boolean; "scheme": an id scheme).
ENUM_OPTIONS: dict[str, tuple[str, ...]] = {
    "importStrategy": ("CREATE_AND_UPDATE", "CREATE", "UPDATE", "DELETE"),
    "atomicMode": ("ALL", "OBJECT"),
    "validationMode": ("FULL", "FAIL_FAST", "SKIP"),
    "importMode": ("COMMIT", "VALIDATE"),
    "flushMode": ("AUTO", "OBJECT"),
    "reportMode": ("ERRORS", "WARNINGS", "FULL"),
}
SCHEME_OPTIONS = ("idScheme", "orgUnitIdScheme", "programIdScheme", "programStageIdScheme", "dataElementIdScheme",
                  "categoryOptionComboIdScheme", "categoryOptionIdScheme")
BOOLEAN_OPTIONS = ("skipPatternValidation", "skipSideEffects", "skipRuleEngine")
# Gateway-side options (not forwarded).
DRY_RUN = "dryRun"
SOURCE_ID_ATTRIBUTE = "sourceIdAttribute"

QUERY_PARAMETERS: tuple[dict[str, Any], ...] = (
    *({"name": k, "in": "query", "schema": {"enum": list(v)}} for k, v in ENUM_OPTIONS.items()),
    *({"name": k, "in": "query", "schema": {"type": "string"},
       "description": "UID, CODE, NAME or ATTRIBUTE:<uid>"} for k in SCHEME_OPTIONS),
    *({"name": k, "in": "query", "schema": {"type": "boolean"}} for k in BOOLEAN_OPTIONS),
    {"name": DRY_RUN, "in": "query", "schema": {"type": "boolean"}, "description": "true = importMode VALIDATE"},
    {"name": SOURCE_ID_ATTRIBUTE, "in": "query", "schema": {"type": "string", "pattern": UID_PATTERN},
     "description": "tracked entity attribute whose value is the submitter's id of the person "
                    "(used like a reference: same value, same UID)"},
    {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}},
)


def import_options(query: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(options forwarded to DHIS2, gateway options) from the query; KindError 400 lists every bad one."""
    params: dict[str, str] = {}
    gateway: dict[str, str] = {}
    errors: list[dict[str, str]] = []
    for key, allowed in ENUM_OPTIONS.items():
        if key in query:
            value = query[key].strip().upper()
            if value in allowed:
                params[key] = value
            else:
                errors.append({"field": key, "message": f"must be one of {', '.join(allowed)}"})
    for key in SCHEME_OPTIONS:
        if key in query:
            value = query[key].strip()
            upper = value.upper()
            if upper in ("UID", "CODE", "NAME"):
                params[key] = upper
            elif upper.startswith("ATTRIBUTE:") and is_valid_uid(value.split(":", 1)[1]):
                params[key] = "ATTRIBUTE:" + value.split(":", 1)[1]
            else:
                errors.append({"field": key, "message": "must be UID, CODE, NAME or ATTRIBUTE:<uid>"})
    for key in BOOLEAN_OPTIONS + (DRY_RUN,):
        if key in query:
            value = query[key].strip().lower()
            if value not in ("true", "false"):
                errors.append({"field": key, "message": "must be true or false"})
            elif key != DRY_RUN:
                params[key] = value
            elif value == "true":
                if params.get("importMode", "VALIDATE") != "VALIDATE":
                    errors.append({"field": key, "message": "dryRun=true contradicts importMode=COMMIT"})
                params["importMode"] = "VALIDATE"
    if SOURCE_ID_ATTRIBUTE in query:
        value = query[SOURCE_ID_ATTRIBUTE].strip()
        if is_valid_uid(value):
            gateway[SOURCE_ID_ATTRIBUTE] = value
        else:
            errors.append({"field": SOURCE_ID_ATTRIBUTE, "message": "must be a tracked entity attribute UID"})
    if errors:
        raise KindError(400, "invalid_import_options", "some import options are invalid", {"errors": errors})
    return params, gateway
