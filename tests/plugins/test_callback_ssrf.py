"""Issue 16, F1/F4/F5: a callback URL chosen by a submitter cannot reach inside the network.

The attacks of the security review, each against the real plugin code: loopback, link-local,
decimal and other numeric spellings of 127.0.0.1, ``0.0.0.0``, the allow-list suffix trick, a 303
from an allowed receiver, a DNS name that resolves to 127.0.0.1 (resolver injected), a 400 MB
answer, and silent receivers next to ordinary DHIS2 deliveries.
"""
from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web import resource, server

from dhis2gw.callbacks.sender import CallbackSender
from dhis2gw.callbacks.settings import CallbackSettings
from dhis2gw.callbacks.submitters import CallbackSubmitters
from dhis2gw.outbound import AllowRule, OutboundPolicy
from tests.plugins import test_callback as base

PUBLIC = "https://hooks.example.org"


def _sender(allowed: str = "", networks: str = "", resolver: Any = None, **env: str) -> CallbackSender:
    """The callback plugin's sender wired to nothing but the reactor (no submitter: no database)."""
    environ = {"DHIS2GW_CALLBACK_SECRET": base.SECRET, "DHIS2GW_CALLBACK_ALLOWED_URLS": allowed,
               "DHIS2GW_CALLBACK_ALLOWED_NETWORKS": networks, **env}
    settings = CallbackSettings.from_environ(environ)
    return CallbackSender(reactor, settings, CallbackSubmitters(None, settings), resolver)  # type: ignore[arg-type]


def _submission(url: str) -> dict[str, Any]:
    return {"uid": "a1234567890", "submitter_id": None, "payload": {"callback_url": url},
            "dhis2_payload": {"event": "submission.final"}}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class UrlPolicyTests(SynchronousTestCase):
    """The URL check made before anything is resolved (ingest and queue time)."""

    def setUp(self) -> None:
        self.policy = OutboundPolicy.from_settings([PUBLIC, "https://*.partner.example:8443"], [])

    def test_allowed_exact_and_suffix(self) -> None:
        """The allow-list matches scheme, host (exact or *.suffix) and port."""
        self.assertIsNone(self.policy.url_refusal("https://hooks.example.org/cb"))
        self.assertIsNone(self.policy.url_refusal("https://a.b.partner.example:8443/x"))
        self.assertIsNotNone(self.policy.url_refusal("https://partner.example:8443/x"))
        self.assertIsNotNone(self.policy.url_refusal("https://a.partner.example/x"))  # port 443 ≠ 8443
        self.assertIsNotNone(self.policy.url_refusal("http://hooks.example.org/cb"))  # scheme

    def test_suffix_trick_is_refused(self) -> None:
        """``https://hooks.example.org.evil.example/`` passed the old ``startswith`` check."""
        for url in ("https://hooks.example.org.evil.example/", "https://hooks.example.org@evil.example/",
                    "https://hooks.example.orgevil.example/", "https://evil.example/?https://hooks.example.org"):
            self.assertIsNotNone(self.policy.url_refusal(url), url)

    def test_internal_addresses_refused_even_when_listed(self) -> None:
        """Loopback, link-local, 0.0.0.0, private, IPv6 loopback and numeric spellings of 127.0.0.1."""
        hosts = ["127.0.0.1", "169.254.169.254", "0.0.0.0", "10.1.2.3", "192.168.1.1", "[::1]",
                 "[::ffff:127.0.0.1]", "[fe80::1]", "224.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1",
                 "127.1", "100.64.0.1"]
        policy = OutboundPolicy.from_settings([f"http://{h}:8700" for h in hosts], [])
        for host in hosts:
            self.assertIsNotNone(policy.url_refusal(f"http://{host}:8700/internal"), host)

    def test_empty_allow_list_refuses_every_body_url(self) -> None:
        """No allow-list: no callback_url from a body is accepted at all."""
        self.assertIsNotNone(OutboundPolicy().url_refusal("https://hooks.example.org/cb"))

    def test_operator_network_exception(self) -> None:
        """A network an operator lists (a LAN receiver) is reachable; its neighbours are not."""
        policy = OutboundPolicy.from_settings(["http://10.1.2.3:9000"], ["10.1.2.0/24"])
        self.assertIsNone(policy.url_refusal("http://10.1.2.3:9000/cb"))
        self.assertIsNotNone(OutboundPolicy.from_settings(["http://10.1.3.3:9000"], ["10.1.2.0/24"])
                             .url_refusal("http://10.1.3.3:9000/cb"))

    def test_bad_rules_stop_start_up(self) -> None:
        """A malformed allow-list entry is a configuration error, not a silent allow-all."""
        for text in ("ftp://x.example", "https://*example.org", "https://a.*.example.org", "https://*.org*"):
            self.assertRaises(ValueError, AllowRule.parse, text)


class _Redirect(resource.Resource):
    isLeaf = True  # noqa: N815 - twisted.web's name

    def __init__(self, location: str) -> None:
        super().__init__()
        self.location = location

    def render_POST(self, request: Any) -> bytes:  # noqa: N802
        request.setResponseCode(303)
        request.setHeader(b"location", self.location.encode())
        return b""


class _Huge(resource.Resource):
    """Answers ``size`` bytes, produced 1 MiB at a time (the receiver itself holds 1 MiB at most)."""

    isLeaf = True  # noqa: N815 - twisted.web's name

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.sent = 0

    def render_POST(self, request: Any) -> Any:  # noqa: N802
        chunk = b"x" * (1 << 20)
        huge = self

        class Producer:
            def resumeProducing(self) -> None:  # noqa: N802
                if huge.sent >= huge.size:
                    request.unregisterProducer()
                    request.finish()
                    return
                huge.sent += len(chunk)
                request.write(chunk)

            def stopProducing(self) -> None:  # noqa: N802
                huge.size = 0

        request.setHeader(b"content-length", str(self.size).encode())
        request.registerProducer(Producer(), False)
        return server.NOT_DONE_YET


class DeliverTests(TestCase):
    """``deliver`` against real local receivers: what reaches them, what the outcome says."""

    def listen(self, site_resource: resource.Resource) -> int:
        port = reactor.listenTCP(0, server.Site(site_resource), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return int(port.getHost().port)

    async def deliver(self, sender: CallbackSender, url: str) -> Any:
        self.addCleanup(lambda: defer.Deferred.fromCoroutine(sender.close()))
        return await sender.deliver(_submission(url))

    async def test_loopback_receiver_is_not_contacted(self) -> None:
        """127.0.0.1 on the allow-list but not in an operator's allowed networks: nothing is sent."""
        receiver = base.Receiver([])
        port = self.listen(receiver)
        url = f"http://127.0.0.1:{port}/internal"
        outcome = await self.deliver(_sender(allowed=f"http://127.0.0.1:{port}"), url)
        self.assertEqual((outcome.kind.value, outcome.reason), ("rejected", "callback_refused"))
        self.assertEqual(receiver.received, [])

    async def test_dns_name_resolving_to_loopback_is_refused_at_connect(self) -> None:
        """A public-looking name on the allow-list whose DNS answer is 127.0.0.1 (rebinding) reaches nothing."""
        receiver = base.Receiver([])
        port = self.listen(receiver)
        asked = []

        async def resolver(host: str, p: int) -> list[str]:
            asked.append(host)
            return ["127.0.0.1"]

        url = f"http://hooks.example.org:{port}/cb"
        sender = _sender(allowed=f"http://hooks.example.org:{port}", resolver=resolver)
        self.assertIsNone(sender.settings.url_problem(url))  # passes the URL check …
        outcome = await self.deliver(sender, url)
        self.assertEqual(asked, ["hooks.example.org"])  # … resolved by the gateway at connect time
        self.assertEqual((outcome.kind.value, outcome.reason), ("rejected", "callback_refused"))
        self.assertIn("127.0.0.1", outcome.message)
        self.assertEqual(receiver.received, [])

    async def test_any_refused_address_refuses_the_name(self) -> None:
        """A name with one public and one private address is refused (the connect could pick either)."""

        async def resolver(host: str, p: int) -> list[str]:
            return ["93.184.216.34", "169.254.169.254"]

        outcome = await self.deliver(_sender(allowed=PUBLIC, resolver=resolver), PUBLIC + "/cb")
        self.assertEqual(outcome.reason, "callback_refused")

    async def test_redirect_is_not_followed(self) -> None:
        """A 303 from an allowed receiver towards an internal service: the target gets nothing."""
        target = base.Receiver([])
        target_port = self.listen(target)
        port = self.listen(_Redirect(f"http://127.0.0.1:{target_port}/internal"))
        sender = _sender(allowed=f"http://127.0.0.1:{port}", networks="127.0.0.1/32")
        outcome = await self.deliver(sender, f"http://127.0.0.1:{port}/cb")
        self.assertEqual((outcome.kind.value, outcome.reason, outcome.http_status),
                         ("rejected", "callback_redirect_refused", 303))
        self.assertEqual(target.received, [])

    async def test_answer_is_capped_and_excerpted(self) -> None:
        """F4: a 400 MB answer is not downloaded: RSS grows < 20 MB; 300 characters are kept."""
        huge = _Huge(400 << 20)
        port = self.listen(huge)
        sender = _sender(allowed=f"http://127.0.0.1:{port}", networks="127.0.0.1/32")
        before = rss_bytes()
        outcome = await self.deliver(sender, f"http://127.0.0.1:{port}/cb")
        growth = rss_bytes() - before
        print(f"\n400 MB answer: RSS grew {growth / 2**20:.1f} MiB; the receiver sent {huge.sent / 2**20:.0f} MiB")
        self.assertEqual(outcome.http_status, 200)
        self.assertEqual(outcome.body, {"receiver_status": 200, "excerpt": "x" * 300})
        self.assertLess(growth, 20 << 20, f"RSS grew {growth / 2**20:.1f} MiB")
        self.assertLess(huge.sent, 16 << 20, f"the receiver got to send {huge.sent / 2**20:.0f} MiB")

    async def test_allow_list_is_checked_again_when_sent(self) -> None:
        """A body URL queued under an allow-list entry that an operator has since removed is not called."""
        receiver = base.Receiver([])
        port = self.listen(receiver)
        sender = _sender(allowed="https://hooks.example.org", networks="127.0.0.1/32")
        submission = _submission(f"http://127.0.0.1:{port}/cb")
        submission["payload"]["url_from"] = "body"
        self.addCleanup(lambda: defer.Deferred.fromCoroutine(sender.close()))
        outcome = await sender.deliver(submission)
        self.assertEqual((outcome.kind.value, outcome.reason), ("rejected", "callback_refused"))
        self.assertEqual(receiver.received, [])
