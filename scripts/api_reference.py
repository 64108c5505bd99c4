"""Print the API route table (Markdown) from a wired gateway's router: method, path, roles, summary.

Building the gateway connects to nothing (services are not started). Used by render_readme.py.
"""
from __future__ import annotations

import os
import re

from twisted.internet import reactor

from dhis2gw.config import load_config
from dhis2gw.wiring.root import build_gateway

ROLE_NAMES = {frozenset({"admin"}): "admin", frozenset({"admin", "operator"}): "admin, operator",
              frozenset({"admin", "submitter"}): "admin, submitter",
              frozenset({"admin", "operator", "submitter"}): "any user"}


def main() -> None:
    env = {"DHIS2GW_JWT_SECRET": "x" * 40, "dhis2_base_url": "http://127.0.0.1:8099", "dhis2_user": "u",
           "dhis2_password": "p", "DHIS2GW_MIGRATTIONS_DIR": "migrations", "DHIS2GW_PLUGINS_DIR": "plugins",
           "DHIS2GW_STATE_DIR": "/tmp", "DHIS2GW_LOGDIR": "/tmp"}
    config = load_config(None, env)
    gateway = build_gateway(config, reactor, "all")
    print("| method | path | who | what |")
    print("|---|---|---|---|")
    seen = set()
    for mounted in sorted(gateway.router.routes, key=lambda r: (r.full_path, r.spec.method)):
        spec = mounted.spec
        if "ui" in spec.tags and mounted.full_path not in ("/", "/swagger/", "/docs/<page>"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", mounted.full_path)
        key = (spec.method, path)
        if key in seen:
            continue
        seen.add(key)
        who = "public" if spec.public else ROLE_NAMES.get(spec.roles, ", ".join(sorted(spec.roles or ())))
        if spec.self_allowed:
            who += " (or the user itself)"
        summary = (spec.summary or "").replace("|", "\\|")
        if spec.deprecated:
            summary += " *(original's path, kept for old clients)*"
        print(f"| `{spec.method}` | `{path}` | {who} | {summary} |")


if __name__ == "__main__":
    os.environ.setdefault("DHIS2GW_ENVIRONMENT", "production")
    main()
