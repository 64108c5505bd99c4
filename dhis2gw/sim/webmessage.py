"""DHIS2 response envelopes and the simulator's response value.

``WebMessage`` is DHIS2's JSON envelope (``httpStatus``, ``httpStatusCode``, ``status``,
``message``, ``response``); the HTML pages are what nginx or a maintenance page return.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from dhis2gw.sim.versions import Version

NGINX_PAGE = ("<html>\n<head><title>{code} {reason}</title></head>\n<body>\n"
              "<center><h1>{code} {reason}</h1></center>\n<hr><center>nginx</center>\n</body>\n</html>\n")
NGINX_REASONS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out",
                 429: "Too Many Requests", 413: "Request Entity Too Large"}
MAINTENANCE_PAGE = ("<!DOCTYPE html>\n<html><head><title>Down for maintenance</title></head>\n"
                    "<body><h1>DHIS2 is down for maintenance</h1>\n"
                    "<p>The system is being upgraded. Please try again later.</p></body></html>\n")
LOGIN_PAGE = ("<!DOCTYPE html>\n<html><head><title>DHIS 2 Demo - Sign in</title></head>\n"
              "<body><form id=\"loginForm\" method=\"post\"><input name=\"j_username\"/>"
              "<input name=\"j_password\" type=\"password\"/></form></body></html>\n")
UNEXPECTED_ERROR = "An unexpected error has occured. Please contact your system administrator"


@dataclass
class SimResponse:
    """A complete response: status, headers and body bytes."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> SimResponse:
        """A JSON response."""
        h = {"Content-Type": "application/json;charset=UTF-8"}
        if status >= 400:
            h["Cache-Control"] = "no-cache, private"
        h.update(headers or {})
        return cls(status, json.dumps(payload).encode(), h)

    @classmethod
    def html(cls, status: int, text: str, headers: dict[str, str] | None = None) -> SimResponse:
        """An HTML response."""
        h = {"Content-Type": "text/html;charset=UTF-8"}
        h.update(headers or {})
        return cls(status, text.encode(), h)


def reason(status: int) -> str:
    """The HTTP reason phrase DHIS2 puts in ``httpStatus``."""
    return HTTPStatus(status).phrase


def web_message(status: int, message: str | None = None, wm_status: str | None = None,
                response: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A WebMessage dict with DHIS2's property order."""
    out: dict[str, Any] = {"httpStatus": reason(status), "httpStatusCode": status,
                           "status": wm_status or ("OK" if status < 400 else "ERROR")}
    if message is not None:
        out["message"] = message
    out.update(extra)
    if response is not None:
        out["response"] = response
    return out


def error(status: int, message: str, **extra: Any) -> SimResponse:
    """A WebMessage error response."""
    return SimResponse.json(status, web_message(status, message, "ERROR", **extra))


def import_options(version: Version, opts: dict[str, Any], async_: bool = False) -> dict[str, Any]:
    """``importOptions`` as echoed in an ImportSummary."""
    schemes: dict[str, Any] = {}
    for key in ("dataElementIdScheme", "orgUnitIdScheme", "categoryOptionComboIdScheme", "dataSetIdScheme",
                "idScheme"):
        value = opts.get(key)
        if value and str(value).upper() not in ("UID", "ID"):
            schemes[key] = {"type": str(value).upper()}
    out: dict[str, Any] = {
        "idSchemes": schemes, "dryRun": bool(opts.get("dryRun")),
        **({"preheatCache": bool(opts["preheatCache"])} if "preheatCache" in opts else {}), "async": async_,
        "importStrategy": opts.get("importStrategy", "CREATE_AND_UPDATE"), "mergeMode": "REPLACE",
        "reportMode": "FULL", "skipExistingCheck": bool(opts.get("skipExistingCheck")), "sharing": False,
        "skipNotifications": False, "skipAudit": bool(opts.get("skipAudit")), "datasetAllowsPeriods": False,
    }
    for flag in ("strictPeriods", "strictDataElements", "strictCategoryOptionCombos",
                 "strictAttributeOptionCombos", "strictOrganisationUnits"):
        out[flag] = bool(opts.get(flag))
    if version.strict_locking_flags:
        for flag in ("strictDataSetApproval", "strictDataSetLocking", "strictDataSetInputPeriods"):
            out[flag] = bool(opts.get(flag))
    out.update({"requireCategoryOptionCombo": bool(opts.get("requireCategoryOptionCombo")),
                "requireAttributeOptionCombo": bool(opts.get("requireAttributeOptionCombo")),
                "skipPatternValidation": False, "ignoreEmptyCollection": False, "force": bool(opts.get("force")),
                "firstRowIsHeader": True, "skipLastUpdated": False, "mergeDataValues": False,
                "skipCache": False})
    return out


def wrap_import_summary(version: Version, summary: dict[str, Any], versioned_api: int | None = None) -> SimResponse:
    """The HTTP response of a sync dataValueSets import (bare ≤2.37 or ``/api/37``, else WebMessage)."""
    plain = not version.dvs_webmessage or (versioned_api is not None and versioned_api < 38
                                           and version.minor < 42)
    if plain:
        return SimResponse.json(200, summary)
    status = summary["status"]
    if status == "SUCCESS":
        return SimResponse.json(200, web_message(200, "Import was successful.", "OK", response=summary))
    if status == "WARNING" and version.partial_success_200:
        return SimResponse.json(200, web_message(200, "Import completed with warnings, please check import summary.",
                                                 "WARNING", response=summary))
    if status == "WARNING":
        msg = "One more conflicts encountered, please check import summary."
    else:
        msg = "An error occurred, please check import summary."
    return SimResponse.json(409, web_message(409, msg, status, response=summary))
