"""File uploads: the body of a request, raw or as one field of a multipart form.

Twisted would parse multipart bodies before routing and answer a malformed one with a bare 400
and no body; the gateway turns that off (``GatewayRequest``) and parses here, so a bad upload
gets the JSON error envelope like every other error.
"""
from __future__ import annotations

from email import message_from_bytes
from email.message import Message
from typing import Any

from dhis2gw.errors import ApiError


def uploaded_file(request: Any, field: str = "file") -> bytes:
    """The bytes of multipart field ``field``, or the raw body for any other content type."""
    content = request.content.read() if request.content is not None else b""
    ctype = request.getHeader(b"content-type") or b""
    if isinstance(ctype, str):
        ctype = ctype.encode("latin-1")
    if not ctype.lower().startswith(b"multipart/form-data"):
        return bytes(content)
    try:
        msg = message_from_bytes(b"MIME-Version: 1.0\r\nContent-Type: " + ctype + b"\r\n\r\n" + content)
        parts: list[Message] = msg.get_payload() if msg.is_multipart() else []  # type: ignore[assignment]
    except Exception:  # noqa: BLE001 - any parse failure is the client's malformed form
        parts = []
    if not isinstance(parts, list):
        parts = []
    for part in parts:
        if part.get_param("name", header="content-disposition") == field:
            payload = part.get_payload(decode=True)
            return payload if isinstance(payload, bytes) else b""
    raise ApiError(400, "missing_file", f"the multipart form has no {field!r} field (or is malformed)",
                   {"field": field})
