"""The plugin package searched by ``twisted.plugin.getPlugins(I…, dhis2gw.plugins)``.

Plugin modules are plain ``.py`` files (no ``__init__.py`` needed) in any directory on this
package's ``__path__``:

* ``dhis2gw/plugins/`` itself (empty in the distribution);
* ``dhis2gw/plugins/`` under every other ``sys.path`` entry (``pluginPackagePaths``), so another
  installed distribution can ship plugins without touching this one;
* the configured ``server.plugins_directory`` (``./plugins`` in a checkout,
  ``/usr/share/dhis2gw/plugins`` from the .deb), added by ``extend_path`` before discovery.

Each module defines module-level objects that provide ``twisted.plugin.IPlugin`` and one of the
interfaces of ``dhis2gw.interfaces``; see docs/writing-a-plugin.md.
"""
from __future__ import annotations

import os

from twisted.plugin import pluginPackagePaths

__path__ = list(__path__)  # a plain list: extend_path sets its last entry
__path__.extend(pluginPackagePaths(__name__))
_BASE_PATH = list(__path__)
__all__: list[str] = []


def extend_path(directory: str) -> bool:
    """Make ``directory`` THE configured plugin directory (replacing an earlier one).

    A process has one configuration, so one directory; replacing rather than appending keeps
    gateways built one after another in the same process (tests) from seeing each other's
    plugins. Returns False when the directory does not exist.
    """
    resolved = os.path.abspath(directory)
    if not os.path.isdir(resolved):
        __path__[:] = _BASE_PATH
        return False
    __path__[:] = _BASE_PATH + [resolved]
    return True
