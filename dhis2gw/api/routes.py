"""Route declarations: what a route is, who may call it, and what its handler is given.

API areas are small classes whose handler methods carry a ``@route(...)`` declaration::

    class UsersApi:
        @route("GET", "/users/<uid>", roles=ADMIN, summary="Get one user")
        async def get_user(self, call: Call, uid: str) -> dict: ...

``route`` only records a ``RouteSpec`` on the method; ``dhis2gw.api.routing.Router`` serves it.
A handler gets a ``Call`` (the request, the authenticated principal, the validated body) and
returns a JSON-able value or a ``Response``.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from twisted.web.iweb import IRequest

from dhis2gw.auth.principal import Principal
from dhis2gw.errors import ApiError

ADMIN = frozenset({"admin"})
OPERATOR = frozenset({"admin", "operator"})
ANY_USER = frozenset({"admin", "operator", "submitter"})

#: The attribute ``route`` sets on a handler: the tuple of its ``RouteSpec``s.
ROUTE_ATTR = "__dhis2gw_route__"


@dataclass(frozen=True)
class RouteSpec:
    """What a route is: method, path, who may call it, what body it takes."""

    method: str
    path: str
    roles: frozenset[str] | None  # None: public, no authentication
    summary: str = ""
    description: str = ""
    body_schema: dict[str, Any] | None = None
    body_required: bool = True
    raw_body: bool = False  # handler reads request.content itself (uploads)
    status: int = 200
    tags: tuple[str, ...] = ()
    query: tuple[dict[str, Any], ...] = ()  # OpenAPI parameter objects
    responses: dict[int, str] = field(default_factory=dict)
    response_schema: dict[str, Any] | None = None
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


def route(method: str, path: str, *, roles: Iterable[str] | None = ANY_USER, public: bool = False,
          **kwargs: Any) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Declare a handler method as a route (see module docstring)."""
    spec = RouteSpec(method=method.upper(), path=path, roles=None if public else frozenset(roles or ()),
                     **kwargs)

    def decorate(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        specs = list(getattr(fn, ROUTE_ATTR, ()))
        specs.append(spec)
        setattr(fn, ROUTE_ATTR, tuple(specs))
        return fn

    return decorate


class Authenticator(Protocol):
    """Turns a request's credentials into a Principal or raises ApiError(401/429)."""

    async def authenticate(self, request: IRequest) -> Principal:
        """Authenticate ``request``."""


class RequestObserver(Protocol):
    """Told about every finished request (request log, metrics)."""

    def request_finished(self, request: IRequest, route: MountedRoute | None, principal: Principal | None,
                         status: int, error_code: str | None, duration: float) -> None:
        """Record one request."""


@dataclass
class Response:
    """A non-default answer: another status, extra headers, or a raw body."""

    body: Any = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    raw: bytes | None = None


@dataclass
class Call:
    """What a handler gets besides its path arguments."""

    request: IRequest
    principal: Principal | None
    body: Any
    route: MountedRoute

    def arg(self, name: str, default: str | None = None) -> str | None:
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
