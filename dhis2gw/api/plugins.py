"""``GET /api/v2/plugins``: what the plugin loader registered and what it skipped."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dhis2gw.api.routing import OPERATOR, Call, route

if TYPE_CHECKING:  # the loader is the composition root's; the area only reads its report
    from dhis2gw.wiring.plugins import PluginReport


class PluginsApi:
    """Lists the loaded plugins and built-in kinds (with interfaces and origin) and the skipped ones."""

    def __init__(self, report: PluginReport) -> None:
        self.report = report

    @route("GET", "/plugins", roles=OPERATOR, summary="Loaded plugins and built-in kinds, and skipped plugins",
           tags=("plugins",))
    async def list_plugins(self, call: Call) -> dict[str, Any]:
        """The loader's report: ``plugins``, ``skipped`` (with ``error``) and the ``directories`` searched."""
        return {"plugins": [r.to_json() for r in self.report.loaded],
                "skipped": [r.to_json() for r in self.report.skipped],
                "directories": list(self.report.directories)}
