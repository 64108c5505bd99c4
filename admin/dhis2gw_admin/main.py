"""``dhis2gw-admin [--server URL]``: start the desktop admin app."""
from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dhis2gw-admin", description="Desktop admin app for the dhis2gw gateway.")
    parser.add_argument("--server", help="gateway address, e.g. http://127.0.0.1:9090 (default: the last one used)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("KIVY_NO_ARGS", "1")  # Kivy must not parse our arguments
    from kivy.config import Config

    Config.set("graphics", "width", "1360")  # the tables need room; not written to Kivy's config file
    Config.set("graphics", "height", "860")
    Config.set("input", "mouse", "mouse,disable_multitouch")  # right click must not leave red dots
    from dhis2gw_admin.kivy_reactor import install

    reactor = install()
    from dhis2gw_admin.app import AdminApp

    AdminApp(reactor, server_url=args.server).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
