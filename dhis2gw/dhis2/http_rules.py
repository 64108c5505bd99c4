"""Endpoint-independent rules: body decoding, ``Retry-After``, and the HTTP codes that decide alone.

`classify_http_status` applies the rows of the DESIGN.md section 4 table that do
not depend on the body's import status (redirects, 401/403, 429, 5xx, 4xx other
than 409).  It returns None for 2xx and 409, whose body must be read: "read the
body's status, not the HTTP code".
"""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dhis2gw.dhis2.outcome import Outcome, OutcomeKind

#: Longest text excerpt kept in `Outcome.body` for non-JSON answers.
EXCERPT_CHARS = 500

#: 400 messages that are an API-token problem, not a bad payload (ApiTokenAuthenticationTest).
_PAT_400_MESSAGES = ("api token is malformed", "checksum validation failed")

#: Fragments of a ``Location`` that point at DHIS2's login page (<=2.40 and 2.41+).
_LOGIN_MARKERS = ("login.action", "dhis-web-login", "/login", "security/login")

#: Error text that means the database or its pool failed (transient), seen in
#: "The import process failed: ..." descriptions and 409/500 WebMessages.
_TRANSIENT_TEXT = re.compile(
    r"could not execute|deadlock|lock wait|lock timeout|cannotacquirelock|"
    r"unable to acquire jdbc|jdbc connection|connection (?:is )?closed|connection refused|"
    r"too many (?:clients|connections)|timed out|timeout|querytimeout|"
    r"persistenceexception|dataintegrityviolation|duplicate key|concurrent|"
    r"serialization failure|could not serialize|transactionsystemexception|"
    r"psqlexception|sqlexception|hibernate",
    re.IGNORECASE,
)

#: Error text that is a payload problem even if it also matches `_TRANSIENT_TEXT`.
_PARSE_TEXT = re.compile(
    r"jackson|json ?parse|mismatchedinput|no content to map|unexpected character|"
    r"unrecognized (?:field|token)|cannot deserialize|cannot construct|"
    r"invalid (?:uid|format)|numberformat|illegalargument",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class DecodedBody:
    """A response body: ``json`` is the parsed value when the body was JSON.

    ``is_json`` tells apart a JSON ``null`` from a non-JSON body.  ``excerpt`` is
    a short text version for messages and for `Outcome.body` when not JSON.
    """

    is_json: bool
    json: Any
    excerpt: str
    empty: bool

    @property
    def body_value(self) -> Any:
        """What goes into `Outcome.body`: the JSON value, else the excerpt."""
        return self.json if self.is_json else (self.excerpt or None)


def decode_body(body: bytes | str | None) -> DecodedBody:
    """Parse a response body as JSON if it is JSON, keeping a text excerpt either way."""
    if body is None:
        body = b""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    stripped = text.strip()
    excerpt = stripped[:EXCERPT_CHARS]
    if not stripped:
        return DecodedBody(False, None, "", True)
    if stripped[0] in "{[" or stripped == "null":
        try:
            return DecodedBody(True, json.loads(stripped), excerpt, False)
        except ValueError:
            pass
    return DecodedBody(False, None, excerpt, False)


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive look-up of one header value."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def parse_retry_after(value: str | None, now: float | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date.

    An HTTP date needs ``now`` (seconds since the epoch, from the injected clock);
    without it, or for an unparseable value, None is returned.  Never negative.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or now is None:
        return None
    return max(0.0, when.timestamp() - now)


def looks_transient(text: str | None) -> bool:
    """Best effort: does this DHIS2 error text describe a database/pool failure?"""
    if not text:
        return False
    return bool(_TRANSIENT_TEXT.search(text)) and not _PARSE_TEXT.search(text)


def web_message_text(decoded: DecodedBody) -> str:
    """The ``message`` (plus ``devMessage``) of a WebMessage body, else the excerpt."""
    data = decoded.json
    if decoded.is_json and isinstance(data, dict):
        parts = [str(data[k]) for k in ("message", "devMessage") if data.get(k)]
        if parts:
            return " | ".join(parts)
        response = data.get("response")
        if isinstance(response, dict) and response.get("description"):
            return str(response["description"])
    return decoded.excerpt


def _is_login_location(location: str | None) -> bool:
    return bool(location) and any(m in location.lower() for m in _LOGIN_MARKERS)  # type: ignore[union-attr]


def looks_like_login_page(decoded: DecodedBody) -> bool:
    """True for an HTML page that is a login form (a proxy/SSO portal or DHIS2's own)."""
    text = decoded.excerpt.lower()
    return not decoded.is_json and "<" in text and ("login" in text or "password" in text)


def classify_http_status(
    status: int,
    headers: Mapping[str, str] | None,
    decoded: DecodedBody,
    now: float | None,
) -> Outcome | None:
    """Outcome decided by the HTTP status alone, or None when the body must decide (2xx, 409)."""
    text = web_message_text(decoded)
    base = {"http_status": status, "body": decoded.body_value}
    if 300 <= status < 400:
        location = header(headers, "Location")
        if _is_login_location(location):
            # DHIS2 redirects unauthenticated API calls to its login page: an auth problem.
            return Outcome(
                OutcomeKind.DESTINATION_FAILURE, "auth",
                message=f"HTTP {status} redirect to the login page {location}", **base,
            )
        return Outcome(
            OutcomeKind.DESTINATION_FAILURE, "redirect",
            message=f"HTTP {status} redirect to {location} (check dhis2_base_url)", **base,
        )
    if status in (401, 403):
        return Outcome(
            OutcomeKind.DESTINATION_FAILURE, "auth", message=f"HTTP {status}: {text}", **base
        )
    if status == 400 and any(m in text.lower() for m in _PAT_400_MESSAGES):
        # A malformed PAT fails every request the same way: not this payload's fault.
        return Outcome(
            OutcomeKind.DESTINATION_FAILURE, "auth", message=f"HTTP 400: {text}", **base
        )
    if status == 429:
        return Outcome(
            OutcomeKind.RATE_LIMITED, "rate_limited",
            retry_after=parse_retry_after(header(headers, "Retry-After"), now),
            message=f"HTTP 429: {text}", **base,
        )
    if status in (502, 503, 504):
        return Outcome(
            OutcomeKind.DESTINATION_FAILURE, f"http_{status}",
            retry_after=parse_retry_after(header(headers, "Retry-After"), now),
            message=f"HTTP {status}: {text}", **base,
        )
    if status >= 500:
        if decoded.is_json and isinstance(decoded.json, dict):
            # DHIS2 itself answered, but a 500 says nothing about whose fault it is: a bug
            # triggered by this payload, or DHIS2's database down / its pool exhausted (then
            # every request gets it). SUSPECT: the engine decides by the destination's health.
            return Outcome(
                OutcomeKind.SUSPECT, "server_error", message=f"HTTP {status}: {text}", **base
            )
        # An HTML/empty 5xx page comes from Tomcat or a proxy: the destination is unwell.
        return Outcome(
            OutcomeKind.DESTINATION_FAILURE, f"http_{status}",
            message=f"HTTP {status}: {text}", **base,
        )
    if status == 408:
        return Outcome(OutcomeKind.SUSPECT, "timeout", message=f"HTTP 408: {text}", **base)
    if status == 404 and not (decoded.is_json and isinstance(decoded.json, dict)):
        # DHIS2 answers a missing object with a JSON WebMessage; an HTML or empty 404 comes from
        # Tomcat or a proxy: the path does not exist there (a wrong base URL), for every payload.
        return Outcome(
            OutcomeKind.DESTINATION_FAILURE, "not_found",
            message=f"HTTP 404 without a DHIS2 answer (check dhis2_base_url): {text}", **base,
        )
    if 400 <= status < 500 and status != 409:
        return Outcome(
            OutcomeKind.REJECTED, f"http_{status}", message=f"HTTP {status}: {text}", **base
        )
    if status < 200:
        return Outcome(
            OutcomeKind.RETRY, f"http_{status}", message=f"unexpected HTTP {status}", **base
        )
    return None


def screen_json_answer(
    status: int, headers: Mapping[str, str] | None, decoded: DecodedBody, now: float | None
) -> Outcome | None:
    """Outcome of an answer that should carry a JSON object, decided before that object is read.

    The HTTP status decides (`classify_http_status`), else a 2xx/409 without a JSON object is
    `non_json_answer`.  None when ``decoded.json`` is the object the endpoint's rules read.
    """
    decided = classify_http_status(status, headers, decoded, now)
    if decided is None and not (decoded.is_json and isinstance(decoded.json, dict)):
        decided = non_json_answer(status, decoded)
    return decided


def non_json_answer(status: int, decoded: DecodedBody) -> Outcome:
    """Outcome for a 2xx/409 whose body is not the JSON the endpoint always returns.

    A non-JSON 2xx did not come from the DHIS2 API (an SSO/captive portal, a
    maintenance page served with 200, a base URL that points at a web app): every
    request would get the same, so it is a destination failure (reason ``auth``
    when the page is a login form, else ``not_json``) and burns no retry.  A
    non-JSON 409 is treated as a rejection like any other unexplained 4xx.
    """
    base = {"http_status": status, "body": decoded.body_value}
    if status == 409:
        return Outcome(
            OutcomeKind.REJECTED, "http_409", message=f"HTTP 409: {decoded.excerpt}", **base
        )
    if looks_like_login_page(decoded):
        return Outcome(
            OutcomeKind.DESTINATION_FAILURE, "auth",
            message=f"HTTP {status} with an HTML login page instead of JSON", **base,
        )
    what = "an empty body" if decoded.empty else "a non-JSON body"
    return Outcome(
        OutcomeKind.DESTINATION_FAILURE, "not_json",
        message=f"HTTP {status} with {what}: {decoded.excerpt[:120]}", **base,
    )


def web_message_error(status: int, decoded: DecodedBody) -> Outcome:
    """Outcome for a WebMessage that carries no import report (e.g. a bare 409).

    2.41 answers concurrent upserts of the same key with a 409 PersistenceException
    message: that is worth a (bounded) retry.  Other messages are rejections.
    """
    text = web_message_text(decoded)
    base = {"http_status": status, "body": decoded.body_value}
    data = decoded.json if isinstance(decoded.json, dict) else {}
    dhis2_status = data.get("status") if isinstance(data.get("status"), str) else None
    if status < 300 and dhis2_status in (None, "OK", "SUCCESS"):
        return Outcome(
            OutcomeKind.RETRY, "unrecognised_response", dhis2_status=dhis2_status,
            message=f"HTTP {status} without an import report: {text[:200]}", **base,
        )
    if looks_transient(text):
        return Outcome(
            OutcomeKind.RETRY, "server_error", dhis2_status=dhis2_status,
            message=f"HTTP {status}: {text}", **base,
        )
    return Outcome(
        OutcomeKind.REJECTED, f"http_{status}" if status >= 300 else "dhis2_error",
        dhis2_status=dhis2_status, message=f"HTTP {status}: {text}", **base,
    )


def as_int(value: Any) -> int:
    """An int from a count field that may be missing or null."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def interpret_json_read(
    status: int, headers: Mapping[str, str] | None, body: bytes, *, now: float | None = None
) -> Outcome:
    """A plain JSON GET: DELIVERED with the parsed body on 2xx JSON, else the HTTP rules."""
    decoded = decode_body(body)
    if 200 <= status < 300 and decoded.is_json:
        return Outcome(OutcomeKind.DELIVERED, None, http_status=status, body=decoded.json, message=f"HTTP {status}")
    if status == 409:
        return Outcome(
            OutcomeKind.REJECTED, "http_409", http_status=status, body=decoded.body_value,
            message=f"HTTP 409: {decoded.excerpt[:200]}",
        )
    # The status rules decide neither a 2xx nor a 409, so they can come after those.
    return classify_http_status(status, headers, decoded, now) or non_json_answer(status, decoded)


def interpret_ping(
    status: int, headers: Mapping[str, str] | None, body: bytes, *, now: float | None = None
) -> Outcome:
    """``/api/system/ping`` answers ``pong`` as text: any 2xx means alive."""
    decoded = decode_body(body)
    if 200 <= status < 300:
        return Outcome(OutcomeKind.DELIVERED, None, http_status=status, body=decoded.body_value, message="alive")
    return classify_http_status(status, headers, decoded, now) or non_json_answer(status, decoded)
