"""The web pages in a real browser: Debian's Chromium, driven by Playwright, against the
hub served by uvicorn on a loopback port. Each role walks its main journey on a seeded
child: the coordinator's caseload (filtered), child page and 20-week timeline; a
teacher's children and child page; the family signing in with an invitation code, reading
their child's page and withdrawing a consent, after which the teacher's page no longer
shows what it shared; IG's trail and verify. Every page is checked with axe-core (no
serious or critical violations), at 320 px wide (no horizontal scroll), for breaches of
its Content-Security-Policy, and screenshotted into test-artefacts/web/.

No browser is downloaded: Chromium comes from Debian (`scripts/test` installs it). Where
it is missing the tests skip, except under CI (`CI=true`), where they fail.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hub.settings import Settings
from tests.e2e.test_team_access import SALT, UPN
from tests.support.browser import (  # noqa: F401 - fixtures used by name
    ARTEFACTS,
    LiveHub,
    Tab,
    browser,
    chromium_path,
    live_hub,
    serving,
    text_of,
)

# --------------------------------------------------------------------------- journeys


def test_a_coordinator_filters_the_caseload_opens_the_child_and_reads_the_timeline(
    browser: Any, live_hub: LiveHub
) -> None:
    s = live_hub.seeded
    tab = Tab(browser, live_hub.url, "coordinator")
    tab.goto("/")
    assert tab.page.url.endswith("/sign-in")
    tab.check("sign-in")
    tab.sign_in("thk_not.a.key")
    summary = tab.page.locator(".govuk-error-summary")
    assert "This API key is not valid" in summary.inner_text()
    tab.check("sign-in-error")
    summary.get_by_role("link").click()
    assert tab.page.evaluate("() => document.activeElement.id") == "credential"

    tab.sign_in(s.tokens["casey"])
    page = tab.page
    rows = page.get_by_test_id("caseload-row")
    assert rows.count() == 1 and "Request received" in rows.first.inner_text()
    assert "Decision whether to assess" in rows.first.inner_text()
    tab.check("caseload")
    page.get_by_label("Deadlines").select_option("yes")
    with page.expect_navigation():
        page.get_by_role("button", name="Apply filters").click()
    assert "overdue=yes" in page.url and page.get_by_test_id("caseload-empty").is_visible()
    page.get_by_label("Deadlines").select_option("")
    page.get_by_label("Stage").select_option("enter")
    with page.expect_navigation():
        page.get_by_role("button", name="Apply filters").click()
    assert page.get_by_test_id("caseload-row").count() == 1
    assert UPN not in page.url  # ids and filter codes only in addresses

    with page.expect_navigation():
        page.get_by_test_id("caseload-row").first.get_by_role("link").click()
    assert page.url.endswith(f"/child/{s.child}")
    assert "SEN support since" in text_of(page, "sen-status")
    assert {"School SEN coordinator", "Class or form teacher"} <= set(
        page.get_by_test_id("agency-education").locator("tbody td:first-child").all_inner_texts()
    )
    assert SALT in text_of(page, "agency-health")
    tab.check("child")

    with page.expect_navigation():
        page.get_by_role("link", name=re.compile("See the 20-week timeline")).click()
    assert page.url.endswith(f"/plan/{s.plan}")
    milestones = page.get_by_test_id("milestone")
    assert milestones.count() >= 2
    assert "Decision whether to assess" in milestones.first.inner_text()
    assert "Due" in milestones.first.locator(".govuk-tag").inner_text()
    tab.check("timeline")

    tab.goto(f"/child/{s.other_child}")
    assert page.get_by_role("heading", name="Page not found").is_visible()
    tab.check("not-found")
    tab.goto(f"/our-child/{s.child}")
    assert page.get_by_role("heading", name="You cannot see this page").is_visible()
    tab.check("forbidden")

    with page.expect_navigation():
        page.get_by_test_id("sign-out").click()
    assert "You have signed out" in page.locator(".govuk-notification-banner").inner_text()
    response = tab.goto(f"/child/{s.child}")
    assert response.status == 401 and page.get_by_label("API key or invitation code").is_visible()
    tab.close()


def test_the_family_withdraws_a_consent_and_the_teacher_page_loses_what_it_shared(
    browser: Any, live_hub: LiveHub
) -> None:
    s = live_hub.seeded
    teacher = Tab(browser, live_hub.url, "practitioner")
    teacher.sign_in(s.tokens["teacher"])
    page = teacher.page
    assert page.get_by_role("heading", name="Your children").is_visible()
    teacher.check("my-children")
    with page.expect_navigation():
        page.get_by_test_id("my-children").get_by_role("link").first.click()
    assert page.url.endswith(f"/child/{s.child}")
    assert "SEN support since" in text_of(page, "sen-status")
    assert page.get_by_test_id("agency-health").count() == 0  # health is not shared with them
    teacher.check("child-before-withdrawal")

    family = Tab(browser, live_hub.url, "family")
    family.sign_in(s.invitation_code)
    fpage = family.page
    key = text_of(fpage, "family-key").strip()
    assert key.startswith("thk_")
    family.check("family-key")
    with fpage.expect_navigation():
        fpage.get_by_role("link", name="Continue").click()
    assert fpage.url.endswith(f"/our-child/{s.child}")
    assert "deciding whether to assess" in fpage.get_by_test_id("plan-words").inner_text()
    assert "Speech and language therapist" in text_of(fpage, "agency-health")  # own right
    looked = text_of(fpage, "who-looked")
    assert "teacher (teacher) looked at the team around the child" in looked
    family.check("our-child")

    card = fpage.get_by_test_id(f"consent-c-edu-{UPN}")
    with fpage.expect_navigation():
        card.get_by_role("button", name=re.compile("Withdraw")).click()
    banner = fpage.locator(".govuk-notification-banner--success")
    assert "You withdrew your consent" in banner.inner_text()
    assert "Withdrawn" in fpage.get_by_test_id(f"consent-c-edu-{UPN}").inner_text()
    assert fpage.get_by_test_id(f"consent-c-edu-{UPN}").get_by_role("button").count() == 0
    family.check("our-child-withdrawn")

    page.reload()
    assert "Not shared with you" in text_of(page, "sen-status")
    teacher.check("child-after-withdrawal")

    # the family key signs in again once the session ends; the used code does not
    with fpage.expect_navigation():
        fpage.get_by_test_id("sign-out").click()
    family.sign_in(s.invitation_code)
    assert "not valid" in fpage.locator(".govuk-error-summary").inner_text()
    family.sign_in(key)
    assert fpage.url.endswith(f"/our-child/{s.child}")
    teacher.close()
    family.close()


def test_ig_reads_a_childs_trail_and_verifies_the_whole_trail(
    browser: Any, live_hub: LiveHub
) -> None:
    s = live_hub.seeded
    tab = Tab(browser, live_hub.url, "ig")
    tab.sign_in(s.tokens["ig"])
    page = tab.page
    assert page.get_by_role("heading", name="Audit").is_visible()
    tab.check("audit")
    with page.expect_navigation():
        page.get_by_role("button", name="Show the trail").click()
    assert "Enter the hub child id" in page.locator(".govuk-error-summary").inner_text()
    tab.check("audit-error")
    page.get_by_label("Hub child id").fill(s.child)
    with page.expect_navigation():
        page.get_by_role("button", name="Show the trail").click()
    assert page.url.endswith(f"/trail/{s.child}")
    records = page.get_by_test_id("trail-record")
    assert records.count() > 3
    assert "consent" in page.get_by_test_id("trail").inner_text()
    tab.check("trail")
    with page.expect_navigation():
        page.get_by_role("link", name="Verify the trail").first.click()
    assert "The trail verifies" in text_of(page, "verify-ok")
    tab.check("verify")
    tab.close()


def test_the_api_docs_render_from_the_package_under_their_policy(
    browser: Any, live_hub: LiveHub
) -> None:
    tab = Tab(browser, live_hub.url, "anyone")
    answered: list[str] = []  # what came back: a request the policy blocks gets no response
    tab.page.on("response", lambda r: answered.append(r.url))
    tab.goto("/docs")
    tab.page.wait_for_selector(".swagger-ui .info")
    assert "TAC Hub" in tab.page.locator(".swagger-ui .info").inner_text()
    tab.page.wait_for_selector(".swagger-ui .opblock")
    assert tab.page.locator(".swagger-ui .opblock").count() > 20
    tab.page.screenshot(path=str(ARTEFACTS / "docs.png"))
    assert not tab.csp_breaches, tab.csp_breaches
    tab.goto("/redoc")
    tab.page.wait_for_selector("h1:has-text('TAC Hub')")
    tab.page.screenshot(path=str(ARTEFACTS / "redoc.png"))
    elsewhere = [u for u in answered if not u.startswith((live_hub.url, "data:", "blob:"))]
    assert not elsewhere, elsewhere
    # ReDoc's "API docs by Redocly" logo points at its CDN: the policy blocks it, and that
    # is the only thing it blocks
    assert all("cdn.redoc.ly" in breach for breach in tab.csp_breaches), tab.csp_breaches
    tab.close()


# --------------------------------------------------------------------------- the demo


@dataclass
class LiveDemo:
    url: str
    tokens: dict[str, str]
    big_team_child: str


@pytest.fixture
def live_demo(tmp_path: Path) -> Iterator[LiveDemo]:
    """`hub demo`'s data (three children, the first with a team of thirty), served."""
    from hub.demo import prepare_demo_dir, run_demo_load

    settings = Settings(
        data_dir=prepare_demo_dir(tmp_path / "demo"), sqlite_synchronous="NORMAL", _env_file=None
    )  # type: ignore[call-arg]
    with ThreadPoolExecutor(1) as pool:
        cohort, result = pool.submit(
            asyncio.run, run_demo_load(settings, children=3, seed=7)
        ).result(timeout=300)
    big = result.child_id(cohort.big_team_child)
    with serving(settings) as url:
        yield LiveDemo(url, dict(result.keys.tokens), big)


def test_each_demo_role_signs_in_with_the_token_hub_demo_prints_and_reads_a_team_of_thirty(
    browser: Any, live_demo: LiveDemo
) -> None:
    hub = live_demo.url
    big, tokens = live_demo.big_team_child, live_demo.tokens

    coordinator = Tab(browser, hub, "demo-coordinator")
    coordinator.sign_in(tokens["demo-coordinator"])
    page = coordinator.page
    assert page.get_by_test_id("caseload-row").count() == 3
    coordinator.check("caseload")
    coordinator.goto(f"/child/{big}")
    members = page.get_by_test_id("member").count()
    assert members >= 25, members  # the team of thirty, less what consent keeps from them
    assert page.get_by_test_id("key-worker").count() >= 1
    coordinator.check("team-of-thirty")
    coordinator.close()

    senco = Tab(browser, hub, "demo-senco")
    senco.sign_in(tokens["demo-practitioner"])  # the SENCo on the big team
    links = senco.page.get_by_test_id("my-children").get_by_role("link")
    assert links.count() >= 1
    senco.goto(f"/child/{big}")
    assert senco.page.get_by_test_id("member").count() >= 1
    senco.check("child")
    senco.close()

    family = Tab(browser, hub, "demo-family")
    family.sign_in(tokens["demo-parent"])  # the key the demo's redeemed invitation gave
    assert family.page.url.endswith(f"/our-child/{big}")
    assert family.page.get_by_test_id("member").count() >= 25
    family.check("our-child")
    family.close()

    ig = Tab(browser, hub, "demo-ig")
    ig.sign_in(tokens["demo-ig-auditor"])
    ig.goto(f"/trail/{big}")
    assert ig.page.get_by_test_id("trail-record").count() > 30
    ig.check("trail")
    ig.goto("/verify")
    assert "The trail verifies" in text_of(ig.page, "verify-ok")
    ig.close()
