"""The facility × period report (``GET /api/v2/reports/arrivals``): did each facility's data for
each period arrive, and how did it end?

For one data set (or tracker program) and up to 24 periods, every facility of the org-unit cache
(the facility level by default, optionally under one ``parent``) gets, per period, the status of
its latest submission — ``delivered``, ``partial``, ``rejected``, ``failed``, a pending state, or
``missing`` when nothing came. ``statuses`` and ``submissions`` follow the order of
``periods``. Org units that submitted but are not in the cache are listed after
the others (``known: false``). ``totals`` counts each status per period.
"""
from __future__ import annotations

import re
from typing import Any

from dhis2gw.api.routing import OPERATOR, Call, route
from dhis2gw.errors import ApiError
from dhis2gw.storage.reports import ReportStore
from dhis2gw.storage.statuses import FINAL_STATES, PENDING_STATES

MAX_PERIODS = 24
_PERIOD = re.compile(r"^\d{4}[A-Za-z0-9]{0,8}$")
_UID = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")
#: Report cells: the final statuses, then the pending ones, then ``missing`` (nothing submitted).
STATUSES = (*FINAL_STATES, *PENDING_STATES, "missing")

REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["data_set", "periods", "facilities", "totals"],
    "properties": {
        "data_set": {"type": "string"}, "periods": {"type": "array", "items": {"type": "string"}},
        "facilities": {"type": "array", "items": {"type": "object", "properties": {
            "org_unit": {"type": "string"}, "code": {"type": ["string", "null"]}, "name": {"type": ["string", "null"]},
            "known": {"type": "boolean"},
            "statuses": {"type": "array", "items": {"type": "string"},
                         "description": "per period (in the order of periods): the latest submission's status,"
                                        " or missing"},
            "submissions": {"type": "array", "items": {"type": ["integer", "null"]},
                            "description": "per period: the id of that submission"}}}},
        "totals": {"type": "object", "description": "period → status → number of facilities"},
    },
}


def _bad(name: str, message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message, {"parameter": name})


class ReportsApi:
    """``/reports/arrivals`` (mount under ``/api/v2``)."""

    def __init__(self, store: ReportStore) -> None:
        self.store = store

    @route("GET", "/reports/arrivals", roles=OPERATOR, summary="Facility × period report of a data set",
           tags=("reports",), response_schema=REPORT_SCHEMA, responses={400: "a parameter does not parse"},
           query=({"name": "data_set", "in": "query", "required": True, "schema": {"type": "string"},
                   "description": "Data set (or tracker program) UID."},
                  {"name": "period", "in": "query", "required": True, "schema": {"type": "string"},
                   "description": f"1 to {MAX_PERIODS} DHIS2 periods (repeat or comma-separate).",
                   "example": "202401,202402,202403"},
                  {"name": "parent", "in": "query", "schema": {"type": "string"},
                   "description": "Only facilities under this org unit (UID)."},
                  {"name": "level", "in": "query", "schema": {"type": "integer", "minimum": 1},
                   "description": "Org-unit level of the rows (default: the deepest level in the cache)."}))
    async def arrivals(self, call: Call) -> dict[str, Any]:
        data_set = (call.arg("data_set") or "").strip()
        if not _UID.match(data_set):
            raise _bad("data_set", "query parameter 'data_set' must be a DHIS2 UID (11 characters)")
        periods = list(dict.fromkeys(p.strip() for p in call.args("period") if p.strip()))
        if not periods or len(periods) > MAX_PERIODS:
            raise _bad("period", f"query parameter 'period' needs 1 to {MAX_PERIODS} periods")
        bad = [p for p in periods if not _PERIOD.match(p)]
        if bad:
            raise _bad("period", f"{bad[0]!r} is not a DHIS2 period")
        parent = call.arg("parent") or None
        if parent is not None and not _UID.match(parent):
            raise _bad("parent", "query parameter 'parent' must be an org unit UID")
        level = call.int_arg("level", 0, minimum=0, maximum=20) or None
        units, cells = await self.store.report(data_set, periods, level, parent)
        index = {p: i for i, p in enumerate(periods)}
        rows: dict[str, dict[str, Any]] = {}

        def new_row(uid: str, code: Any, name: Any, known: bool) -> dict[str, Any]:
            return {"org_unit": uid, "code": code, "name": name, "known": known,
                    "statuses": ["missing"] * len(periods), "submissions": [None] * len(periods)}

        for unit in units:
            uid = unit["uid"].strip()
            rows[uid] = new_row(uid, unit["code"], unit["name"], True)
        for cell in cells:
            row = rows.get(cell["org_unit"])
            if row is None:
                if parent is not None or level is not None:
                    continue  # outside the part of the tree asked for
                row = rows[cell["org_unit"]] = new_row(cell["org_unit"], None, None, False)
            statuses, ids = row["statuses"], row["submissions"]
            for period, status, sid in zip(cell["periods"], cell["statuses"], cell["ids"]):
                i = index[period]
                statuses[i] = status
                ids[i] = sid
        totals = {p: {s: 0 for s in STATUSES} for p in periods}
        for row in rows.values():
            for p, status in zip(periods, row["statuses"]):
                totals[p][status] = totals[p].get(status, 0) + 1
        return {"data_set": data_set, "periods": periods, "facilities": list(rows.values()), "totals": totals}
