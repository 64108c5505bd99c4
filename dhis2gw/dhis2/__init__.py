"""The DHIS2 side of the gateway: treq client, auth, outcome interpretation, UIDs, periods, metadata reads.

Public API (import from here):

* `DHIS2Client` - one per destination; every delivery method returns an `Outcome`.
* `Outcome`, `OutcomeKind`, `JobRef`, `JobProgress` - what a call came to.
* ``interpret_*`` - pure functions from an HTTP answer (or a transport failure) to an Outcome.
* `BasicAuth`, `ApiTokenAuth`, `auth_from_settings` - credentials.
* `generate_uid`, `is_valid_uid`; `parse_period`, `period_type`, `is_valid_period`.
"""

from dhis2gw.dhis2.auth import ApiTokenAuth, BasicAuth, DHIS2Auth, auth_from_settings
from dhis2gw.dhis2.client import DHIS2Client
from dhis2gw.dhis2.failures import ConnectTimeout, ReadTimeout, ResponseTooLarge, interpret_failure
from dhis2gw.dhis2.interpret import (
    interpret_data_value_set_response,
    interpret_job_notifications,
    interpret_metadata_response,
)
from dhis2gw.dhis2.metadata import DataSetStructure, DHIS2ReadError
from dhis2gw.dhis2.outcome import JobProgress, JobRef, Outcome, OutcomeKind
from dhis2gw.dhis2.periods import InvalidPeriod, Period, is_valid_period, parse_period, period_type
from dhis2gw.dhis2.tracker_reports import interpret_tracker_job_report, interpret_tracker_response
from dhis2gw.dhis2.transport import api_root
from dhis2gw.dhis2.uids import generate_uid, generate_uids, is_valid_uid
from dhis2gw.dhis2.versions import parse_version

__all__ = [
    "ApiTokenAuth", "BasicAuth", "ConnectTimeout", "DHIS2Auth", "DHIS2Client", "DHIS2ReadError",
    "DataSetStructure", "InvalidPeriod", "JobProgress", "JobRef", "Outcome", "OutcomeKind", "Period",
    "ReadTimeout", "ResponseTooLarge", "api_root", "auth_from_settings", "generate_uid", "generate_uids",
    "interpret_data_value_set_response", "interpret_failure", "interpret_job_notifications",
    "interpret_metadata_response", "interpret_tracker_job_report", "interpret_tracker_response",
    "is_valid_period", "is_valid_uid", "parse_period", "parse_version", "period_type",
]
