"""``twistd dhis2sim`` options and service."""
from __future__ import annotations

import json

import treq
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from dhis2gw.wiring.simulator import Options, makeService

from .support import basic


class TapTests(TestCase):
    """The subcommand's own --version wins over usage.Options' built-in one, and the service serves."""

    def test_options(self) -> None:
        """--version/--port/--latency/--no-control are parsed; a bad version is a usage error."""
        o = Options()
        o.parseOptions(["--version", "2.40.3", "--port", "0", "--latency", "0.1-0.2", "--no-control"])
        self.assertEqual((o["version"], o["port"], o["latency"], o["no-control"]), ("2.40.3", 0, "0.1-0.2", True))
        self.assertEqual(Options()["version"], "2.40")
        from twisted.python.usage import UsageError
        self.assertRaises(UsageError, Options().parseOptions, ["--version", "2.35"])

    async def test_service_listens(self) -> None:
        """makeService starts a listening simulator with the PAT registered, and stops cleanly."""
        o = Options()
        token = "d2pat_" + "b" * 32 + f"{__import__('zlib').crc32(('d2pat_' + 'b' * 32).encode()):010d}"
        o.parseOptions(["--version", "2.41", "--port", "0", "--pat", token, "--user", "gw:secret"])
        service = makeService(o)
        service.startService()
        self.addCleanup(service.stopService)
        from twisted.internet.task import deferLater
        await deferLater(reactor, 0, lambda: None)
        url = service.server.base_url
        response = await treq.get(url + "/api/system/info", headers={"Authorization": f"ApiToken {token}"},
                                  persistent=False)
        self.assertEqual(json.loads(await response.content())["version"], "2.41.0")
        response = await treq.get(url + "/api/me?fields=username", headers=basic("gw", "secret"), persistent=False)
        self.assertEqual(json.loads(await response.content()), {"username": "gw"})
        await service.stopService()
        self.assertFalse(service.server.listening)
