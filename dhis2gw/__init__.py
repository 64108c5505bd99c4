"""dhis2gw: a gateway that delivers aggregate and tracker data to DHIS2 safely."""

#: The one place the version is written: setup.cfg reads it (``attr:``), ``dhis2gw --version`` and
#: ``/health`` print it, and scripts/build-deb.sh checks that debian/changelog names the same one.
__version__ = "0.1.0"
