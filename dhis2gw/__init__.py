"""dhis2gw: a gateway that delivers aggregate and tracker data to DHIS2 safely."""

__version__ = "0.1.0"
