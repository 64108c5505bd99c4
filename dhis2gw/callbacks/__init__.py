"""Signed HTTP callbacks of final outcomes: the machinery of the optional ``callback`` plugin.

The plugin itself is ``plugins/callback.py`` (a drop-in file; the feature is on only where it is
installed and a secret is configured). It declares :class:`dhis2gw.callbacks.kind.CallbackKind`,
which is set up from the ``PluginContext`` alone:

* ``settings`` — ``CallbackSettings`` from ``DHIS2GW_CALLBACK_*`` and the callbacks file;
* ``signing`` — the exact bytes sent and their HMAC-SHA256 signature;
* ``submitters`` — per-submitter URLs and secrets, and the ``callback_allowed`` permission;
* ``creator`` — final outcome → callback submission in the ``_callbacks`` lane, and the sweep;
* ``sender`` — the signed POST through ``dhis2gw.outbound`` (address policy, no redirects, capped answer);
* ``service`` — the sweep schedule, and the orderly stop.
"""
