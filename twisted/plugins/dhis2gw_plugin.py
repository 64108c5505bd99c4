"""twistd entry points: ``twistd dhis2gw`` and ``twistd dhis2sim``.

Kept import-light on purpose: importing klein, txredisapi or apscheduler here
would install the default reactor whenever twistd rebuilds ``dropin.cache``.
"""
from twisted.application.service import ServiceMaker

dhis2gw = ServiceMaker(
    "dhis2gw",
    "dhis2gw.tap",
    "DHIS2 gateway: accepts submissions and delivers them to DHIS2",
    "dhis2gw",
)

dhis2sim = ServiceMaker(
    "dhis2sim",
    "dhis2gw.wiring.simulator",
    "DHIS2 Web API simulator (2.36-2.44) for tests, benchmarks and demos",
    "dhis2sim",
)
