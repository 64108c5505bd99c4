"""Installer of the mappings feature (composition root calls ``install(gateway)``).

* the aggregate kind's mapping lookups go through :class:`CachedMappings` (invalidated across
  processes by the Redis counter ``<queue prefix>:mappings:version``);
* API processes get the metadata cache service (refreshed on the reactor every 6 h, stale after
  48 h; other processes follow through ``<prefix>:metadata:version``) and the aggregate kind's
  pre-validation;
* ``/mappings`` and ``/metadata`` are mounted.
"""
from __future__ import annotations

from typing import Any

from dhis2gw.api.mappings import MappingsApi, MetadataApi
from dhis2gw.mapping.importer import MappingImporter
from dhis2gw.mapping.lookup import CachedMappings, SharedVersion
from dhis2gw.mapping.metadata_cache import MetadataCache
from dhis2gw.mapping.prevalidation import PreValidator
from dhis2gw.storage.mappings import MappingAdminStore

METADATA_REFRESH_SECONDS = 6 * 3600.0
METADATA_MAX_AGE_SECONDS = 48 * 3600.0


def install(gateway: Any) -> None:
    """Wire mappings, the metadata cache and pre-validation into ``gateway``."""
    prefix = gateway.config.queue.prefix
    reactor = gateway.reactor
    mapping_version = SharedVersion(gateway.redis, reactor, f"{prefix}:mappings:version")
    cached = CachedMappings(gateway.db, mapping_version)
    gateway.parts["mappings"] = cached
    aggregate = gateway.kinds.get("aggregate")
    if aggregate is not None and hasattr(aggregate, "mappings"):
        aggregate.mappings = cached
    if not gateway.runs_api:
        return
    metadata = MetadataCache(gateway.db, gateway.destinations.clients, reactor,
                             SharedVersion(gateway.redis, reactor, f"{prefix}:metadata:version", 5.0),
                             interval=METADATA_REFRESH_SECONDS, max_age=METADATA_MAX_AGE_SECONDS,
                             started=gateway.db.started)
    metadata.setServiceParent(gateway.service)
    gateway.parts["metadata_cache"] = metadata
    if aggregate is not None and hasattr(aggregate, "validator"):
        aggregate.validator = PreValidator(metadata)
    importer = MappingImporter(gateway.db, reactor, gateway.redis, prefix, on_change=cached.changed)
    gateway.parts["mapping_importer"] = importer
    from dhis2gw.mapping.sheet_process import SubprocessSheetParser

    gateway.mount(MappingsApi(MappingAdminStore(gateway.db), importer, cached.changed,
                              parser=SubprocessSheetParser(gateway.reactor)))
    gateway.mount(MetadataApi(metadata))
