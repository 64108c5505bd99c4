"""Request bodies: JSON that PostgreSQL can store, validated against a schema with readable errors.

``decode_json_body`` refuses what ``jsonb`` cannot hold (NUL, lone surrogates, numbers that
overflow to infinity) with a 400 naming the field. Valid bodies are checked by a compiled
validator (``fast_validator``); only an invalid one pays for ``schema_errors`` listing every
problem, in document order.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

from jsonschema import Draft202012Validator
from twisted.web.iweb import IRequest

from dhis2gw.errors import ApiError

#: NUL and unpaired surrogates (JSON "\ud800"): PostgreSQL text and UTF-8 cannot hold them.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_BAD_TEXT = "strings may not contain the NUL character (\\u0000) or an unpaired surrogate"
_BAD_NUMBER = "numbers must be finite (1e999 and beyond are not stored)"


def _unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """(path, reason) of the first value PostgreSQL's jsonb cannot hold in a JSON document, if any:
    a string (or key) with NUL or a lone surrogate, or a number that overflowed to infinity."""
    if isinstance(value, str):
        return (path or "(body)", _BAD_TEXT) if _UNSTORABLE.search(value) else None
    if isinstance(value, float):
        return None if math.isfinite(value) else (path or "(body)", _BAD_NUMBER)
    if isinstance(value, dict):
        for key, item in value.items():
            if _UNSTORABLE.search(key):
                return f"{path}/{key!r}".lstrip("/"), _BAD_TEXT
            found = _unstorable(item, f"{path}/{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _unstorable(item, f"{path}/{i}" if path else str(i))
            if found:
                return found
    return None


def _not_json_constant(name: str) -> Any:
    raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {name} is not a JSON value")


def _expand_one_of(error: Any) -> list[Any]:
    """For a failed ``oneOf``, the errors of the branch the document most likely meant.

    The branch whose failures are deepest in the document wins (a shallow ``type`` mismatch
    means "wrong branch"), so a simplified aggregate with a bad period reports the period,
    not "is not valid under any of the given schemas".
    """
    if error.validator != "oneOf" or not error.context:
        return [error]
    branches: dict[int, list[Any]] = {}
    for sub in error.context:
        branches.setdefault(sub.schema_path[0], []).append(sub)

    def score(errs: list[Any]) -> tuple[int, int]:
        shallow_type = sum(1 for e in errs if e.validator == "type" and len(e.relative_path) <= 1)
        return (shallow_type, len(errs))

    best = min(branches.values(), key=score)
    return [e for sub in best for e in _expand_one_of(sub)]


def fast_validator(schema: dict[str, Any]) -> Any:
    """A compiled validator for the happy path (jsonschema-rs, ~1 µs a body), or None.

    Valid bodies never reach the pure-Python validator, which is kept for its error messages:
    only an invalid body pays for listing every problem.
    """
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover - a pinned dependency; the slow path still validates
        return None
    try:
        return jsonschema_rs.validator_for(schema)
    except Exception:  # noqa: BLE001 - a schema it cannot compile falls back to the slow path
        return None


def schema_errors(validator: Draft202012Validator, instance: Any, limit: int = 100) -> list[dict[str, str]]:
    """Every validation error as ``{"field": "a/0/b", "message": ...}``, in document order."""
    errors = []
    found = [e for top in validator.iter_errors(instance) for e in _expand_one_of(top)]
    for error in sorted(found, key=lambda e: list(map(str, e.absolute_path))):
        path = "/".join(str(p) for p in error.absolute_path)
        errors.append({"field": path or "(body)", "message": error.message[:300]})
        if len(errors) >= limit:
            break
    return errors


def decode_json_body(request: IRequest) -> Any:
    """Parse the request body as JSON, or raise a 400 that says why."""
    raw = request.content.read() if request.content is not None else b""
    if not raw.strip():
        raise ApiError(400, "empty_body", "the request body is empty; a JSON document is expected")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, "invalid_encoding", "the request body is not valid UTF-8",
                       {"position": e.start}) from None
    try:
        document = json.loads(text, parse_constant=_not_json_constant)
    except RecursionError:
        raise ApiError(400, "invalid_json", "the JSON document is nested too deeply") from None
    except json.JSONDecodeError as e:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {e.msg}",
                       {"line": e.lineno, "column": e.colno}) from None
    except ValueError as e:  # e.g. an integer literal beyond Python's 4,300-digit conversion limit
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {e}") from None
    try:
        bad = _unstorable(document)
    except RecursionError:
        raise ApiError(400, "invalid_json", "the JSON document is nested too deeply") from None
    if bad:
        field, reason = bad
        raise ApiError(400, "invalid_characters" if reason is _BAD_TEXT else "invalid_number", reason,
                       {"field": field})
    return document
