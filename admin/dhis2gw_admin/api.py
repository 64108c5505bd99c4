"""One method per gateway route the admin app uses (paths under ``/api/v2``).

Thin on purpose: names, paths and parameters only. What to do with the answers (counts,
confirmations, polling) lives in the view models.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

from dhis2gw_admin.client import GatewayClient, Reply


def _seg(value: Any) -> str:
    return quote(str(value), safe="")


class GatewayApi:
    """The gateway's operations API seen from the admin app."""

    def __init__(self, client: GatewayClient) -> None:
        self.client = client

    # --- logs -----------------------------------------------------------------------------------
    async def list_logs(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.client.get_json("/logs", params)

    async def arrivals(self, params: dict[str, Any]) -> dict[str, Any]:
        """The facility × period report of a data set."""
        return await self.client.get_json("/reports/arrivals", params)

    async def log_stats(self) -> dict[str, Any]:
        return await self.client.get_json("/logs/stats")

    async def get_log(self, submission_id: int) -> dict[str, Any]:
        return await self.client.get_json(f"/logs/{int(submission_id)}")

    async def delete_log(self, submission_id: int) -> dict[str, Any]:
        return await self.client.delete_json(f"/logs/{int(submission_id)}")

    async def purge_logs(self, before: str, statuses: list[str] | None = None,
                         dry_run: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = {"before": before, "dry_run": "true" if dry_run else "false"}
        if statuses:
            params["status"] = list(statuses)
        return await self.client.delete_json("/logs/purge", params)

    async def requeue_one(self, submission_id: int, force: bool = False) -> dict[str, Any]:
        return await self.client.post_json(f"/logs/{int(submission_id)}/requeue",
                                           params={"force": "true"} if force else None)

    async def requeue_filter(self, filter_body: dict[str, Any], force: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"filter": filter_body}
        if force:
            body["force"] = True
        return await self.client.post_json("/logs/requeue", body)

    async def requeue_job(self, job_id: str) -> dict[str, Any]:
        return await self.client.get_json(f"/logs/requeue/{_seg(job_id)}")

    # --- queue ------------------------------------------------------------------------------------
    async def queue_status(self) -> dict[str, Any]:
        return await self.client.get_json("/queue")

    async def pause(self, destination: str) -> dict[str, Any]:
        return await self.client.post_json(f"/queue/{_seg(destination)}/pause")

    async def resume(self, destination: str) -> dict[str, Any]:
        return await self.client.post_json(f"/queue/{_seg(destination)}/resume")

    # --- mappings -----------------------------------------------------------------------------------
    async def list_mappings(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.client.get_json("/mappings", params)

    async def import_mappings(self, kind: str, data: bytes, partial: bool = False, dry_run: bool = False,
                              run_async: bool = True) -> tuple[int, dict[str, Any]]:
        """Upload a CSV (``kind`` "csv") or XLSX ("excel") body; (HTTP status, answer)."""
        ctype = "text/csv" if kind == "csv" else ("application/vnd.openxmlformats-officedocument."
                                                  "spreadsheetml.sheet")
        params = {"partial": "true" if partial else None, "dry_run": "true" if dry_run else None,
                  "async": "true" if run_async else None}
        reply = await self.client.request("POST", f"/mappings/import/{kind}", params, data=data, content_type=ctype)
        return reply.status, reply.json()

    async def import_job(self, job_id: str) -> dict[str, Any]:
        return await self.client.get_json(f"/mappings/imports/{_seg(job_id)}")

    async def export_mappings(self, fmt: str, params: dict[str, Any] | None = None) -> Reply:
        return await self.client.request("GET", f"/mappings/export/{'csv' if fmt == 'csv' else 'excel'}", params)

    async def mapping_template(self) -> Reply:
        return await self.client.request("GET", "/mappings/template.xlsx")

    # --- users ------------------------------------------------------------------------------------------
    async def list_users(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self.client.get_json("/users", params)

    async def create_user(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.client.post_json("/users", body)

    async def update_user(self, uid: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.client.put_json(f"/users/{_seg(uid)}", body)

    async def deactivate_user(self, uid: str) -> dict[str, Any]:
        return await self.client.delete_json(f"/users/{_seg(uid)}")
