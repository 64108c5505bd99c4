"""``POST /api/v2/tracker``: tracker submissions on the shared ingest path (dhis2gw.kinds.tracker)."""
from __future__ import annotations

from typing import Any

from dhis2gw.api.routing import Call, Response, route
from dhis2gw.api.submissions import SUBMITTERS
from dhis2gw.kinds.tracker_schema import ACCEPTED_SCHEMA, QUERY_PARAMETERS, REQUEST_SCHEMA, SOURCE_ID_ATTRIBUTE
from dhis2gw.kinds.tracker_uids import uid_listing


class TrackerApi:
    """``POST /api/v2/tracker`` on top of the shared ingest path."""

    def __init__(self, ingest: Any) -> None:
        """``ingest``: an object with ``async ingest(kind_name, call)`` (dhis2gw.api.submissions.IngestApi)."""
        self.ingest = ingest

    @route("POST", "/tracker", roles=SUBMITTERS, body_schema=REQUEST_SCHEMA, status=202, log_body=False,
           summary="Submit tracker data (tracked entities, enrollments, events, relationships)",
           description="Flat or nested DHIS2 tracker payload; import options as query parameters. "
                       "Objects without a UID get one now; `uids` maps each object's `reference` "
                       "(or its JSON path) to its UID.",
           tags=("submissions",), query=QUERY_PARAMETERS, response_schema=ACCEPTED_SCHEMA,
           responses={200: "idempotent repeat: the first submission", 400: "invalid body or import options",
                      409: "Idempotency-Key reused with another body",
                      422: "duplicate or unresolvable references"})
    async def post_tracker(self, call: Call) -> Response:
        """Accept a tracker submission (202 with the UIDs)."""
        response = await self.ingest.ingest("tracker", call)
        if response.status == 200 and isinstance(response.body, dict) and "submission_id" in response.body:
            # An Idempotency-Key repeat: prepare ran again and drew fresh UIDs for objects without
            # a reference; answer the UIDs of the submission actually stored.
            row = await self.ingest.store.get(response.body["submission_id"])
            if row is not None and row.get("dhis2_payload"):
                response.body["uids"] = uid_listing(row["payload"], row["dhis2_payload"],
                                                    call.arg(SOURCE_ID_ATTRIBUTE))
                response.body["payload"] = row["dhis2_payload"]
        return response
