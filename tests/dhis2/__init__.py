"""Tests of dhis2gw.dhis2: outcome interpretation, client, UIDs, periods, metadata reads."""
