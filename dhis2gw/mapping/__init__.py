"""DHIS2 mappings and DHIS2 metadata: the bridge between submitters' codes and DHIS2 UIDs.

* :mod:`.rows` — the original's 13 columns, header matching and per-row validation;
* :mod:`.sheets` — reading CSV/XLSX uploads safely (limits, zip-bomb guard, no formulas);
* :mod:`.importer` — upsert of parsed rows (all-or-nothing or partial, dry run) and import jobs
  with progress;
* :mod:`.export` — CSV/XLSX export and the XLSX template;
* :mod:`.lookup` — the in-memory mapping cache of the ingest hot path, invalidated across
  processes through a Redis version counter;
* :mod:`.metadata_cache` — DHIS2 metadata per destination, persisted in ``metadata_cache``;
* :mod:`.prevalidation` — checks of an aggregate payload against that metadata (E76xx codes);
* the composition root (dhis2gw.wiring) builds these pieces and the aggregate kind from them.
"""
