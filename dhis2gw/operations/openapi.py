"""Build the OpenAPI 3.1 document from the router's route table (one source of truth).

Every ``MountedRoute`` carries the ``RouteSpec`` the router dispatches with: method, path, roles,
body schema (the very schema that validates requests), status, query parameters, extra
responses and the response schema. Klein path converters become OpenAPI path parameters
(``<int:id>`` → ``{id}`` integer, ``<x>`` → string). Every error answer is documented with the
JSON envelope schema; routes tagged ``ui`` (HTML pages, static files) are left out.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

from dhis2gw import __version__

_CONVERTER = re.compile(r"<(?:(?P<conv>[a-z]+):)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)>")
HIDDEN_TAGS = frozenset({"ui"})

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
    }},
    "example": {"error": {"code": "not_found", "message": "submission not found"}},
}

SECURITY_SCHEMES: dict[str, Any] = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "Access token from POST /api/v2/users/getToken (rotate with /users/refreshToken)."},
    "basicAuth": {"type": "http", "scheme": "basic", "description": "Username and password."},
    "tokenAuth": {"type": "apiKey", "in": "header", "name": "Authorization",
                  "description": "An API token: `Authorization: Token <token>`."},
}

_DEFAULT_TEXT = {
    400: "Bad request: invalid JSON, a body that does not match the schema, or a bad parameter",
    401: "Missing or invalid credentials", 403: "The caller's role may not use this endpoint",
    404: "Not found", 405: "Method not allowed", 409: "Conflict", 413: "Request body too large",
    415: "The body must be application/json", 422: "Unprocessable content", 429: "Too many attempts",
    500: "Internal error (logged with the request id)",
    503: "PostgreSQL or Redis unavailable; retry after Retry-After seconds",
}


def openapi_path(klein_path: str) -> tuple[str, list[dict[str, Any]]]:
    """The OpenAPI path template and path parameters of a Klein path."""
    params: list[dict[str, Any]] = []

    def repl(m: re.Match[str]) -> str:
        conv, name = m.group("conv"), m.group("name")
        schema: dict[str, Any] = {"type": "integer"} if conv == "int" else (
            {"type": "number"} if conv == "float" else {"type": "string"})
        if conv not in ("int", "float", "path"):
            schema["pattern"] = "^[^/]+$"
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _CONVERTER.sub(repl, klein_path), params


def _strip_examples(schema: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """The schema without its top-level ``examples`` (moved to the media type) and those examples."""
    out = copy.deepcopy(schema)
    examples = out.pop("examples", None) or []
    return out, list(examples)


def _media(schema: dict[str, Any] | None, content_type: str = "application/json") -> dict[str, Any]:
    if schema is None:
        return {content_type: {"schema": {}}}
    clean, examples = _strip_examples(schema)
    media: dict[str, Any] = {"schema": clean}
    if examples:
        media["examples"] = {f"example{i + 1}": {"value": v} for i, v in enumerate(examples)}
    return {content_type: media}


def operation(mounted: Any) -> tuple[str, str, dict[str, Any]]:
    """(path, method, operation object) of one mounted route."""
    spec = mounted.spec
    path, path_params = openapi_path(mounted.full_path)
    op: dict[str, Any] = {"operationId": re.sub(r"[^A-Za-z0-9_]", "_", f"{mounted.name}_{spec.method}_{path}")}
    if spec.summary:
        op["summary"] = spec.summary
    description = spec.description or ""
    if not spec.public:
        description = (description + "\n\n" if description else "") + f"Roles: {', '.join(sorted(spec.roles))}."
    if description:
        op["description"] = description
    op["tags"] = list(spec.tags) or ["other"]
    if spec.deprecated:
        op["deprecated"] = True
    parameters = list(path_params)
    for p in spec.query:
        p = dict(p)
        p.setdefault("schema", {"type": "string"})
        parameters.append(p)
    if parameters:
        op["parameters"] = parameters
    errors: set[int] = {500}
    if spec.public:
        op["security"] = []
    else:
        op["security"] = [{"bearerAuth": []}, {"basicAuth": []}, {"tokenAuth": []}]
        op["x-roles"] = sorted(spec.roles)
        errors |= {401, 403, 429, 503}
    if len(parameters) > len(path_params) or path_params:
        errors |= {400, 404}
    if path_params:
        errors.add(405)  # a value the converter refuses can fall through to a sibling route's method
    if spec.raw_body:
        op["requestBody"] = {"required": True, "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": {"type": "string", "format": "binary"}}}}}}
        errors |= {400, 413, 415}
    elif spec.body_schema is not None:
        op["requestBody"] = {"required": spec.body_required, "content": _media(spec.body_schema)}
        errors |= {400, 413, 415}
    responses: dict[str, Any] = {}
    ok = {"description": spec.responses.get(spec.status, "Success")}
    if spec.response_schema is not None:
        # A non-JSON answer declares its media type with JSON Schema's own `contentMediaType`.
        media_type = spec.response_schema.get("contentMediaType", "application/json")
        ok["content"] = _media(spec.response_schema, media_type)
    elif not any(200 <= c < 300 and c != spec.status for c in spec.responses):
        ok["content"] = {"application/json": {"schema": {}}}
    responses[str(spec.status)] = ok
    for code, text in spec.responses.items():
        if code == spec.status:
            continue
        if 200 <= code < 400:
            entry: dict[str, Any] = {"description": text}
            if spec.response_schema is not None:
                entry["content"] = _media(spec.response_schema)
            responses[str(code)] = entry
        else:
            errors.add(code)
            responses[str(code)] = {"description": text, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for code in sorted(errors):
        responses.setdefault(str(code), {"description": _DEFAULT_TEXT.get(code, "Error"), "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
    op["responses"] = dict(sorted(responses.items()))
    return path, spec.method.lower(), op


def build_document(routes: Iterable[Any], title: str = "dhis2gw", server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    tags: set[str] = set()
    for mounted in routes:
        if HIDDEN_TAGS & set(mounted.spec.tags):
            continue
        path, method, op = operation(mounted)
        if method in paths.get(path, {}):
            continue  # the same path declared twice (e.g. trailing-slash twins): first wins
        paths.setdefault(path, {})[method] = op
        tags.update(op["tags"])
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": __version__,
                 "description": "Gateway delivering aggregate and tracker data to DHIS2. Errors are always"
                                " `{\"error\": {\"code\", \"message\", \"details\"}}`."},
        "servers": [{"url": server_url}],
        "tags": [{"name": t} for t in sorted(tags)],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": {"Error": ERROR_SCHEMA}, "securitySchemes": SECURITY_SCHEMES},
    }
