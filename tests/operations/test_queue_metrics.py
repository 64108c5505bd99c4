"""GET /queue, pause/resume, and /metrics (Prometheus text from the gateway's own registry)."""
from __future__ import annotations

from prometheus_client import REGISTRY
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from dhis2gw.dhis2.outcome import Outcome, OutcomeKind
from dhis2gw.operations.metrics import GatewayMetrics
from tests.operations.support import OperationsTestCase


class QueueApiTests(OperationsTestCase):
    """Queue status per destination with a running dispatcher."""

    role = "all"

    async def test_status_pause_resume(self) -> None:
        """GET /queue shows ready/processing/delayed, the oldest waiting row, in-flight and the breaker;
        pause/resume flip the Redis hand brake."""
        await self.gateway.queue.pause("main")  # keep the dispatcher from claiming the seeded ids
        rows = await self.sql(
            "INSERT INTO submissions (uid, kind, destination, endpoint, payload, status, created_at)"
            " SELECT 'Q' || lpad(g::text, 10, '0'), 'aggregate', 'main', '/api/v2/aggregate', '{}', 'queued',"
            " now() - g * interval '1 hour' FROM generate_series(1, 3) g RETURNING id")
        await self.gateway.queue.enqueue_many("main", [r["id"] for r in rows])
        code, body = await self.call("GET", "/api/v2/queue")
        self.assertEqual(code, 200, body)
        [main] = [d for d in body["destinations"] if d["destination"] == "main"]
        self.assertEqual((main["ready"], main["processing"], main["delayed"], main["paused"], main["waiting_rows"]),
                         (3, 0, 0, True, 3))
        self.assertGreater(main["oldest_waiting_seconds"], 3 * 3600 - 60)
        self.assertEqual(main["in_flight"], 0)
        self.assertEqual(main["breaker"]["state"], "closed")
        self.assertTrue(body["redis"])
        # which gateway answers and where "main" delivers: the admin dashboard names both
        self.assertEqual(main["url"], self.gateway.config.api.dhis2_base_url)
        self.assertEqual(set(body["gateway"]), {"name", "version", "timezone"})
        self.assertEqual(body["gateway"]["timezone"], self.gateway.config.server.timezone)
        code, body = await self.call("POST", "/api/v2/queue/main/resume", who="operator")
        self.assertEqual((code, body["paused"]), (200, False))
        self.assertFalse(await self.gateway.queue.is_paused("main"))
        code, body = await self.call("POST", "/api/v2/queue/main/pause")
        self.assertEqual((code, body["paused"]), (200, True))
        self.assertTrue(await self.gateway.queue.is_paused("main"))
        code, body = await self.call("POST", "/api/v2/queue/nowhere/pause")
        self.assertEqual((code, body["error"]["code"]), (404, "unknown_destination"))
        code, body = await self.call("GET", "/api/v2/queue", who="submitter")
        self.assertEqual(code, 403)

    async def test_metrics_text(self) -> None:
        """/metrics renders queue depth, oldest age, breaker state, in-flight and HTTP counters by route."""
        await self.gateway.queue.pause("main")
        rows = await self.sql(
            "INSERT INTO submissions (uid, kind, destination, endpoint, payload, status, created_at)"
            " VALUES ('M0000000001', 'aggregate', 'main', '/api/v2/aggregate', '{}', 'queued',"
            " now() - interval '10 minutes') RETURNING id")
        await self.gateway.queue.enqueue("main", rows[0]["id"])
        await self.call("GET", "/api/v2/logs?page_size=1")
        code, text = await self.call("GET", "/metrics")
        self.assertEqual(code, 200)
        text = text.decode()
        self.assertIn('dhis2gw_queue_depth{destination="main",state="ready"} 1.0', text)
        self.assertIn('dhis2gw_destination_paused{destination="main"} 1.0', text)
        self.assertIn('dhis2gw_queue_waiting_rows{destination="main"} 1.0', text)
        age = [line for line in text.splitlines()
               if line.startswith('dhis2gw_queue_oldest_waiting_seconds{destination="main"}')]
        self.assertGreater(float(age[0].split()[-1]), 590)
        self.assertIn('dhis2gw_breaker_state{destination="main",state="closed"} 1.0', text)
        self.assertIn('dhis2gw_in_flight{destination="main"} 0.0', text)
        self.assertIn('dhis2gw_http_requests_total{method="GET",route="/api/v2/logs",status="200"} 1.0', text)
        self.assertIn("dhis2gw_http_request_duration_seconds_bucket", text)
        self.assertIn("dhis2gw_request_log_dropped_total 0.0", text)
        # the gateway's registry is its own: nothing was added to the process-wide default
        self.assertNotIn("dhis2gw_queue_depth", {m.name for m in REGISTRY.collect()})


class DeliveryMetricsTests(SynchronousTestCase):
    """The worker observer turns outcomes into counters and the latency histogram."""

    def test_outcomes(self) -> None:
        """Attempts by outcome, import counts, conflicts and latency are counted per destination and kind."""
        metrics = GatewayMetrics(Clock())
        metrics.delivery_recorded("main", {"kind": "aggregate"}, Outcome(
            OutcomeKind.PARTIAL, import_count={"imported": 3, "updated": 2, "ignored": 1, "deleted": 0},
            conflicts=({"object": "x", "value": "y"},), duration=0.3), "recorded")
        metrics.delivery_recorded("main", {"kind": "aggregate"}, Outcome(OutcomeKind.RETRY, duration=1.5),
                                  "recorded")
        metrics.leases_expired([("main", 1), ("main", 2)])
        text = metrics.render().decode()
        for line in ('dhis2gw_delivery_attempts_total{destination="main",kind="aggregate",outcome="partial"} 1.0',
                     'dhis2gw_delivery_attempts_total{destination="main",kind="aggregate",outcome="retry"} 1.0',
                     'dhis2gw_dhis2_import_count_total{count="imported",destination="main",kind="aggregate"} 3.0',
                     'dhis2gw_dhis2_import_count_total{count="ignored",destination="main",kind="aggregate"} 1.0',
                     'dhis2gw_dhis2_conflicts_total{destination="main",kind="aggregate"} 1.0',
                     'dhis2gw_dhis2_request_seconds_count{destination="main",kind="aggregate"} 2.0',
                     'dhis2gw_lease_expiries_total{destination="main"} 2.0'):
            self.assertIn(line, text)
