"""The callback plugin end to end: final outcome → queued callback → signed POST to a local receiver."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.web import resource, server

from dhis2gw.delivery.dispatcher import Dispatcher
from dhis2gw.delivery.observers import DeliveryEvents
from dhis2gw.runtime.lifecycle import OrderedServices
from dhis2gw.wiring.plugins import load_plugins
from tests.plugins.support import SHIPPED, create_user, isolate_plugin_path, make_context, restore_env, unset_env
from tests.support.delivery import FACILITIES, DeliveryRig

SECRET = "callback-test-secret-0123456789"


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """The receiver's check, written independently of the plugin: HMAC-SHA256 over the raw body."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header)


class Receiver(resource.Resource):
    """A callback receiver: answers with the next status of ``codes`` and keeps what it got."""

    isLeaf = True  # noqa: N815 - twisted.web's name

    def __init__(self, codes: list[int]) -> None:
        super().__init__()
        self.codes = list(codes)
        self.received: list[tuple[dict[str, str], bytes]] = []

    def render_POST(self, request: Any) -> bytes:  # noqa: N802
        headers = {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}
        self.received.append((headers, request.content.read()))
        request.setResponseCode(self.codes.pop(0) if self.codes else 200)
        return b"ok"


class _Silent(resource.Resource):
    """Accepts the request and never answers."""

    isLeaf = True  # noqa: N815 - twisted.web's name

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Any] = []

    def render_POST(self, request: Any) -> Any:  # noqa: N802
        self.requests.append(request)
        return server.NOT_DONE_YET


class CallbackTests(DeliveryRig):
    """A receiver on 127.0.0.1 checks the HMAC of what the gateway sends."""

    async def rig_setup(self) -> None:
        await super().rig_setup()
        isolate_plugin_path(self)
        saved = unset_env("DHIS2GW_CALLBACK_SECRET", "DHIS2GW_CALLBACK_CONFIG", "DHIS2GW_CALLBACK_ALLOWED_URLS",
                          "DHIS2GW_CALLBACK_ALLOWED_NETWORKS", "DHIS2GW_CALLBACK_TIMEOUT",
                          "DHIS2GW_CALLBACK_CONCURRENCY")
        self.addCleanup(restore_env, saved)
        os.environ["DHIS2GW_CALLBACK_SECRET"] = SECRET
        # The receivers of these tests listen on loopback: an operator's explicit exception.
        os.environ["DHIS2GW_CALLBACK_ALLOWED_NETWORKS"] = "127.0.0.1/32"
        self.submitter_id: Any = None

    async def submit(self, body: dict[str, Any], push: bool = True) -> int:
        """Like ingest, by a submitter allowed to name a callback_url."""
        from dhis2gw.dhis2.uids import generate_uid
        from dhis2gw.interfaces import IngestRequest
        from dhis2gw.storage.submissions import NewSubmission

        if self.submitter_id is None:
            self.submitter_id = await create_user(self.db, "callback-submitter")
            await self.db.execute("test.allow", "UPDATE users SET callback_allowed = true WHERE id = %s",
                                  (self.submitter_id,))
        prepared = await self.kind.prepare(IngestRequest(body, self.submitter_id, "", "main", "main", {}))
        created = await self.store.create(NewSubmission(
            uid=generate_uid(), kind="aggregate", destination="main", submitter_id=self.submitter_id,
            endpoint="/api/v2/aggregate", payload=body, dhis2_payload=prepared.dhis2_payload,
            import_params=prepared.import_params, value_count=prepared.value_count))
        if push:
            await self.queue.enqueue("main", created.row["id"])
        return int(created.row["id"])

    async def start(self, codes: list[int]) -> Receiver:
        receiver = Receiver(codes)
        port = reactor.listenTCP(0, server.Site(receiver), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.receiver_url = f"http://127.0.0.1:{port.getHost().port}/hooks/dhis2"
        os.environ.setdefault("DHIS2GW_CALLBACK_ALLOWED_URLS", f"http://127.0.0.1:{port.getHost().port}/hooks")
        events = DeliveryEvents()
        outcomes = events.outcomes
        dispatcher: Dispatcher = self.make_dispatcher(start=False, events=events)
        services = OrderedServices()
        context = make_context(reactor, role="all", db=self.db, submissions=self.store, queue=self.queue,
                               dispatcher=dispatcher, outcomes=outcomes, service=services)
        load_plugins(context, self.kinds, str(SHIPPED))  # the dispatcher shares self.kinds: it knows "callback"
        dispatcher.setServiceParent(services)  # stops before the plugin's service, as in the composition root
        services.startService()
        self.addCleanup(services.stopService)
        return receiver

    async def wait_received(self, receiver: Receiver, n: int) -> None:
        for _ in range(600):
            if len(receiver.received) >= n:
                return
            await deferLater(reactor, 0.05, lambda: None)
        self.fail(f"the receiver got {len(receiver.received)} callbacks, expected {n}")

    async def callback_rows(self) -> list[dict[str, Any]]:
        return await self.db.fetch("test.callbacks", "SELECT id, uid, status, attempts, payload, idempotency_key"
                                   " FROM submissions WHERE kind = 'callback' ORDER BY id")

    async def test_final_outcome_is_posted_signed(self) -> None:
        """A delivered submission with callback_url → one POST whose HMAC-SHA256 signature verifies."""
        receiver = await self.start([200])
        sid = await self.submit({"orgUnit": FACILITIES[0], "period": "202401", "dataValues": {"OPD": 12},
                                 "callback_url": self.receiver_url})
        await self.wait_received(receiver, 1)
        headers, body = receiver.received[0]
        self.assertTrue(verify_signature(SECRET, body, headers["x-dhis2gw-signature"]))
        self.assertFalse(verify_signature("another-secret", body, headers["x-dhis2gw-signature"]))
        self.assertEqual(headers["content-type"], "application/json")
        document = json.loads(body)
        self.assertEqual(document["event"], "submission.final")
        self.assertEqual(document["submission"]["id"], sid)
        self.assertEqual(document["submission"]["status"], "delivered")
        self.assertEqual(document["submission"]["import_count"]["imported"], 1)
        self.assertEqual(document["status_url"], f"/api/v2/submissions/{sid}")
        rows = await self.callback_rows()
        self.assertEqual(len(rows), 1)
        self.assertEqual(headers["x-dhis2gw-delivery"], rows[0]["uid"].strip())
        self.assertEqual(rows[0]["payload"]["for_submission"], sid)
        await self.wait_final([rows[0]["id"]])
        self.assertEqual((await self.statuses([rows[0]["id"]]))[rows[0]["id"]], "delivered")
        self.assertEqual(len(receiver.received), 1)

    async def test_sweep_queues_the_callback_a_crash_left_out(self) -> None:
        """A final submission without its callback row (a crash right after the outcome commit) gets one
        from the sweep, posted and signed like any other; a second sweep finds nothing to do."""
        receiver = await self.start([200])
        refused = await self.submit({"orgUnit": FACILITIES[2], "period": "202401", "dataValues": {"OPD": 4},
                                     "callback_url": "ftp://example.org/hook"}, push=False)
        sid = await self.submit({"orgUnit": FACILITIES[0], "period": "202401", "dataValues": {"OPD": 5},
                                 "callback_url": self.receiver_url}, push=False)
        await self.db.execute("test.crash", "UPDATE submissions SET status = 'delivered', attempts = 1,"
                              " http_status = 200, finished_at = now() - interval '5 minutes' WHERE id = ANY(%s)",
                              ([refused, sid],))
        recent = await self.submit({"orgUnit": FACILITIES[1], "period": "202401", "dataValues": {"OPD": 6},
                                    "callback_url": self.receiver_url}, push=False)
        await self.db.execute("test.recent", "UPDATE submissions SET status = 'delivered', attempts = 1,"
                              " finished_at = now() WHERE id = %s", (recent,))  # inside the grace period
        self.assertEqual(await self.callback_rows(), [])
        plugin = self.kinds["callback"]
        self.assertEqual(await plugin.sweep(), 1)
        await self.wait_received(receiver, 1)
        headers, body = receiver.received[0]
        self.assertTrue(verify_signature(SECRET, body, headers["x-dhis2gw-signature"]))
        document = json.loads(body)
        self.assertEqual((document["submission"]["id"], document["submission"]["status"]), (sid, "delivered"))
        self.assertEqual(document["outcome"]["reason"], "recovered")
        self.assertEqual(await plugin.sweep(), 0)
        rows = await self.callback_rows()
        self.assertEqual([(r["payload"]["for_submission"], r["idempotency_key"]) for r in rows],
                         [(sid, f"callback:{(await self.store.get(sid))['uid']}:1")])

    async def test_receiver_failure_is_retried_through_the_queue(self) -> None:
        """A 503 from the receiver spends a retry; the retry carries the same bytes and signature."""
        receiver = await self.start([503, 200])
        sid = await self.submit({"orgUnit": FACILITIES[1], "period": "202402", "dataValues": {"OPD": 5},
                                 "callback_url": self.receiver_url})
        await self.wait_received(receiver, 2)
        (first_headers, first), (second_headers, second) = receiver.received
        self.assertEqual(first, second)
        self.assertEqual(first_headers["x-dhis2gw-signature"], second_headers["x-dhis2gw-signature"])
        rows = await self.callback_rows()
        await self.wait_final([rows[0]["id"]])
        row = await self.store.get(rows[0]["id"])
        self.assertEqual((row["status"], row["attempts"], row["job_failures"]), ("delivered", 2, 1))
        self.assertEqual(self.dispatcher.breakers["main"].state, "closed")
        self.assertEqual(json.loads(second)["submission"]["id"], sid)

    async def test_rejected_submission_is_reported_and_bad_urls_refused(self) -> None:
        """A submission DHIS2 refused a value of is reported with its final status; a non-http callback_url
        gets no callback row."""
        receiver = await self.start([])
        rejected = await self.submit({"orgUnit": FACILITIES[2], "period": "202403", "dataValues": {"OPD": -4},
                                      "callback_url": self.receiver_url})
        refused = await self.submit({"orgUnit": FACILITIES[3], "period": "202403", "dataValues": {"OPD": 4},
                                     "callback_url": "file:///etc/passwd"})
        await self.wait_final([rejected, refused])
        await self.wait_received(receiver, 1)
        document = json.loads(receiver.received[0][1])
        final = (await self.statuses([rejected]))[rejected]
        self.assertIn(final, ("partial", "rejected"))
        self.assertEqual((document["submission"]["id"], document["submission"]["status"]), (rejected, final))
        self.assertGreater(document["outcome"]["conflicts"], 0)
        rows = await self.callback_rows()
        self.assertEqual([r["payload"]["for_submission"] for r in rows], [rejected])

    async def test_per_submitter_url_from_the_callbacks_file(self) -> None:
        """A submitter configured in DHIS2GW_CALLBACK_CONFIG gets callbacks signed with its own secret."""
        path = self.mktemp()
        receiver = Receiver([])
        port = reactor.listenTCP(0, server.Site(receiver), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        receiver_port = port.getHost().port
        with open(path, "w") as f:
            f.write(f"submitters:\n  Lab-System:\n    url: http://127.0.0.1:{receiver_port}/cb\n"
                    f"    secret: per-submitter-secret-xyz\n")
        os.environ["DHIS2GW_CALLBACK_CONFIG"] = path
        await self.start([])
        user_id = await create_user(self.db, "lab-system")
        from dhis2gw.dhis2.uids import generate_uid
        from dhis2gw.interfaces import IngestRequest
        from dhis2gw.storage.submissions import NewSubmission

        body = {"orgUnit": FACILITIES[4], "period": "202404", "dataValues": {"OPD": 8}}
        prepared = await self.kind.prepare(IngestRequest(body, user_id, "", "main", "main", {}))
        created = await self.store.create(NewSubmission(
            uid=generate_uid(), kind="aggregate", destination="main", submitter_id=user_id, endpoint="/x",
            payload=body, dhis2_payload=prepared.dhis2_payload, import_params=prepared.import_params,
            value_count=prepared.value_count))
        await self.queue.enqueue("main", created.row["id"])
        await self.wait_received(receiver, 1)
        headers, sent = receiver.received[0]
        self.assertTrue(verify_signature("per-submitter-secret-xyz", sent, headers["x-dhis2gw-signature"]))
        self.assertFalse(verify_signature(SECRET, sent, headers["x-dhis2gw-signature"]))
        self.assertEqual(json.loads(sent)["submission"]["id"], created.row["id"])

    async def test_silent_receivers_do_not_take_delivery_slots(self) -> None:
        """10 callbacks hang on a silent receiver; an ordinary submission is still delivered at once."""
        os.environ["DHIS2GW_CALLBACK_TIMEOUT"] = "60"
        silent = _Silent()
        port = reactor.listenTCP(0, server.Site(silent), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        os.environ["DHIS2GW_CALLBACK_ALLOWED_URLS"] = f"http://127.0.0.1:{port.getHost().port}"
        os.environ["DHIS2GW_CALLBACK_CONCURRENCY"] = "10"
        await self.start([])
        url = f"http://127.0.0.1:{port.getHost().port}/cb"
        ids = [await self.submit({"orgUnit": f, "period": "202405", "dataValues": {"OPD": i + 1},
                                  "callback_url": url}) for i, f in enumerate(FACILITIES[:5])]
        ids += [await self.submit({"orgUnit": f, "period": "202406", "dataValues": {"OPD": i + 1},
                                   "callback_url": url}) for i, f in enumerate(FACILITIES[:5])]
        await self.wait_final(ids)
        for _ in range(200):
            if len(silent.requests) >= 10:
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(len(silent.requests), 10)
        started = reactor.seconds()
        sid = await self.submit({"orgUnit": FACILITIES[0], "period": "202407", "dataValues": {"OPD": 3}})
        await self.wait_final([sid])
        print(f"\nordinary delivery next to 10 silent callbacks: {reactor.seconds() - started:.2f} s")
        # Delivered while every callback still waits on its silent receiver (none has timed out):
        # the delivery did not queue behind them for a slot.
        rows = await self.callback_rows()
        self.assertEqual(len(rows), 10)
        self.assertEqual({r["status"] for r in rows}, {"processing"}, rows)
        lanes = await self.db.fetch("test.lanes",
                                    "SELECT DISTINCT destination FROM submissions WHERE kind = 'callback'")
        self.assertEqual([r["destination"] for r in lanes], ["_callbacks"])
        for request in silent.requests:
            request.transport.loseConnection()

