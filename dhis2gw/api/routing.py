"""The route table: declarative routes, one place for auth, body checks and error mapping.

API areas are small classes whose handler methods carry a ``@route(...)`` declaration::

    class UsersApi:
        @route("GET", "/users/<uid>", roles=ADMIN, summary="Get one user")
        async def get_user(self, call: Call, uid: str) -> dict: ...

``Router.mount(prefix, area)`` registers every declared method of ``area`` on one Klein app.
The wrapper around each handler, in this order: gives the request an id, authenticates
(unless the route is public), checks the role, checks Content-Type and parses + validates the
JSON body against the route's schema, calls the handler, and turns the result or any
exception into JSON. Because everything is declared, the route table also feeds the OpenAPI
document and the authorisation test that walks every route.
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterable, Optional, Protocol

from jsonschema import Draft202012Validator
from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from dhis2gw.api.errors import ApiError, unavailable
from dhis2gw.api.principal import Principal
from dhis2gw.jsoncodec import response_bytes

log = Logger()

ADMIN = frozenset({"admin"})
OPERATOR = frozenset({"admin", "operator"})
ANY_USER = frozenset({"admin", "operator", "submitter"})

_ROUTE_ATTR = "__dhis2gw_route__"


@dataclass(frozen=True)
class RouteSpec:
    """What a route is: method, path, who may call it, what body it takes."""

    method: str
    path: str
    roles: Optional[frozenset[str]]  # None: public, no authentication
    summary: str = ""
    description: str = ""
    body_schema: Optional[dict[str, Any]] = None
    body_required: bool = True
    raw_body: bool = False  # handler reads request.content itself (uploads)
    status: int = 200
    tags: tuple[str, ...] = ()
    query: tuple[dict[str, Any], ...] = ()  # OpenAPI parameter objects
    responses: dict[int, str] = field(default_factory=dict)
    response_schema: Optional[dict[str, Any]] = None
    self_allowed: bool = False  # a user may call it on its own uid even without the role
    deprecated: bool = False
    # False for routes whose body is kept elsewhere (ingest: submissions.payload): the request
    # log then keeps a body excerpt only when the request failed.
    log_body: bool = True

    @property
    def public(self) -> bool:
        """True when the route needs no credentials."""
        return self.roles is None


@dataclass(frozen=True)
class MountedRoute:
    """A route as served: full path template plus the spec."""

    full_path: str
    spec: RouteSpec
    name: str


def route(method: str, path: str, *, roles: Optional[Iterable[str]] = ANY_USER, public: bool = False,
          **kwargs: Any) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Declare a handler method as a route (see module docstring)."""
    spec = RouteSpec(method=method.upper(), path=path, roles=None if public else frozenset(roles or ()),
                     **kwargs)

    def decorate(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        specs = list(getattr(fn, _ROUTE_ATTR, ()))
        specs.append(spec)
        setattr(fn, _ROUTE_ATTR, tuple(specs))
        return fn

    return decorate


class Authenticator(Protocol):
    """Turns a request's credentials into a Principal or raises ApiError(401/429)."""

    async def authenticate(self, request: IRequest) -> Principal:
        """Authenticate ``request``."""


class RequestObserver(Protocol):
    """Told about every finished request (request log, metrics)."""

    def request_finished(self, request: IRequest, route: Optional[MountedRoute], principal: Optional[Principal],
                         status: int, error_code: Optional[str], duration: float) -> None:
        """Record one request."""


@dataclass
class Response:
    """A non-default answer: another status, extra headers, or a raw body."""

    body: Any = None
    status: Optional[int] = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: Optional[str] = None
    raw: Optional[bytes] = None


@dataclass
class Call:
    """What a handler gets besides its path arguments."""

    request: IRequest
    principal: Optional[Principal]
    body: Any
    route: MountedRoute

    def arg(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of query parameter ``name`` (decoded), or ``default``."""
        values = self.request.args.get(name.encode())
        if not values:
            return default
        return _query_text(name, values[0])

    def args(self, name: str) -> list[str]:
        """Every value of query parameter ``name`` (also comma-separated ones)."""
        out: list[str] = []
        for raw in self.request.args.get(name.encode(), []):
            text = _query_text(name, raw)
            out.extend(part for part in (p.strip() for p in text.split(",")) if part)
        return out

    def int_arg(self, name: str, default: int, minimum: int = 0, maximum: int = 2**31 - 1) -> int:
        """An integer query parameter with bounds; a bad value is a 400 naming it."""
        raw = self.arg(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ApiError(400, "invalid_parameter", f"query parameter {name!r} must be an integer",
                           {"parameter": name, "value": raw}) from None
        if not minimum <= value <= maximum:
            raise ApiError(400, "invalid_parameter",
                           f"query parameter {name!r} must be between {minimum} and {maximum}",
                           {"parameter": name, "value": value})
        return value

    def bool_arg(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter (true/false/1/0/yes/no)."""
        raw = self.arg(name)
        if raw is None or raw == "":
            return default
        lowered = raw.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        raise ApiError(400, "invalid_parameter", f"query parameter {name!r} must be true or false",
                       {"parameter": name, "value": raw})

    def require_principal(self) -> Principal:
        """The authenticated principal (routes that are not public always have one)."""
        assert self.principal is not None
        return self.principal


def _query_text(name: str, raw: bytes) -> str:
    """A query value as text: valid UTF-8 without NUL (PostgreSQL text cannot hold NUL)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_parameter", f"query parameter {name!r} is not valid UTF-8",
                       {"parameter": name}) from None
    if "\x00" in text:
        raise ApiError(400, "invalid_parameter", f"query parameter {name!r} contains a NUL character",
                       {"parameter": name})
    return text


#: NUL and unpaired surrogates (JSON "\ud800"): PostgreSQL text and UTF-8 cannot hold them.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_BAD_TEXT = "strings may not contain the NUL character (\\u0000) or an unpaired surrogate"
_BAD_NUMBER = "numbers must be finite (1e999 and beyond are not stored)"


def _unstorable(value: Any, path: str = "") -> Optional[tuple[str, str]]:
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


def client_gone(request: IRequest) -> bool:
    """True once the client's connection is lost.

    twisted.web marks the request (``_disconnected``, which it documents as the flag for exactly
    this) before it fires ``notifyFinish``'s errbacks, so it is set by the time Klein cancels the
    handler.
    """
    return bool(getattr(request, "_disconnected", False))


def json_bytes(value: Any) -> bytes:
    """Serialise a response body."""
    return response_bytes(value)


class Router:
    """One Klein app plus the table of every mounted route."""

    def __init__(self, authenticator: Optional[Authenticator] = None,
                 observer: Optional[RequestObserver] = None) -> None:
        from klein import Klein  # imported here: klein installs the default reactor at import

        self.app = Klein()
        # werkzeug answers "//" in a path with a 308 whose Location is built from the Host header
        # (issue 16, F17): such paths are simply not found.
        self.app.url_map.merge_slashes = False
        self.authenticator = authenticator
        self.observer = observer
        self.routes: list[MountedRoute] = []
        self._validators: dict[int, Draft202012Validator] = {}
        self._fast: dict[int, Any] = {}
        self._install_fallbacks()

    # --- registration ----------------------------------------------------------------
    def mount(self, prefix: str, area: object) -> None:
        """Register every ``@route`` method of ``area`` under ``prefix``."""
        for attr in dir(type(area)):
            fn = getattr(type(area), attr, None)
            for spec in getattr(fn, _ROUTE_ATTR, ()):
                self.add_route(prefix, spec, getattr(area, attr), f"{type(area).__name__}.{attr}")

    def add_route(self, prefix: str, spec: RouteSpec, handler: Callable[..., Awaitable[Any]], name: str) -> None:
        """Serve ``handler`` for ``spec`` under ``prefix`` (routes built at run time, e.g. each kind's ingest)."""
        full_path = (prefix.rstrip("/") + spec.path) if spec.path != "/" or not prefix else prefix
        mounted = MountedRoute(full_path or "/", spec, name)
        self.routes.append(mounted)
        if spec.body_schema is not None:
            Draft202012Validator.check_schema(spec.body_schema)
            self._validators[id(spec)] = Draft202012Validator(spec.body_schema)
            self._fast[id(spec)] = fast_validator(spec.body_schema)

        async def endpoint(request: IRequest, **kwargs: Any) -> bytes:
            return await self._dispatch(request, mounted, handler, kwargs)

        endpoint.__name__ = f"{name}:{spec.method}:{full_path}"
        self.app.route(full_path, methods=[spec.method], endpoint=endpoint.__name__,
                       strict_slashes=False)(endpoint)

    def _install_fallbacks(self) -> None:
        from werkzeug.exceptions import MethodNotAllowed, NotFound

        @self.app.handle_errors(NotFound)
        def not_found(request: IRequest, failure: Any) -> bytes:
            return self._error_response(request, None, None,
                                        ApiError(404, "not_found", "no such endpoint"))

        @self.app.handle_errors(MethodNotAllowed)
        def not_allowed(request: IRequest, failure: Any) -> bytes:
            allowed = getattr(failure.value, "valid_methods", None) or []
            err = ApiError(405, "method_not_allowed", "this endpoint does not accept this method",
                           {"allowed": sorted(allowed)}, headers={"Allow": ", ".join(sorted(allowed))})
            return self._error_response(request, None, None, err)

    def resource(self) -> Any:
        """The twisted.web resource serving every mounted route."""
        return self.app.resource()

    # --- dispatch --------------------------------------------------------------------
    async def _dispatch(self, request: IRequest, mounted: MountedRoute,
                        handler: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]) -> bytes:
        spec = mounted.spec
        principal: Optional[Principal] = None
        started = time.monotonic()
        request.setHeader(b"Cache-Control", b"no-store")
        try:
            getattr(request, "check_body_limit", lambda: None)()
            if any(isinstance(v, str) and "\x00" in v for v in kwargs.values()):
                # PostgreSQL text cannot hold NUL: refuse here instead of failing in the driver.
                raise ApiError(400, "bad_request", "path parameters may not contain NUL characters")
            if not spec.public:
                principal = await self._authenticate(request)
                self._authorise(principal, spec, kwargs)
            body = self._read_body(request, spec)
            result = await handler(Call(request, principal, body, mounted), **kwargs)
            payload = self._success_response(request, spec, result)
            self._observe(request, mounted, principal, None, started)
            return payload
        except ApiError as e:
            return self._error_response(request, mounted, principal, e, started)
        except CancelledError:
            if not client_gone(request):
                # Not a hang-up: something cancelled a Deferred nobody turned into an answer (a bug).
                return self._internal_error(request, mounted, principal, started)
            # Klein cancels the handler when the client hangs up. Nobody is left to answer, and a
            # hang-up is not a server error: let the cancellation end Klein's Deferred.
            log.debug("Client hung up during {route} (request {request_id}) after {seconds:.3f} s",
                      route=mounted.name, request_id=getattr(request, "request_id", None),
                      seconds=time.monotonic() - started)
            raise
        except Exception as e:  # noqa: BLE001 - the one place unknown errors become 500
            mapped = self._map_exception(e)
            if mapped is None:
                return self._internal_error(request, mounted, principal, started)
            return self._error_response(request, mounted, principal, mapped, started)

    def _internal_error(self, request: IRequest, mounted: MountedRoute, principal: Optional[Principal],
                        started: float) -> bytes:
        """Log the exception being handled with its traceback and answer the generic JSON 500."""
        log.failure("Unhandled error in {route}", route=mounted.name)
        error = ApiError(500, "internal_error", "an internal error occurred; it has been logged",
                         {"request_id": getattr(request, "request_id", None)})
        return self._error_response(request, mounted, principal, error, started)

    async def _authenticate(self, request: IRequest) -> Principal:
        if self.authenticator is None:
            raise ApiError(401, "unauthenticated", "authentication is not configured")
        return await self.authenticator.authenticate(request)

    @staticmethod
    def _authorise(principal: Principal, spec: RouteSpec, kwargs: dict[str, Any]) -> None:
        assert spec.roles is not None
        if principal.role in spec.roles:
            return
        if spec.self_allowed and kwargs.get("uid") == principal.uid:
            return
        raise ApiError(403, "forbidden", f"the {principal.role} role may not use this endpoint")

    def _read_body(self, request: IRequest, spec: RouteSpec) -> Any:
        if spec.raw_body or spec.method in ("GET", "DELETE", "HEAD") and spec.body_schema is None:
            return None
        if spec.body_schema is None:
            return None
        content = request.content
        size = len(content.getvalue()) if content is not None and hasattr(content, "getvalue") else None
        if not spec.body_required and not size:
            return None
        ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if ctype and ctype != b"application/json" and not ctype.endswith(b"+json"):
            raise ApiError(415, "unsupported_media_type", "the request body must be application/json",
                           {"content_type": ctype.decode("latin-1")})
        body = decode_json_body(request)
        fast = self._fast.get(id(spec))
        if fast is not None and fast.is_valid(body):
            return body
        errors = schema_errors(self._validators[id(spec)], body)
        if errors:
            raise ApiError(400, "validation_failed", "the request body does not match the schema",
                           {"errors": errors})
        return body

    @staticmethod
    def _map_exception(e: Exception) -> Optional[ApiError]:
        from dhis2gw.queue.connection import RedisUnavailable
        from dhis2gw.storage.database import DatabaseUnavailable

        if isinstance(e, DatabaseUnavailable):
            return unavailable("the database is unavailable; try again shortly", 5, "database_unavailable")
        if isinstance(e, RedisUnavailable):
            return unavailable("the queue is unavailable; try again shortly", 5, "queue_unavailable")
        return None

    def _success_response(self, request: IRequest, spec: RouteSpec, result: Any) -> bytes:
        if isinstance(result, Response):
            request.setResponseCode(result.status or spec.status)
            for k, v in result.headers.items():
                request.setHeader(k.encode(), v.encode())
            if result.raw is not None:
                request.setHeader(b"Content-Type", (result.content_type or "application/octet-stream").encode())
                return result.raw
            request.setHeader(b"Content-Type", (result.content_type or "application/json").encode())
            return json_bytes(result.body)
        request.setResponseCode(spec.status)
        request.setHeader(b"Content-Type", b"application/json")
        return json_bytes(result)

    def _error_response(self, request: IRequest, mounted: Optional[MountedRoute], principal: Optional[Principal],
                        error: ApiError, started: Optional[float] = None) -> bytes:
        request.setResponseCode(error.status)
        request.setHeader(b"Content-Type", b"application/json")
        for k, v in error.headers.items():
            request.setHeader(k.encode(), v.encode())
        request.error_code = error.code  # type: ignore[attr-defined]
        self._observe(request, mounted, principal, error.code, started)
        return json_bytes(error.envelope())

    def _observe(self, request: IRequest, mounted: Optional[MountedRoute], principal: Optional[Principal],
                 error_code: Optional[str], started: Optional[float]) -> None:
        request.principal = principal  # type: ignore[attr-defined]
        request.route = mounted  # type: ignore[attr-defined]
        request.error_code = error_code  # type: ignore[attr-defined]
