"""The coordinator's forms and pages and IG's further pages in a real browser (Debian's
Chromium driven by Playwright, against the hub served by uvicorn, as in
test_web_browser.py): the coordinator finds the child by UPN, records the decision to
assess (first without its date: the error summary names the field and its link moves
the focus there; then with it: the timeline's banner and steps show it), a meeting with
an action (the meetings page shows it), the contributions, a key worker and the consent
form; IG reads the access log, downloads the child's trail and the signed heads, and
erases a child after the confirmation step. Every page is checked with axe-core (no
serious or critical violations), at 320 px wide (no sideways scroll), for breaches of
its Content-Security-Policy, and screenshotted into test-artefacts/web/.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from hub.consent.audit_heads import check_export
from tests.e2e.test_team_access import SENCO, UPN
from tests.support.browser import (  # noqa: F401 - fixtures used by name
    LiveHub,
    Tab,
    browser,
    chromium_path,
    live_hub,
    text_of,
)

TODAY = datetime.now(UTC).date()


def fill_date(page: Any, field_id: str, day: Any) -> None:
    page.locator(f"#{field_id}-day").fill(str(day.day))
    page.locator(f"#{field_id}-month").fill(str(day.month))
    page.locator(f"#{field_id}-year").fill(str(day.year))


def submit(page: Any, name: str | re.Pattern[str]) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=name).click()


def test_a_coordinator_finds_the_child_and_records_the_las_steps(
    browser: Any, live_hub: LiveHub
) -> None:
    s = live_hub.seeded
    tab = Tab(browser, live_hub.url, "coordinator")
    tab.sign_in(s.tokens["casey"])
    page = tab.page

    with page.expect_navigation():
        page.get_by_role("link", name="Find a child").click()
    tab.check("search")
    page.get_by_label("Unique pupil number (UPN)").fill(UPN)
    submit(page, "Search")
    assert page.url.endswith("/search") and UPN not in page.url  # the key went in the body
    assert "1 child found" in page.locator("#results").inner_text()
    tab.check("search-found")
    with page.expect_navigation():
        page.get_by_test_id("search-results").get_by_role("link").first.click()
    assert page.url.endswith(f"/child/{s.child}")

    with page.expect_navigation():
        page.get_by_role("link", name=re.compile("See the 20-week timeline")).click()
    with page.expect_navigation():
        page.get_by_test_id("plan-forms").get_by_role("link", name="Record the decision").click()
    tab.check("decision-form")
    page.get_by_label("To assess the child's needs").check()
    submit(page, "Save")
    summary = page.locator(".govuk-error-summary")
    assert "Enter the date of the decision" in summary.inner_text()
    assert page.title().startswith("Error: ")
    tab.check("decision-error")
    summary.get_by_role("link").first.click()
    assert page.evaluate("() => document.activeElement.id") == "decided_on-day"
    assert page.get_by_label("To assess the child's needs").is_checked()  # kept
    fill_date(page, "decided_on", TODAY - timedelta(days=1))
    submit(page, "Save")
    assert page.url.endswith(f"/plan/{s.plan}?recorded=decision")
    banner = page.locator(".govuk-notification-banner--success")
    assert "The decision was recorded" in banner.inner_text()
    assert "The LA decided to assess" in text_of(page, "steps")
    milestones = page.get_by_test_id("milestones").inner_text()
    assert "Decision whether to assess" in milestones and "Met" in milestones
    tab.check("timeline-recorded")

    # the plan's contents: an outcome from its form, then the provision form serving it
    with page.expect_navigation():
        page.get_by_test_id("plan-forms").get_by_role("link", name="Agree an outcome").click()
    tab.check("outcome-form")
    page.get_by_label("Special educational (B)").check()
    page.get_by_label("What the child will achieve").fill("Reads a short book aloud")
    fill_date(page, "by_when", TODAY + timedelta(days=300))
    page.get_by_label("How it will be measured").fill("Reading record")
    fill_date(page, "agreed_on", TODAY)
    page.get_by_label("Outcome id (optional)").fill("out-b1")
    submit(page, "Save")
    assert "The outcome was recorded" in page.locator(".govuk-notification-banner").inner_text()
    with page.expect_navigation():
        page.get_by_test_id("plan-forms").get_by_role("link", name="Agree provision").click()
    tab.check("provision-form")
    with page.expect_navigation():
        page.get_by_role("link", name="Back").first.click()

    with page.expect_navigation():
        page.get_by_test_id("plan-forms").get_by_role("link", name="Record a meeting").click()
    tab.check("meeting-form")
    fill_date(page, "held_on", TODAY - timedelta(days=1))
    page.get_by_label("Team around the child").check()
    page.get_by_label("Who attended").fill(SENCO)
    page.get_by_label("Decisions").fill("Refer for a sensory assessment")
    page.locator("#actions-0-text").fill("Book the sensory assessment")
    page.locator("#actions-0-owner_id").fill(SENCO)
    fill_date(page, "actions-0-due_on", TODAY + timedelta(days=21))
    submit(page, "Save")
    assert "The meeting was recorded" in page.locator(".govuk-notification-banner").inner_text()
    with page.expect_navigation():
        page.get_by_role("link", name="Meetings and actions").click()
    meeting = page.get_by_test_id("meeting").first
    assert "Book the sensory assessment" in meeting.inner_text()
    assert "Open" in meeting.get_by_test_id("action").inner_text()
    tab.check("meetings")
    submit(page, re.compile("Mark as done"))
    assert "The action was marked done" in page.locator(".govuk-notification-banner").inner_text()
    assert "Done" in page.get_by_test_id("action").first.inner_text()
    tab.check("meetings-action-done")
    tab.goto(f"/plan/{s.plan}/contributions")
    assert page.get_by_test_id("contribution").count() >= 1
    tab.check("contributions")

    tab.goto(f"/child/{s.child}")
    with page.expect_navigation():
        page.get_by_test_id("child-forms").get_by_role("link", name="Assign a key worker").click()
    tab.check("key-worker-form")
    page.get_by_label("Practitioner id").fill(SENCO)
    page.get_by_label("Single person").check()
    fill_date(page, "assigned_on", TODAY - timedelta(days=1))
    submit(page, "Save")
    assert page.url.endswith(f"/child/{s.child}?recorded=key-worker")
    assert "The key worker was recorded" in page.locator(".govuk-notification-banner").inner_text()
    assert page.get_by_test_id("key-worker").count() == 1
    tab.check("child-recorded")
    tab.goto(f"/child/{s.child}/record/consent")
    tab.check("consent-form")
    tab.goto(f"/child/{s.child}/record/key-worker-handover")
    tab.check("handover-form")
    tab.close()


def test_ig_reads_the_access_log_downloads_the_trail_and_erases_a_child(
    browser: Any, live_hub: LiveHub
) -> None:
    s = live_hub.seeded
    casey = Tab(browser, live_hub.url, "coordinator-before-erasure")
    casey.sign_in(s.tokens["casey"])
    casey.goto(f"/child/{s.child}")  # a read for the access log

    tab = Tab(browser, live_hub.url, "ig")
    tab.sign_in(s.tokens["ig"])
    page = tab.page
    tab.goto(f"/trail/{s.child}")
    with page.expect_navigation():
        page.get_by_role("link", name=re.compile("Access log")).click()
    log = text_of(page, "access-log")
    assert "coordinator:casey" in log and "GET /children/{id}/team" in log
    tab.check("access-log")
    tab.goto(f"/trail/{s.child}")
    with page.expect_download() as got:
        page.get_by_role("link", name="CSV").click()
    csv = Path(got.value.path()).read_text()
    assert got.value.suggested_filename == f"trail-{s.child}.csv"
    assert csv.startswith("record_id,chain,seq,kind,at,actor,child_id") and s.child in csv
    tab.goto("/verify")
    with page.expect_download() as got:
        page.get_by_role("link", name=re.compile("signed heads")).click()
    export = orjson.loads(Path(got.value.path()).read_bytes())
    assert check_export(export, public_key=export["public_key"]) == []
    tab.check("verify-downloads")

    with page.expect_navigation():
        page.get_by_role("link", name="Erasure requests").click()
    tab.check("erasure")
    page.get_by_label("Hub child id").fill(s.child)
    submit(page, "Continue")
    assert "Enter the erasure request" in page.locator(".govuk-error-summary").inner_text()
    page.get_by_label("Erasure request reference").fill("ER-2024-17")
    submit(page, "Continue")
    assert page.get_by_role("heading", name="Erase this child's data?").is_visible()
    assert "cannot be undone" in page.locator(".govuk-warning-text").inner_text()
    assert "the family's keys" in text_of(page, "what-happens")
    tab.check("erasure-confirm")
    submit(page, "Erase the child's data")
    assert (
        "Confirm that the child's data is to be erased"
        in page.locator(".govuk-error-summary").inner_text()
    )
    tab.check("erasure-confirm-error")
    page.get_by_label(re.compile("I confirm the request is upheld")).check()
    submit(page, "Erase the child's data")
    assert "was erased" in text_of(page, "erased")
    tab.check("erased")
    response = casey.goto(f"/child/{s.child}")
    assert response.status == 404
    casey.close()
    tab.close()
