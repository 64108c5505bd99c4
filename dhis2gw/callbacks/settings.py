"""``CallbackSettings``: where callbacks may go and how they are signed.

Read from the environment (``DHIS2GW_CALLBACK_*``) and the optional callbacks file
(``DHIS2GW_CALLBACK_CONFIG``); secrets are never stored in the database. See plugins/callback.py
for the list of variables.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dhis2gw.outbound import OutboundPolicy


@dataclass
class CallbackSettings:
    """Where callbacks may go and how they are signed (from the environment and the callbacks file)."""

    secret: str = ""
    submitters: dict[str, dict[str, str]] = field(default_factory=dict)  # lower-case username → {url, secret}
    allowed_prefixes: tuple[str, ...] = ()
    timeout: float = 10.0
    sweep_seconds: float = 300.0
    allowed_networks: tuple[str, ...] = ()
    max_response_bytes: int = 65536
    concurrency: int = 4
    policy: OutboundPolicy = field(default_factory=OutboundPolicy)

    def __post_init__(self) -> None:
        self.policy = OutboundPolicy.from_settings(self.allowed_prefixes, self.allowed_networks)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> CallbackSettings:
        """Read ``DHIS2GW_CALLBACK_*`` (raises ValueError with one clear line when they are bad)."""
        data: dict[str, Any] = {}
        path = environ.get("DHIS2GW_CALLBACK_CONFIG", "")
        if path:
            import yaml

            with open(path, encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}
            if not isinstance(data, dict):
                raise ValueError(f"{path}: expected a mapping")
        submitters = {}
        for username, entry in (data.get("submitters") or {}).items():
            if not isinstance(entry, dict):
                raise ValueError(f"{path}: submitters.{username} must be a mapping with url and/or secret")
            submitters[str(username).lower()] = {k: str(v) for k, v in entry.items() if k in ("url", "secret")}
        prefixes = list(data.get("allowed_urls") or []) + list(data.get("allowed_url_prefixes") or [])
        prefixes += [p.strip() for p in environ.get("DHIS2GW_CALLBACK_ALLOWED_URLS", "").split(",") if p.strip()]
        networks = [str(n) for n in data.get("allowed_networks") or []]
        networks += [n.strip() for n in environ.get("DHIS2GW_CALLBACK_ALLOWED_NETWORKS", "").split(",") if n.strip()]
        timeout = float(environ.get("DHIS2GW_CALLBACK_TIMEOUT") or data.get("timeout") or 10.0)
        numbers = {}
        for name, default in (("MAX_RESPONSE_BYTES", 65536), ("CONCURRENCY", 4)):
            text = environ.get(f"DHIS2GW_CALLBACK_{name}", "").strip()
            try:
                numbers[name] = int(text) if text else default
            except ValueError:
                raise ValueError(f"DHIS2GW_CALLBACK_{name}: {text!r} is not a whole number") from None
            if numbers[name] < 1:
                raise ValueError(f"DHIS2GW_CALLBACK_{name}: must be at least 1")
        sweep = environ.get("DHIS2GW_CALLBACK_SWEEP_SECONDS", "")
        try:
            sweep_seconds = float(sweep) if sweep.strip() else 300.0
        except ValueError:
            raise ValueError(f"DHIS2GW_CALLBACK_SWEEP_SECONDS: {sweep!r} is not a number of seconds") from None
        return cls(secret=environ.get("DHIS2GW_CALLBACK_SECRET") or str(data.get("secret") or ""),
                   submitters=submitters, allowed_prefixes=tuple(prefixes), timeout=timeout,
                   sweep_seconds=max(0.0, sweep_seconds), allowed_networks=tuple(networks),
                   max_response_bytes=numbers["MAX_RESPONSE_BYTES"], concurrency=numbers["CONCURRENCY"])

    @property
    def active(self) -> bool:
        """True when a secret applies to some callback (no secret: no callback is ever sent)."""
        return bool(self.secret or any(e.get("secret") for e in self.submitters.values()))

    def url_problem(self, url: str, from_body: bool = True) -> str | None:
        """Why a callback URL is refused before resolution, or None (``from_body``: it came from a
        request body, so it must be on the allow-list; callbacks-file URLs were set by an operator)."""
        return self.policy.url_refusal(url, check_allow_list=from_body)
