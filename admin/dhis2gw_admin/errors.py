"""Typed errors of the admin client, each with one plain-language message for operators.

The gateway answers every error with ``{"error": {"code", "message", "details"}}``; this
module turns that envelope (or a refused connection, a timeout, a non-JSON page from a proxy)
into a ``GatewayError`` whose ``message`` a screen can show as is. No traceback ever reaches
the user: the screens show ``str(error)``.
"""
from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any


class GatewayError(Exception):
    """An error from (or on the way to) the gateway.

    :param message: one or two sentences an operator understands.
    :param status: the HTTP status, or None when no answer came.
    :param code: the gateway's machine-readable code (``not_found``, ``empty_filter``…).
    :param details: the envelope's ``details`` (field errors, per-row errors…).
    """

    def __init__(self, message: str, status: int | None = None, code: str | None = None,
                 details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details

    def __str__(self) -> str:
        return self.message


class ConnectionProblem(GatewayError):
    """The gateway could not be reached (refused, timed out, bad address)."""


class AuthenticationFailed(GatewayError):
    """401: wrong credentials, or the session ended (log in again)."""


class PermissionDenied(GatewayError):
    """403: the user's role does not allow this."""


class NotFound(GatewayError):
    """404: the object is gone (deleted, purged) or never existed."""


class Conflict(GatewayError):
    """409: the object is not in a state that allows this (e.g. already queued)."""


class InvalidInput(GatewayError):
    """400/413/422: the request was refused as invalid; ``details`` say what."""


class ServerProblem(GatewayError):
    """5xx: the gateway or something behind it (PostgreSQL, Redis) is not well."""


_BY_STATUS: dict[int, type[GatewayError]] = {401: AuthenticationFailed, 403: PermissionDenied, 404: NotFound,
                                              409: Conflict, 400: InvalidInput, 413: InvalidInput,
                                              422: InvalidInput}


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _detail_lines(details: Any, limit: int = 5) -> list[str]:
    """Short readable lines out of common ``details`` shapes (field errors, problems, rows)."""
    lines: list[str] = []
    if isinstance(details, dict):
        for key in ("errors", "problems", "fields"):
            items = details.get(key)
            if isinstance(items, list):
                for item in items[:limit]:
                    if isinstance(item, dict):
                        where = item.get("field") or item.get("column") or item.get("path") or ""
                        row = item.get("row")
                        prefix = f"row {row}, {where}" if row is not None else str(where)
                        text = item.get("message") or json.dumps(item, default=str)
                        lines.append(f"{prefix}: {text}" if prefix else str(text))
                    else:
                        lines.append(str(item))
                if len(items) > limit:
                    lines.append(f"… and {len(items) - limit} more")
                break
    return lines


def error_from_response(status: int, body: bytes, retry_after: str | None = None) -> GatewayError:
    """The typed error of an HTTP error answer (any body: the envelope, HTML, nothing)."""
    cls = _BY_STATUS.get(status, ServerProblem if status >= 500 else GatewayError)
    code: str | None = None
    details: Any = None
    message = ""
    try:
        envelope = json.loads(body.decode("utf-8")) if body else None
    except (UnicodeDecodeError, ValueError):
        envelope = None
    if isinstance(envelope, dict) and isinstance(envelope.get("error"), dict):
        err = envelope["error"]
        code = err.get("code")
        details = err.get("details")
        message = _sentence(str(err.get("message") or ""))
    if not message:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        message = f"The gateway answered {status} ({reason}) without an explanation."
    if status == 401 and code in ("token_expired", "invalid_token", "unauthenticated", "token_revoked"):
        message = "Your session has ended. Please log in again."
    if status >= 500 and retry_after:
        message += f" Try again in {retry_after} seconds."
    lines = _detail_lines(details)
    if lines:
        message += "\n" + "\n".join("• " + line for line in lines)
    return cls(message, status, code, details)


def connection_problem(base_url: str, failure_text: str) -> ConnectionProblem:
    """A plain message for a network failure (``failure_text`` is the exception's class name/text)."""
    lowered = failure_text.lower()
    if "refused" in lowered:
        why = "the connection was refused: is the gateway running at this address?"
    elif "timeout" in lowered or "timed out" in lowered:
        why = "it did not answer in time."
    elif "dns" in lowered or "lookup" in lowered or "name" in lowered and "resolve" in lowered:
        why = "the host name could not be found."
    else:
        why = f"the connection failed ({failure_text.strip() or 'unknown reason'})."
    return ConnectionProblem(f"Cannot reach the gateway at {base_url}: {why}")
