"""System, user, aggregate-import and tracker endpoints of the simulator."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from dhis2gw.sim.aggregate import AggregateImporter
from dhis2gw.sim.context import RequestContext
from dhis2gw.sim.entry_pipeline import DataEntryImporter, ServerFault
from dhis2gw.sim.fields import Selector, parse_fields
from dhis2gw.sim.metadata import Ref
from dhis2gw.sim.tracker import TrackerBadRequest, TrackerImporter
from dhis2gw.sim.uids import new_uid
from dhis2gw.sim.webmessage import SimResponse, error, import_options, web_message, wrap_import_summary

if TYPE_CHECKING:
    from dhis2gw.sim.app import Simulator

JSON_TYPES = ("application/json", "text/json", "application/vnd.api+json")


class CoreApi:
    """Handlers that need the whole simulator (version, store, jobs, clock)."""

    def __init__(self, sim: Simulator) -> None:
        """Keep the simulator."""
        self.sim = sim

    def _stamp(self) -> str:
        now = self.sim.now()
        return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}"

    # -- system ----------------------------------------------------------------------
    def system_info(self, ctx: RequestContext) -> SimResponse:
        """``GET /api/system/info`` (fewer fields for non-superusers)."""
        sim, v = self.sim, self.sim.version
        info: dict[str, Any] = {
            "contextPath": ctx.base_url, "userAgent": ctx.headers.get("user-agent", ""), "calendar": "iso8601",
            "dateFormat": "yyyy-mm-dd", "serverDate": self._stamp(), "serverTimeZoneId": "Etc/UTC",
            "serverTimeZoneDisplayName": "Coordinated Universal Time",
            "lastAnalyticsTableSuccess": "2024-04-10T02:11:53.010",
            "intervalSinceLastAnalyticsTableSuccess": "1 h, 0 m",
            "lastAnalyticsTableRuntime": "9 m, 2 s", "version": v.display,
            "revision": "5im1a7e", "buildTime": "2024-03-21T09:10:22.000",
            "databaseInfo": {"spatialSupport": True}, "encryption": False, "emailConfigured": False,
            "redisEnabled": False, "systemId": "eed3d451-4ff5-4193-b951-ffcc68954299",
            "systemName": sim.metadata.country.get("systemName", "DHIS 2 simulator"),
            "instanceBaseUrl": ctx.base_url, "isMetadataVersionEnabled": True, "isMetadataSyncEnabled": False,
        }
        if ctx.user and "ALL" in ctx.user.get("authorities", []):
            info.update({"environmentVariable": "DHIS2_HOME", "javaVersion": "17.0.10",
                         "javaVendor": "Eclipse Adoptium",
                         "osName": "Linux", "osArchitecture": "amd64", "cpuCores": 2,
                         "databaseInfo": {"type": "PostgreSQL", "name": "dhis2", "user": "dhis",
                                          "spatialSupport": True}})
        fields = ctx.arg("fields")
        if fields and v.minor >= 38:
            wanted = [f.strip() for f in fields.split(",")]
            info = {k: info[k] for k in wanted if k in info}
        return SimResponse.json(200, info)

    def ping(self, ctx: RequestContext) -> SimResponse:
        """``GET /api/system/ping``."""
        return SimResponse(200, b"pong", {"Content-Type": "text/plain;charset=UTF-8"})

    def system_id(self, ctx: RequestContext) -> SimResponse:
        """``GET /api/system/id?limit=N`` (max 10000)."""
        try:
            limit = min(10000, max(1, int(ctx.arg("limit") or 1)))
        except ValueError:
            return error(400, "limit must be a number")
        return SimResponse.json(200, {"codes": [new_uid(self.sim.rng) for _ in range(limit)]})

    def me(self, ctx: RequestContext) -> SimResponse:
        """``GET /api/me`` with field selection."""
        user = ctx.user or {}
        name = f"{user.get('firstName', '')} {user.get('surname', '')}".strip()
        full = {"id": user.get("id"), "username": user.get("username"), "name": name, "displayName": name,
                "firstName": user.get("firstName"), "surname": user.get("surname"),
                "authorities": list(user.get("authorities", [])),
                "organisationUnits": [Ref("organisationUnits", u) for u in user.get("organisationUnits", [])],
                "dataViewOrganisationUnits": [Ref("organisationUnits", u) for u in user.get("organisationUnits", [])],
                "teiSearchOrganisationUnits": [], "userRoles": [], "userGroups": []}
        tree = parse_fields(ctx.arg("fields") or ":all")
        return SimResponse.json(200, Selector(self.sim.metadata).select(full, tree))

    def me_authorization(self, ctx: RequestContext) -> SimResponse:
        """``GET /api/me/authorization/{auth}`` → true|false."""
        from dhis2gw.sim.auth import Authenticator
        return SimResponse.json(200, Authenticator.has_authority(ctx.user or {}, ctx.params["auth"]))

    def tasks(self, ctx: RequestContext) -> SimResponse:
        """``GET /api/system/tasks/{type}/{id}``: notifications, newest first ([] if unknown)."""
        job = self.sim.jobs.get(ctx.params["type"], ctx.params["id"])
        return SimResponse.json(200, job.notifications if job else [])

    def job_configuration(self, ctx: RequestContext) -> SimResponse:
        """``GET /api/jobConfigurations/{id}[?fields=jobStatus,lastExecutedStatus]`` of an ad-hoc import job."""
        found = self.sim.jobs.configuration(ctx.params["id"])
        if found is None:
            return error(404, f"JobConfiguration with id {ctx.params['id']} could not be found.", errorCode="E1005")
        fields = [f.strip() for f in (ctx.arg("fields") or "").split(",") if f.strip() and f.strip() != "*"]
        return SimResponse.json(200, {k: v for k, v in found.items() if k in fields} if fields else found)

    def task_summary(self, ctx: RequestContext) -> SimResponse:
        """``GET /api/system/taskSummaries/{type}/{id}``: bare summary once done."""
        job = self.sim.jobs.get(ctx.params["type"], ctx.params["id"])
        if job and job.done and job.result is not None:
            return SimResponse.json(200, job.result)
        if self.sim.version.minor >= 40:
            return SimResponse(200, b"", {"Content-Type": "application/json;charset=UTF-8"})
        return SimResponse.json(200, None)

    # -- aggregate ---------------------------------------------------------------------
    def _importer(self) -> AggregateImporter:
        sim = self.sim
        if sim.version.data_entry_pipeline:
            return DataEntryImporter(sim.metadata, sim.store, sim.version, sim.now, sim.faults.flush_fails)
        return AggregateImporter(sim.metadata, sim.store, sim.version, sim.now)

    def post_data_value_sets(self, ctx: RequestContext) -> SimResponse:
        """``POST /api/dataValueSets`` (sync, or async job with ``async=true``)."""
        from dhis2gw.sim.auth import Authenticator
        v = self.sim.version
        if not Authenticator.has_authority(ctx.user or {}, "F_DATAVALUE_ADD"):
            return error(403, v.access_denied_message)
        ctype = ctx.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if ctype and ctype not in JSON_TYPES:
            return error(415, f"Content type '{ctype}' not supported (the simulator imports JSON only)")
        query = ctx.flat_query()
        username = (ctx.user or {}).get("username", "")
        if (query.get("async") or "").lower() != "true":
            try:
                summary = self._importer().run(ctx.body, query, username)
            except ServerFault as e:
                return error(500, str(e))
            return wrap_import_summary(v, summary, ctx.api_version)
        body = ctx.body
        job = self.sim.jobs.submit("DATAVALUE_IMPORT", username,
                                   lambda: self._importer().run(body, query, username, async_=True),
                                   self.sim.job_delay)
        endpoint = f"/api/system/tasks/DATAVALUE_IMPORT/{job.id}"
        created = job.created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{job.created.microsecond // 1000:03d}"
        if v.persisted_jobs:
            millis = int(job.created.timestamp() * 1000)
            response: dict[str, Any] = {}
            if v.minor >= 42:
                response["responseType"] = "JobConfiguration"
            opts = self._importer().options(query, None)
            response.update({"name": f"DATAVALUE_IMPORT ({millis})", "id": job.id, "created": created,
                             "jobType": "DATAVALUE_IMPORT", "jobStatus": "NOT_STARTED",
                             "jobParameters": import_options(v, opts, True), "relativeNotifierEndpoint": endpoint})
            message = f"Initiated DATAVALUE_IMPORT ({millis})"
        else:
            response = {"name": "dataValueImport", "id": job.id, "created": created, "jobType": "DATAVALUE_IMPORT",
                        "relativeNotifierEndpoint": endpoint}
            message = "Initiated dataValueImport"
        return SimResponse.json(200, web_message(200, message, "OK", response=response),
                                {"Location": f"{ctx.api_url}/system/tasks/DATAVALUE_IMPORT"})

    def get_data_value_sets(self, ctx: RequestContext) -> SimResponse:
        """``GET /api/dataValueSets?dataSet=&period=&orgUnit=[&children=true&includeDeleted=true]``."""
        md = self.sim.metadata
        found = [md.get("dataSets", d) for d in ctx.args("dataSet")]
        data_sets = [ds for ds in found if ds]
        if not ctx.args("dataSet") or len(data_sets) < len(found):
            return error(409, "At least one valid data set or data element group must be specified",
                         errorCode="E2001")
        des = {e["dataElement"] for ds in data_sets for e in ds["dataSetElements"]}
        units = set(ctx.args("orgUnit"))
        if (ctx.arg("children") or "").lower() == "true":
            units = {d for u in units if u in md.objects["organisationUnits"] for d in md.org_unit_descendants(u)}
        periods = set(ctx.args("period"))
        deleted = (ctx.arg("includeDeleted") or "").lower() == "true"
        values = [{"dataElement": r.dataElement, "period": r.period, "orgUnit": r.orgUnit,
                   "categoryOptionCombo": r.categoryOptionCombo, "attributeOptionCombo": r.attributeOptionCombo,
                   "value": r.value, "storedBy": r.storedBy, "comment": r.comment, "followup": r.followup,
                   **({"deleted": True} if r.deleted else {})}
                  for r in self.sim.store.data_values.values()
                  if r.dataElement in des and r.orgUnit in units and (not periods or r.period in periods)
                  and (deleted or not r.deleted)]
        return SimResponse.json(200, {"dataValues": values})

    # -- tracker -----------------------------------------------------------------------
    def _tracker(self) -> TrackerImporter:
        sim = self.sim
        return TrackerImporter(sim.metadata, sim.store, sim.version, sim.now, sim.rng)

    def post_tracker(self, ctx: RequestContext) -> SimResponse:
        """``POST /api/tracker`` (async unless ``async=false``)."""
        v = self.sim.version
        query = ctx.flat_query()
        importer = self._tracker()
        try:
            bundle = importer.parse(ctx.body, query)
        except TrackerBadRequest as e:
            return error(400, str(e))
        username = (ctx.user or {}).get("username", "")
        if (query.get("async") or "true").lower() == "false":
            status, report = importer.execute(bundle, username)
            return SimResponse.json(status, report)
        report_mode = bundle.params["reportMode"]
        bundle.params["reportMode"] = "FULL"  # keep everything; GET …/report filters

        def work() -> dict[str, Any]:
            report = self._tracker().execute(bundle, username)[1]
            report["_reportMode"] = report_mode
            return report

        job = self.sim.jobs.submit("TRACKER_IMPORT_JOB", username, work, self.sim.job_delay,
                                   {"userId": (ctx.user or {}).get("id"), **bundle.params})
        location = f"{ctx.api_url}/tracker/jobs/{job.id}"
        response: dict[str, Any] = {"responseType": "TrackerJob"} if v.tracker_job_response_type else {}
        response.update({"id": job.id, "location": location})
        return SimResponse.json(200, web_message(200, "Tracker job added", "OK", response=response),
                                {"Location": location})

    def tracker_object(self, ctx: RequestContext) -> SimResponse:
        """``GET /api/tracker/{trackedEntities|enrollments|events}/{uid}``: the object, or 404."""
        kind, uid = ctx.params["kind"], ctx.params["id"]
        ttype = {"trackedEntities": "TRACKED_ENTITY", "enrollments": "ENROLLMENT", "events": "EVENT"}[kind]
        found = self.sim.store.tracker_collection(ttype).get(uid)
        if found is None:
            name = {"trackedEntities": "TrackedEntity", "enrollments": "Enrollment", "events": "Event"}[kind]
            return error(404, f"{name} with id {uid} could not be found.")
        return SimResponse.json(200, found)

    def tracker_job(self, ctx: RequestContext) -> SimResponse:
        """``GET /api/tracker/jobs/{id}``: notifications ([] if unknown)."""
        job = self.sim.jobs.get("TRACKER_IMPORT_JOB", ctx.params["id"])
        return SimResponse.json(200, job.notifications if job else [])

    def tracker_report(self, ctx: RequestContext) -> SimResponse:
        """``GET /api/tracker/jobs/{id}/report``: the ImportReport (200 even if ERROR), 404 until done."""
        job_id = ctx.params["id"]
        job = self.sim.jobs.get("TRACKER_IMPORT_JOB", job_id)
        if not job or not job.done or job.result is None:
            if self.sim.version.minor >= 40:
                return error(404, f"Summary for job {job_id} does not exist")
            return error(404, f"Object not found for uid: {job_id}")
        report = json.loads(json.dumps(job.result))
        mode = (ctx.arg("reportMode") or report.pop("_reportMode", "ERRORS")).upper()
        report.pop("_reportMode", None)
        if mode != "FULL":
            report.pop("timingsStats", None)
        if mode == "ERRORS" and "warningReports" in report.get("validationReport", {}):
            report["validationReport"]["warningReports"] = []
        return SimResponse.json(200, report)
