"""The router: one Klein app serving every declared route, with auth, body checks and error mapping.

Routes are declared with ``@route(...)`` on the handler methods of small API classes
(``dhis2gw.api.routes``); ``Router.mount(prefix, area)`` registers every declared method of
``area`` on one Klein app. The wrapper around each handler, in this order: gives the request an
id, authenticates (unless the route is public), checks the role, checks Content-Type and parses
+ validates the JSON body against the route's schema (``dhis2gw.api.bodies``), calls the
handler, and turns the result or any exception into JSON. Because everything is declared, the
route table also feeds the OpenAPI document and the authorisation test that walks every route.

The declarations and body helpers the API areas use are importable from here as well
(``from dhis2gw.api.routing import Call, Response, route, OPERATOR``).
"""
from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from jsonschema import Draft202012Validator
from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from dhis2gw.api.bodies import decode_json_body, fast_validator, schema_errors
from dhis2gw.api.routes import (
    ADMIN,
    ANY_USER,
    OPERATOR,
    ROUTE_ATTR,
    Authenticator,
    Call,
    MountedRoute,
    RequestObserver,
    Response,
    RouteSpec,
    route,
)
from dhis2gw.auth.principal import Principal
from dhis2gw.errors import ApiError, unavailable
from dhis2gw.jsoncodec import response_bytes

__all__ = ["ADMIN", "ANY_USER", "OPERATOR", "Authenticator", "Call", "MountedRoute", "RequestObserver",
           "Response", "RouteSpec", "Router", "client_gone", "decode_json_body", "fast_validator", "json_bytes",
           "route", "schema_errors"]

log = Logger()


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

    def __init__(self, authenticator: Authenticator | None = None,
                 observer: RequestObserver | None = None) -> None:
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
            for spec in getattr(fn, ROUTE_ATTR, ()):
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
        principal: Principal | None = None
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

    def _internal_error(self, request: IRequest, mounted: MountedRoute, principal: Principal | None,
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
    def _map_exception(e: Exception) -> ApiError | None:
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

    def _error_response(self, request: IRequest, mounted: MountedRoute | None, principal: Principal | None,
                        error: ApiError, started: float | None = None) -> bytes:
        request.setResponseCode(error.status)
        request.setHeader(b"Content-Type", b"application/json")
        for k, v in error.headers.items():
            request.setHeader(k.encode(), v.encode())
        request.error_code = error.code  # type: ignore[attr-defined]
        self._observe(request, mounted, principal, error.code, started)
        return json_bytes(error.envelope())

    def _observe(self, request: IRequest, mounted: MountedRoute | None, principal: Principal | None,
                 error_code: str | None, started: float | None) -> None:
        request.principal = principal  # type: ignore[attr-defined]
        request.route = mounted  # type: ignore[attr-defined]
        request.error_code = error_code  # type: ignore[attr-defined]
