"""The environment file of the service (``/etc/default/dhis2gw``), read the way systemd reads it.

systemd's ``EnvironmentFile=`` is not a shell script: it takes ``KEY=value`` lines, strips the
whitespace around an unquoted value, understands single and double quotes and backslash escapes,
ignores lines starting with ``#`` or ``;``, joins a line ending in a backslash with the next, and
never expands ``$VARIABLES`` (a password ``pa$$word`` stays ``pa$$word``; ``. file`` in a shell would
turn ``$$`` into a process id). The ``dhis2gw`` command, the package's maintainer scripts and the
service therefore all read it with this one parser (or systemd's own) and see the same values.

Run as a program it serves the maintainer scripts, which must not source the file:

* ``python -m dhis2gw.config.envfile FILE --get NAME [DEFAULT]`` prints one value;
* ``python -m dhis2gw.config.envfile FILE -- COMMAND ARG…`` runs a command with the file's variables
  added to the environment (like ``env``; variables already set win, as under systemd).
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path

#: What the packaged ``/usr/bin/dhis2gw`` reads unless told otherwise (the unit's EnvironmentFile).
DEFAULT_PATH = "/etc/default/dhis2gw"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DOUBLE_ESCAPES = '"\\`$\n'


class EnvFileError(Exception):
    """The environment file exists but cannot be read (one line, for the operator)."""


def _logical_lines(text: str) -> list[str]:
    """Lines with backslash-newline continuations joined (outside single quotes, as systemd does)."""
    out: list[str] = []
    current = ""
    for raw in text.splitlines():
        if raw.endswith("\\") and not raw.endswith("\\\\"):
            current += raw[:-1]
            continue
        out.append(current + raw)
        current = ""
    if current:
        out.append(current)
    return out


def _value(raw: str) -> str:
    """An assignment's right-hand side: quotes and escapes resolved, no variable expansion."""
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n and raw[i] in " \t":
        i += 1
    trailing_space_from = None  # unquoted trailing whitespace is dropped
    while i < n:
        c = raw[i]
        if c == "'":
            end = raw.find("'", i + 1)
            end = n if end < 0 else end
            out.append(raw[i + 1:end])
            i = end + 1
            trailing_space_from = None
        elif c == '"':
            i += 1
            while i < n and raw[i] != '"':
                if raw[i] == "\\" and i + 1 < n and raw[i + 1] in _DOUBLE_ESCAPES:
                    out.append(raw[i + 1])
                    i += 2
                else:
                    out.append(raw[i])
                    i += 1
            i += 1
            trailing_space_from = None
        elif c == "\\" and i + 1 < n:
            out.append(raw[i + 1])
            i += 2
            trailing_space_from = None
        else:
            if c in " \t":
                if trailing_space_from is None:
                    trailing_space_from = len(out)
            else:
                trailing_space_from = None
            out.append(c)
            i += 1
    if trailing_space_from is not None:
        del out[trailing_space_from:]
    return "".join(out)


def parse(text: str) -> dict[str, str]:
    """``KEY=value`` pairs of an environment file, in systemd's syntax (later assignments win)."""
    values: dict[str, str] = {}
    for line in _logical_lines(text):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        name, sep, rest = stripped.partition("=")
        name = name.strip()
        if not sep or not _NAME.match(name):
            continue  # systemd ignores (and logs) a line that is not an assignment
        values[name] = _value(rest)
    return values


def read(path: str | os.PathLike[str]) -> dict[str, str] | None:
    """The variables of ``path``; None when it does not exist (systemd's ``-`` prefix). An existing
    file that cannot be read is an `EnvFileError` naming the file and what to do."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except PermissionError:
        raise EnvFileError(f"cannot read the environment file {path} (permission denied): run this as root or "
                           "as the dhis2gw user, or name another file with --env-file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EnvFileError(f"cannot read the environment file {path}: {e}") from None
    return parse(text)


def apply(values: Mapping[str, str], environ: MutableMapping[str, str]) -> list[str]:
    """Add ``values`` to ``environ`` where not already set (a variable given on the command line
    wins, as under systemd); the names added."""
    added = [name for name in values if name not in environ]
    for name in added:
        environ[name] = values[name]
    return added


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dhis2gw.config.envfile FILE --get NAME [DEFAULT]`` | ``FILE -- COMMAND ARG…``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        sys.stderr.write("usage: python -m dhis2gw.config.envfile FILE --get NAME [DEFAULT] | FILE -- COMMAND ARG...\n")
        return 2
    try:
        values = read(args[0]) or {}
    except EnvFileError as e:
        sys.stderr.write(f"dhis2gw: {e}\n")
        return 2
    if args[1] == "--get" and len(args) in (3, 4):
        print(values.get(args[2], args[3] if len(args) == 4 else ""))
        return 0
    if args[1] == "--" and len(args) > 2:
        environ = dict(os.environ)
        apply(values, environ)
        os.execvpe(args[2], args[2:], environ)
    sys.stderr.write("usage: python -m dhis2gw.config.envfile FILE --get NAME [DEFAULT] | FILE -- COMMAND ARG...\n")
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
