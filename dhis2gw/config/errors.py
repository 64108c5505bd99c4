"""The two errors of configuration loading: a raw value that does not parse, and the one-line
`ConfigError` the loader raises (naming the key, never showing a secret)."""

from __future__ import annotations


class InvalidValue(ValueError):
    """
    A raw value could not be parsed; the message is the reason, written to follow the value.

    The loader turns it into a ConfigError that names the key, shows the value (never a secret one)
    and says where the value came from.
    """


class ConfigError(Exception):
    """A configuration problem; ``str()`` is one line naming the key, never containing a secret value."""
