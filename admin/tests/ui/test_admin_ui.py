"""Drive every screen of the admin app headless against a real gateway, and take screenshots.

The tests run in order and share one window (one per process): log in, dashboard, filter the
log list, open a failed submission, requeue it and see its status change, requeue from a row,
mappings import with progress, users, log out from Users and in again, Logs during a gateway
outage, and last the README's screenshots of every screen on a national-sized picture (2,000 more
facilities, six months of submissions) — the report screen included.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from conftest import OUTPUT, PASSWORD, ROOT, Driver, Gateway

DOCS_IMG = ROOT / "docs" / "img"


def _publish(shot: str, name: str) -> None:
    """Copy a screenshot to docs/img for the README — only when asked (DHIS2GW_UPDATE_SCREENSHOTS=1),
    so an ordinary test run does not modify tracked files."""
    if os.environ.get("DHIS2GW_UPDATE_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(OUTPUT / shot, DOCS_IMG / name)
STATE: dict[str, list[int]] = {}


def _failed_submissions(gateway: Gateway) -> None:
    """Two delivered submissions, then three that DHIS2 refuses with a 500 while it answers other work
    (its health check passes, so each 500 spends a retry; no retries → failed)."""
    ok = [gateway.submit(10 + i, facility=i) for i in range(2)]
    for sid in ok:
        gateway.wait_status(sid, "delivered")
    gateway.sim.control("faults", {"error_rate": {"rate": 1.0, "status": 500, "paths": ["dataValueSets"]}})
    failed = [gateway.submit(20 + i, facility=5 + i) for i in range(3)]
    for sid in failed:
        gateway.wait_status(sid, "failed")
    gateway.sim.control("faults", {"clear": True})
    STATE["ok"], STATE["failed"] = ok, failed


def test_login_then_dashboard(ui: Driver, gateway: Gateway) -> None:
    """A wrong password shows a plain sentence; the right one opens the dashboard with counts and queues."""
    _failed_submissions(gateway)
    app = ui.app
    login = app.screens["login"]
    assert app.manager.current == "login"
    assert login.server.text == gateway.url
    ui.type_into(login.username, "boss")
    ui.type_into(login.password, "wrong-password")
    ui.click(login.login_button)
    ui.until(lambda: login.error.text, what="login error")
    assert "Traceback" not in login.error.text and "invalid" in login.error.text.lower()
    assert login.password.text == ""
    ui.screenshot("01-login-error")
    ui.type_into(login.password, PASSWORD)
    ui.click(login.login_button)
    ui.until(lambda: app.manager.current == "dashboard", what="dashboard")
    dash = app.screens["dashboard"]
    ui.until(lambda: dash.queue_box.children, what="queues shown")
    assert app.model.dashboard.counts["24h"]["failed"] == 3
    assert app.model.dashboard.counts["24h"]["delivered"] == 2
    texts = [w.text for w in dash.counts_grid.children]
    assert "3" in texts and "last 24 h" in texts
    assert app.who.text == "boss (admin)"
    ui.until(lambda: gateway.url in dash.gateway.text, what="the gateway named")
    assert any(gateway.sim.base_url in w.text for card in dash.queue_box.children for w in card.walk()
               if hasattr(w, "text")), "the destination's DHIS2 URL"
    ui.screenshot("02-dashboard")


def test_filter_logs(ui: Driver, gateway: Gateway) -> None:
    """The status menu and the Apply button filter the table to the failed submissions."""
    app = ui.app
    ui.click(app.nav_buttons["logs"])
    logs = app.screens["logs"]
    ui.until(lambda: len(getattr(logs, "row_widgets", {})) == 5, what="five rows")
    ui.click(logs.status_button)
    from kivy.core.window import Window
    from kivymd.uix.menu.menu import MDDropdownTextItem

    def menu_item() -> object:
        return next((w for root in Window.children for w in root.walk() if isinstance(w, MDDropdownTextItem)
                     and getattr(w, "text", "") == "failed"), None)

    item = ui.until(menu_item, what="status menu")
    ui.click(item)
    ui.until(lambda: app.model.logs.statuses == ["failed"], what="status chosen")
    ui.type_into(logs.destination, "main")
    ui.click(logs.apply_button)
    ui.until(lambda: sorted(logs.row_widgets) == sorted(STATE["failed"]), what="only failed rows")
    assert logs.page_label.text == "Page 1 of 1 — 3 submission(s)"
    # Every row's cells start where their header does (rows with a Requeue button included).
    ui.pump(0.3)
    # (offsets from the first cell: the rows sit in a scroll view, which has its own coordinates)
    def offsets(box: Any) -> list[int]:
        cells = list(reversed(box.children))
        return [round(c.x - cells[0].x) for c in cells] + [round(cells[-1].right - cells[0].x)]

    for row in logs.row_widgets.values():
        assert offsets(row) == offsets(logs.header), (offsets(logs.header), offsets(row))
    ui.screenshot("03-logs")


def test_open_failed_and_requeue(ui: Driver, gateway: Gateway) -> None:
    """A click on a failed row opens its detail; Requeue changes its status; it is then delivered."""
    app = ui.app
    logs = app.screens["logs"]
    sid = STATE["failed"][0]
    ui.click(logs.row_widgets[sid])
    detail = app.screens["detail"]
    ui.until(lambda: app.manager.current == "detail" and detail.status.text == "FAILED", what="detail")
    assert detail.title.text == f"Submission {sid}"
    assert "HTTP 500" in detail.section_labels["attempts"].text
    assert "Re46C6Apebu" in detail.section_labels["dhis2_payload"].text
    assert not detail.requeue_button.disabled
    ui.screenshot("04-detail")
    ui.click(detail.requeue_button)
    ui.until(lambda: detail.status.text in ("QUEUED", "PROCESSING", "DELIVERED"), what="status changed")
    assert "queued again" in detail.message.text
    gateway.wait_status(sid, "delivered")
    app.model.detail.spawn(app.model.detail.refresh())
    ui.until(lambda: detail.status.text == "DELIVERED", what="delivered")
    assert detail.requeue_button.disabled
    ui.screenshot("05-detail-delivered")


def test_requeue_from_row(ui: Driver, gateway: Gateway) -> None:
    """The Requeue button of a row requeues with one click; the row leaves the 'failed' view."""
    app = ui.app
    app.show("logs")
    logs = app.screens["logs"]
    # the screen is in place (its entry loads the rows) before anything is clicked on it
    ui.until(lambda: app.manager.current == "logs" and not app.manager.transition.is_active, what="logs shown")
    sid = STATE["failed"][1]
    ui.until(lambda: sid in logs.row_widgets and len(logs.row_widgets) == 2, what="two failed rows left")
    ui.pump(0.3)
    ui.click(logs.row_widgets[sid].requeue_button)
    ui.until(lambda: sid not in logs.row_widgets, what="row requeued")
    assert "queued again" in logs.message.text
    gateway.wait_status(sid, "delivered")


def test_mappings_import(ui: Driver, gateway: Gateway) -> None:
    """A CSV chosen in the file chooser imports with progress; bad rows are listed per row."""
    from tests.mapping.support import make_csv, sample_rows

    app = ui.app
    ui.click(app.nav_buttons["mappings"])
    screen = app.screens["mappings"]
    folder = Path(tempfile.mkdtemp(prefix="admin-ui-map-"))
    good = folder / "mappings.csv"
    good.write_bytes(make_csv(sample_rows(2500)))
    rows = sample_rows(3, prefix="B")
    rows[1]["dataelement"] = "bad"
    bad = folder / "bad.csv"
    bad.write_bytes(make_csv(rows))
    screen.file_manager.show(str(folder))
    ui.pump(0.5)
    ui.screenshot("06-file-chooser")
    screen.file_manager.select_path(str(good))  # what the chooser calls when a file is picked
    ui.until(lambda: "2500 new" in screen.message.text, timeout=60, what="import done")
    assert screen.progress.value == 100
    ui.until(lambda: screen.rows.children, what="mapping rows")
    screen.import_file(str(bad))
    ui.until(lambda: "Row 3, dataelement" in screen.import_errors.text, what="row errors")
    ui.until(lambda: "nothing was imported" in screen.error.text, what="all-or-nothing refusal")
    ui.screenshot("07-mappings")


def test_users(ui: Driver, gateway: Gateway) -> None:
    """The admin creates a user from the form; it appears in the list."""
    app = ui.app
    ui.click(app.nav_buttons["users"])
    screen = app.screens["users"]
    ui.until(lambda: screen.rows.children, what="users listed")
    ui.type_into(screen.new_username, "clerk")
    ui.type_into(screen.new_password, "clerk-Password-123")
    ui.click(screen.role_button)  # a menu of the three roles, not free text
    from kivy.core.window import Window
    from kivymd.uix.menu.menu import MDDropdownTextItem

    item = ui.until(lambda: next((w for root in Window.children for w in root.walk()
                                  if isinstance(w, MDDropdownTextItem) and getattr(w, "text", "") == "submitter"),
                                 None), what="role menu")
    ui.click(item)
    ui.until(lambda: screen.new_role == "submitter", what="role chosen")
    ui.type_into(screen.new_name, "A Clerk")
    ui.click(screen.create_button)
    ui.until(lambda: "User clerk created" in screen.message.text, what="user created")
    ui.until(lambda: len(screen.rows.children) == 2, what="two users")
    assert "clerk" in [c.text for row in screen.rows.children for c in row.children if hasattr(c, "text")]
    ui.screenshot("08-users")
    # Permissions of the new submitter, through the dialog: an org-unit scope and the callback switch.
    row = next(r for r in screen.rows.children if any(getattr(c, "text", None) == "clerk" for c in r.children))
    ui.click(_button(row, "Permissions"))
    ui.until(lambda: screen.orgunits.get_root_window() is not None, what="permissions dialog")
    ui.type_into(screen.orgunits, "ImspTQPwCqd")
    ui.click(screen.callback_allowed)
    assert screen.callback_allowed.active
    ui.click(_button(screen.dialog, "Save"))
    ui.until(lambda: "Permissions of clerk saved" in screen.message.text, what="permissions saved")
    [clerk] = [u for u in gateway.call("GET", "/users?q=clerk")["items"] if u["username"] == "clerk"]
    assert (clerk["orgunit_scope"], clerk["callback_allowed"], clerk["may_delete"]) == (["ImspTQPwCqd"], True, False)


def _button(tree: Any, caption: str) -> Any:
    """The button under ``tree`` whose text is ``caption``."""
    return next(w for w in tree.walk() if type(w).__name__ == "MDButton"
                and any(getattr(c, "text", None) == caption for c in w.children))


def _login(ui: Driver, password: str = PASSWORD) -> None:
    login = ui.app.screens["login"]
    ui.until(lambda: ui.app.manager.current == "login", what="login screen")
    ui.type_into(login.username, "boss")
    ui.type_into(login.password, password)
    ui.click(login.login_button)
    ui.until(lambda: ui.app.manager.current == "dashboard", what="dashboard")


def _on_screen(app: Any, name: str) -> bool:
    """The screen is the one shown, whole and opaque: in the manager, at its place, not faded out
    (a screen left half-way through a transition has its widgets and data but shows nothing)."""
    screen = app.screens[name]
    manager = app.manager
    return (manager.current == name and not manager.transition.is_active and screen.parent is manager
            and screen.opacity == 1 and abs(screen.y - manager.y) < 1 and abs(screen.x - manager.x) < 1)


def _count_cells(dash: Any) -> list[str]:
    """The numbers shown in the dashboard's counts grid (empty when the grid is blank)."""
    return [w.text for w in dash.counts_grid.children if w.text.isdigit()]


def test_logout_from_users_then_login_shows_counts(ui: Driver, gateway: Gateway) -> None:
    """Log out from the Users screen, log in again: the dashboard shows its counts and queues again
    (it used to stay blank until the app restarted)."""
    app = ui.app
    assert app.manager.current == "users"
    ui.click(app.logout_button)
    _login(ui)
    dash = app.screens["dashboard"]
    ui.until(lambda: len(_count_cells(dash)) == 14 and dash.queue_box.children, what="counts and queues shown")
    assert sum(app.model.dashboard.counts["7d"].values()) >= 5
    assert not dash.error.text
    ui.pump(1.0)  # any transition has long ended
    assert type(app.manager.transition).__name__ == "NoTransition", app.manager.transition
    assert _on_screen(app, "dashboard"), (dash.opacity, dash.pos, app.manager.pos)
    ui.screenshot("09-dashboard-after-login-again")


def test_logs_while_gateway_down_then_back(ui: Driver, gateway: Gateway) -> None:
    """Logs opened while the gateway is down say so in a sentence; once it is back, the next visit
    (or Refresh) shows the rows again."""
    app = ui.app
    app.model.logs.clear_filters()  # the filter of the earlier test would hide rows
    gateway.proc.stop()
    try:
        ui.click(app.nav_buttons["logs"])
        logs = app.screens["logs"]
        ui.until(lambda: "Cannot reach the gateway" in logs.error.text, what="outage message")
        assert "Traceback" not in logs.error.text
        ui.pump(1.0)
        assert _on_screen(app, "logs"), (logs.opacity, logs.pos)
        ui.screenshot("10-logs-gateway-down")
    finally:
        gateway.proc.start()
    # The operator clicks Logs again (the screen already shown): that is the retry.
    ui.click(app.nav_buttons["logs"])
    ui.until(lambda: len(logs.row_widgets) >= 5, what="rows after the gateway came back")
    assert not logs.error.text
    ui.pump(1.0)
    assert _on_screen(app, "logs"), (logs.opacity, logs.pos)
    # ... and the dashboard, visited during the outage, is not stuck either.
    ui.click(app.nav_buttons["dashboard"])
    dash = app.screens["dashboard"]
    ui.until(lambda: not dash.error.text and len(_count_cells(dash)) == 14, what="dashboard after the outage")


def test_logout(ui: Driver, gateway: Gateway) -> None:
    """Log out returns to the login form with the server remembered and no password."""
    app = ui.app
    ui.click(app.logout_button)
    ui.until(lambda: app.manager.current == "login", what="login screen")
    assert app.screens["login"].password.text == ""
    assert app.screens["login"].server.text == gateway.url
    assert PASSWORD not in Path(app.settings_path).read_text()


def test_every_screen_on_realistic_data(ui: Driver, gateway: Gateway) -> None:
    """A national-sized picture (2,000 more facilities, six months of the HMIS data set): the report
    renders its 2,000+ facilities (paged) and every screen is captured for the README."""
    app = ui.app
    facilities = gateway.seed_realistic(2000)
    assert facilities >= 2000
    if app.manager.current != "login":
        ui.click(app.logout_button)
    _login(ui)
    dash = app.screens["dashboard"]
    ui.until(lambda: app.model.dashboard.counts.get("7d", {}).get("delivered", 0) > 5000, what="national counts")
    ui.until(lambda: dash.queue_box.children and gateway.url in dash.gateway.text, what="queues")
    ui.until(lambda: _on_screen(app, "dashboard"), what="dashboard on screen")
    ui.screenshot("20-dashboard")
    _publish("20-dashboard.png", "admin-dashboard.png")

    ui.click(app.nav_buttons["logs"])
    logs = app.screens["logs"]
    ui.until(lambda: len(logs.row_widgets) == 20, what="a page of rows")
    assert "submission(s)" in logs.page_label.text
    ui.until(lambda: _on_screen(app, "logs"), what="logs on screen")
    ui.screenshot("21-logs")
    _publish("21-logs.png", "admin-logs.png")

    sid = STATE["failed"][2]  # failed for real against the simulator (its trail, its DHIS2 answer)
    app.open_detail(sid)
    detail = app.screens["detail"]
    ui.until(lambda: detail.title.text == f"Submission {sid}" and detail.status.text == "FAILED", what="detail")
    assert "// OPD (OPD visits)" in detail.section_labels["dhis2_payload"].text  # the code beside the UID
    ui.until(lambda: _on_screen(app, "detail"), what="detail on screen")
    ui.screenshot("22-detail")
    _publish("22-detail.png", "admin-detail.png")

    ui.click(app.nav_buttons["report"])
    report = app.screens["report"]
    ui.type_into(report.periods, "202401,202402,202403,202404,202405,202406")
    started = time.monotonic()
    ui.click(report.apply_button)
    ui.until(lambda: len(getattr(report, "row_widgets", [])) == app.model.report.page_size, timeout=60,
             what="report rows")
    took = time.monotonic() - started
    assert f"of {facilities} facilities" in report.page_label.text, report.page_label.text
    assert len(report.header.children) == 7  # facility + six months
    print(f"\nreport of {facilities} facilities x 6 periods shown in {took:.2f} s (request + first page)")
    ui.until(lambda: _on_screen(app, "report"), what="report on screen")
    ui.screenshot("23-report")
    _publish("23-report.png", "admin-report.png")

    ui.click(app.nav_buttons["mappings"])
    mappings = app.screens["mappings"]
    ui.until(lambda: len(mappings.rows.children) == 4, what="the four demo mappings")
    assert mappings.page_label.text.endswith("— 4 mapping(s)"), mappings.page_label.text
    ui.until(lambda: _on_screen(app, "mappings"), what="mappings on screen")
    ui.screenshot("24-mappings")
    _publish("24-mappings.png", "admin-mappings.png")

    ui.click(app.nav_buttons["users"])
    users = app.screens["users"]
    ui.until(lambda: len(users.rows.children) >= 2, what="users")
    ui.until(lambda: _on_screen(app, "users"), what="users on screen")
    ui.screenshot("25-users")
    _publish("25-users.png", "admin-users.png")
