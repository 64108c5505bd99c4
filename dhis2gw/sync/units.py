"""One org unit in its three shapes: as DHIS2 lists it, as stored locally, as sent to a CC server.

The body sent to CC servers carries only what a copy of the hierarchy needs: id (the same UID),
name, short name, code, opening/closed dates and the parent. Its SHA-256 (``payload_hash``) is the
unit's ``content_hash``: a change of it is what "changed" means for update servers, and the
propagation state compares it to know whether a server is in step.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

#: Fields read from DHIS2 for each unit (reference §4.1; attributes kept locally, not propagated).
UNIT_FIELDS = ("id,code,name,shortName,level,path,parent[id],openingDate,closedDate,lastUpdated,"
               "attributeValues[value,attribute[id]]")


def dhis2_date(value: Any) -> str | None:
    """``'1995-01-01T00:00:00.000'`` / a date → ``'1995-01-01'``; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, (date, datetime)):
        return value.strftime("%Y-%m-%d")
    return str(value)[:10]


def unit_payload(uid: str, name: str, short_name: str | None, code: str | None,
                 opening_date: Any, closed_date: Any, parent_uid: str | None) -> dict[str, Any]:
    """The ``POST/PUT /api/organisationUnits`` body for a CC server (fields left out when empty)."""
    body: dict[str, Any] = {"id": uid, "name": name, "shortName": short_name or name[:50],
                            "openingDate": dhis2_date(opening_date) or "1970-01-01"}
    if code:
        body["code"] = code
    if closed_date:
        body["closedDate"] = dhis2_date(closed_date)
    if parent_uid:
        body["parent"] = {"id": parent_uid}
    return body


def payload_of_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The CC body of a local ``organisation_units`` row."""
    return unit_payload(row["uid"], row["name"], row.get("short_name"), row.get("code"), row.get("opening_date"),
                        row.get("closed_date"), row.get("parent_uid"))


def payload_hash(body: Any) -> str:
    """Stable SHA-256 of a JSON body (key order does not matter)."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def groups_hash(groups: Sequence[str]) -> str:
    """Hash of a unit's sorted group uids (its ``group`` propagation state)."""
    return payload_hash(sorted(groups))


def local_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A DHIS2 org unit (``UNIT_FIELDS``) as a row for ``OrgUnitStore.upsert_units``."""
    parent = raw.get("parent")
    parent_uid = parent.get("id") if isinstance(parent, dict) else None
    path = raw.get("path") or ""
    level = raw.get("level") or (path.count("/") if path else 1)
    attributes = [{"attribute": (a.get("attribute") or {}).get("id"), "value": a.get("value")}
                  for a in raw.get("attributeValues") or [] if isinstance(a, dict)]
    row = {
        "uid": raw["id"], "code": raw.get("code"), "name": raw.get("name") or raw["id"],
        "short_name": raw.get("shortName"), "level": int(level), "path": path or f"/{raw['id']}",
        "parent_uid": parent_uid, "opening_date": dhis2_date(raw.get("openingDate")),
        "closed_date": dhis2_date(raw.get("closedDate")), "attributes": attributes,
        "dhis2_last_updated": raw.get("lastUpdated"),
    }
    row["content_hash"] = payload_hash(unit_payload(row["uid"], row["name"], row["short_name"], row["code"],
                                                    row["opening_date"], row["closed_date"], parent_uid))
    return row
