"""Install Twisted's reactor inside Kivy's event loop (call before anything imports the reactor).

``kivy.support.install_twisted_reactor`` runs Twisted's threaded-select reactor interleaved
with Kivy's clock. With Twisted >= 24.7 its shutdown calls ``reactor._mainLoopShutdown``, which
Twisted removed, and the app hangs at exit (kivy issue 8821; stack-notes pitfall 8): supply a
stand-in when the attribute is missing. The stand-in also ends the reactor's select thread: it
is not a daemon thread, and once Kivy's loop has stopped nobody would run the main-thread step
that normally ends it, so the process would never exit.
"""
from __future__ import annotations

from typing import Any


def install() -> Any:
    """Install (once) and return the reactor."""
    from kivy.support import install_twisted_reactor

    install_twisted_reactor()
    from twisted.internet import reactor

    if not hasattr(reactor, "_mainLoopShutdown"):
        reactor._mainLoopShutdown = lambda: _end_select_thread(reactor)  # type: ignore[attr-defined]
    return reactor


def _end_select_thread(reactor: Any) -> None:
    """Queue the select thread's exit and wake it from select() so it takes it."""
    cleanup = getattr(reactor, "_cleanUpThread", None)
    if cleanup is not None:
        cleanup()
    reactor.wakeUp()
