"""Ingest and status endpoints: ``POST /<endpoint>`` of every kind that has one (``/aggregate``,
``/tracker``, plugins' kinds: `IngestApi.kind_routes`), ``POST /submissions/<kind>``,
``GET /submissions/<id>``.

Ingest order (DESIGN.md §4): validate → prepare (mapping, checks) → commit the row in
PostgreSQL → push the id to Redis with a short timeout. If Redis does not answer, the answer is
still 202: the row is ``queued`` and the reconciler pushes it later. If PostgreSQL is down the
answer is 503 + Retry-After and nothing was accepted.

``Idempotency-Key``: the same key with the same body returns the first submission (200); with
another body it is a 409.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.logger import Logger

from dhis2gw.api.routing import ANY_USER, Call, Response, RouteSpec, route
from dhis2gw.dhis2.uids import generate_uid
from dhis2gw.errors import ApiError, not_found
from dhis2gw.interfaces import IngestDoc, IngestRequest, KindError
from dhis2gw.queue.connection import RedisUnavailable
from dhis2gw.queue.feed import SubmissionQueue
from dhis2gw.storage.submissions import IdempotencyConflict, NewSubmission, SubmissionStore

SUBMITTERS = frozenset({"admin", "submitter"})
#: Kinds whose recorded answer (response, error, event details) a submitter does not see.
OPERATOR_ONLY_ANSWERS = frozenset({"callback"})
_IDEMPOTENCY_MAX = 200

IDEMPOTENCY_HEADER = {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"},
                      "description": "a repeat with the same key and body answers the first submission (200)"}
INGEST_RESPONSES = {200: "idempotent repeat: the first submission", 409: "Idempotency-Key reused with another body"}
SUBMISSION_ACCEPTED = {
    "type": "object",
    "properties": {
        "submission_id": {"type": "integer"}, "uid": {"type": "string"}, "status": {"type": "string"},
        "status_url": {"type": "string"}, "payload": {}, "message": {"type": "string"},
        "task_id": {"type": "string"},
    },
}


def submission_json(row: dict[str, Any]) -> dict[str, Any]:
    """A submission row as the API shows it (plain JSON values only)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in ("lease_owner", "request_hash"):
            continue
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        out[key] = value
    return out


class IngestApi:
    """Accepts submissions of every loaded kind and reports on them."""

    log = Logger()

    def __init__(self, kinds: dict[str, Any], store: SubmissionStore, queue: SubmissionQueue,
                 destinations: dict[str, Any], wake: Any = None, enqueue_timeout: float = 0.5,
                 base_path: str = "/api/v2", scope: Any = None, body_checks: Any = ()) -> None:
        self.kinds = kinds
        #: ``check(principal, body)`` callables run before ``prepare``; they raise ApiError to refuse
        #: (plugins add theirs to ``PluginContext.ingest_checks``, e.g. the callback URL policy).
        self.body_checks = list(body_checks)
        #: ``dhis2gw.api.scoping.SubmitterScope``: org units, data sets and delete permission (None: no checks).
        self.scope = scope
        self.store = store
        self.queue = queue
        self.destinations = destinations  # name -> ServerEntry (for instance_name)
        self.wake = wake
        self.enqueue_timeout = enqueue_timeout
        self.base_path = base_path

    def kind_routes(self) -> list[tuple[RouteSpec, Callable[..., Awaitable[Response]], str]]:
        """``POST /api/v2<endpoint>`` of every kind that declares an endpoint and a request schema
        (aggregate, tracker, plugins' kinds): one route each, documented by the kind's ``ingest_doc``,
        all on the one ingest path. Mounted by the route table (dhis2gw.api.table)."""
        routes: list[tuple[RouteSpec, Callable[..., Awaitable[Response]], str]] = []
        for name, kind in sorted(self.kinds.items()):
            endpoint, schema = getattr(kind, "endpoint", None), getattr(kind, "request_schema", None)
            if not endpoint or schema is None:
                continue
            doc = getattr(kind, "ingest_doc", None) or IngestDoc(summary=f"Submit {name} data")
            spec = RouteSpec("POST", endpoint, roles=SUBMITTERS, body_schema=schema, status=202, log_body=False,
                             summary=doc.summary, description=doc.description, tags=("submissions",),
                             query=(IDEMPOTENCY_HEADER, *doc.query), responses={**INGEST_RESPONSES, **doc.responses},
                             response_schema=doc.response_schema or SUBMISSION_ACCEPTED)

            async def post(call: Call, kind_name: str = name) -> Response:
                return await self.ingest(kind_name, call)

            routes.append((spec, post, f"IngestApi.post_{name}"))
        return routes

    @route("POST", "/submissions/<kind>", roles=SUBMITTERS, body_schema={"type": "object"}, status=202,
           log_body=False,
           summary="Submit data of any loaded kind (plugins)", tags=("submissions",))
    async def post_kind(self, call: Call, kind: str) -> Response:
        if kind not in self.kinds or getattr(self.kinds[kind], "request_schema", None) is None:
            raise ApiError(404, "unknown_kind", f"no submission kind named {kind!r}", {"kinds": sorted(self.kinds)})
        schema_errors = self._validate(kind, call.body)
        if schema_errors:
            raise ApiError(400, "validation_failed", "the request body does not match the schema",
                           {"errors": schema_errors})
        return await self.ingest(kind, call)

    def _validate(self, kind: str, body: Any) -> list[dict[str, str]]:
        from jsonschema import Draft202012Validator

        from dhis2gw.api.routing import schema_errors

        return schema_errors(Draft202012Validator(self.kinds[kind].request_schema), body)

    async def ingest(self, kind_name: str, call: Call) -> Response:
        """The common ingest path for every kind."""
        principal = call.require_principal()
        kind = self.kinds[kind_name]
        key = call.request.getHeader(b"idempotency-key")
        key = key.decode("utf-8", "replace").strip() if isinstance(key, bytes) else key
        if key is not None and not 0 < len(key) <= _IDEMPOTENCY_MAX:
            raise ApiError(400, "invalid_idempotency_key",
                           f"Idempotency-Key must be 1 to {_IDEMPOTENCY_MAX} characters")
        if isinstance(call.body, dict) and "callback_url" in call.body and not principal.callback_allowed:
            # A callback is a request the gateway makes on the caller's behalf (issue 16, F1).
            raise ApiError(403, "callback_not_allowed", "this user may not name a callback_url;"
                           " an administrator can allow it (callback_allowed)", {"field": "callback_url"})
        for check in self.body_checks:
            check(principal, call.body)
        destination = (call.body.get("destination") if isinstance(call.body, dict) else None) or "main"
        entry = self.destinations.get(destination)
        if entry is None:
            raise ApiError(422, "unknown_destination", f"no DHIS2 destination named {destination!r} is configured",
                           {"field": "destination", "known": sorted(self.destinations)})
        query = {k.decode(): v[0].decode("utf-8", "replace") for k, v in call.request.args.items() if v}
        if self.scope is not None:
            # Permission before validation: what the body names as sent (native data value sets,
            # tracker payloads) and the query's options; the prepared payload is checked again below.
            body = call.body if isinstance(call.body, dict) else {}
            await self.scope.check(principal, {} if isinstance(body.get("dataValues"), dict) else body, query)
        try:
            prepared = await kind.prepare(IngestRequest(call.body, principal.user_id, principal.source_name,
                                                        destination, entry.instance_name, query))
        except KindError as e:
            raise ApiError(e.status, e.code, e.message, e.details) from None
        destination = prepared.destination or destination
        if self.scope is not None:
            await self.scope.check(principal, prepared.dhis2_payload, prepared.import_params)
        if query.get("validate_only", "").lower() in ("true", "1", "yes"):
            # ?validate_only=true: the kind's verdict (mapping + pre-validation), nothing recorded or queued.
            return Response({"valid": True, "queued": False, "destination": destination,
                             "value_count": prepared.value_count, "payload": prepared.dhis2_payload,
                             **prepared.response_extra}, status=200)
        new = NewSubmission(uid=generate_uid(), kind=kind_name, destination=destination,
                            submitter_id=principal.user_id, endpoint=call.route.full_path, payload=call.body,
                            dhis2_payload=prepared.dhis2_payload, import_params=prepared.import_params,
                            value_count=prepared.value_count, idempotency_key=key,
                            request_id=getattr(call.request, "request_id", None))
        try:
            created = await self.store.create(new)
        except IdempotencyConflict as e:
            raise ApiError(409, "idempotency_key_reused",
                           "this Idempotency-Key was already used with a different body",
                           {"submission_id": e.existing_id}) from None
        row = created.row
        if not created.existing:
            await self._push(destination, row["id"])
        body = self._accepted(row, prepared.dhis2_payload if not created.existing else None, prepared.response_extra)
        if created.existing:
            body["message"] = "Idempotent repeat: this is the submission first made with this Idempotency-Key"
            repeat_answer = getattr(kind, "repeat_answer", None)
            if repeat_answer is not None:
                stored = await self.store.get(row["id"])
                body.update(await repeat_answer(stored or row, query))
            return Response(body, status=200)
        return Response(body, status=202, headers={"Location": body["status_url"]})

    async def _push(self, destination: str, submission_id: int) -> None:
        try:
            await self.queue.enqueue(destination, submission_id, timeout=self.enqueue_timeout)
        except RedisUnavailable as e:
            self.log.warn("Submission {sid} recorded but not pushed ({error}); the reconciler will queue it",
                          sid=submission_id, error=e)
            return
        if self.wake is not None:
            self.wake(destination)

    def _accepted(self, row: dict[str, Any], payload: Any | None, extra: dict[str, Any]) -> dict[str, Any]:
        status_url = f"{self.base_path}/submissions/{row['id']}"
        body: dict[str, Any] = {
            "submission_id": row["id"], "uid": row["uid"], "status": row["status"], "status_url": status_url,
            "destination": row["destination"], "value_count": row["value_count"],
            "message": "Aggregate request queued for processing" if row["kind"] == "aggregate"
            else f"{row['kind'].capitalize()} request queued for processing",
            "task_id": str(row["id"]),
        }
        if payload is not None:
            body["payload"] = payload
        body.update(extra)
        return body

    @route("GET", "/submissions/<int:submission_id>", roles=ANY_USER, summary="One submission with its events",
           tags=("submissions",), responses={404: "no such submission (or not yours)"})
    async def get_submission(self, call: Call, submission_id: int) -> dict[str, Any]:
        principal = call.require_principal()
        row = await self.store.get(submission_id)
        if row is None or (principal.role == "submitter" and row["submitter_id"] != principal.user_id):
            raise not_found("submission")
        out = submission_json(row)
        out["events"] = [submission_json(e) for e in await self.store.events(submission_id)]
        if principal.role == "submitter" and row.get("kind") in OPERATOR_ONLY_ANSWERS:
            # What a receiver the submitter chose answered is for operators (issue 16, F1): it
            # would otherwise read back internal services through the gateway.
            for key in ("response", "error", "conflicts"):
                out.pop(key, None)
            for event in out["events"]:
                event.pop("detail", None)
        return out
