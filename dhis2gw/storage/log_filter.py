"""What the operator asked to see in the submission log, and the SQL condition for it.

``LogFilter`` is the request (already parsed and checked by ``dhis2gw.operations.filters``);
``where_clause`` turns it into one parameterised condition over ``submissions`` that the list,
count, purge and requeue-by-filter all share, so "what the list shows" and "what a requeue by
filter moves" are the same rows. ``Page`` says how to page through them and ``LogPage`` is one
page of the answer (see `dhis2gw.storage.logs.LogStore`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: Sort keys the list accepts → SQL column. Only NOT NULL columns: the keyset cursor compares
#: ``(column, id)`` tuples, which NULLs would break.
SORT_COLUMNS = {"created_at": "created_at", "id": "id", "updated_at": "updated_at", "status": "status",
                "attempts": "attempts", "kind": "kind", "destination": "destination"}


@dataclass(frozen=True)
class LogFilter:
    """Which submissions to list (every field optional; lists mean "any of")."""

    ids: tuple[int, ...] = ()
    uids: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    destinations: tuple[str, ...] = ()
    user_ids: tuple[int, ...] = ()
    user_names: tuple[str, ...] = ()  # uids or usernames, resolved through the users table
    org_units: tuple[str, ...] = ()  # UIDs or codes, codes resolved through organisation_units
    periods: tuple[str, ...] = ()
    data_sets: tuple[str, ...] = ()  # data set (or tracker program) UIDs
    created_from: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    created_until: datetime | None = None  # inclusive (a datetime `to`)
    q: str | None = None
    # Filled by ``LogStore.resolve`` (never by clients): org-unit codes and name words resolved to
    # UIDs, so the planner sees a literal list it can estimate and serve with the index.
    org_unit_uids: tuple[str, ...] | None = None
    q_org_units: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON form (stored with requeue jobs, echoed to the client)."""
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if value in ((), None) or name in ("org_unit_uids", "q_org_units"):
                continue
            out[name] = value.isoformat() if isinstance(value, datetime) else (
                list(value) if isinstance(value, tuple) else value)
        return out


@dataclass(frozen=True)
class Page:
    """How to page: offset pages, or a keyset cursor (``after``) when given."""

    page: int = 1
    page_size: int = 20
    sort: str = "created_at"
    descending: bool = True
    after: tuple[Any, int] | None = None  # (sort value, id) of the last row already seen
    with_total: bool = True


@dataclass
class LogPage:
    """One page of the list; ``total_exact`` is False when the total is the planner's estimate."""

    items: list[dict[str, Any]]
    total: int | None
    last_key: tuple[Any, int] | None = None
    has_more: bool = False
    total_exact: bool = True


def where_clause(f: LogFilter) -> tuple[str, list[Any]]:
    """The SQL condition (over ``submissions``) and its parameters for a filter."""
    parts: list[str] = []
    params: list[Any] = []

    def any_of(column: str, values: Sequence[Any]) -> None:
        if values:
            parts.append(f"{column} = ANY(%s)")
            params.append(list(values))

    if f.ids and f.uids:
        parts.append("(id = ANY(%s) OR uid = ANY(%s))")
        params.extend([list(f.ids), list(f.uids)])
    else:
        any_of("id", f.ids)
        any_of("uid", f.uids)
    any_of("status", f.statuses)
    any_of("kind", f.kinds)
    any_of("endpoint", f.endpoints)
    any_of("destination", f.destinations)
    any_of("period", f.periods)
    any_of("data_set", f.data_sets)
    if f.org_unit_uids is not None:
        any_of("org_unit", f.org_unit_uids or ("",))
    elif f.org_units:
        parts.append("org_unit = ANY(%s::text[] || ARRAY(SELECT uid::text FROM organisation_units"
                     " WHERE code = ANY(%s)))")
        params.extend([list(f.org_units), list(f.org_units)])
    if f.user_ids or f.user_names:
        # Resolved to ids first so the submitter index serves the query.
        parts.append("submitter_id IN (SELECT id FROM users WHERE id = ANY(%s) OR uid = ANY(%s)"
                     " OR lower(username) = ANY(%s))")
        params.extend([list(f.user_ids), list(f.user_names), [n.lower() for n in f.user_names]])
    if f.created_from is not None:
        parts.append("created_at >= %s")
        params.append(f.created_from)
    if f.created_before is not None:
        parts.append("created_at < %s")
        params.append(f.created_before)
    if f.created_until is not None:
        parts.append("created_at <= %s")
        params.append(f.created_until)
    if f.q:
        text = f.q.strip()
        # Each alternative has an index (uid unique, idempotency_key, error trigram, id primary key),
        # so PostgreSQL can OR bitmap scans instead of reading the table.
        # The org unit alternative matches its UID, code or words of its name (the few hundred
        # facility UIDs found become one indexed ANY).
        pattern = "%" + like_escape(text) + "%"
        alternatives = ["uid = %s", "idempotency_key = %s", "error ILIKE %s", "period = %s"]
        params_q: list[Any] = [text, text, pattern, text]
        if f.q_org_units is not None:
            alternatives.append("org_unit = ANY(%s)")
            params_q.append([text, *f.q_org_units])
        else:
            alternatives.append("org_unit = ANY(%s::text[] || ARRAY(SELECT uid::text FROM organisation_units"
                                " WHERE code = %s OR name ILIKE %s LIMIT 500))")
            params_q.extend([[text], text, pattern])
        if text.isdigit() and len(text) < 19:
            alternatives.insert(0, "id = %s")
            params_q.insert(0, int(text))
        parts.append("(" + " OR ".join(alternatives) + ")")
        params.extend(params_q)
    return (" AND ".join(parts) or "TRUE"), params


def like_escape(text: str) -> str:
    """``text`` with ``\\``, ``%`` and ``_`` escaped for a LIKE/ILIKE pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
