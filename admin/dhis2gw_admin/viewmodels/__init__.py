"""View models: the state and rules of each screen, observable, without Kivy."""
from dhis2gw_admin.viewmodels.dashboard import DashboardVM
from dhis2gw_admin.viewmodels.detail import DetailVM
from dhis2gw_admin.viewmodels.login import LoginVM
from dhis2gw_admin.viewmodels.logs import LogsVM
from dhis2gw_admin.viewmodels.mappings import MappingsVM
from dhis2gw_admin.viewmodels.users import UsersVM

__all__ = ["DashboardVM", "DetailVM", "LoginVM", "LogsVM", "MappingsVM", "UsersVM"]
