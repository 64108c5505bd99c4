"""Mappings and DHIS2 metadata endpoints (operators and admins).

``/mappings``: list with filters and pagination, single-mapping CRUD, CSV/XLSX import (multipart
field ``file`` or the raw body; ``?partial=true``, ``?dry_run=true``, ``?sheet=``, ``?async=``),
import job progress, CSV/XLSX export and the XLSX template. ``/metadata``: cache status and
on-demand refresh. Every write invalidates the mapping lookup cache in every process.
"""
from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from dhis2gw.api.routing import OPERATOR, Call, Response, route
from dhis2gw.api.uploads import uploaded_file
from dhis2gw.dhis2.uids import generate_uid
from dhis2gw.errors import ApiError, not_found
from dhis2gw.mapping.export import CSV_TYPE, XLSX_TYPE, template_xlsx, to_csv, to_xlsx
from dhis2gw.mapping.importer import MappingImporter
from dhis2gw.mapping.rows import COLUMNS, complete, row_errors
from dhis2gw.mapping.sheets import SheetLimits, SheetRejected, read_csv, read_xlsx
from dhis2gw.storage.mappings import FILTER_COLUMNS, DuplicateMapping, MappingAdminStore

TAGS = ("mappings",)
MAPPING_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["code"], "additionalProperties": False,
    "properties": {c: {"type": "string", "maxLength": 2000 if c == "description" else 255} for c in COLUMNS},
}
_FILTERS = tuple({"name": n, "in": "query", "schema": {"type": "string"}} for n in FILTER_COLUMNS + ("q",))
_PAGING = ({"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
           {"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}})
_IMPORT_QUERY = (
    {"name": "partial", "in": "query", "schema": {"type": "boolean"}, "description": "keep the valid rows"},
    {"name": "dry_run", "in": "query", "schema": {"type": "boolean"}, "description": "validate, write nothing"},
    {"name": "sheet", "in": "query", "schema": {"type": "string"}, "description": "XLSX sheet (default: first)"},
    {"name": "async", "in": "query", "schema": {"type": "boolean"},
     "description": "answer 202 at once and poll the job (default: only for large files)"},
)
_IMPORT_RESPONSES = {200: "import report: counts {inserted, updated, unchanged, rejected} and per-row errors",
                     202: "large file: the job runs; poll status_url",
                     413: "file, row count or inflated size too large",
                     422: "rows rejected (all-or-nothing), or the file cannot be read"}


def mapping_json(row: dict[str, Any]) -> dict[str, Any]:
    """A mapping row as the API shows it."""
    out = {"uid": str(row["uid"]).strip()}
    out.update({c: row.get(c) or "" for c in COLUMNS})
    for stamp in ("created_at", "updated_at"):
        if row.get(stamp) is not None:
            out[stamp] = row[stamp].isoformat()
    return out


def _download(data: bytes, content_type: str, filename: str) -> Response:
    """A file the browser saves as ``filename``."""
    return Response(raw=data, content_type=content_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


class MappingsApi:
    """``/mappings`` (see module docstring)."""

    log = Logger()

    def __init__(self, store: MappingAdminStore, importer: MappingImporter, on_change: Any,
                 limits: SheetLimits = SheetLimits(), async_threshold_bytes: int = 1024 * 1024,
                 base_path: str = "/api/v2", parser: Any = None) -> None:
        self.store = store
        self.importer = importer
        self.on_change = on_change
        self.limits = limits
        self.async_threshold_bytes = async_threshold_bytes
        self.base_path = base_path
        self.background: dict[str, defer.Deferred[Any]] = {}
        #: ``SubprocessSheetParser`` (off the reactor, bounded); None parses in this thread (tests).
        self.parser = parser

    # --- list and CRUD ------------------------------------------------------------------
    @staticmethod
    def _filters(call: Call) -> tuple[dict[str, str], str | None]:
        filters = {c: v for c in FILTER_COLUMNS if (v := call.arg(c)) is not None}
        return filters, (call.arg("q") or None)

    @route("GET", "/mappings", roles=OPERATOR, summary="List mappings (filters, pagination with total)",
           tags=TAGS, query=_FILTERS + _PAGING)
    async def list_mappings(self, call: Call) -> dict[str, Any]:
        filters, q = self._filters(call)
        page = call.int_arg("page", 1, 1)
        size = call.int_arg("page_size", 50, 1, 1000)
        rows, total = await self.store.list(filters, q, size, (page - 1) * size)
        return {"items": [mapping_json(r) for r in rows], "total": total, "page": page, "page_size": size,
                "pages": -(-total // size) if total else 0}

    @route("POST", "/mappings", roles=OPERATOR, body_schema=MAPPING_SCHEMA, status=201, summary="Create a mapping",
           tags=TAGS, responses={409: "a mapping with this code/source_name/instance_name/what exists",
                                 422: "invalid columns"})
    async def create_mapping(self, call: Call) -> Response:
        row = self._checked(call.body)
        try:
            created = await self.store.create(generate_uid(), row)
        except DuplicateMapping:
            raise self._duplicate(row) from None
        await self.on_change()
        body = mapping_json(created)
        return Response(body, status=201, headers={"Location": f"{self.base_path}/mappings/{body['uid']}"})

    @route("GET", "/mappings/<uid>", roles=OPERATOR, summary="One mapping", tags=TAGS,
           responses={404: "no such mapping"})
    async def get_mapping(self, call: Call, uid: str) -> dict[str, Any]:
        row = await self.store.get(uid)
        if row is None:
            raise not_found("mapping")
        return mapping_json(row)

    @route("PUT", "/mappings/<uid>", roles=OPERATOR, body_schema=MAPPING_SCHEMA, summary="Replace a mapping",
           tags=TAGS, responses={404: "no such mapping", 409: "the new key is taken", 422: "invalid columns"})
    async def put_mapping(self, call: Call, uid: str) -> dict[str, Any]:
        row = self._checked(call.body)
        try:
            updated = await self.store.update(uid, row)
        except DuplicateMapping:
            raise self._duplicate(row) from None
        if updated is None:
            raise not_found("mapping")
        await self.on_change()
        return mapping_json(updated)

    @route("DELETE", "/mappings/<uid>", roles=OPERATOR, summary="Delete a mapping", tags=TAGS,
           responses={404: "no such mapping"})
    async def delete_mapping(self, call: Call, uid: str) -> dict[str, Any]:
        if not await self.store.delete(uid):
            raise not_found("mapping")
        await self.on_change()
        return {"deleted": uid}

    @staticmethod
    def _checked(body: dict[str, Any]) -> dict[str, str]:
        row = complete({k: str(v).strip() for k, v in body.items()})
        errors = row_errors(row, 1)
        if errors:
            raise ApiError(422, "validation_failed", "the mapping is invalid",
                           {"errors": [{"field": e["column"], "message": e["message"]} for e in errors]})
        return row

    @staticmethod
    def _duplicate(row: dict[str, str]) -> ApiError:
        return ApiError(409, "duplicate_mapping", "a mapping with this code, source_name, instance_name and what "
                        "already exists", {k: row[k] for k in ("code", "source_name", "instance_name", "what")})

    # --- import -----------------------------------------------------------------------------
    @route("POST", "/mappings/import/csv", roles=OPERATOR, raw_body=True, tags=TAGS, query=_IMPORT_QUERY,
           summary="Import mappings from CSV (upsert)", responses=_IMPORT_RESPONSES)
    async def import_csv(self, call: Call) -> Response:
        return await self._import(call, "csv")

    @route("POST", "/mappings/import/excel", roles=OPERATOR, raw_body=True, tags=TAGS, query=_IMPORT_QUERY,
           summary="Import mappings from XLSX (upsert; first sheet or ?sheet=)", responses=_IMPORT_RESPONSES)
    async def import_excel(self, call: Call) -> Response:
        return await self._import(call, "excel")

    @staticmethod
    def _upload(call: Call) -> bytes:
        return uploaded_file(call.request, "file")

    async def _import(self, call: Call, kind: str) -> Response:
        data = self._upload(call)
        partial, dry_run = call.bool_arg("partial"), call.bool_arg("dry_run")
        try:
            if self.parser is not None:
                sheet = await self.parser.parse(data, kind, call.arg("sheet"), self.limits)
            else:
                sheet = (read_csv(data, self.limits) if kind == "csv"
                         else read_xlsx(data, call.arg("sheet"), self.limits))
        except SheetRejected as e:
            raise ApiError(e.status, e.code, e.message, e.details) from None
        job = self.importer.new_job(kind)
        status_url = f"{self.base_path}/mappings/imports/{job.id}"
        run = defer.Deferred.fromCoroutine(self.importer.run(job, sheet, partial=partial, dry_run=dry_run))
        if call.bool_arg("async", len(data) >= self.async_threshold_bytes) and not run.called:
            self.background[job.id] = run
            run.addErrback(lambda f: self.log.failure("Mapping import {job} failed", f, job=job.id)
                           if not f.check(SheetRejected) else None)
            run.addBoth(lambda r: self.background.pop(job.id, None) and None)
            return Response({"job_id": job.id, "state": job.state, "rows_total": job.rows_total,
                             "status_url": status_url}, status=202, headers={"Location": status_url})
        try:
            report = await run
        except SheetRejected as e:
            raise ApiError(e.status, e.code, e.message, e.details) from None
        report["status_url"] = status_url
        if report["counts"]["rejected"] and not partial:
            raise ApiError(422, "mapping_rows_rejected",
                           f"{report['counts']['rejected']} row(s) are invalid; nothing was imported "
                           "(use ?partial=true to keep the valid rows)", report)
        return Response(report, status=200)

    @route("GET", "/mappings/imports/<job_id>", roles=OPERATOR, tags=TAGS, summary="Progress of an import job",
           responses={404: "no such job (jobs are kept for an hour)"})
    async def import_job(self, call: Call, job_id: str) -> dict[str, Any]:
        job = await self.importer.job(job_id)
        if job is None:
            raise not_found("import job")
        return job

    # --- export ------------------------------------------------------------------------------
    @route("GET", "/mappings/export/csv", roles=OPERATOR, tags=TAGS, query=_FILTERS,
           summary="Export mappings as CSV (the columns the import takes)",
           response_schema={"type": "string", "contentMediaType": CSV_TYPE})
    async def export_csv(self, call: Call) -> Response:
        return _download(to_csv(await self.store.export_rows(*self._filters(call))), CSV_TYPE, "dhis2_mappings.csv")

    @route("GET", "/mappings/export/excel", roles=OPERATOR, tags=TAGS, query=_FILTERS,
           summary="Export mappings as XLSX (data on the first sheet)",
           response_schema={"type": "string", "contentMediaType": XLSX_TYPE})
    async def export_excel(self, call: Call) -> Response:
        return _download(to_xlsx(await self.store.export_rows(*self._filters(call))), XLSX_TYPE,
                         "dhis2_mappings.xlsx")

    @route("GET", "/mappings/template.xlsx", roles=OPERATOR, tags=TAGS,
           summary="XLSX template: headers, one example row, a sheet documenting each column",
           response_schema={"type": "string", "contentMediaType": XLSX_TYPE})
    async def template(self, call: Call) -> Response:
        return _download(template_xlsx(), XLSX_TYPE, "dhis2_mappings_template.xlsx")

    @route("GET", "/mappings/export/excel-template", roles=OPERATOR, tags=TAGS, deprecated=True,
           summary="The original's template path (now authenticated); same as /mappings/template.xlsx",
           response_schema={"type": "string", "contentMediaType": XLSX_TYPE})
    async def template_legacy(self, call: Call) -> Response:
        return self._template()

    def _template(self) -> Response:
        return Response(raw=template_xlsx(), content_type=XLSX_TYPE,
                        headers={"Content-Disposition": 'attachment; filename="dhis2_mappings_template.xlsx"'})


class MetadataApi:
    """``/metadata``: the DHIS2 metadata cache's status and on-demand refresh."""

    def __init__(self, cache: Any) -> None:
        self.cache = cache

    @route("GET", "/metadata", roles=OPERATOR, tags=("metadata",),
           summary="Metadata cache status per destination (state empty/fresh/stale, age, sizes, last error)")
    async def status(self, call: Call) -> dict[str, Any]:
        return {"destinations": self.cache.status()}

    @route("POST", "/metadata/refresh", roles=OPERATOR, tags=("metadata",),
           query=({"name": "destination", "in": "query", "schema": {"type": "string"}},),
           summary="Refresh the metadata cache now (every destination, or ?destination=)",
           responses={404: "unknown destination", 502: "DHIS2 could not be read (the old snapshot is kept)"})
    async def refresh(self, call: Call) -> Response:
        wanted = call.args("destination") or list(self.cache.clients)
        unknown = [d for d in wanted if d not in self.cache.clients]
        if unknown:
            raise ApiError(404, "unknown_destination", f"no destination named {unknown[0]!r}",
                           {"known": sorted(self.cache.clients)})
        refreshed, failed = [], {}
        for name in wanted:
            try:
                refreshed.append(await self.cache.refresh(name))
            except Exception as e:  # noqa: BLE001 - reported per destination
                failed[name] = str(e) or type(e).__name__
        body = {"refreshed": refreshed, "failed": failed, "destinations": self.cache.status()}
        if failed:
            raise ApiError(502, "metadata_refresh_failed", "DHIS2 metadata could not be read; the cached copy is kept",
                           body)
        return Response(body)
