"""The aggregate kind: data values for ``POST /api/dataValueSets``.

Two input forms (DESIGN.md §5):

* the original dhis2gw's **simplified** form ``{orgUnit, orgUnitName?, period, dataSet?,
  dataValues: {code: value}, attributeOptionCombo?, completeDate?, destination?}``, mapped through
  ``dhis2_mappings`` by ``mapping_scheme`` for the submitter's ``source_name`` and the
  destination's ``instance_name``; ``orgUnit`` may be a DHIS2 UID or a source org-unit code with a
  ``what='ou'`` mapping;
* a **native** DHIS2 dataValueSet (``dataValues`` is an array).

Unknown codes are a 422 naming them (the original dropped them silently). Values keep their
exact text: 1000000 stays "1000000", 0.1 stays "0.1", booleans become "true"/"false".
``completeDate`` is sent only when given. When a ``validator`` is set (the composition root
gives API processes ``dhis2gw.mapping.prevalidation.PreValidator``), the prepared payload is checked against
the cached DHIS2 metadata: failures are a 422 with DHIS2 error codes, and the 202 answer carries
``validation: {checked, …}`` (``checked: false`` with a reason when the cache cannot decide).
Delivery uses CREATE_AND_UPDATE, so a retry is an idempotent re-import (natural key: data element,
period, org unit, COC, AOC).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol

from zope.interface import implementer

from dhis2gw.dhis2.periods import is_valid_period
from dhis2gw.dhis2.uids import is_valid_uid
from dhis2gw.interfaces import IngestDoc, IngestRequest, ISubmissionKind, KindError, Prepared
from dhis2gw.kinds.read_back import read_back_data_values

UID_PATTERN = "^[A-Za-z][A-Za-z0-9]{10}$"
SCALAR = {"type": ["string", "number", "boolean"]}

SIMPLIFIED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["orgUnit", "period", "dataValues"],
    "properties": {
        "orgUnit": {"type": "string", "minLength": 1, "maxLength": 255},
        "orgUnitName": {"type": "string"},
        "period": {"type": "string", "minLength": 4, "maxLength": 20},
        "dataSet": {"type": "string", "pattern": UID_PATTERN},
        "attributeOptionCombo": {"type": "string", "pattern": UID_PATTERN},
        "completeDate": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
        "comment": {"type": "string", "maxLength": 50000},
        "destination": {"type": "string", "pattern": "^[a-z0-9_-]+$"},
        "dataValues": {"type": "object", "minProperties": 1, "maxProperties": 10000,
                       "additionalProperties": SCALAR},
    },
}

NATIVE_VALUE: dict[str, Any] = {
    "type": "object",
    "required": ["dataElement"],
    "properties": {
        "dataElement": {"type": "string", "minLength": 1},
        "categoryOptionCombo": {"type": "string", "minLength": 1},
        "attributeOptionCombo": {"type": "string", "minLength": 1},
        "period": {"type": "string"},
        "orgUnit": {"type": "string", "minLength": 1},
        "value": SCALAR,
        "comment": {"type": "string", "maxLength": 50000},
        "followup": {"type": "boolean"},
        "deleted": {"type": "boolean"},
    },
    "additionalProperties": False,
}

NATIVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["dataValues"],
    "properties": {
        "dataSet": {"type": "string", "minLength": 1},
        "completeDate": {"type": "string"},
        "period": {"type": "string"},
        "orgUnit": {"type": "string", "minLength": 1},
        "attributeOptionCombo": {"type": "string", "minLength": 1},
        "destination": {"type": "string", "pattern": "^[a-z0-9_-]+$"},
        "dataValues": {"type": "array", "minItems": 1, "maxItems": 100000, "items": NATIVE_VALUE},
    },
}

REQUEST_SCHEMA: dict[str, Any] = {
    "title": "Aggregate submission",
    "description": "Either the simplified form (dataValues is an object of code → value) or a native "
                   "DHIS2 dataValueSet (dataValues is an array).",
    "oneOf": [SIMPLIFIED_SCHEMA, NATIVE_SCHEMA],
}

# Import options a submitter may pass as query parameters; forwarded to DHIS2.
IMPORT_OPTIONS = ("idScheme", "dataElementIdScheme", "orgUnitIdScheme", "categoryOptionComboIdScheme",
                  "dataSetIdScheme", "importStrategy", "dryRun", "skipAudit")
_ID_SCHEMES = {"UID", "CODE", "NAME"}


def value_text(value: Any) -> str:
    """A data value as DHIS2 text, exactly: no exponent notation, no float noise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        if value.is_integer():
            return str(int(value))
        return format(Decimal(repr(value)), "f")
    return str(value)


class MappingLookups(Protocol):
    """What the kind asks of the mapping sheet: `dhis2gw.storage.mappings.MappingStore` (SQL) or
    `dhis2gw.mapping.lookup.CachedMappings` (the same lookups from memory)."""

    async def data_value_mappings(self, keys: Iterable[str], scheme: str, source_name: str,
                                  instance_name: str) -> dict[str, dict[str, Any]]: ...

    async def org_unit_mapping(self, source_orgunit: str, source_name: str, instance_name: str) -> str | None: ...


@implementer(ISubmissionKind)
class AggregateKind:
    """Aggregate data values (see module docstring)."""

    name = "aggregate"
    endpoint = "/aggregate"
    request_schema = REQUEST_SCHEMA
    ingest_doc = IngestDoc(
        summary="Submit aggregate data values",
        description="A DHIS2 data value set, or the simplified form (codes → values, mapped with the mapping sheet).",
        responses={403: "outside the submitter's org units or data sets, a destructive option without may_delete,"
                        " or a callback_url without callback_allowed",
                   422: "codes without a mapping, or values DHIS2 would refuse"})

    def __init__(self, mappings: MappingLookups, mapping_scheme: str = "CODE", default_data_set: str = "",
                 default_attribute_option_combo: str = "", validator: Any | None = None) -> None:
        self.mappings = mappings
        self.mapping_scheme = mapping_scheme.upper()
        self.default_data_set = default_data_set
        self.default_aoc = default_attribute_option_combo
        # Pre-validation against the DHIS2 metadata cache (dhis2gw.mapping.prevalidation.PreValidator),
        # on processes that serve the API; None = no checks beyond the schema and the mappings.
        self.validator = validator

    @classmethod
    def from_config(cls, config: Any, mappings: MappingLookups, validator: Any | None = None) -> AggregateKind:
        """The kind with the mapping scheme and defaults of ``config.api``."""
        api = config.api
        return cls(mappings, mapping_scheme=api.mapping_scheme, default_data_set=api.dhis2_data_set,
                   default_attribute_option_combo=api.dhis2_attribute_option_combo, validator=validator)

    # --- ingest ------------------------------------------------------------------------
    async def prepare(self, request: IngestRequest) -> Prepared:
        """Validate and map; raise KindError (400/422) with every problem listed."""
        body = request.body
        params = self._import_params(request.query)
        keys: list[str] | None = None
        if isinstance(body.get("dataValues"), dict):
            payload, count = await self._prepare_simplified(body, request)
            keys = list(body["dataValues"])
        else:
            payload, count = self._prepare_native(body)
        extra: dict[str, Any] = {}
        if self.validator is not None:
            # Raises KindError(422) listing what DHIS2 would refuse; otherwise says what was checked.
            extra["validation"] = await self.validator.check(
                payload, params, body.get("destination") or request.destination, keys)
        return Prepared(dhis2_payload=payload, import_params=params, value_count=count,
                        destination=body.get("destination"), response_extra=extra)

    @staticmethod
    def _import_params(query: dict[str, str]) -> dict[str, str]:
        params: dict[str, str] = {}
        errors = []
        for key in IMPORT_OPTIONS:
            if key not in query:
                continue
            value = query[key]
            if key.endswith("IdScheme") or key == "idScheme":
                if value.upper() not in _ID_SCHEMES and not value.upper().startswith("ATTRIBUTE:"):
                    errors.append({"field": key, "message": "must be UID, CODE, NAME or ATTRIBUTE:<uid>"})
                    continue
                value = value.upper() if ":" not in value else "ATTRIBUTE:" + value.split(":", 1)[1]
            elif key == "importStrategy":
                if value.upper() not in ("CREATE_AND_UPDATE", "CREATE", "UPDATE", "DELETE"):
                    errors.append({"field": key, "message": "must be CREATE_AND_UPDATE, CREATE, UPDATE or DELETE"})
                    continue
                value = value.upper()
            elif value.lower() not in ("true", "false"):
                errors.append({"field": key, "message": "must be true or false"})
                continue
            params[key] = value
        if errors:
            raise KindError(400, "invalid_import_options", "some import options are invalid", {"errors": errors})
        params.setdefault("importStrategy", "CREATE_AND_UPDATE")
        return params

    async def _prepare_simplified(self, body: dict[str, Any], request: IngestRequest) -> tuple[dict[str, Any], int]:
        errors: list[dict[str, Any]] = []
        period = body["period"]
        if not is_valid_period(period):
            errors.append({"field": "period", "message": f"{period!r} is not a valid DHIS2 period"})
        org_unit = body["orgUnit"]
        source = request.source_name or ""
        mapped_ou = await self.mappings.org_unit_mapping(org_unit, source, request.instance_name)
        if mapped_ou:
            org_unit = mapped_ou
        elif not is_valid_uid(org_unit):
            errors.append({"field": "orgUnit", "message": f"{org_unit!r} is neither a DHIS2 UID nor a mapped org unit"})
        data_set = body.get("dataSet") or self.default_data_set
        codes = list(body["dataValues"])
        found = await self.mappings.data_value_mappings(codes, self.mapping_scheme, source, request.instance_name)
        unknown = [c for c in codes if c not in found]
        if unknown:
            raise KindError(422, "unmapped_codes",
                            f"{len(unknown)} data value code(s) have no mapping for "
                            f"source {source or '(any)'!r} and destination {request.instance_name!r}",
                            {"unmapped": unknown, "mapping_scheme": self.mapping_scheme, "errors": errors})
        values = []
        for code in codes:
            raw = body["dataValues"][code]
            try:
                text = value_text(raw)
            except ValueError as e:
                errors.append({"field": f"dataValues/{code}", "message": str(e)})
                continue
            mapping = found[code]
            entry: dict[str, Any] = {"dataElement": mapping["dataelement"], "value": text}
            coc = mapping["category_option_combo"] or (code.split(".", 1)[1] if self.mapping_scheme == "UID"
                                                       and "." in code else "")
            if coc:
                entry["categoryOptionCombo"] = coc
            if body.get("comment"):
                entry["comment"] = body["comment"]
            values.append(entry)
        if errors:
            raise KindError(400, "validation_failed", "the submission has invalid values", {"errors": errors})
        payload: dict[str, Any] = {"period": period, "orgUnit": org_unit, "dataValues": values}
        if data_set:
            payload["dataSet"] = data_set
        aoc = body.get("attributeOptionCombo") or self.default_aoc
        if aoc:
            payload["attributeOptionCombo"] = aoc
        if body.get("completeDate"):
            payload["completeDate"] = body["completeDate"]
        return payload, len(values)

    def _prepare_native(self, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        errors: list[dict[str, Any]] = []
        header_period = body.get("period")
        header_ou = body.get("orgUnit")
        if header_period is not None and not is_valid_period(header_period):
            errors.append({"field": "period", "message": f"{header_period!r} is not a valid DHIS2 period"})
        values = []
        for i, dv in enumerate(body["dataValues"]):
            period = dv.get("period", header_period)
            if period is None:
                errors.append({"field": f"dataValues/{i}/period", "message": "no period on the value or the header"})
            elif dv.get("period") is not None and not is_valid_period(period):
                errors.append({"field": f"dataValues/{i}/period", "message": f"{period!r} is not a valid DHIS2 period"})
            if dv.get("orgUnit", header_ou) is None:
                errors.append({"field": f"dataValues/{i}/orgUnit", "message": "no orgUnit on the value or the header"})
            if "value" not in dv and not dv.get("deleted") and "comment" not in dv:
                errors.append({"field": f"dataValues/{i}/value", "message": "a value (or comment) is required"})
            entry = dict(dv)
            if "value" in entry:
                try:
                    entry["value"] = value_text(entry["value"])
                except ValueError as e:
                    errors.append({"field": f"dataValues/{i}/value", "message": str(e)})
            values.append(entry)
        if errors:
            raise KindError(400, "validation_failed", "the dataValueSet has invalid values", {"errors": errors})
        payload = {k: v for k, v in body.items() if k not in ("dataValues", "destination")}
        if "dataSet" not in payload and self.default_data_set:
            payload["dataSet"] = self.default_data_set
        if "attributeOptionCombo" not in payload and self.default_aoc:
            payload["attributeOptionCombo"] = self.default_aoc
        payload["dataValues"] = values
        return payload, len(values)

    # --- delivery ------------------------------------------------------------------------
    async def deliver(self, client: Any, submission: dict[str, Any], context: Any) -> Any:
        """``POST /api/dataValueSets`` with the stored payload and import options."""
        params = dict(submission.get("import_params") or {})
        params.setdefault("importStrategy", "CREATE_AND_UPDATE")
        return await client.post_data_value_set(submission["dhis2_payload"], params)

    async def read_back(self, client: Any, submission: dict[str, Any]) -> Any:
        """After a lost answer: are the values in DHIS2 as sent? (dhis2gw.kinds.read_back)"""
        return await read_back_data_values(client, submission)
