"""Aggregate import conflicts in one shape, whatever the DHIS2 version wrote.

2.36 has only ``{object, value}``; 2.37-2.42 add ``objects``, ``errorCode``, ``property`` and
``indexes``; the 2.43 data entry pipeline writes E80xx/E81xx conflicts that may carry no
``object``, no ``property``, no ``indexes`` and no message at all — E8122 has only
``objects.args = "<index>-<value>-<valueType>-<i18nKey>"`` (reference dhis2-2.43-2.44.md §1).
The row a conflict belongs to is therefore found from, in order: ``indexes``; the index at
the head of ``objects.args``; a ``Value #N`` in the message (E8120, E8128). Never from
``object``, which on 2.43 names nothing or a data set.
"""

from __future__ import annotations

import re
from typing import Any

from dhis2gw.dhis2.http_rules import as_int

#: 2.43+ conflicts that abort the whole chunk: nothing in it was validated value by value,
#: so no row is to blame (a row delivered alone may well be accepted).
CHUNK_ABORT_CODES = frozenset({"E8002", "E8128"})

#: Codes of a closed, expired or not-yet-open period (permanent until an administrator acts).
UNTIMELY_CODES = frozenset({"E7640", "E7641", "E7644", "E8030", "E8032"})

_ARGS_INDEX = re.compile(r"^\s*(\d+)-")
_VALUE_NUMBER = re.compile(r"\bValue #(\d+)\b")


def conflict_indexes(raw: dict[str, Any], objects: dict[str, Any], message: Any) -> list[int]:
    """0-based rows a conflict names (see the module docstring); [] when it names none."""
    indexes = raw.get("indexes")
    if isinstance(indexes, list) and indexes:
        return [as_int(i) for i in indexes]
    args = objects.get("args")
    if isinstance(args, str):
        found = _ARGS_INDEX.match(args)
        if found:
            return [int(found.group(1))]
    if isinstance(message, str):
        return sorted({int(n) for n in _VALUE_NUMBER.findall(message)})
    return []


def _synthetic_message(code: Any, objects: dict[str, Any]) -> str:
    """A message for a conflict that came without one (E8122 has only ``objects.args``)."""
    args = objects.get("args")
    if code == "E8122" and isinstance(args, str):
        parts = args.split("-")
        if len(parts) >= 4:
            value = "-".join(parts[1:-2])
            return f"Value #{parts[0]} `{value}` is not a valid {parts[-2]} ({parts[-1]})"
    detail = ", ".join(f"{k}={v}" for k, v in objects.items())
    return f"{code or 'conflict'}{': ' + detail if detail else ''}"


def normalise_conflict(raw: Any, reference: str | None = None) -> dict[str, Any]:
    """One ImportConflict as ``{object, objects, value, message, errorCode, property, indexes}``.

    ``value`` is DHIS2's (misnamed) message field and is repeated as ``message``; a conflict
    without one gets a message made from its code and ``objects``.  ``reference`` is set for
    deprecated-endpoint ImportSummaries (the object's UID).
    """
    raw = raw if isinstance(raw, dict) else {"value": str(raw)}
    objects = raw.get("objects") if isinstance(raw.get("objects"), dict) else {}
    message = raw.get("value", raw.get("message"))
    if message in (None, "") or message == "<not captured>":
        message = _synthetic_message(raw.get("errorCode"), objects)
    conflict = {
        "object": raw.get("object"),
        "objects": dict(objects),
        "value": message,
        "message": message,
        "errorCode": raw.get("errorCode"),
        "property": raw.get("property"),
        "indexes": conflict_indexes(raw, objects, message),
    }
    if reference is not None:
        conflict["reference"] = reference
    return conflict


def aborts_chunk(conflicts: list[dict[str, Any]]) -> bool:
    """True when a 2.43+ conflict refused the whole import rather than some values."""
    return any(c.get("errorCode") in CHUNK_ABORT_CODES for c in conflicts)
