"""Org-unit hierarchy sync from the main DHIS2 and its propagation to CC servers (DESIGN.md §7).

* `dhis2gw.sync.reader` — paged reads of units, levels and groups from the main DHIS2;
* `dhis2gw.sync.units` — one unit as stored locally and as sent to CC servers (and its hash);
* `dhis2gw.sync.hierarchy` — `HierarchySync`: one sync run (full first, then ``lastUpdated``-incremental);
* `dhis2gw.sync.planner` — `PropagationPlanner`: turns the local copy into ``orgunit`` submissions;
* `dhis2gw.api.sync` — ``GET /orgunits``, ``POST /sync/orgunits``, ``GET /cron``;
* the composition root (`dhis2gw.wiring.features`) builds the sync and its cron jobs.
"""
