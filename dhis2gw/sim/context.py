"""The per-request view handed to endpoint handlers."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestContext:
    """One API request, already authenticated (``user`` is None only for open endpoints)."""

    method: str
    path: str  # API path without ``/api`` and without the ``/NN`` version segment, e.g. ``/dataValueSets``
    query: dict[str, list[str]]
    body: bytes
    headers: dict[str, str]
    base_url: str  # scheme://host:port
    api_version: int | None = None
    user: dict[str, Any] | None = None
    params: dict[str, str] = field(default_factory=dict)  # path parameters

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        """All values of a query parameter."""
        return self.query.get(name, [])

    def flat_query(self) -> dict[str, str]:
        """Query parameters with their first values."""
        return {k: v[0] for k, v in self.query.items() if v}

    def json(self) -> Any:
        """The parsed JSON body (raises ValueError)."""
        return json.loads(self.body or b"null")

    @property
    def api_url(self) -> str:
        """Absolute URL of the API root as the client addressed it."""
        return self.base_url + "/api" + (f"/{self.api_version}" if self.api_version else "")
