"""Upgrading from the original Go dhis2gw: ``dhis2gw import-legacy`` (docs/upgrade-from-go.md)."""
