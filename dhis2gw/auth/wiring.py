"""Installer: authentication, user management and the request log."""
from __future__ import annotations

from typing import Any

from dhis2gw.api.request_log import RequestLogWriter, RequestsApi
from dhis2gw.api.users import UsersApi
from dhis2gw.auth.sessions import build_auth
from dhis2gw.storage.request_log import RequestLogStore


def install(gateway: Any) -> None:
    """Authenticate every API call; mount /users and /requests; record every request."""
    config = gateway.config
    auth = build_auth(gateway.reactor, gateway.db, config.auth, redis=gateway.redis,
                      redis_prefix=config.queue.prefix)
    gateway.parts["auth"] = auth
    gateway.authenticator = auth.authenticator
    gateway.mount(UsersApi(auth))
    log_store = RequestLogStore(gateway.db)
    gateway.mount(RequestsApi(log_store))
    rl = config.request_log
    writer = RequestLogWriter(gateway.reactor, log_store, enabled=rl.enabled, flush_interval=rl.flush_interval,
                              batch_size=rl.batch_size, max_buffer=rl.max_buffer,
                              body_excerpt_bytes=rl.body_excerpt_bytes, retention_days=rl.retention_days)
    writer.setServiceParent(gateway.service)
    gateway.parts["request_log"] = writer
    gateway.observers.append(writer.observe)
    gateway.checks["request_log"] = writer.check
