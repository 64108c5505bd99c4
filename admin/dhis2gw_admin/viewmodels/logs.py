"""LogsVM: the submission list (filters, sort, pages) and the actions on it.

Actions: requeue one (from a row), requeue everything matching the filter (count first, then
the request, then the job's progress until it ends), delete one, purge by date (dry-run count
first, then the purge). Confirmation is two calls: ``prepare_…`` computes the count the screen
shows in its dialog, the action itself runs only when the operator confirms.
"""
from __future__ import annotations

from typing import Any

from dhis2gw_admin.api import GatewayApi
from dhis2gw_admin.errors import GatewayError
from dhis2gw_admin.observable import Field
from dhis2gw_admin.viewmodels.base import ViewModel, short_time, sleep

STATUSES = ("queued", "processing", "retrying", "delivered", "partial", "rejected", "failed")
FINAL = ("delivered", "partial", "rejected", "failed")
REQUEUEABLE = ("partial", "rejected", "failed")
SORTS = ("created_at", "updated_at", "id", "status", "attempts", "kind", "destination")
PAGE_SIZES = (10, 20, 50, 100)
#: The text filters: field of the view model -> the gateway's query name (``statuses`` is the list one).
TEXT_FILTERS = {"date_from": "from", "date_to": "to", "user": "user", "kind": "kind", "endpoint": "endpoint",
                "destination": "destination", "org_unit": "org_unit", "period": "period", "data_set": "data_set",
                "text": "q"}


def row_view(item: dict[str, Any]) -> dict[str, Any]:
    """A list item with display texts added (``created``, ``error_snippet``, ``org_unit_text``,
    ``period_text``, ``submitter_text``, ``requeueable``)."""
    row = dict(item)
    row["created"] = short_time(item.get("created_at"))
    # The human reason first (the gateway moves DHIS2's counters to the end).
    error = (item.get("reason") or item.get("error") or "").replace("\n", " ")
    row["error_snippet"] = error[:80] + ("…" if len(error) > 80 else "")
    unit = item.get("org_unit") or ""
    code = item.get("org_unit_code")
    row["org_unit_text"] = f"{item.get('org_unit_name') or unit}{f' ({code})' if code else ''}"
    row["period_text"] = item.get("period") or ""
    row["submitter_text"] = item.get("submitter") or ("" if item.get("submitter_id") is None
                                                      else f"#{item['submitter_id']}")
    row["requeueable"] = item.get("status") in REQUEUEABLE
    return row


class LogsVM(ViewModel):
    """Filters, the current page, and the actions of the logs screen."""

    # filters (strings as typed; empty = no filter)
    statuses = Field([])
    date_from = Field("")
    date_to = Field("")
    user = Field("")
    kind = Field("")
    endpoint = Field("")
    destination = Field("")
    org_unit = Field("")
    period = Field("")
    data_set = Field("")
    text = Field("")
    sort = Field("created_at")
    descending = Field(True)
    page = Field(1)
    page_size = Field(20)
    # results
    items = Field([])
    total = Field(0)
    total_pages = Field(0)
    # requeue-by-filter and purge state
    confirm_count = Field(None)     # the count to show in a confirmation dialog
    progress = Field(0.0)           # 0..1 of the running requeue job
    progress_text = Field("")
    last_result = Field({})

    def __init__(self, api: GatewayApi, clock: Any, poll_interval: float = 0.5) -> None:
        self.api = api
        self.clock = clock
        self.poll_interval = poll_interval

    # --- filters --------------------------------------------------------------------------------
    def filter_values(self) -> dict[str, Any]:
        """The filter as the gateway names it (shared by ``GET /logs`` and requeue-by-filter)."""
        values: dict[str, Any] = {"status": list(self.statuses)}
        values.update((query, getattr(self, name).strip()) for name, query in TEXT_FILTERS.items())
        return {k: v for k, v in values.items() if v not in ("", [], None)}

    def query(self) -> dict[str, Any]:
        params = self.filter_values()
        params.update(page=self.page, page_size=self.page_size, sort=self.sort,
                      order="desc" if self.descending else "asc")
        return params

    def set_filters(self, **values: Any) -> None:
        """Set several filters at once (``status`` may be a string or a list); page 1."""
        for name, value in values.items():
            if name in ("status", "statuses"):
                value = [value] if isinstance(value, str) and value else list(value or [])
                name = "statuses"
            if name != "statuses" and name not in TEXT_FILTERS:
                raise AttributeError(name)
            setattr(self, name, value)
        self.page = 1

    def clear_filters(self) -> None:
        self.set_filters(statuses=[], **dict.fromkeys(TEXT_FILTERS, ""))

    # --- loading -----------------------------------------------------------------------------------
    async def _load(self) -> bool:
        answer = await self.api.list_logs(self.query())
        self.total = int(answer.get("total") or 0)
        self.total_pages = int(answer.get("total_pages") or 0)
        self.items = [row_view(i) for i in answer.get("items", [])]
        return True

    async def load(self) -> bool:
        """Fetch the current page with the current filters; True on success."""
        return bool(await self.guard(self._load()))

    async def apply(self, **filters: Any) -> bool:
        """Set filters (optional), go to page 1 and load."""
        if filters:
            self.set_filters(**filters)
        self.page = 1
        return await self.load()

    async def go_to_page(self, page: int) -> bool:
        self.page = max(1, min(page, self.total_pages or 1))
        return await self.load()

    async def next_page(self) -> bool:
        return await self.go_to_page(self.page + 1)

    async def previous_page(self) -> bool:
        return await self.go_to_page(self.page - 1)

    async def sort_by(self, column: str) -> bool:
        """Sort by ``column``; the same column again flips the order."""
        if column not in SORTS:
            self.error = f"Cannot sort by {column}."
            return False
        if self.sort == column:
            self.descending = not self.descending
        else:
            self.sort, self.descending = column, True
        self.page = 1
        return await self.load()

    @property
    def page_text(self) -> str:
        return f"Page {self.page} of {max(self.total_pages, 1)} — {self.total} submission(s)"

    # --- single actions ----------------------------------------------------------------------------
    def _replace_item(self, submission_id: int, **changes: Any) -> None:
        self.items = [row_view({**i, **changes}) if i.get("id") == submission_id else i for i in self.items]

    async def requeue_one(self, submission_id: int, force: bool = False) -> bool:
        """Requeue one submission (its row shows ``queued`` at once, then the page reloads)."""
        answer = await self.guard(self.api.requeue_one(submission_id, force))
        if answer is None:
            return False
        self._replace_item(submission_id, status=answer.get("status", "queued"))
        self.message = answer.get("message") or f"Submission {submission_id} queued again"
        await self.load()
        return True

    async def delete_one(self, submission_id: int) -> bool:
        deleted = await self.act(self.api.delete_log(submission_id), lambda _: f"Submission {submission_id} deleted",
                                 self.load)
        return deleted is not None

    # --- requeue by filter ----------------------------------------------------------------------------
    def _requeue_filter(self) -> dict[str, Any]:
        values = self.filter_values()
        chosen = [s for s in values.get("status", []) if s in REQUEUEABLE]
        if values.get("status") and not chosen:
            raise GatewayError("The status filter selects no submission that can be requeued "
                               "(only partial, rejected and failed ones can).")
        values["status"] = chosen or list(REQUEUEABLE)
        return values

    async def _count_requeue(self) -> int:
        params = self._requeue_filter()
        params.update(page=1, page_size=1)
        return int((await self.api.list_logs(params)).get("total") or 0)

    async def prepare_requeue_matching(self) -> int | None:
        """How many submissions 'requeue all matching' would queue (for the confirmation)."""
        self.confirm_count = None
        count = await self.guard(self._count_requeue())
        self.confirm_count = count
        return count

    async def _requeue_matching(self) -> dict[str, Any]:
        answer = await self.api.requeue_filter(self._requeue_filter())
        self.progress, self.progress_text = 0.0, f"{answer.get('matched', 0)} matched"
        job_id = answer.get("job_id")
        while job_id:
            job = await self.api.requeue_job(job_id)
            self.progress = float(job.get("progress") or 0.0)
            self.progress_text = (f"{job.get('scanned', 0)} of {job.get('matched', 0)} checked, "
                                  f"{job.get('requeued', 0)} requeued")
            if job.get("status") != "running":
                if job.get("status") != "done":
                    raise GatewayError(f"The requeue job stopped ({job.get('status')}): "
                                       f"{job.get('error') or 'no reason given'}.")
                answer = {**answer, **{k: job.get(k) for k in ("scanned", "requeued", "enqueued")}}
                break
            await sleep(self.clock, self.poll_interval)
        self.progress = 1.0
        return answer

    async def requeue_matching(self) -> dict[str, Any] | None:
        """Requeue every requeueable submission matching the filter; follow the job to its end."""
        answer = await self.guard(self._requeue_matching())
        if answer is None:
            return None
        self.last_result = answer
        self.progress_text = ""
        self.message = f"{answer.get('requeued', 0)} submission(s) queued again (of {answer.get('matched', 0)} matched)"
        await self.load()
        return answer

    # --- purge ------------------------------------------------------------------------------------------
    async def prepare_purge(self, before: str, statuses: list[str] | None = None) -> int | None:
        """Dry run: how many final submissions created before ``before`` a purge would delete."""
        self.confirm_count = None
        answer = await self.guard(self.api.purge_logs(before, statuses, dry_run=True))
        if answer is None:
            return None
        self.confirm_count = int(answer.get("deleted", 0))
        return self.confirm_count

    async def purge(self, before: str, statuses: list[str] | None = None) -> int | None:
        """Delete final submissions created before ``before``; the number deleted."""
        answer = await self.guard(self.api.purge_logs(before, statuses, dry_run=False))
        if answer is None:
            return None
        self.last_result = answer
        self.message = answer.get("message") or f"Deleted {answer.get('deleted', 0)} submission(s)"
        await self.load()
        return int(answer.get("deleted", 0))
