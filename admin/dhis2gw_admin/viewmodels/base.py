"""What every view model shares: busy/error/message fields and error capture.

A view-model action never raises to the screen: a ``GatewayError`` becomes ``error`` (its
plain message), anything unexpected becomes a short "unexpected problem" sentence (the
traceback goes to the log only).
"""
from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from twisted.internet import defer, task

from dhis2gw_admin.errors import GatewayError
from dhis2gw_admin.observable import Field, Observable

T = TypeVar("T")
log = logging.getLogger("dhis2gw_admin")


class ViewModel(Observable):
    """Base of the view models: ``busy``, ``error`` (plain text, "" when none), ``message``."""

    busy = Field(False)
    error = Field("")
    message = Field("")

    async def guard(self, work: Awaitable[T]) -> T | None:
        """Await ``work`` with ``busy`` set; on failure set ``error`` and return None."""
        self.busy = True
        self.error = ""
        try:
            return await work
        except GatewayError as e:
            self.error = str(e)
        except Exception as e:  # shown as one sentence, logged in full
            log.exception("unexpected error in %s", type(self).__name__)
            self.error = f"Unexpected problem: {type(e).__name__}: {e}"
        finally:
            self.busy = False
        return None

    async def act(self, work: Awaitable[T], announce: Callable[[T], str],
                  then: Callable[[], Awaitable[Any]] | None = None) -> T | None:
        """Run an action under :meth:`guard`; when it succeeds, ``announce(answer)`` becomes ``message``
        and ``then`` runs (the reload that shows its effect). The answer, or None."""
        answer = await self.guard(work)
        if answer is not None:
            self.message = announce(answer)
            if then is not None:
                await then()
        return answer

    def spawn(self, work: Awaitable[Any]) -> defer.Deferred[Any]:
        """Start an action from a UI callback (fire and forget; errors are already captured)."""
        d = defer.Deferred.fromCoroutine(work)  # type: ignore[arg-type]

        def unexpected(failure: Any) -> None:
            log.error("unhandled failure: %s", failure.getTraceback())
            self.error = f"Unexpected problem: {failure.getErrorMessage()}"

        d.addErrback(unexpected)
        return d


async def sleep(clock: Any, seconds: float) -> None:
    """Wait on the reactor (never blocks the UI)."""
    await task.deferLater(clock, seconds, lambda: None)


def pretty_json(value: Any) -> str:
    """Indented JSON text of a payload ("—" when there is none)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def short_time(value: str | None) -> str:
    """An ISO timestamp as ``YYYY-MM-DD HH:MM:SS +03:00``: in the zone the gateway sent it in (its
    own time zone), with that zone's offset shown ("" for none)."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return str(value)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    offset = moment.strftime("%z")
    return f"{text} {offset[:3]}:{offset[3:]}" if offset else text


def age_text(seconds: float | None) -> str:
    """``42 s``, ``5 min``, ``3 h 10 min``, ``2 d 4 h`` ("—" for none)."""
    if seconds is None:
        return "—"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"
