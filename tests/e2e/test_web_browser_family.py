"""The family's and the practitioner's pages, and the identity provider's sign-in, in a
real browser (Debian's Chromium driven by Playwright, as tests/e2e/test_web_browser.py):
the family reads who sees what and why, gives a consent after the error summary names
what is missing, adds their views and opens the draft comments page; a SENCO reads their
actions and advice due and the shared record, which loses what a withdrawn consent
shared; a practitioner and a parent sign in through a real OpenID Connect provider
process, the parent linking their sign-in to the child with the invitation code. Every
page of ours is checked with axe (no serious or critical violations), at 320 px (no
sideways scroll) and for CSP breaches, and screenshotted into test-artefacts/web/.

The hub is reached as `hub.test` (Chromium maps the name to loopback) and the provider as
127.0.0.1, so the provider's redirect back is cross-site, as in life: the session cookie
(`SameSite=Strict`) must still hold after it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from hub.settings import Settings
from tests.e2e.test_team_access import SENCO, UPN
from tests.e2e.test_web_family_practitioner import the_plan_is_drafted
from tests.support.api import embedded, running_api
from tests.support.browser import (  # noqa: F401 - fixtures used by name
    CHROMIUM_ARGS,
    LiveHub,
    Tab,
    chromium_path,
    playwright_sync,
    serving,
    text_of,
)
from tests.support.oidc_provider import Provider, oidc_provider
from tests.support.web import Seeded, seed

HUB_HOST = "hub.test"


def _seed_with_work(settings: Settings) -> Seeded:
    async def go() -> Seeded:
        async with running_api(settings) as api:
            seeded = await seed(api)
            await the_plan_is_drafted(api, seeded.plan, seeded.child)
            return seeded

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result(timeout=120)


def as_hub_test(url: str) -> str:
    return url.replace("127.0.0.1", HUB_HOST)


@pytest.fixture
def browser(chromium_path: Path) -> Iterator[Any]:
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HUB_HOST} 127.0.0.1"]
    with playwright_sync.sync_playwright() as p:
        the_browser = p.chromium.launch(executable_path=str(chromium_path), args=args)
        try:
            yield the_browser
        finally:
            the_browser.close()


@pytest.fixture
def live_hub(tmp_path: Path) -> Iterator[LiveHub]:
    settings = embedded(tmp_path)
    seeded = _seed_with_work(settings)
    with serving(settings) as url:
        yield LiveHub(as_hub_test(url), seeded)


def test_the_family_reads_who_sees_what_gives_consent_and_adds_their_views(
    browser: Any, live_hub: LiveHub
) -> None:
    s = live_hub.seeded
    family = Tab(browser, live_hub.url, "family")
    family.sign_in(s.invitation_code)
    page = family.page
    with page.expect_navigation():
        page.get_by_role("link", name="Continue").click()
    assert page.url.endswith(f"/our-child/{s.child}")
    assert "Speech and language therapist" in text_of(page, "agency-health")
    family.check("our-child-overview")

    with page.expect_navigation():
        page.get_by_test_id("sharing-link").click()
    cards = page.get_by_test_id("reacher")
    assert cards.count() >= 5
    assert "on their caseload" in cards.filter(has_text="casey").first.inner_text()
    family.check("sharing")
    page.go_back()

    with page.expect_navigation():
        page.get_by_test_id("give-consent").click()
    family.check("consent-form")
    with page.expect_navigation():
        page.get_by_role("button", name="Record my decision").click()
    summary = page.locator(".govuk-error-summary")
    assert "Select whether you agree to share" in summary.inner_text()
    assert "Select at least one kind of information" in summary.inner_text()
    family.check("consent-form-errors")
    summary.get_by_role("link", name="Select at least one kind of information").click()
    assert page.evaluate("() => document.activeElement.id") == "categories"
    page.get_by_label("Yes, share it").check()
    page.get_by_label(re.compile("^Diagnoses, therapies")).check()
    page.get_by_label(re.compile("^Writing and delivering the EHC plan")).check()
    with page.expect_navigation():
        page.get_by_role("button", name="Record my decision").click()
    assert "You agreed to share" in page.locator(".govuk-notification-banner").inner_text()
    family.check("consent-given")

    with page.expect_navigation():
        page.get_by_test_id("views-link").click()
    family.check("views-form")
    page.get_by_label("Your views").fill("Sam likes trains and quiet mornings.")
    page.get_by_label("Interests (optional)").fill("Trains\nLego")
    with page.expect_navigation():
        page.get_by_role("button", name="Send my views").click()
    assert "Your views are recorded" in page.locator(".govuk-notification-banner").inner_text()

    family.goto(f"/our-child/{s.child}/plans/{s.plan}/comments")
    assert "Comment on the draft plan" in page.locator("h1").inner_text()
    family.check("comments-form")
    family.close()


def test_a_senco_reads_their_work_and_the_shared_record_which_follows_consent(
    browser: Any, live_hub: LiveHub
) -> None:
    s = live_hub.seeded
    senco = Tab(browser, live_hub.url, "practitioner-senco")
    senco.sign_in(s.tokens["senco"])
    page = senco.page
    assert page.get_by_test_id("my-work-link").is_visible()
    senco.check("my-children")
    with page.expect_navigation():
        page.get_by_role("link", name="Actions and advice", exact=True).click()
    assert "Share the provision map" in text_of(page, "actions-due")
    assert "Outstanding" in text_of(page, "advice-due")
    senco.check("my-work")
    senco.goto("/")
    with page.expect_navigation():
        page.get_by_test_id("shared-link").first.click()
    assert page.url.endswith(f"/child/{s.child}/shared")
    facts = page.get_by_test_id("shared-fact")
    assert facts.count() >= 1
    assert "Sen status recorded" in page.locator("main").inner_text()
    senco.check("shared-record")

    family = Tab(browser, live_hub.url, "family-withdraws")
    family.sign_in(s.invitation_code)
    fpage = family.page
    family.goto(f"/our-child/{s.child}")
    card = fpage.get_by_test_id(f"consent-c-edu-{UPN}")
    with fpage.expect_navigation():
        card.get_by_role("button", name=re.compile("Withdraw")).click()
    family.close()

    page.reload()
    assert "Sen status recorded" not in page.locator("main").inner_text()
    senco.check("shared-record-after-withdrawal")
    senco.close()


# --------------------------------------------------------------------------- OIDC


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[Provider]:
    with oidc_provider(tmp_path / "oidc-provider.log") as p:
        p.add_user(
            "senco-sub",
            {
                "preferred_username": "sam.senco",
                "hub_role": "practitioner",
                "hub_agency": "education",
                "hub_practitioner_id": SENCO,
                "hub_policy_role": "senco",
            },
        )
        p.add_user("parent-sub", {"preferred_username": "a-parent", "hub_role": "family"})
        yield p


@pytest.fixture
def oidc_hub(tmp_path: Path, provider: Provider) -> Iterator[LiveHub]:
    settings = Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        oidc_issuer=provider.issuer,
        oidc_jwks_url=provider.jwks_url,
        oidc_client_id="tac-hub-web",
        oidc_client_secret="a-client-secret-for-tests",
        oidc_display_name="Test Council",
        _env_file=None,
    )
    seeded = _seed_with_work(settings)
    with serving(settings) as url:
        yield LiveHub(as_hub_test(url), seeded)


def through_the_provider(tab: Tab, sub: str) -> None:
    page = tab.page
    tab.goto("/sign-in")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in with Test Council").click()
    assert page.url.startswith("http://127.0.0.1:") and "/oauth2/authorize" in page.url
    page.locator("input[name=sub]").first.fill(sub)
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.wait_for_url(re.compile(r"/sign-in/oidc/callback"))
    # the callback's page moves on by itself (a same-site navigation, so the new
    # SameSite=Strict session cookie goes with it)
    page.wait_for_url(re.compile(rf"^{re.escape(tab.url)}/(?!sign-in/oidc/callback)"))


def test_a_practitioner_and_a_parent_sign_in_through_the_identity_provider(
    browser: Any, oidc_hub: LiveHub
) -> None:
    s = oidc_hub.seeded
    senco = Tab(browser, oidc_hub.url, "oidc-senco")
    senco.goto("/sign-in")
    assert senco.page.get_by_test_id("oidc-sign-in").is_visible()
    senco.check("sign-in-with-provider")
    through_the_provider(senco, "senco-sub")
    page = senco.page
    assert page.url == f"{oidc_hub.url}/", page.url
    assert "sam.senco (senco)" in page.locator(".govuk-phase-banner").inner_text()
    assert page.get_by_test_id("my-children").get_by_role("link").count() >= 1
    senco.check("signed-in-practitioner")
    senco.goto("/my-work")
    assert "Share the provision map" in text_of(page, "actions-due")
    senco.close()

    parent = Tab(browser, oidc_hub.url, "oidc-parent")
    through_the_provider(parent, "parent-sub")
    ppage = parent.page
    assert ppage.url.endswith("/sign-in/oidc/link"), ppage.url
    parent.check("link-sign-in")
    with ppage.expect_navigation():
        ppage.get_by_role("button", name="Link my sign-in").click()
    assert "Enter your invitation code" in ppage.locator(".govuk-error-summary").inner_text()
    parent.check("link-sign-in-error")
    ppage.get_by_label("Invitation code").fill(s.invitation_code)
    with ppage.expect_navigation():
        ppage.get_by_role("button", name="Link my sign-in").click()
    ppage.wait_for_url(re.compile(rf"/our-child/{s.child}$"))
    assert "Support for" in ppage.locator("h1").inner_text()
    parent.check("our-child-via-provider")
    parent.close()
