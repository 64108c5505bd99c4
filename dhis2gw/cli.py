"""The ``dhis2gw`` console script.

``dhis2gw --config /etc/dhis2gw/dhis2gw.yml`` runs the gateway in the foreground, logging to
stdout (journald under systemd), exactly like ``twistd -n dhis2gw --config …``. Subcommands:

* ``dhis2gw migrate --config F`` applies pending migrations and exits;
* ``dhis2gw check-config --config F`` validates the configuration and prints a summary;
* ``dhis2gw createuser USERNAME --role admin [--email E] [--password-stdin]`` creates a user
  (the password is prompted for, or read from standard input);
* ``dhis2gw import-legacy --from URI [--dry-run] [--requeue]`` imports the database of an
  original Go dhis2gw (``dhis2gw.legacy``; docs/upgrade-from-go.md).

Every command first reads the service's environment file, the way systemd reads it for the unit
(`dhis2gw.config.envfile`): ``--env-file FILE``, else ``$DHIS2GW_ENV_FILE`` (the packaged
``/usr/bin/dhis2gw`` sets it to ``/etc/default/dhis2gw``), so ``check-config`` and ``createuser``
see the ``DHIS2GW_DB`` and secrets the service uses. A variable already set in the environment wins.
Failures an operator can fix (no database, no terminal for the password) are one line on stderr,
never a traceback.
"""
from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from dhis2gw import __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dhis2gw", description="DHIS2 gateway")
    parser.add_argument("--version", action="version", version=f"dhis2gw {__version__}")
    parser.add_argument("--config", "-c", default=None, help="YAML configuration file")
    parser.add_argument("--env-file", default=None,
                        help="environment file read like systemd's EnvironmentFile= (default: $DHIS2GW_ENV_FILE,"
                             " which the Debian package sets to /etc/default/dhis2gw)")
    parser.add_argument("--role", "-r", default="all", choices=("all", "api", "worker"),
                        help="which parts to run (default: all)")
    parser.add_argument("--listen-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--demo", action="store_true",
                        help="also run the DHIS2 simulator in-process and create demo users and mappings")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the gateway in the foreground (the default)")
    run.add_argument("--config", "-c", dest="sub_config", default=None)
    run.add_argument("--role", "-r", dest="sub_role", default=None, choices=("all", "api", "worker"))
    for name, text in (("migrate", "apply pending database migrations"),
                       ("check-config", "validate the configuration and print a summary")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", "-c", dest="sub_config", default=None)
        p.add_argument("--env-file", dest="sub_env_file", default=None)
    cu = sub.add_parser("createuser", help="create a user (e.g. the first admin)")
    cu.add_argument("username")
    cu.add_argument("--role", dest="user_role", default="admin", choices=("admin", "operator", "submitter"))
    cu.add_argument("--email", default=None)
    cu.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    cu.add_argument("--config", "-c", dest="sub_config", default=None)
    cu.add_argument("--env-file", dest="sub_env_file", default=None)
    run.add_argument("--env-file", dest="sub_env_file", default=None)
    from dhis2gw.legacy.command import add_arguments as add_import_legacy

    add_import_legacy(sub)
    sub.choices["import-legacy"].add_argument("--env-file", dest="sub_env_file", default=None)
    return parser


def load_env_file(args: argparse.Namespace, environ: Any = os.environ) -> str | None:
    """Add the environment file's variables to ``environ``; the file read (None: none).

    A file named with ``--env-file`` must exist; the default one (``$DHIS2GW_ENV_FILE``) may be
    absent, as systemd's ``EnvironmentFile=-…`` may."""
    from dhis2gw.config import envfile

    named = getattr(args, "sub_env_file", None) or args.env_file
    path = named or environ.get("DHIS2GW_ENV_FILE") or None
    if not path:
        return None
    try:
        values = envfile.read(path)
    except envfile.EnvFileError as e:
        sys.stderr.write(f"dhis2gw: {e}\n")
        raise SystemExit(2) from None
    if values is None:
        if named:
            sys.stderr.write(f"dhis2gw: the environment file {path} does not exist\n")
            raise SystemExit(2)
        return None
    envfile.apply(values, environ)
    return str(path)


def _config(args: argparse.Namespace) -> Any:
    from dhis2gw.wiring.entry import load_config_or_exit

    return load_config_or_exit(getattr(args, "sub_config", None) or args.config)


def _react(main: Any) -> None:
    """Run ``main(reactor)`` (a coroutine function) in a fresh reactor and exit with its code."""
    from twisted.internet import defer, task

    def runner(reactor: Any) -> Any:
        return defer.Deferred.fromCoroutine(main(reactor))

    task.react(runner)


#: Third-party namespaces that chatter at info about their own plumbing: at the default level only
#: their warnings and errors are written (treq's connection pools log "Starting factory" /
#: "Stopping factory" for every DHIS2 connection; APScheduler announces each job it adds).
QUIET_NAMESPACES = ("twisted.web.client._HTTP11ClientFactory", "twisted.internet.protocol", "apscheduler",
                    "txredisapi")


#: Twisted's listening ports announce themselves through the legacy log ("GatewaySite starting on
#: 9090", "(TCP Port 9090 Closed)"), whatever the factory says: the gateway logs its own line.
_PORT_CHATTER = re.compile(r"^(\S+ starting on \d+|\((TCP|UDP) Port \d+ Closed\))$")


def _port_chatter(event: dict[str, Any]) -> Any:
    from twisted.logger import PredicateResult, formatEvent

    if event.get("log_namespace") == "log_legacy" and _PORT_CHATTER.match(formatEvent(event)):
        return PredicateResult.no
    return PredicateResult.maybe


def log_observer(out: Any, level: str = "info") -> Any:
    """A text observer writing events at ``level`` and above (``debug`` shows everything, the known
    third-party chatter included)."""
    from twisted.logger import FilteringLogObserver, LogLevel, LogLevelFilterPredicate, textFileLogObserver

    lowest = LogLevel.levelWithName(level)
    predicate = LogLevelFilterPredicate(defaultLogLevel=lowest)
    predicates: list[Any] = [predicate]
    if lowest >= LogLevel.info:
        for namespace in QUIET_NAMESPACES:
            predicate.setLogLevelForNamespace(namespace, max(lowest, LogLevel.warn))
        predicates.insert(0, _port_chatter)
    return FilteringLogObserver(textFileLogObserver(out), predicates)


def _start_logging(config: Any) -> None:
    """Log to stdout (journald under systemd) or to ``<logdir>/dhis2gw.log``, rotated daily, at
    ``server.log_level`` (info: one line per change of the service's state, warnings for real
    problems; a line per delivery only at debug)."""
    from twisted.logger import globalLogBeginner

    if config.server.log_to_stdout:
        out: Any = sys.stdout
    else:
        from twisted.python.logfile import DailyLogFile

        os.makedirs(config.server.logdir, exist_ok=True)
        out = DailyLogFile("dhis2gw.log", config.server.logdir, defaultMode=0o640)
    globalLogBeginner.beginLoggingTo([log_observer(out, config.server.log_level)], redirectStandardIO=False)


def cmd_check_config(args: argparse.Namespace) -> int:
    """``dhis2gw check-config``."""
    from dhis2gw.config import ConfigError, check_config

    path = getattr(args, "sub_config", None) or args.config
    try:
        print(check_config(path, os.environ))
        if getattr(args, "env_file_read", None):
            print(f"environment file: {args.env_file_read}")
    except ConfigError as e:
        sys.stderr.write(f"dhis2gw: configuration error: {e}\n")
        return 2
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """``dhis2gw migrate``."""
    from dhis2gw.runtime.commands import embedded_servers, migrate_and_report

    with embedded_servers(_config(args)) as config:
        _react(lambda reactor: migrate_and_report(config, reactor))
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        sys.stderr.write("dhis2gw: no terminal to ask for the password: pass it on standard input with"
                         " --password-stdin (e.g. printf '%s\\n' \"$PASSWORD\" | dhis2gw createuser NAME"
                         " --password-stdin)\n")
        raise SystemExit(2)
    first = getpass.getpass("Password: ")
    second = getpass.getpass("Password (again): ")
    if first != second:
        sys.stderr.write("dhis2gw: the passwords do not match\n")
        raise SystemExit(2)
    return first


def cmd_createuser(args: argparse.Namespace) -> int:
    """``dhis2gw createuser``."""
    from dhis2gw.runtime.commands import create_user, embedded_servers

    password = _read_password(args)
    with embedded_servers(_config(args)) as config:
        _react(lambda reactor: create_user(config, reactor, args.username, args.user_role, password, args.email))
    return 0


def cmd_import_legacy(args: argparse.Namespace) -> int:
    """``dhis2gw import-legacy`` (dhis2gw.legacy.command)."""
    from dhis2gw.legacy.command import run
    from dhis2gw.runtime.commands import embedded_servers

    with embedded_servers(_config(args)) as config:
        return run(args, config, _react)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the gateway in the foreground until SIGTERM/SIGINT (the service tree of
    `dhis2gw.wiring.entry.make_service`, which ``twistd dhis2gw`` runs too)."""
    from twisted.internet import reactor

    from dhis2gw.runtime.embedded import StateDirBusy
    from dhis2gw.wiring.entry import make_service

    config = _config(args)
    config_path = getattr(args, "sub_config", None) or args.config
    try:
        top = make_service(config, reactor, config_path=config_path,
                           role=getattr(args, "sub_role", None) or args.role, demo=args.demo,
                           listen_fd=args.listen_fd).service
    except StateDirBusy as e:
        sys.stderr.write(f"{e}\n")
        return 1
    _start_logging(config)
    top.startService()
    reactor.addSystemEventTrigger("before", "shutdown", top.stopService)
    reactor.run()
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    args = _parser().parse_args(argv)
    args.env_file_read = load_env_file(args)
    command = args.command or "run"
    handlers = {"run": cmd_run, "migrate": cmd_migrate, "check-config": cmd_check_config,
                "createuser": cmd_createuser, "import-legacy": cmd_import_legacy}
    raise SystemExit(handlers[command](args))


if __name__ == "__main__":  # pragma: no cover
    main()
