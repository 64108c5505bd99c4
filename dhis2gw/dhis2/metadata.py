"""Metadata reads: paged org units, a data set's structure, category option combos.

These work over anything with an async ``get_json(path, params)`` (the
`DHIS2Client`), which raises `DHIS2ReadError` carrying the `Outcome` when DHIS2
does not answer with JSON: a read that fails has nothing useful to return.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dhis2gw.dhis2.outcome import Outcome

#: Org-unit fields the hierarchy sync needs (DHIS2 reference section 4.1).
ORG_UNIT_FIELDS = (
    "id,code,name,shortName,level,path,parent[id],openingDate,closedDate,lastUpdated"
)

#: Fields for one data set's validation structure (reference section 4.2).
DATA_SET_FIELDS = (
    "id,code,name,periodType,openFuturePeriods,expiryDays,dataInputPeriods[period[id],openingDate,closingDate],"
    "categoryCombo[id,categoryOptionCombos[id,code,name]],organisationUnits[id],"
    "dataSetElements[dataElement[id,code,name,valueType,zeroIsSignificant,"
    "categoryCombo[id,categoryOptionCombos[id,code,name]]],"
    "categoryCombo[id,categoryOptionCombos[id,code,name]]]"
)

COC_FIELDS = "id,code,name,categoryCombo[id],categoryOptions[id,code]"


class DHIS2ReadError(Exception):
    """A metadata read got no usable JSON; ``outcome`` says why (kind, reason, status)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"DHIS2 read failed: {outcome.kind.value} {outcome.reason}: {outcome.message}")
        self.outcome = outcome


class JSONReader(Protocol):
    """What the readers need from a client."""

    async def get_json(self, path: str, params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None) -> Any:
        """GET ``path`` under ``/api`` and return the parsed JSON (raises DHIS2ReadError)."""


@dataclass(frozen=True)
class DataElementInSet:
    """A data element as a data set sees it: the COCs valid for it in this data set."""

    id: str
    code: str | None
    name: str | None
    value_type: str | None
    zero_is_significant: bool
    category_combo: str | None
    category_option_combos: frozenset[str]


@dataclass(frozen=True)
class DataSetStructure:
    """What the aggregate kind validates values against before queueing."""

    id: str
    code: str | None
    name: str | None
    period_type: str | None
    open_future_periods: int
    expiry_days: int
    attribute_option_combos: frozenset[str]
    organisation_units: frozenset[str]
    elements: Mapping[str, DataElementInSet] = field(default_factory=dict)
    #: ``dataInputPeriods``: (period, openingDate or None, closingDate or None); empty = no restriction.
    input_periods: tuple[tuple[str, str | None, str | None], ...] = ()

    def element_by_code(self, code: str) -> DataElementInSet | None:
        """The data element with this code, if it is in the data set."""
        return next((e for e in self.elements.values() if e.code == code), None)


def _coc_ids(combo: Any) -> frozenset[str]:
    cocs = combo.get("categoryOptionCombos") if isinstance(combo, dict) else None
    return frozenset(c["id"] for c in cocs or [] if isinstance(c, dict) and c.get("id"))


def parse_data_set(raw: Mapping[str, Any], extra_combos: Mapping[str, Iterable[str]] | None = None) -> DataSetStructure:
    """Build a `DataSetStructure` from ``GET /api/dataSets/{id}?fields=DATA_SET_FIELDS``.

    A ``dataSetElements[].categoryCombo`` overrides the data element's combo for
    this data set.  When the override lists no COCs (only its id), they come from
    the element's own combo if it is the same, else from ``extra_combos``.
    """
    extra = {k: frozenset(v) for k, v in (extra_combos or {}).items()}
    elements: dict[str, DataElementInSet] = {}
    for item in raw.get("dataSetElements") or []:
        element = item.get("dataElement") if isinstance(item, dict) else None
        if not isinstance(element, dict) or not element.get("id"):
            continue
        own: dict[str, Any] = element["categoryCombo"] if isinstance(element.get("categoryCombo"), dict) else {}
        override = item.get("categoryCombo") if isinstance(item.get("categoryCombo"), dict) else None
        combo = override or own
        cocs = _coc_ids(combo)
        if not cocs and override is not None:
            cocs = _coc_ids(own) if override.get("id") == own.get("id") else extra.get(override.get("id"), frozenset())
        elements[element["id"]] = DataElementInSet(
            id=element["id"],
            code=element.get("code"),
            name=element.get("name"),
            value_type=element.get("valueType"),
            zero_is_significant=bool(element.get("zeroIsSignificant", False)),
            category_combo=combo.get("id"),
            category_option_combos=cocs,
        )
    org_units = raw.get("organisationUnits") or []
    return DataSetStructure(
        id=raw["id"],
        code=raw.get("code"),
        name=raw.get("name"),
        period_type=raw.get("periodType"),
        open_future_periods=int(raw.get("openFuturePeriods") or 0),
        expiry_days=int(raw.get("expiryDays") or 0),
        attribute_option_combos=_coc_ids(raw.get("categoryCombo")),
        organisation_units=frozenset(o["id"] for o in org_units if isinstance(o, dict) and o.get("id")),
        elements=elements,
        input_periods=_input_periods(raw.get("dataInputPeriods")),
    )


def _input_periods(raw: Any) -> tuple[tuple[str, str | None, str | None], ...]:
    out = []
    for item in raw or []:
        period = item.get("period") if isinstance(item, dict) else None
        iso = period.get("id") if isinstance(period, dict) else period
        if isinstance(iso, str) and iso:
            out.append((iso, (item.get("openingDate") or None) and str(item["openingDate"])[:10],
                        (item.get("closingDate") or None) and str(item["closingDate"])[:10]))
    return tuple(out)


def unresolved_combos(raw: Mapping[str, Any]) -> set[str]:
    """Category combo ids overridden in ``dataSetElements`` whose COCs the answer does not list."""
    missing: set[str] = set()
    for item in raw.get("dataSetElements") or []:
        if not isinstance(item, dict):
            continue
        override = item.get("categoryCombo")
        own = (item.get("dataElement") or {}).get("categoryCombo") or {}
        if isinstance(override, dict) and not _coc_ids(override) and override.get("id") != own.get("id"):
            missing.add(override["id"])
    return missing


async def fetch_data_set(reader: JSONReader, uid: str) -> DataSetStructure:
    """Read one data set's structure, resolving overridden category combos."""
    raw = await reader.get_json(f"dataSets/{uid}", {"fields": DATA_SET_FIELDS})
    extra = {}
    for combo in sorted(unresolved_combos(raw)):
        extra[combo] = [c["id"] for c in await fetch_category_option_combos(reader, combo)]
    return parse_data_set(raw, extra)


async def fetch_category_option_combos(reader: JSONReader, category_combo: str | None = None) -> list[dict[str, Any]]:
    """All category option combos, or those of one category combo."""
    params: list[tuple[str, Any]] = [("fields", COC_FIELDS), ("paging", "false")]
    if category_combo:
        params.append(("filter", f"categoryCombo.id:eq:{category_combo}"))
    data = await reader.get_json("categoryOptionCombos", params)
    return list(data.get("categoryOptionCombos") or []) if isinstance(data, dict) else []


async def fetch_default_category_option_combo(reader: JSONReader) -> str | None:
    """The UID of the ``default`` COC (``HllvX50cXC0`` on fresh databases, not always)."""
    data = await reader.get_json(
        "categoryOptionCombos", [("fields", "id,name"), ("filter", "name:eq:default"), ("paging", "false")]
    )
    combos = data.get("categoryOptionCombos") if isinstance(data, dict) else None
    return combos[0]["id"] if combos else None


async def fetch_organisation_unit_levels(reader: JSONReader) -> list[dict[str, Any]]:
    """``organisationUnitLevels`` sorted by level."""
    data = await reader.get_json("organisationUnitLevels", {"fields": "id,name,level", "paging": "false"})
    levels = data.get("organisationUnitLevels") if isinstance(data, dict) else None
    return sorted(levels or [], key=lambda lvl: lvl.get("level") or 0)


async def iterate_organisation_units(
    reader: JSONReader,
    *,
    fields: str = ORG_UNIT_FIELDS,
    filters: Sequence[str] = (),
    last_updated: str | None = None,
    page_size: int = 500,
    order: str | None = "level:asc,id:asc",
    max_pages: int | None = None,
) -> AsyncIterator[list[dict[str, Any]]]:
    """Yield org units page by page (``filter=`` are AND-ed; ``last_updated`` adds ``lastUpdated:ge:``).

    Ordering by level then id keeps pages stable while paging and brings
    parents before children.  Stops on the last page (``pager.page >= pageCount``
    or no ``nextPage``) or on an empty page.
    """
    all_filters = list(filters)
    if last_updated:
        all_filters.append(f"lastUpdated:ge:{last_updated}")
    page = 1
    while True:
        params: list[tuple[str, Any]] = [("fields", fields), ("page", page), ("pageSize", page_size)]
        params += [("filter", f) for f in all_filters]
        if order:
            params.append(("order", order))
        data = await reader.get_json("organisationUnits", params)
        units = data.get("organisationUnits") if isinstance(data, dict) else None
        if not units:
            return
        yield list(units)
        pager = data.get("pager") if isinstance(data.get("pager"), dict) else {}
        page_count = pager.get("pageCount")
        if not pager or (page_count is not None and page >= int(page_count)) or (
            page_count is None and not pager.get("nextPage")
        ):
            return
        if max_pages is not None and page >= max_pages:
            return
        page += 1
