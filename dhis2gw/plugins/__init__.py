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

__path__ = list(__path__)  # a plain list: extend_path appends to it
__path__.extend(pluginPackagePaths(__name__))
__all__: list[str] = []


def extend_path(directory: str) -> bool:
    """Search ``directory`` for plugins too (once); return False when it does not exist."""
    resolved = os.path.abspath(directory)
    if not os.path.isdir(resolved):
        return False
    if resolved not in __path__:
        __path__.append(resolved)
    return True
