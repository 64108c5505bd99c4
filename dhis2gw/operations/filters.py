"""Parse ``/logs`` query parameters into a ``LogFilter`` and a ``Page``.

Dates and datetimes are read in the deployment time zone (``server.timezone``) unless they
carry an offset. A bare date ``to`` covers that whole day (the original excluded it); a
datetime ``to`` is inclusive to the microsecond. Anything that does not parse is a 400 naming
the parameter (the original ignored bad dates silently and listed everything).

The original's names are accepted: ``from_date``/``to_date`` (dates), ``task_id`` and
``job_id`` (both mean the submission id here; a non-numeric ``task_id`` is matched against the
uid), ``submitted_at`` (one whole day).
"""
from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Protocol

from dhis2gw.errors import ApiError
from dhis2gw.storage.logs import SORT_COLUMNS, LogFilter, Page
from dhis2gw.storage.statuses import STATUSES

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 20
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UID = re.compile(r"^[A-Za-z][A-Za-z0-9]{10}$")


class QueryArgs(Protocol):
    """What the filters read of a request: its query parameters (`dhis2gw.api.routes.Call` has them)."""

    def arg(self, name: str, default: str | None = None) -> str | None: ...

    def args(self, name: str) -> list[str]: ...

    def int_arg(self, name: str, default: int, minimum: int = 0, maximum: int = 2**31 - 1) -> int: ...

    def bool_arg(self, name: str, default: bool = False) -> bool: ...


def _query(name: str, description: str, example: Any = None, kind: str = "string") -> dict[str, Any]:
    """An OpenAPI query parameter object."""
    parameter: dict[str, Any] = {"name": name, "in": "query", "description": description, "schema": {"type": kind}}
    if example is not None:
        parameter["example"] = example
    return parameter


# OpenAPI parameter objects of GET /logs (also documented for requeue by filter).
FILTER_PARAMETERS: tuple[dict[str, Any], ...] = (
    _query("status", "One or more statuses (repeat or comma-separate).", "failed,rejected"),
    _query("kind", "Submission kind(s): aggregate, tracker, …"),
    _query("endpoint", "Route the submission came in on, e.g. /api/v2/aggregate."),
    _query("user", "Submitter: user id, uid or username (one or more)."),
    _query("destination", "DHIS2 destination name(s)."),
    _query("org_unit", "Org unit(s): UID or code.", "ty5AJ6ZU5f7"),
    _query("period", "DHIS2 period(s), e.g. 202401."),
    _query("data_set", "Data set (or tracker program) UID(s)."),
    _query("id", "Submission id(s) or uid(s)."),
    _query("from", "Created at or after: YYYY-MM-DD or an ISO datetime (server time zone unless it has an offset).",
           "2024-03-01"),
    _query("to", "Created up to: a date includes that whole day; a datetime is inclusive.", "2024-03-31"),
    _query("q", "Free text: id, uid, idempotency key, period, org unit UID, code or words of its name, or words of"
           " the error."),
    _query("task_id", "Original's name for the submission id."),
    _query("job_id", "Original's name for the submission id.", kind="integer"),
    _query("from_date", "Original's name for `from`."),
    _query("to_date", "Original's name for `to` (inclusive here)."),
    _query("submitted_at", "One whole day (YYYY-MM-DD)."),
)

PAGE_PARAMETERS: tuple[dict[str, Any], ...] = (
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
    {"name": "page_size", "in": "query",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE}},
    {"name": "sort", "in": "query",
     "schema": {"type": "string", "enum": sorted(SORT_COLUMNS), "default": "created_at"}},
    {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"], "default": "desc"}},
    {"name": "cursor", "in": "query", "description": "`next_cursor` of the previous page (keyset paging; ignores"
     " `page`).", "schema": {"type": "string"}},
    {"name": "with_total", "in": "query", "description": "Count the total (default true; false is faster).",
     "schema": {"type": "boolean", "default": True}},
)


def _bad(name: str, message: str, value: Any = None) -> ApiError:
    details: dict[str, Any] = {"parameter": name}
    if value is not None:
        details["value"] = value
    return ApiError(400, "invalid_parameter", message, details)


def parse_instant(name: str, raw: str, tz: tzinfo, end: bool = False) -> tuple[datetime, bool]:
    """A date or datetime parameter as an aware datetime, and whether it was a bare date.

    For a bare date, ``end`` gives the start of the NEXT day (an exclusive bound that covers the
    whole day); otherwise the start of that day.
    """
    text = raw.strip()
    if _DATE.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise _bad(name, f"query parameter {name!r} is not a valid date", raw) from None
        if end:
            day = day + timedelta(days=1)
        return datetime.combine(day, time(0), tzinfo=tz), True
    try:
        value = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    except ValueError:
        raise _bad(name, f"query parameter {name!r} must be YYYY-MM-DD or an ISO 8601 datetime", raw) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value, False


def encode_cursor(sort: str, descending: bool, key: tuple[Any, int]) -> str:
    """An opaque cursor for the row after ``key``."""
    value, last_id = key
    if isinstance(value, datetime):
        packed: Any = {"t": value.isoformat()}
    else:
        packed = {"v": value}
    raw = json.dumps({"s": sort, "d": descending, "k": packed, "i": last_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


_CURSOR_TYPES: dict[str, Any] = {"created_at": datetime, "updated_at": datetime, "id": int, "attempts": int}


def decode_cursor(raw: str) -> tuple[str, bool, tuple[Any, int]]:
    """The (sort, descending, key) of a cursor, or a 400."""
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        sort, descending, packed, last_id = data["s"], bool(data["d"]), data["k"], int(data["i"])
        value = datetime.fromisoformat(packed["t"]) if "t" in packed else packed["v"]
        if sort not in SORT_COLUMNS or isinstance(value, (dict, list)) or "\x00" in str(value):
            raise ValueError(sort)
        # The value must have the sort column's type (a forged cursor made PostgreSQL fail: a 500).
        expected = _CURSOR_TYPES.get(sort, str)
        if not isinstance(value, expected) or isinstance(value, bool) or not -2 ** 63 < last_id < 2 ** 63 or (
                isinstance(value, int) and not -2 ** 63 < value < 2 ** 63):
            raise ValueError(sort)
    except (ValueError, KeyError, TypeError, json.JSONDecodeError, UnicodeDecodeError):
        raise _bad("cursor", "query parameter 'cursor' is not a cursor this API issued") from None
    return sort, descending, (value, last_id)


def text_value(name: str, value: str) -> str:
    """``value`` unless it holds a NUL character (PostgreSQL text cannot): then a 400."""
    if "\x00" in value:
        raise _bad(name, f"query parameter {name!r} contains a NUL character")
    return value


def parse_filter(raw_get: Callable[[str], list[str]], tz: tzinfo) -> LogFilter:
    """A LogFilter from query values (``get(name)`` returns every value of a parameter)."""

    def get(name: str) -> list[str]:
        return [text_value(name, v) for v in raw_get(name)]

    statuses = [s.lower() for s in get("status")]
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        raise _bad("status", f"unknown status {unknown[0]!r}; one of {', '.join(STATUSES)}", unknown[0])
    ids: list[int] = []
    uids: list[str] = []
    for name in ("id", "task_id", "job_id"):
        for value in get(name):
            if value.isdigit() and len(value) < 19:
                ids.append(int(value))
            elif name != "job_id" and _UID.match(value):
                uids.append(value)
            else:
                raise _bad(name, f"query parameter {name!r} must be a submission id or uid", value)
    user_ids: list[int] = []
    user_names: list[str] = []
    for value in get("user"):
        (user_ids.append(int(value)) if value.isdigit() and len(value) < 19 else user_names.append(value))
    bounds: dict[str, datetime | None] = {"from": None, "before": None, "until": None}
    for name in ("from", "from_date"):
        for value in get(name)[:1]:
            bounds["from"], _ = parse_instant(name, value, tz)
    for name in ("to", "to_date"):
        for value in get(name)[:1]:
            instant, was_date = parse_instant(name, value, tz, end=True)
            bounds["before" if was_date else "until"] = instant
    for value in get("submitted_at")[:1]:
        start, was_date = parse_instant("submitted_at", value, tz)
        if not was_date:
            raise _bad("submitted_at", "query parameter 'submitted_at' must be a date (YYYY-MM-DD)", value)
        bounds["from"], bounds["before"] = start, parse_instant("submitted_at", value, tz, end=True)[0]
    q = get("q")
    text = q[0] if q else None
    if text is not None and len(text) > 200:
        raise _bad("q", "query parameter 'q' is limited to 200 characters")
    return LogFilter(ids=tuple(ids), uids=tuple(uids), statuses=tuple(dict.fromkeys(statuses)),
                     kinds=tuple(get("kind")), endpoints=tuple(get("endpoint")),
                     destinations=tuple(get("destination")), user_ids=tuple(user_ids),
                     org_units=tuple(get("org_unit")), periods=tuple(get("period")),
                     data_sets=tuple(get("data_set")),
                     user_names=tuple(user_names), created_from=bounds["from"],
                     created_before=bounds["before"], created_until=bounds["until"], q=text or None)


def filter_from_call(call: QueryArgs, tz: tzinfo) -> LogFilter:
    """The LogFilter of a request's query string."""

    def get(name: str) -> list[str]:
        # q and dates are single values that may legitimately contain commas.
        if name in ("q", "from", "to", "from_date", "to_date", "submitted_at"):
            value = call.arg(name)
            return [value] if value else []
        return call.args(name)

    return parse_filter(get, tz)


def filter_from_json(body: dict[str, Any], tz: tzinfo) -> LogFilter:
    """The LogFilter of a JSON object using the same names as the query string."""

    def get(name: str) -> list[str]:
        value = body.get(name)
        if value is None or value == "":
            return []
        if isinstance(value, list):
            return [str(v) for v in value]
        if name in ("q", "from", "to", "from_date", "to_date", "submitted_at"):
            return [str(value)]
        return [p.strip() for p in str(value).split(",") if p.strip()]

    return parse_filter(get, tz)


def page_from_call(call: QueryArgs) -> Page:
    """The Page of a request's query string."""
    sort = call.arg("sort") or "created_at"
    if sort not in SORT_COLUMNS:
        raise _bad("sort", f"query parameter 'sort' must be one of {', '.join(sorted(SORT_COLUMNS))}", sort)
    order = (call.arg("order") or "desc").lower()
    if order not in ("asc", "desc"):
        raise _bad("order", "query parameter 'order' must be asc or desc", order)
    page = call.int_arg("page", 1, minimum=1, maximum=1_000_000)
    page_size = call.int_arg("page_size", DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
    cursor = call.arg("cursor")
    after = None
    descending = order == "desc"
    if cursor:
        sort, descending, after = decode_cursor(cursor)
        page = 1
    return Page(page=page, page_size=page_size, sort=sort, descending=descending, after=after,
                with_total=call.bool_arg("with_total", True))
