"""The request log: a buffered writer (a GatewaySite finish observer) and ``GET /requests``.

``RequestLogWriter.observe`` runs as each response finishes. It only builds a row tuple and
appends it to an in-memory buffer, so the API never waits for PostgreSQL. The buffer is
written with one multi-row INSERT when ``batch_size`` rows are waiting or every
``flush_interval`` seconds on the injected clock, one batch in flight at a time. The buffer is
bounded (``max_buffer``): while PostgreSQL is down rows accumulate up to that limit and the
rest are dropped and counted (``stats()`` feeds ``/ready`` and metrics). Bodies are logged
only as a short excerpt with secrets replaced by ``***``; the Authorization header is never
read here at all.
"""
from __future__ import annotations

import collections
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from twisted.application import service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from dhis2gw.api.routing import OPERATOR, Call, route
from dhis2gw.api.users import iso, page_json
from dhis2gw.auth.authenticator import client_address
from dhis2gw.errors import ApiError
from dhis2gw.storage.database import DatabaseUnavailable
from dhis2gw.storage.request_log import RequestLogStore

SENSITIVE_KEYS = frozenset({
    "password", "old_password", "new_password", "passwd", "token", "access_token", "refresh_token", "secret",
    "client_secret", "jwt_secret", "pat", "dhis2_password", "dhis2_pat", "authorization", "api_key", "apikey",
    "authtoken", "auth_token", "password_hash", "pwd", "pass", "passphrase", "credential", "credentials",
    "private_key", "j_password",
})
REDACTED = "***"
_JSON_PARSE_LIMIT = 256 * 1024
_TEXT_TYPES = (b"application/json", b"text/", b"application/x-www-form-urlencoded", b"+json")
# Secrets recognisable by shape, scrubbed from any excerpt even under an innocent key.
_SHAPES = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*|dgw_[A-Za-z0-9_-]{8,}"
                     r"|\$argon2[a-z]*\$[^\s\"']*|\$2[aby]\$\d\d\$[./A-Za-z0-9]{20,}")


def is_sensitive(key: str) -> bool:
    """True for a field name whose value must never be logged."""
    lowered = key.lower()
    return (lowered in SENSITIVE_KEYS or "passw" in lowered or "secret" in lowered or "pwd" in lowered
            or lowered.endswith("_token") or lowered.startswith("pass"))


def _redact_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (REDACTED if is_sensitive(str(k)) else _redact_value(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    if isinstance(value, str):
        return _SHAPES.sub(REDACTED, value)
    return value


_KEY_NAMES = "|".join(sorted(SENSITIVE_KEYS, key=len, reverse=True))
_JSONISH_PAIR = re.compile(r'(["\'](?:[^"\']*(?:passw|secret|pwd)[^"\']*|' + _KEY_NAMES + r'|[^"\']*_token)["\']'
                           r'\s*[:=]\s*)'
                           r'("(?:[^"\\]|\\.)*("|$)|\'(?:[^\'\\]|\\.)*(\'|$)|[^,}\]\s]+)', re.IGNORECASE)
_FORM_PAIR = re.compile(r"((?:^|[&\s;?,{(])(?:[^=&\s\"',:{}]*(?:passw|secret|pwd)[^=&\s\"',:{}]*|" + _KEY_NAMES
                        + r")\s*[=:]\s*)"
                        r"[^&\s;,})]*", re.IGNORECASE)


def redact_text(text: str) -> str:
    """Scrub secrets from text that may not parse (a truncated JSON body, a form, CSV)."""
    text = _JSONISH_PAIR.sub(lambda m: m.group(1) + '"' + REDACTED + '"', text)
    text = _FORM_PAIR.sub(lambda m: m.group(1) + REDACTED, text)
    return _SHAPES.sub(REDACTED, text)


def body_excerpt(raw: bytes, content_type: bytes | None, limit: int) -> str | None:
    """A redacted excerpt of at most ``limit`` characters of a request body, or None."""
    if not raw or limit <= 0:
        return None
    ctype = (content_type or b"").split(b";")[0].strip().lower()
    if ctype and not any(t in ctype for t in _TEXT_TYPES):
        return f"({len(raw)} bytes of {ctype.decode('latin-1')[:100]})"
    if len(raw) <= _JSON_PARSE_LIMIT:
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            pass
        else:
            text = json.dumps(_redact_value(parsed), ensure_ascii=False, separators=(",", ":"))
            return redact_text(text[:limit]) if len(text) > limit else text
    # redact a little beyond the cut so a secret split by it is still recognised
    text = raw[:limit + 256].decode("utf-8", errors="replace")
    return redact_text(text)[:limit]


def redacted_path(uri: bytes, limit: int = 2048) -> str:
    """The request path with the values of sensitive query parameters replaced."""
    text = uri.decode("utf-8", errors="replace")
    parts = urlsplit(text)
    if parts.query:
        pairs = [(k, REDACTED if is_sensitive(k) else _SHAPES.sub(REDACTED, v))
                 for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        text = parts.path + "?" + urlencode(pairs, safe="*/:,")
    return text[:limit]


class RequestLogWriter(service.Service):
    """Buffers request-log rows and writes them in batches (see module docstring).

    :param clock: schedules flushes and timestamps rows.
    :param store: the ``request_log`` store.
    """

    log = Logger()
    name = "request-log"

    def __init__(self, clock: IReactorTime, store: RequestLogStore, *, enabled: bool = True,
                 flush_interval: float = 0.2, batch_size: int = 500, max_buffer: int = 10_000,
                 body_excerpt_bytes: int = 2048, retention_days: int = 0,
                 retention_interval: float = 3600.0) -> None:
        self.clock = clock
        #: Rows older than this many days are deleted every ``retention_interval`` seconds (0: kept).
        self.retention_days = retention_days
        self.retention_interval = retention_interval
        self._retention: LoopingCall | None = None
        self.purged = 0
        self.store = store
        self.enabled = enabled
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.max_buffer = max_buffer
        self.body_excerpt_bytes = body_excerpt_bytes
        self._buffer: collections.deque[tuple[Any, ...]] = collections.deque()
        self._loop: LoopingCall | None = None
        self._flushing: defer.Deferred[None] | None = None
        self._failing = False
        self.written = 0
        self.dropped = 0
        self.failed_flushes = 0
        self.last_error: str | None = None

    # --- lifecycle --------------------------------------------------------------------
    def startService(self) -> None:  # noqa: N802
        super().startService()
        self._loop = LoopingCall(self._tick)
        self._loop.clock = self.clock
        self._loop.start(self.flush_interval, now=False).addErrback(
            lambda f: self.log.failure("request log flush loop died", f))
        if self.retention_days > 0:
            self._retention = LoopingCall(self._purge_quietly)
            self._retention.clock = self.clock
            self._retention.start(self.retention_interval, now=False).addErrback(
                lambda f: self.log.failure("request log retention loop died", f))

    def stopService(self) -> defer.Deferred[None]:  # noqa: N802
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._retention is not None and self._retention.running:
            self._retention.stop()
        return defer.Deferred.fromCoroutine(self.flush(retry=False))

    # --- retention ---------------------------------------------------------------------
    async def purge(self, batch: int = 5000) -> int:
        """Delete the rows older than ``retention_days`` (in batches); return how many went."""
        cutoff = self.clock.seconds() - self.retention_days * 86400
        total = 0
        while True:
            n = await self.store.purge_before(cutoff, batch)
            total += n
            if n < batch:
                break
        self.purged += total
        if total:
            self.log.info("Request log: {n} rows older than {days} days deleted", n=total, days=self.retention_days)
        return total

    async def _purge_quietly(self) -> None:
        try:
            await self.purge()
        except DatabaseUnavailable as e:
            self.log.warn("Request log retention skipped: {error}", error=e)

    # --- observation -------------------------------------------------------------------
    def observe(self, request: Any) -> None:
        """Finish observer for ``GatewaySite``: buffer one row for ``request``."""
        if not self.enabled:
            return
        if len(self._buffer) >= self.max_buffer:
            self.dropped += 1
            return
        self._buffer.append(self.row_for(request))
        if len(self._buffer) >= self.batch_size and self._flushing is None:
            self._start_flush()

    def row_for(self, request: Any) -> tuple[Any, ...]:
        """The request_log row for a finished request (ROW_FIELDS order)."""
        mounted = getattr(request, "route", None)
        principal = getattr(request, "principal", None)
        raw = b""
        content = getattr(request, "content", None)
        keep = mounted is None or mounted.spec.log_body or int(request.code) >= 400
        if keep and self.body_excerpt_bytes > 0 and content is not None and hasattr(content, "getvalue"):
            raw = content.getvalue()
        excerpt = body_excerpt(raw, request.getHeader(b"content-type"), self.body_excerpt_bytes)
        return (self.clock.seconds(), getattr(request, "request_id", None) or None,
                request.method.decode("latin-1")[:16],
                mounted.full_path if mounted is not None else "(unmatched)",
                redacted_path(request.uri),
                principal.user_id if principal is not None else None,
                principal.username if principal is not None else None,
                int(request.code), round(float(getattr(request, "duration", 0.0)) * 1000, 3),
                client_address(request), int(getattr(request, "received_bytes", 0) or len(raw)),
                getattr(request, "error_code", None), excerpt)

    # --- flushing ----------------------------------------------------------------------
    def _tick(self) -> None:
        if self._buffer and self._flushing is None:
            self._start_flush()

    def _start_flush(self, retry: bool = True) -> defer.Deferred[None]:
        d = defer.Deferred.fromCoroutine(self._flush_batches(retry))
        self._flushing = d

        def done(result: Any) -> Any:
            self._flushing = None
            return result

        d.addBoth(done)
        d.addErrback(lambda f: self.log.failure("request log flush failed", f))
        return d

    async def _flush_batches(self, retry: bool = True) -> None:
        while self._buffer:
            batch = [self._buffer.popleft() for _ in range(min(self.batch_size, len(self._buffer)))]
            try:
                await self.store.insert_many(batch)
            except DatabaseUnavailable as e:
                self.failed_flushes += 1
                self.last_error = str(e)[:300]
                if not self._failing:
                    self.log.warn("Request log not written (PostgreSQL unavailable); buffering up to {n} rows",
                                  n=self.max_buffer)
                self._failing = True
                if retry:
                    room = self.max_buffer - len(self._buffer)
                    keep = batch[:max(room, 0)]
                    self.dropped += len(batch) - len(keep)
                    self._buffer.extendleft(reversed(keep))
                else:
                    self.dropped += len(batch) + len(self._buffer)
                    self._buffer.clear()
                return
            except Exception:  # noqa: BLE001 - a row PostgreSQL refuses must not block the rest
                self.failed_flushes += 1
                self.dropped += len(batch)
                self.last_error = "rows refused by the database"
                self.log.failure("Request log batch of {n} rows refused; dropped", n=len(batch))
                continue
            self.written += len(batch)
            if self._failing:
                self._failing = False
                self.log.info("Request log written again")

    async def flush(self, retry: bool = True) -> None:
        """Write everything buffered now (waits for a flush already running first)."""
        while self._flushing is not None:
            await self._flushing
        if self._buffer:
            await self._start_flush(retry)

    def stats(self) -> dict[str, Any]:
        """Counters for ``/ready`` and metrics."""
        return {"enabled": self.enabled, "buffered": len(self._buffer), "max_buffer": self.max_buffer,
                "written": self.written, "dropped": self.dropped, "failed_flushes": self.failed_flushes,
                "last_error": self.last_error}

    async def check(self) -> dict[str, Any]:
        """A ``HealthApi`` check: ok unless the buffer is nearly full."""
        return {"ok": len(self._buffer) < self.max_buffer * 0.9, **self.stats()}


def _parse_time(call: Call, name: str) -> datetime | None:
    raw = call.arg(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"query parameter {name!r} must be an ISO 8601 date or time",
                       {"parameter": name, "value": raw}) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class RequestsApi:
    """``GET /requests``: the request log for admins and operators (mount under ``/api/v2``)."""

    def __init__(self, store: RequestLogStore) -> None:
        self.store = store

    @route("GET", "/requests", roles=OPERATOR, summary="The request log", tags=("requests",),
           query=tuple({"name": n, "in": "query", "schema": {"type": t}} for n, t in (
               ("from", "string"), ("to", "string"), ("user", "string"), ("endpoint", "string"),
               ("status", "string"), ("method", "string"), ("page", "integer"), ("page_size", "integer"))))
    async def list_requests(self, call: Call) -> dict[str, Any]:
        """Rows newest first; filters from/to (ISO 8601), user, endpoint, status (404 or 4xx), method."""
        page = call.int_arg("page", 1, minimum=1)
        page_size = call.int_arg("page_size", 50, minimum=1, maximum=500)
        status_raw = call.arg("status")
        status: int | None = None
        status_class: int | None = None
        if status_raw:
            if re.fullmatch(r"[1-5]xx", status_raw.lower()):
                status_class = int(status_raw[0])
            else:
                status = call.int_arg("status", 0, minimum=100, maximum=599)
        method = call.arg("method")
        rows, total = await self.store.query(
            since=_parse_time(call, "from"), until=_parse_time(call, "to"), username=call.arg("user"),
            endpoint=call.arg("endpoint"), status=status, status_class=status_class,
            method=method.upper() if method else None, page=page, page_size=page_size)
        return page_json([{k: iso(v) for k, v in r.items()} for r in rows], total, page, page_size)
