"""JSON encoding on the hot paths (API responses, jsonb parameters): orjson, several times faster
than the standard library, with the standard library as the fallback for what orjson refuses.

orjson handles integers up to 64 bits; a larger one (JSON allows any) makes it raise, and the
document is then encoded by :mod:`json` exactly as before. Request bodies are still parsed by
:mod:`json` (orjson turns integers beyond 64 bits into floats, silently losing digits), and
non-finite numbers never get this far: ``decode_json_body`` refuses them.
"""
from __future__ import annotations

import json
from typing import Any

import orjson

# Datetimes and dataclasses go through ``default`` (``str``), as with json.dumps(default=str).
_RESPONSE_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def response_bytes(value: Any) -> bytes:
    """Serialise an API response body (compact UTF-8; unknown types as ``str(value)``)."""
    try:
        return orjson.dumps(value, default=str, option=_RESPONSE_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def document_text(value: Any) -> str:
    """Serialise a JSON document for a jsonb parameter (a type JSON cannot hold is an error)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")
    except TypeError:  # an integer beyond 64 bits: json raises too for what really is not JSON
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
