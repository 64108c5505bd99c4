"""Reading a submission back from DHIS2 after its answer was lost or timed out.

DHIS2 may have committed an import whose answer never arrived (a proxy or Tomcat dropping the
connection after the commit, a read timeout on a slow import). Posting again is idempotent for
aggregate data, but for tracker it can re-trigger program notifications (SMS to patients), and
for both it costs an import. So the delivery engine asks first (``dhis2gw.delivery.outcome_rules``):

* aggregate: ``GET /api/dataValueSets?dataSet=&period=&orgUnit=[&attributeOptionCombo=]`` for
  every (period, org unit, attribute option combo) of the payload, with the import's id schemes;
  ``confirmed`` when every value sent is there with the value sent;
* tracker: ``GET /api/tracker/{trackedEntities|enrollments|events}/{uid}`` for every object by
  the UID the gateway assigned; ``confirmed`` when each exists (the import is atomic by default,
  so one object there means the import committed; each is checked all the same).

The answer is a `ReadBack`: ``confirmed``, ``missing`` (DHIS2 answered, something is not there) or
``failed`` (the read itself got no application-level answer). None means "cannot be read back"
(no data set named, a DELETE or dry run, relationships, too many objects): the engine goes on as
if the read-back had not been tried.
"""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from dhis2gw.dhis2.outcome import Outcome, OutcomeKind, ReadBack

#: Import parameters that name identifier schemes; the read-back asks in the same schemes.
ID_SCHEME_PARAMS = ("idScheme", "dataElementIdScheme", "orgUnitIdScheme", "categoryOptionComboIdScheme",
                    "dataSetIdScheme", "attributeOptionComboIdScheme")

#: More objects than this in one tracker payload: posting again is cheaper than reading back.
MAX_TRACKER_READS = 50

_TRACKER_PATHS = (("trackedEntities", "trackedEntity"), ("enrollments", "enrollment"), ("events", "event"))


def same_value(sent: Any, stored: Any) -> bool:
    """Is the stored text the value sent? Numbers compare as numbers, booleans case-insensitively."""
    a, b = str(sent).strip(), str(stored).strip()
    if a == b:
        return True
    if a.lower() in ("true", "false") or b.lower() in ("true", "false"):
        return a.lower() == b.lower()
    try:
        return Decimal(a) == Decimal(b)
    except InvalidOperation:
        return False


def _not_a_write(params: Mapping[str, Any]) -> bool:
    strategy = str(params.get("importStrategy") or "CREATE_AND_UPDATE").upper()
    return strategy == "DELETE" or str(params.get("dryRun") or "").lower() == "true"


async def read_back_data_values(client: Any, row: Mapping[str, Any]) -> ReadBack | None:
    """Aggregate read-back (module docstring)."""
    payload = row.get("dhis2_payload") or {}
    params = dict(row.get("import_params") or {})
    data_set = payload.get("dataSet")
    values = payload.get("dataValues") or []
    if not data_set or not values or _not_a_write(params):
        return None
    groups: dict[tuple[str, str, str | None], list[Mapping[str, Any]]] = {}
    for value in values:
        period = value.get("period") or payload.get("period")
        org_unit = value.get("orgUnit") or payload.get("orgUnit")
        aoc = value.get("attributeOptionCombo") or payload.get("attributeOptionCombo")
        if not (period and org_unit and value.get("dataElement")):
            return None
        groups.setdefault((str(period), str(org_unit), aoc), []).append(value)
    schemes = {k: params[k] for k in ID_SCHEME_PARAMS if params.get(k)}
    last: Outcome | None = None
    missing = 0
    for (period, org_unit, aoc), sent in groups.items():
        query = {"dataSet": data_set, "period": period, "orgUnit": org_unit, **schemes}
        if aoc:
            query["attributeOptionCombo"] = aoc
        last = await client.fetch_json("dataValueSets", query)
        if last.kind is not OutcomeKind.DELIVERED or not isinstance(last.body, dict):
            return ReadBack("failed", last, f"read-back failed: {last.reason or last.kind.value}")
        stored = [v for v in last.body.get("dataValues") or [] if not v.get("deleted")]
        for value in sent:
            missing += 0 if _found(value, stored, period, org_unit, aoc) else 1
    if missing:
        return ReadBack("missing", last, f"{missing} of {len(values)} values not in DHIS2 as sent (read back)")
    return ReadBack("confirmed", last, f"all {len(values)} values in DHIS2 as sent (read back)")


def _found(value: Mapping[str, Any], stored: list[Mapping[str, Any]], period: str, org_unit: str,
           aoc: str | None) -> bool:
    expected = value.get("value")
    blank = expected is None or str(expected).strip() == ""
    for candidate in stored:
        if (candidate.get("dataElement") != value.get("dataElement") or str(candidate.get("period")) != period
                or candidate.get("orgUnit") != org_unit):
            continue
        coc = value.get("categoryOptionCombo")
        if coc and candidate.get("categoryOptionCombo") != coc:
            continue
        if aoc and candidate.get("attributeOptionCombo") not in (aoc, None):
            continue
        return not blank and same_value(expected, candidate.get("value"))
    return blank  # a blank value deletes: it is "there as sent" when nothing is stored


def tracker_objects(payload: Mapping[str, Any]) -> list[tuple[str, str]] | None:
    """(collection, uid) of every tracked entity, enrollment and event, nested or flat; None with relationships."""
    found: list[tuple[str, str]] = []

    def walk(node: Mapping[str, Any]) -> bool:
        if node.get("relationships"):
            return False
        for collection, key in _TRACKER_PATHS:
            for item in node.get(collection) or []:
                if not isinstance(item, Mapping) or not item.get(key):
                    return False
                found.append((collection, str(item[key])))
                if not walk(item):
                    return False
        return True

    return found if walk(payload) and found else None


async def read_back_tracker(client: Any, row: Mapping[str, Any]) -> ReadBack | None:
    """Tracker read-back by the UIDs the gateway assigned (module docstring)."""
    params = dict(row.get("import_params") or {})
    objects = tracker_objects(row.get("dhis2_payload") or {})
    if objects is None or len(objects) > MAX_TRACKER_READS or _not_a_write(params):
        return None
    last: Outcome | None = None
    absent = 0
    for collection, uid in objects:
        last = await client.fetch_json(f"tracker/{collection}/{uid}", {"fields": "*"})
        if last.kind is OutcomeKind.DELIVERED:
            continue
        if last.kind is OutcomeKind.REJECTED and last.http_status == 404:
            absent += 1
            continue
        return ReadBack("failed", last, f"read-back failed: {last.reason or last.kind.value}")
    if absent:
        return ReadBack("missing", last, f"{absent} of {len(objects)} objects not in DHIS2 (read back)")
    return ReadBack("confirmed", last, f"all {len(objects)} objects in DHIS2 (read back)")
