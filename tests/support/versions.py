"""One test class per simulated DHIS2 version, made from one mixin (instead of a class per version by hand)."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", bound=type)

#: Every DHIS2 version the simulator answers as where the gateway's rules change (dhis2gw.sim.versions):
#: 2.43.0 keeps a mixed import at 409, 2.43.1 answers it 200 and lets a superuser write future periods,
#: 2.43.2 adds the dryRun NPE.
SIMULATED_VERSIONS = ("2.36", "2.37", "2.38", "2.39", "2.40", "2.41", "2.42", "2.43.0", "2.43.1", "2.43.2", "2.44")


def per_version(base: type, *versions: str) -> Callable[[T], T]:
    """Class decorator for a mixin of tests: one ``base`` test case per version, with ``version`` set.

    The classes are named after the mixin and the version's digits (``_SimFaults`` at 2.43.0 gives
    ``SimFaults2430Tests``) and put in the mixin's module, where the test runner finds them; the
    mixin itself is returned unchanged (it is not a test case, so it is not collected).
    """
    if not versions:
        raise ValueError("per_version needs at least one version")

    def make(mixin: T) -> T:
        module = sys.modules[mixin.__module__]
        summary = " ".join((mixin.__doc__ or mixin.__name__).strip().split("\n\n")[0].split()).rstrip(".")
        stem = mixin.__name__.lstrip("_")
        for version in versions:
            name = f"{stem}{version.replace('.', '')}Tests"
            if hasattr(module, name):
                raise ValueError(f"{module.__name__}.{name} exists already")
            cls = type(name, (mixin, base), {"version": version, "__module__": mixin.__module__,
                                               "__qualname__": name, "__doc__": f"{summary}: DHIS2 {version}."})
            setattr(module, name, cls)
        return mixin

    return make
