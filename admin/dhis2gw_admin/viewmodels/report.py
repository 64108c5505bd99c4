"""ReportVM: the facility × period report of a data set ("did facility X report for January?").

Loads ``GET /reports/arrivals`` once per Apply and pages through the facilities locally (a
national list is a few thousand rows; the screen shows one page of them). ``problems_only``
keeps the facilities with a period missing, rejected or failed.
"""
from __future__ import annotations

from typing import Any

from dhis2gw_admin.api import GatewayApi
from dhis2gw_admin.observable import Field
from dhis2gw_admin.viewmodels.base import ViewModel

PROBLEMS = ("missing", "rejected", "failed")


class ReportVM(ViewModel):
    """Data set, periods, the loaded report and the visible page."""

    data_set = Field("uFaVMlw4qxK")
    periods_text = Field("")
    parent = Field("")
    problems_only = Field(False)
    page = Field(1)
    page_size = Field(30)
    periods = Field([])
    facilities = Field([])
    totals = Field({})
    rows = Field([])          # the visible page: {label, statuses}
    page_text = Field("")
    totals_text = Field("")

    def __init__(self, api: GatewayApi) -> None:
        self.api = api

    def _matching(self) -> list[dict[str, Any]]:
        if not self.problems_only:
            return list(self.facilities)
        return [f for f in self.facilities if any(s in PROBLEMS for s in f["statuses"])]

    def _show(self) -> None:
        matching = self._matching()
        pages = max(1, -(-len(matching) // self.page_size))
        self.page = min(max(1, self.page), pages)
        start = (self.page - 1) * self.page_size
        self.rows = [{"label": f"{f.get('name') or f['org_unit']}" + (f" ({f['code']})" if f.get("code") else ""),
                      "org_unit": f["org_unit"], "statuses": list(f["statuses"]), "submissions": list(f["submissions"])}
                     for f in matching[start:start + self.page_size]]
        self.page_text = f"Page {self.page} of {pages} — {len(matching)} of {len(self.facilities)} facilities"
        parts = []
        for p in self.periods:
            t = self.totals.get(p, {})
            parts.append(f"{p}: {t.get('delivered', 0)} delivered, {t.get('partial', 0)} partial,"
                         f" {t.get('rejected', 0) + t.get('failed', 0)} rejected/failed, {t.get('missing', 0)} missing")
        self.totals_text = "\n".join(parts)

    async def _load(self) -> bool:
        params: dict[str, Any] = {"data_set": self.data_set.strip(), "period": self.periods_text.replace(" ", "")}
        if self.parent.strip():
            params["parent"] = self.parent.strip()
        answer = await self.api.arrivals(params)
        self.periods = list(answer.get("periods", []))
        self.totals = dict(answer.get("totals", {}))
        self.facilities = list(answer.get("facilities", []))
        self.page = 1
        self._show()
        return True

    async def load(self, **values: Any) -> bool:
        """Set ``data_set``/``periods_text``/``parent`` (optional) and fetch the report; True on success."""
        for name, value in values.items():
            if name not in ("data_set", "periods_text", "parent"):
                raise AttributeError(name)
            setattr(self, name, value)
        if not self.periods_text.strip():
            self.error = "Enter one or more periods, e.g. 202401,202402,202403"
            return False
        return bool(await self.guard(self._load()))

    def set_problems_only(self, value: bool) -> None:
        """Show only facilities with a missing, rejected or failed period (page 1)."""
        self.problems_only = value
        self.page = 1
        self._show()

    def next_page(self) -> None:
        self.page += 1
        self._show()

    def previous_page(self) -> None:
        self.page -= 1
        self._show()
