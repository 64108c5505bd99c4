"""The one error type answered to a caller, and its JSON envelope.

Any room may raise `ApiError` for input it refuses (the API areas, authentication, the log
filters, a plugin's body check); the router turns it into ``{"error": {"code", "message",
"details"}}`` with the right HTTP status: never an HTML page, never a traceback.
"""
from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered to the client.

    :param status: HTTP status code.
    :param code: stable machine-readable code (``not_found``, ``validation_failed``…).
    :param message: one human sentence.
    :param details: optional structured details (field errors, limits…).
    :param headers: extra response headers (``Retry-After``, ``WWW-Authenticate``…).
    """

    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        """The JSON body of this error."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


def bad_request(message: str, details: Any = None, code: str = "bad_request") -> ApiError:
    """400."""
    return ApiError(400, code, message, details)


def not_found(what: str = "resource") -> ApiError:
    """404 for a missing object."""
    return ApiError(404, "not_found", f"{what} not found")


def unavailable(message: str, retry_after: int = 5, code: str = "service_unavailable") -> ApiError:
    """503 with Retry-After."""
    return ApiError(503, code, message, headers={"Retry-After": str(retry_after)})
