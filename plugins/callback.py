"""Optional plugin: tell the submitter a submission's final outcome with a signed HTTP callback.

When a submission reaches a final state (delivered, partial, rejected or failed), the gateway
POSTs a JSON document about it to a callback URL taken from, in this order:

1. the ``callback_url`` field of the submission body as it was received (the aggregate simplified
   form and the example ``event`` kind accept it; it is never sent to DHIS2 by them);
2. the ``url`` configured for the submitting user in the callbacks file (below).

The body is signed with HMAC-SHA256 over the exact bytes sent, in
``X-Dhis2gw-Signature: sha256=<hex>``; the receiver recomputes it with the shared secret and
compares in constant time. ``X-Dhis2gw-Delivery`` is the callback's own submission UID (the same
on every retry: use it to drop duplicates).

Safety (issue 16; the URL is chosen by a user, the request is made from inside the network):

* a ``callback_url`` in a body is only taken from a submitter whose ``callback_allowed`` flag is
  set (``PUT /api/v2/users/<uid>``; ingest answers 403 otherwise), and only when it matches the
  allow-list (scheme, host — exact or ``*.suffix`` — and port; ``dhis2gw.outbound.AllowRule``);
* every callback, including the per-submitter URLs of the callbacks file, goes through
  ``dhis2gw.outbound``: the name is resolved by the gateway, every address is checked (loopback,
  private, link-local, multicast, unspecified, reserved are refused unless their network is in
  ``allowed_networks``) and the connection goes to the checked address, so DNS rebinding does
  not help; redirects are never followed; at most ``DHIS2GW_CALLBACK_MAX_RESPONSE_BYTES`` of the
  answer is read (the rest is not downloaded) and only a short excerpt and the status are kept,
  for operators: a submitter reading its callback in ``GET /submissions/<id>`` does not see them.

Reliability: the callback is itself a submission of kind ``callback`` in the ``_callbacks`` lane
of the queue — its own worker and concurrency (``DHIS2GW_CALLBACK_CONCURRENCY``), so silent
receivers never take the delivery slots of a DHIS2 destination — created with the idempotency key
``callback:<uid>:<attempt>``. It is retried with the normal backoff and ``max_retries``, survives
restarts, and shows in ``GET /api/v2/submissions/<id>`` and the logs like any other submission;
operators can requeue it. Its ``deliver`` ignores the DHIS2 client and uses its own HTTP client;
a receiver that is down or answers 5xx/408/429 is a job-level retry, a refused address, a
redirect or another 4xx a rejection — never a destination failure.
The callback row is created just after the outcome is committed; a crash exactly between the two
is covered by a sweep (at start-up, then every ``DHIS2GW_CALLBACK_SWEEP_SECONDS``) that queues the
callback of every final submission of the last 24 hours that should have one and has none. The
idempotency key makes the sweep and the normal path create it once between them, in any process.

Configuration (environment, e.g. /etc/default/dhis2gw; secrets are never stored in the database):

``DHIS2GW_CALLBACK_SECRET``        default HMAC secret; callbacks are only sent when a secret applies
``DHIS2GW_CALLBACK_CONFIG``        YAML file: ``secret:``, ``allowed_urls: [..]`` (``allowed_url_prefixes``
                                   is read the same way), ``allowed_networks: [..]`` and
                                   ``submitters: {<username>: {url: .., secret: ..}}``
``DHIS2GW_CALLBACK_ALLOWED_URLS``  comma-separated allow-list of ``scheme://host[:port][/path]``; host may be
                                   ``*.example.org``. Empty: no ``callback_url`` from a body is accepted
``DHIS2GW_CALLBACK_ALLOWED_NETWORKS`` comma-separated CIDRs reachable although not public (a LAN receiver)
``DHIS2GW_CALLBACK_TIMEOUT``       seconds for one callback request, answer included (default 10)
``DHIS2GW_CALLBACK_MAX_RESPONSE_BYTES`` bytes of an answer read at most (default 65536)
``DHIS2GW_CALLBACK_CONCURRENCY``   callbacks in flight at once, per process (default 4)
``DHIS2GW_CALLBACK_SWEEP_SECONDS`` how often the sweep runs (default 300; 0: only at start-up)

The machinery is part of the gateway (``dhis2gw.callbacks``) and uses only the ``PluginContext``;
this file declares it, so the feature is on where this file is in the plugins directory.
"""
from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import alsoProvides

from dhis2gw.callbacks.kind import CallbackKind

#: The object ``getPlugins`` finds: the internal kind ``callback`` (its ``setup`` wires the rest).
callback = CallbackKind()
alsoProvides(callback, IPlugin)
