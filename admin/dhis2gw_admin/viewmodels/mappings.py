"""MappingsVM: the mapping list (filters, pages), import with progress and row errors, export.

An import uploads the chosen file (``.csv`` → the CSV route, ``.xlsx`` → the Excel route) with
``async=true``: the gateway answers 202 with a job, polled at ``/mappings/imports/<job_id>``
until done; ``progress`` goes 0 → 1 and ``import_errors`` lists "row N, column: message".
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from dhis2gw_admin.api import GatewayApi
from dhis2gw_admin.errors import GatewayError, InvalidInput
from dhis2gw_admin.observable import Field
from dhis2gw_admin.viewmodels.base import ViewModel, sleep

FILTERS = ("code", "dataset", "dataelement", "source_name", "instance_name", "what", "q")
IMPORTABLE = {".csv": "csv", ".xlsx": "excel"}


def row_error_lines(errors: list[dict[str, Any]]) -> list[str]:
    return [f"Row {e.get('row', '?')}, {e.get('column') or '—'}: {e.get('message', '')}" for e in errors]


class MappingsVM(ViewModel):
    """The mappings screen."""

    filters = Field({})
    page = Field(1)
    page_size = Field(50)
    items = Field([])
    total = Field(0)
    pages = Field(0)
    importing = Field(False)
    progress = Field(0.0)
    progress_text = Field("")
    import_counts = Field({})
    import_errors = Field([])
    last_saved = Field("")

    def __init__(self, api: GatewayApi, clock: Any, poll_interval: float = 0.3) -> None:
        self.api = api
        self.clock = clock
        self.poll_interval = poll_interval

    # --- list --------------------------------------------------------------------------------
    def set_filters(self, **values: str) -> None:
        unknown = set(values) - set(FILTERS)
        if unknown:
            raise AttributeError(", ".join(sorted(unknown)))
        merged = {**self.filters, **values}
        self.filters = {k: v.strip() for k, v in merged.items() if v and v.strip()}
        self.page = 1

    async def _load(self) -> bool:
        answer = await self.api.list_mappings({**self.filters, "page": self.page, "page_size": self.page_size})
        # The counts first: the screen draws its footer when the items change.
        self.total = int(answer.get("total") or 0)
        self.pages = int(answer.get("pages") or answer.get("total_pages") or 0)
        self.items = answer.get("items", [])
        return True

    async def load(self) -> bool:
        return bool(await self.guard(self._load()))

    async def apply(self, **filters: str) -> bool:
        self.set_filters(**filters)
        return await self.load()

    async def go_to_page(self, page: int) -> bool:
        self.page = max(1, min(page, self.pages or 1))
        return await self.load()

    # --- import ----------------------------------------------------------------------------------
    async def _import(self, path: Path, partial: bool, dry_run: bool) -> dict[str, Any]:
        kind = IMPORTABLE.get(path.suffix.lower())
        if kind is None:
            raise GatewayError(f"{path.name}: choose a .csv or .xlsx file.")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise GatewayError(f"Cannot read {path}: {e.strerror or e}.") from None
        self.progress, self.progress_text = 0.0, f"Uploading {path.name} ({len(data):,} bytes)…"
        try:
            status, answer = await self.api.import_mappings(kind, data, partial=partial, dry_run=dry_run)
        except InvalidInput as e:
            # all-or-nothing refusal (422): the details are the report with the row errors
            if isinstance(e.details, dict) and "counts" in e.details:
                self._report(e.details)
            raise
        if status == 202:
            job_id = answer["job_id"]
            while True:
                job = await self.api.import_job(job_id)
                total = job.get("rows_total")
                done = job.get("rows_done", 0)
                self.progress = min(done / total, 1.0) if total else 0.0
                self.progress_text = f"{done:,} of {total:,} rows" if total else f"{done:,} rows"
                if job.get("state") == "done":
                    answer = job.get("result") or {}
                    break
                if job.get("state") == "failed":
                    err = job.get("error") or {}
                    raise GatewayError(f"The import failed: {err.get('message') or err or 'no reason given'}.",
                                       code=err.get("code") if isinstance(err, dict) else None, details=err)
                await sleep(self.clock, self.poll_interval)
        self.progress = 1.0
        self._report(answer)
        return answer

    def _report(self, report: dict[str, Any]) -> None:
        self.import_counts = dict(report.get("counts") or {})
        lines = row_error_lines(report.get("errors") or [])
        if report.get("errors_truncated"):
            lines.append("… more errors were not listed")
        self.import_errors = lines

    async def import_file(self, path: str | Path, partial: bool = False, dry_run: bool = False
                          ) -> dict[str, Any] | None:
        """Import a CSV/XLSX file; the report (counts, errors) or None on failure."""
        self.importing = True
        self.import_counts, self.import_errors = {}, []
        try:
            report = await self.guard(self._import(Path(path), partial, dry_run))
        finally:
            self.importing = False
        if report is None:
            return None
        c = report.get("counts", {})
        applied = report.get("applied", not dry_run)
        verb = "Checked" if not applied else "Imported"
        self.message = (f"{verb} {Path(path).name}: {c.get('inserted', 0)} new, {c.get('updated', 0)} updated, "
                        f"{c.get('unchanged', 0)} unchanged, {c.get('rejected', 0)} rejected")
        await self.load()
        if c.get("rejected") and not applied and not dry_run:
            self.error = (f"{c['rejected']} row(s) are invalid; nothing was imported. Fix them, or import with "
                          "'keep valid rows'.")
        return report

    # --- export and template ---------------------------------------------------------------------
    async def _write(self, reply_coro: Any, directory: Path, fallback: str) -> Path:
        reply = await reply_coro
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / (Path(reply.filename).name if reply.filename else fallback)
        target.write_bytes(reply.body)
        self.last_saved = str(target)
        return target

    async def _save(self, reply_coro: Any, directory: str | Path, fallback: str) -> Path | None:
        """Save a download in ``directory`` under its own name (or ``fallback``); the path, or None."""
        return await self.act(self._write(reply_coro, Path(directory), fallback), lambda saved: f"Saved {saved}")

    async def export(self, fmt: str, directory: str | Path) -> Path | None:
        """Save the mappings matching the filters as ``csv`` or ``xlsx`` in ``directory``."""
        ext = "csv" if fmt == "csv" else "xlsx"
        return await self._save(self.api.export_mappings(ext, dict(self.filters)), directory, f"dhis2_mappings.{ext}")

    async def download_template(self, directory: str | Path) -> Path | None:
        return await self._save(self.api.mapping_template(), directory, "dhis2_mappings_template.xlsx")
