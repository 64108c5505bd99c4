"""A DHIS2 Web API simulator (2.36 – 2.44) for tests, benchmarks and demos.

It behaves like DHIS2 for what the gateway uses (``reference/dhis2-api.md``): system info,
``/api/me``, metadata lists with ``fields``/``filter``/paging, org-unit writes, aggregate import
(``/api/dataValueSets``, sync and async), tracker import (``/api/tracker``, sync and async jobs),
Basic and PAT auth, and fault injection. It records what it received and stored.

Python API::

    from dhis2gw.sim import Metadata, Simulator, SimulatorServer

    sim = Simulator("2.40", clock=reactor, metadata=Metadata.load_default())
    #   Simulator(version="2.40", *, clock, metadata=None, seed=0, control=True,
    #             job_delay=0.1, time_offset=0.0, keep_request_bodies=True)
    server = SimulatorServer(sim, reactor)   # (sim, reactor, clock=None, host="127.0.0.1", access_log=False)
    port = await server.start(port=0)        # server.base_url == "http://127.0.0.1:<port>"
    ...
    await server.stop()

    sim.version = "2.38"                     # switch version at run time ("2.36" … "2.44", "2.43.2")
    sim.job_delay = 0.5                      # async jobs finish this long after submission (on the clock)
    token = sim.add_pat("admin")             # PAT (2.37+); sim.add_user(name, password, authorities=[…])
    sim.reset()                              # clear store, faults, jobs, counters; restore metadata

Metadata: ``Metadata.load_default()`` (bundled ``country.yml``: 5 levels, 47 units, 32
facilities, 3 data sets, a tracker and an event program), ``Metadata.load(path)``,
``Metadata.generate(facilities=2000)`` (same metadata, generated ~2,250-unit tree).
Default users: ``admin/district`` (ALL), ``reader/Reader123!`` (no F_DATAVALUE_ADD),
``clerk/Clerk123!`` (F_DATAVALUE_ADD, Northern Region only).

Faults (``sim.faults``; ``paths`` limits a rule to API paths containing one of the strings)::

    sim.faults.latency(0.2)                      # or latency(0.1, 0.5) uniform; latency(None) clears
    sim.faults.error_rate(0.1, status=503)       # 500 WebMessage, 502/503/504 nginx HTML, 429 …
    sim.faults.fail_next(2, status=502, paths=["dataValueSets"])
    sim.faults.rate_limit(1.0, retry_after=10)   # 429 + Retry-After
    sim.faults.maintenance(True)                 # 503 maintenance page
    sim.faults.slow_body(chunk_size=16, chunk_delay=0.05)
    sim.faults.commit_then_drop(n=1)             # import stored, TCP connection aborted, no response
    sim.faults.batch_handler_flush(True)         # 2.43+: first registration of a new period -> transient 409
    sim.faults.clear()
    server.outage(seconds)                       # connection refused, then back on the same port

Recorder (``sim.store``): ``data_values`` {(de, pe, ou, coc, aoc): DataValueRecord},
``completions``, ``tracked_entities`` / ``enrollments`` / ``events`` / ``relationships``
{uid: dict}, ``org_units`` {uid: dict} (written through the API), ``write_counts``
(Counter by natural key or UID), ``requests`` [RequestRecord(method, path, query, headers,
body_size, time, body)]. Concurrency: ``sim.in_flight`` / ``sim.max_in_flight`` (POST
dataValueSets/tracker) and ``sim.in_flight_requests`` / ``sim.max_in_flight_requests``.

Control endpoint (no DHIS2 auth; ``Simulator(control=False)`` or ``--no-control`` disables it):
``GET /__sim/state``, ``GET /__sim/store``, ``GET|POST /__sim/faults``, ``POST /__sim/reset``,
``POST /__sim/config {"version": "2.38", "job_delay": 1}``, ``POST /__sim/pats {"username": "admin"}``.
``POST /__sim/faults`` accepts any of::

    {"latency": 0.2 | [0.1, 0.5] | {"min": 0.1, "max": 0.5, "paths": [...]} | null,
     "error_rate": {"rate": 0.1, "status": 503, "paths": [...], "retry_after": 5},
     "fail_next": {"count": 2, "status": 502, "paths": [...]},
     "rate_limit": {"rate": 1.0, "retry_after": 10},
     "maintenance": true, "retry_after": 30,
     "slow_body": {"chunk_size": 16, "chunk_delay": 0.05} | null,
     "commit_then_drop": 1 | {"count": 1, "paths": ["dataValueSets"]},
     "batch_handler_flush": true,
     "outage": 5,
     "clear": true}

From 2.43 ``POST /api/dataValueSets`` runs :mod:`dhis2gw.sim.entry_pipeline` (E80xx/E81xx codes,
duplicate keys refused, data set detection, the dryRun NPE on 2.43.2+); 2.43+ redirects browsers to
``/login/``; 2.44 serves plain ``fields=`` lists through a Gist pager and wipes a failed job's task
feed (``GET /api/jobConfigurations/{id}`` still answers).

Everything waits on the injected clock; nothing sleeps.
"""
from dhis2gw.sim.app import Simulator
from dhis2gw.sim.metadata import Metadata
from dhis2gw.sim.server import SimulatorServer
from dhis2gw.sim.versions import Version

__all__ = ["Metadata", "Simulator", "SimulatorServer", "Version"]
