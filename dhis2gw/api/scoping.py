"""Submitter scoping (issue 16, F9): which org units and data sets a caller may write, and who may delete.

Like a DHIS2 user's data-capture org units, a user may be limited (``users.orgunit_scope``,
``users.dataset_scope``; set by admins through ``/users``):

* every org unit a submission writes — the data value set's ``orgUnit`` and each value's, every
  ``orgUnit`` of a tracker payload — must be one of the scope's units or below one of them in the
  synced hierarchy (``organisation_units.path``); an org unit the gateway does not know cannot be
  checked and is refused too;
* the data value set's ``dataSet`` must be in the data-set scope (a payload without one is
  refused when the scope is set);
* destructive options — ``importStrategy=DELETE``, ``skipAudit=true``, values marked
  ``deleted`` — need the ``may_delete`` permission (admins have it by role).

Empty scopes mean no limit (the behaviour before scoping existed). Refusals are 403 naming the
org unit or data set.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dhis2gw.auth.principal import Principal
from dhis2gw.errors import ApiError
from dhis2gw.storage.scope import ScopeStore

_TRACKER_KEYS = ("trackedEntities", "enrollments", "events", "relationships")


def destructive_options(params: dict[str, Any], payload: Any) -> list[str]:
    """The destructive import options of a prepared submission (empty: none)."""
    found = []
    if str(params.get("importStrategy", "")).upper() == "DELETE":
        found.append("importStrategy=DELETE")
    if str(params.get("skipAudit", "")).lower() == "true":
        found.append("skipAudit=true")
    values = payload.get("dataValues") if isinstance(payload, dict) else None
    if isinstance(values, list) and any(isinstance(v, dict) and v.get("deleted") in (True, "true") for v in values):
        found.append("dataValues[].deleted")
    return found


def org_units(payload: Any) -> list[str]:
    """Every org unit a prepared payload writes (aggregate or tracker), in order, without repeats."""
    seen: dict[str, None] = {}

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "orgUnit" and isinstance(value, str) and value:
                    yield value
                elif isinstance(value, (dict, list)):
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    for unit in walk(payload):
        seen.setdefault(unit, None)
    return list(seen)


class SubmitterScope:
    """Checks a prepared submission against its submitter's scope and permissions."""

    def __init__(self, store: ScopeStore) -> None:
        self.store = store

    async def check(self, principal: Principal, payload: Any, params: dict[str, Any]) -> None:
        """Raise 403 when the submission writes outside the caller's scope or deletes without permission."""
        destructive = destructive_options(params, payload)
        if destructive and principal.role != "admin" and not principal.may_delete:
            raise ApiError(403, "delete_not_allowed",
                           f"{destructive[0]} needs the may_delete permission, which this user does not have",
                           {"options": destructive})
        if principal.dataset_scope and isinstance(payload, dict) and "dataValues" in payload:
            data_set = payload.get("dataSet")
            if not data_set or data_set not in principal.dataset_scope:
                raise ApiError(403, "outside_scope",
                               f"data set {data_set or '(none)'} is outside this user's data sets",
                               {"dataSet": data_set, "allowed": list(principal.dataset_scope)})
        if not principal.orgunit_scope:
            return
        units = org_units(payload)
        paths = await self.store.paths(units)
        roots = set(principal.orgunit_scope)
        for unit in units:
            inside = any(set(path.strip("/").split("/")) & roots for path in paths.get(unit, []))
            if not inside:
                raise ApiError(403, "outside_scope", f"org unit {unit} is outside this user's org units",
                               {"orgUnit": unit, "allowed": sorted(roots),
                                "known": unit in paths})
