"""``twistd dhis2gw``: its command-line options.

The service tree comes from the composition root (`dhis2gw.wiring.entry.twistd_service`), the
same one ``dhis2gw run`` uses, so every option works the same way under both.
"""
from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.python import usage

ROLES = ("all", "api", "worker")


class Options(usage.Options):
    """Options of ``twistd dhis2gw`` (the console script ``dhis2gw run`` takes the same)."""

    optParameters = [  # noqa: N815 - twisted.python.usage's names
        ["config", "c", None, "Path of the YAML configuration file (e.g. /etc/dhis2gw/dhis2gw.yml)."],
        ["role", "r", "all", "Which parts to run: all, api (HTTP only) or worker (delivery only)."],
    ]
    optFlags = [  # noqa: N815
        ["demo", None, "Also run the DHIS2 simulator in-process and create demo users and mappings."],
    ]

    def postOptions(self) -> None:  # noqa: N802
        if self["role"] not in ROLES:
            raise usage.UsageError(f"--role must be one of {', '.join(ROLES)}")


def makeService(options: Options | dict[str, Any]) -> service.IService:  # noqa: N802
    """Build the gateway's service tree (twistd entry point)."""
    from dhis2gw.wiring.entry import twistd_service

    return twistd_service(options)
