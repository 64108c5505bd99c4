"""Example plugin: a new submission kind — single events of a program WITHOUT registration.

Copy this file to start your own kind (see docs/writing-a-plugin.md). Once it is in the plugins
directory (``server.plugins_directory``), the gateway serves::

    POST /api/v2/submissions/event          (roles: admin, submitter; body below)
    {"program": "vmOQjAdnOpO", "programStage": "bsyk5Moo0gj", "orgUnit": "ty5AJ6ZU5f7",
     "occurredAt": "2025-06-01", "status": "COMPLETED",
     "dataValues": {"wS7PxX89ein": true, "vI5X6JMify6": 3},
     "event": "optional client-chosen UID", "destination": "optional server name"}

and delivers each one to DHIS2 as ``POST /api/tracker`` ``{"events": [ … ]}``.

What it needs from the gateway it takes in ``setup(context)`` from the ``PluginContext`` (here
only the clock: "today" is ``context.reactor.seconds()``, never ``time.time()``, so tests drive
it with a ``task.Clock``).

The three rules every kind keeps:

1. ``prepare`` checks what the JSON schema cannot and raises ``KindError`` (400/422) for input
   DHIS2 would refuse anyway (here: keys that are not UIDs, a date that does not exist or lies in
   the future); what it returns is stored and never recomputed.
2. Retries must be idempotent: the event UID is fixed at ingest (``generate_uid``) and the import
   uses CREATE_AND_UPDATE, so a retry after a lost reply updates the same event.
3. ``deliver`` only talks to DHIS2 through the ``client`` it is given and returns its ``Outcome``
   unchanged: the engine decides about retries and the circuit breaker.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.plugin import IPlugin
from zope.interface import implementer

from dhis2gw.dhis2.uids import generate_uid, is_valid_uid
from dhis2gw.interfaces import IngestRequest, ISubmissionKind, KindError, Prepared
from dhis2gw.wiring.context import PluginContext

UID = {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9]{10}$"}

EVENT_SCHEMA: dict[str, Any] = {
    "title": "Single event (program without registration)",
    "type": "object",
    "required": ["program", "programStage", "orgUnit", "occurredAt", "dataValues"],
    "properties": {
        "program": UID,
        "programStage": UID,
        "orgUnit": UID,
        "event": UID,
        "occurredAt": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}"},
        "status": {"enum": ["ACTIVE", "COMPLETED"]},
        "dataValues": {"type": "object", "minProperties": 1, "maxProperties": 500,
                       "additionalProperties": {"type": ["string", "number", "boolean"]}},
        "destination": {"type": "string", "pattern": "^[a-z0-9_-]+$"},
        "callback_url": {"type": "string"},
    },
    "additionalProperties": False,
}


def value_text(value: Any) -> str:
    """A data value as DHIS2 expects it: text, booleans as true/false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@implementer(IPlugin, ISubmissionKind)
class SingleEventKind:
    """Single events without registration (see the module docstring)."""

    name = "event"
    endpoint = "/submissions/event"
    request_schema = EVENT_SCHEMA

    def __init__(self) -> None:
        self.clock: IReactorTime | None = None

    def setup(self, context: PluginContext) -> None:
        """Called once by the plugin loader: keep what ``prepare`` needs from the context."""
        self.clock = context.reactor

    def _occurred_on(self, text: str) -> date:
        """The event date: 400 when it does not exist, 422 when it is after today (UTC)."""
        try:
            day = date.fromisoformat(text[:10])
        except ValueError:
            raise KindError(400, "validation_failed", "occurredAt is not a date",
                            {"errors": [{"field": "occurredAt", "message": f"{text!r} is not a date"}]}) from None
        assert self.clock is not None, "setup(context) is called before the kind is used"
        today = datetime.fromtimestamp(self.clock.seconds(), tz=UTC).date()
        if day > today + timedelta(days=1):  # a day of slack for time zones east of UTC
            raise KindError(422, "validation_failed", "occurredAt is in the future",
                            {"errors": [{"field": "occurredAt", "message": f"{text} is after {today}"}]})
        return day

    async def prepare(self, request: IngestRequest) -> Prepared:
        """Build the tracker payload; 400 for data element keys that are not UIDs or a date that
        does not exist, 422 for a date in the future."""
        body = request.body
        bad = [key for key in body["dataValues"] if not is_valid_uid(key)]
        if bad:
            raise KindError(400, "validation_failed", "dataValues keys must be data element UIDs",
                            {"errors": [{"field": f"dataValues/{key}", "message": "not a DHIS2 UID"}
                                        for key in bad]})
        self._occurred_on(body["occurredAt"])
        event = {
            "event": body.get("event") or generate_uid(),
            "program": body["program"],
            "programStage": body["programStage"],
            "orgUnit": body["orgUnit"],
            "occurredAt": body["occurredAt"],
            "status": body.get("status", "COMPLETED"),
            "dataValues": [{"dataElement": de, "value": value_text(v)} for de, v in body["dataValues"].items()],
        }
        return Prepared(dhis2_payload={"events": [event]},
                        import_params={"importStrategy": "CREATE_AND_UPDATE", "atomicMode": "ALL"},
                        value_count=len(event["dataValues"]), destination=body.get("destination"),
                        response_extra={"event": event["event"]})

    async def deliver(self, client: Any, submission: dict[str, Any], context: Any) -> Any:
        """``POST /api/tracker`` (synchronous import) with the stored payload."""
        return await client.post_tracker(submission["dhis2_payload"], submission.get("import_params") or {})


#: The object ``getPlugins`` finds: a module-level instance providing IPlugin and ISubmissionKind.
single_event = SingleEventKind()
