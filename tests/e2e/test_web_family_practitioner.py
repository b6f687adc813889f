"""The family's and the practitioner's own pages over HTTP: what is shared with whom and
why, giving and refusing consent (who may decide checked), the family's views and their
comments on a draft plan, with GOV.UK error summaries naming the field and the rule; a
practitioner's actions and advice due and the shared record as the policy lets them see
it. Every page admits its roles only (each wrong role and nobody tested), every POST
needs the session's CSRF token, and each page view of a child is an audited read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest

from hub.web import page_routers
from hub.web.pages_family import router as family_router
from hub.web.pages_practitioner import router as practitioner_router
from tests.e2e.test_team_access import SENCO, UPN
from tests.e2e.test_web_pages import audited_reads, browser, signed_in_as
from tests.support.api import Api, embedded, running_api
from tests.support.web import Seeded, csrf_of, seed, sign_in

ROLES = ("casey", "senco", "parent", "ig", "ops")
TODAY = datetime.now(UTC).date()

PAGES: dict[str, set[str]] = {
    "/our-child/{child_id}/sharing": {"parent"},
    "/our-child/{child_id}/consents/new": {"parent"},
    "/our-child/{child_id}/views": {"parent"},
    "/our-child/{child_id}/plans/{plan_id}/comments": {"parent"},
    "/my-work": {"senco"},
    "/child/{child_id}/shared": {"senco", "casey"},
}
FORMS: dict[str, set[str]] = {
    "/our-child/{child_id}/consents": {"parent"},
    "/our-child/{child_id}/views": {"parent"},
    "/our-child/{child_id}/plans/{plan_id}/comments": {"parent"},
}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        yield a


@pytest.fixture
async def seeded(api: Api) -> Seeded:
    return await seed(api)


def url(template: str, s: Seeded) -> str:
    return template.replace("{child_id}", s.child).replace("{plan_id}", s.plan)


async def post_form(
    client: httpx.AsyncClient, page: str, action: str, data: dict[str, str | list[str]]
) -> httpx.Response:
    """Open `page`, then post its form to `action` with the page's CSRF token."""
    opened = await client.get(page)
    assert opened.status_code == 200, (page, opened.status_code)
    return await client.post(action, data={"csrf_token": csrf_of(opened.text), **data})


def assert_error_summary(r: httpx.Response, field: str, words: str) -> None:
    assert 'class="govuk-error-summary"' in r.text, r.text[-2000:]
    assert f'href="#{field}"' in r.text and words in r.text, (field, words)
    assert r.text.count("<title>Error: ") == 1


async def the_plan_is_drafted(api: Api, plan: str, child: str) -> None:
    """The LA decides to assess, asks the SENCO for advice, holds a meeting that gives
    the SENCO an action, and issues a draft."""
    casey = api.auth("casey")
    steps = [
        (f"/plans/{plan}/decision", {"decision": "assess", "decided_on": TODAY.isoformat()}),
        (
            f"/plans/{plan}/advice-requests",
            {
                "advice_request_id": "adv-senco",
                "reg6_category": "educational",
                "practitioner_id": SENCO,
                "agency": "education",
                "requested_on": TODAY.isoformat(),
            },
        ),
        (
            f"/children/{child}/meetings",
            {
                "plan_id": plan,
                "held_on": TODAY.isoformat(),
                "kind": "tac",
                "attendee_ids": [SENCO],
                "actions": [
                    {
                        "action_id": "act-senco",
                        "text": "Share the provision map",
                        "owner_id": SENCO,
                        "due_on": (TODAY + timedelta(days=7)).isoformat(),
                    }
                ],
            },
        ),
    ]
    for path, body in steps:
        r = await api.client.post(path, json=body, headers=casey)
        assert r.status_code in (200, 201), (path, r.text)


def test_the_matrix_knows_every_route_of_the_new_page_modules() -> None:
    served = {r.path for router in (family_router, practitioner_router) for r in router.routes}
    assert served == set(PAGES) | set(FORMS)
    every = {r.path for router in page_routers() for r in router.routes}
    assert served <= every


async def test_every_new_page_and_form_admits_its_roles_only(api: Api, seeded: Seeded) -> None:
    clients = {who: await signed_in_as(api, seeded, who) for who in ROLES}
    anonymous = browser(api)
    await anonymous.get("/sign-in")
    for template, allowed in PAGES.items():
        path = url(template, seeded)
        r = await anonymous.get(path)
        assert r.status_code == 401 and 'action="/sign-in"' in r.text, path
        for who, client in clients.items():
            r = await client.get(path)
            if who in allowed:
                assert r.status_code == 200, (path, who, r.status_code, r.text[-800:])
            else:
                assert r.status_code == 403, (path, who, r.status_code)
                assert "You cannot see this page" in r.text
    for template, allowed in FORMS.items():
        path = url(template, seeded)
        assert (await anonymous.post(path, data={"csrf_token": "x"})).status_code == 401
        for who, client in clients.items():
            home = await client.get("/", follow_redirects=True)
            token = csrf_of(home.text)
            r = await client.post(path, data={"csrf_token": token})
            if who in allowed:
                assert r.status_code == 400, (path, who, r.status_code)  # an empty form
                # and without the session's token, refused before anything is read
                for data in ({}, {"csrf_token": "forged"}):
                    r = await client.post(path, data=data)
                    assert r.status_code == 403 and "could not be sent" in r.text, path
            else:
                assert r.status_code == 403 and "You cannot see this page" in r.text, (path, who)


async def test_another_child_is_the_404_page_on_every_family_page(api: Api, seeded: Seeded) -> None:
    parent = await signed_in_as(api, seeded, "parent")
    token = csrf_of((await parent.get(f"/our-child/{seeded.child}")).text)
    other = seeded.other_child
    for path in ("sharing", "consents/new", "views", f"plans/{seeded.plan}/comments"):
        r = await parent.get(f"/our-child/{other}/{path}")
        assert r.status_code == 404 and "Page not found" in r.text, path
    for path in ("consents", "views", f"plans/{seeded.plan}/comments"):
        r = await parent.post(f"/our-child/{other}/{path}", data={"csrf_token": token})
        assert r.status_code == 404, path
    senco = await signed_in_as(api, seeded, "senco")
    assert (await senco.get(f"/child/{other}/shared")).status_code == 404
    # a plan that is not this child's
    r = await parent.get(f"/our-child/{seeded.child}/plans/no-such-plan/comments")
    assert r.status_code == 404


async def test_the_family_sees_who_sees_what_and_why_in_plain_words(
    api: Api, seeded: Seeded
) -> None:
    parent = await signed_in_as(api, seeded, "parent")
    overview = await parent.get(f"/our-child/{seeded.child}")
    assert 'data-testid="sharing-link"' in overview.text
    assert overview.text.count('data-testid="member"') == 3
    assert "School SEN coordinator" in overview.text
    assert "Speech and language therapist" in overview.text
    r = await parent.get(f"/our-child/{seeded.child}/sharing")
    assert r.status_code == 200
    cards = r.text.split('data-testid="reacher"')[1:]
    assert len(cards) >= 5  # casey, the SENCO, the teacher, the therapist, the family
    casey = next(c for c in cards if ">casey<" in c)
    assert "the child is on their caseload" in casey
    assert f"consent given for the child (record c-edu-{UPN})" in casey
    teacher = next(c for c in cards if "dfe:teacher-1" in c or "teacher" in c.lower())
    assert "on the team around the child" in teacher
    assert any(">You<" in c for c in cards)
    assert "GET /children/{id}/access" in await family_routes(api, seeded.child)


async def family_routes(api: Api, child: str) -> set[str]:
    """The routes of the audited reads of the child by any family member."""
    await api.hub.views.catch_up_partitions(["audit_index"])
    rows = await api.hub.store.fetchall(
        "SELECT line FROM audit_entry WHERE child_id = ? AND kind = 'read'", (child,)
    )
    records = [orjson.loads(bytes(r[0])) for r in rows]
    return {r["details"]["route"] for r in records if r["actor"].startswith("family:")}


async def test_the_family_gives_and_refuses_consent_with_errors_naming_the_field(
    api: Api, seeded: Seeded
) -> None:
    parent = await signed_in_as(api, seeded, "parent")
    page = f"/our-child/{seeded.child}/consents/new"
    action = f"/our-child/{seeded.child}/consents"
    r = await post_form(parent, page, action, {})
    assert r.status_code == 400
    assert_error_summary(r, "decision", "Select whether you agree to share")
    assert_error_summary(r, "categories", "Select at least one kind of information")
    assert_error_summary(r, "purposes", "Select at least one reason for sharing")
    bad_date = {
        "decision": "permit",
        "categories": ["health", "social_care"],
        "purposes": ["plan_delivery"],
        "until-day": "31",
        "until-month": "2",
        "until-year": "2030",
    }
    r = await post_form(parent, page, action, bad_date)
    assert r.status_code == 400
    assert_error_summary(r, "until-day", "The end date must be a real date")
    assert 'value="social_care" checked' in r.text  # the choices are kept
    past = {**bad_date, "until-day": "1", "until-month": "1", "until-year": "2020"}
    r = await post_form(parent, page, action, past)
    assert_error_summary(r, "until-day", "today or in the future")
    r = await post_form(parent, page, action, {**bad_date, "categories": ["no_such"]})
    assert_error_summary(r, "categories", "Select at least one kind of information")

    good = {**bad_date, "until-day": "1", "until-month": "1", "until-year": str(TODAY.year + 2)}
    r = await post_form(parent, page, action, good)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/our-child/{seeded.child}?done=given"
    done = await parent.get(r.headers["location"])
    assert "You agreed to share" in done.text
    cards = [c for c in done.text.split('data-testid="consent-')[1:] if c.startswith("family-")]
    assert len(cards) == 1 and "Health, social care" in cards[0] and "Withdraw" in cards[0]

    refusal = {"decision": "deny", "categories": ["mental_health"], "purposes": ["review"]}
    r = await post_form(parent, page, action, refusal)
    assert r.status_code == 303 and r.headers["location"].endswith("?done=refused")


async def test_the_young_person_of_eleven_may_not_decide_and_is_told_why(
    api: Api, seeded: Seeded
) -> None:
    r = await api.client.post(
        f"/children/{seeded.child}/invitations",
        json={"capacity": "young_person"},
        headers=api.auth("casey"),
    )
    code = r.json()["code"]
    young = browser(api)
    assert (await sign_in(young, code)).status_code == 200
    r = await post_form(
        young,
        f"/our-child/{seeded.child}/consents/new",
        f"/our-child/{seeded.child}/consents",
        {"decision": "permit", "categories": ["health"], "purposes": ["review"]},
    )
    assert r.status_code == 422
    assert 'href="#decision"' in r.text and "compulsory school age" in r.text.lower()
    # nor may they withdraw the parent's consent
    page = await young.get(f"/our-child/{seeded.child}")
    r = await young.post(
        f"/our-child/{seeded.child}/consents/c-edu-{UPN}/withdraw",
        data={"csrf_token": csrf_of(page.text)},
    )
    assert r.status_code == 422 and "govuk-error-summary" in r.text


async def test_the_family_adds_their_views_and_the_coordinator_reads_them(
    api: Api, seeded: Seeded
) -> None:
    parent = await signed_in_as(api, seeded, "parent")
    page = f"/our-child/{seeded.child}/views"
    r = await post_form(parent, page, page, {"views": "   "})
    assert r.status_code == 400
    assert_error_summary(r, "views", "Enter your views, in your own words")
    too_many = "\n".join(f"thing {i}" for i in range(60))
    r = await post_form(parent, page, page, {"views": "Fine", "interests": too_many})
    assert_error_summary(r, "interests", "List at most 50 interests, one a line")
    assert "thing 59" in r.text  # what they typed is kept
    words = "Sam likes trains and quiet mornings."
    r = await post_form(
        parent,
        page,
        page,
        {"views": words, "interests": "Trains\n\nLego", "aspirations": "College"},
    )
    # no consent covers the family's views yet: recorded, and kept back until one does
    assert r.status_code == 303 and r.headers["location"].endswith("?done=views_withheld")
    assert "kept back until you agree" in (await parent.get(r.headers["location"])).text
    r = await post_form(
        parent,
        f"/our-child/{seeded.child}/consents/new",
        f"/our-child/{seeded.child}/consents",
        {"decision": "permit", "categories": ["family_views"], "purposes": ["plan_delivery"]},
    )
    assert r.status_code == 303, r.text
    record = await api.client.get(f"/children/{seeded.child}/record", headers=api.auth("casey"))
    views = [
        f["payload"]
        for facts in record.json()["agencies"].values()
        for f in facts
        if f["event_type"] == "family.views_recorded"
    ]
    assert views and views[0]["views"] == words and views[0]["interests"] == ["Trains", "Lego"]
    assert views[0]["whose"] == "parent"


async def test_the_family_comments_on_the_draft_once_there_is_one(api: Api, seeded: Seeded) -> None:
    parent = await signed_in_as(api, seeded, "parent")
    page = f"/our-child/{seeded.child}/plans/{seeded.plan}/comments"
    r = await parent.get(page)
    assert r.status_code == 200 and "There is no draft plan to comment on yet" in r.text
    r = await post_form(parent, page, page, {"summary": "Good"})
    assert r.status_code == 422 and 'class="govuk-error-summary"' in r.text

    await the_plan_is_drafted(api, seeded.plan, seeded.child)
    r = await api.client.post(
        f"/plans/{seeded.plan}/draft",
        json={
            "issued_on": TODAY.isoformat(),
            "comments_by": (TODAY + timedelta(days=15)).isoformat(),
        },
        headers=api.auth("casey"),
    )
    assert r.status_code in (200, 201), r.text
    overview = await parent.get(f"/our-child/{seeded.child}")
    assert 'data-testid="comment-link"' in overview.text
    r = await post_form(parent, page, page, {"summary": "", "requested_placement": "12"})
    assert r.status_code == 400
    assert_error_summary(r, "summary", "Enter your comments on the draft plan")
    assert_error_summary(r, "requested_placement", "URN has 6 digits")
    r = await post_form(
        parent,
        page,
        page,
        {"summary": "Please add speech therapy.", "requested_placement": "100001"},
    )
    assert r.status_code == 303 and r.headers["location"].endswith("?done=comments"), r.text
    timeline = await api.client.get(f"/plans/{seeded.plan}/timeline", headers=api.auth("casey"))
    steps = [s["event_type"] for s in timeline.json()["steps"]]
    assert "plan.comments_received" in steps


async def test_a_practitioner_sees_their_actions_and_advice_due_and_the_api_agrees(
    api: Api, seeded: Seeded
) -> None:
    await the_plan_is_drafted(api, seeded.plan, seeded.child)
    senco = await signed_in_as(api, seeded, "senco")
    home = await senco.get("/")
    assert 'data-testid="my-work-link"' in home.text and 'data-testid="shared-link"' in home.text
    r = await senco.get("/my-work")
    assert r.status_code == 200
    assert r.text.count('data-testid="action-row"') == 1 and "Share the provision map" in r.text
    assert r.text.count('data-testid="advice-row"') == 1 and "Outstanding" in r.text
    assert f'href="/plan/{seeded.plan}"' in r.text
    api_work = await api.client.get("/me/work", headers=api.auth("senco"))
    assert api_work.status_code == 200
    body = api_work.json()
    assert [a["action_id"] for a in body["actions"]] == ["act-senco"]
    assert [a["advice_request_id"] for a in body["advice"]] == ["adv-senco"]
    assert body["advice"][0]["state"] == "outstanding" and body["children"] == 1
    reads = await audited_reads(api, seeded.child, "practitioner:senco")
    assert "GET /me/work" in {d["route"] for d in reads}

    teacher = browser(api)
    assert (await sign_in(teacher, api.tokens["teacher"])).status_code == 303
    mine = await teacher.get("/my-work")
    assert 'data-testid="no-actions"' in mine.text and 'data-testid="no-advice"' in mine.text
    for who in ("casey", "parent", "ig", "ops"):
        token = api.tokens.get(who)
        if token:
            r = await api.client.get("/me/work", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 403, who


async def test_the_shared_record_page_follows_the_familys_consent(api: Api, seeded: Seeded) -> None:
    teacher = browser(api)
    assert (await sign_in(teacher, api.tokens["teacher"])).status_code == 303
    before = await teacher.get(f"/child/{seeded.child}/shared")
    assert before.status_code == 200
    assert 'data-testid="shared-fact"' in before.text and "Sen status recorded" in before.text
    assert "the family&#39;s consent" in before.text and f"c-edu-{UPN}" in before.text
    assert "speech_and_language" not in before.text  # health is not shared with a teacher
    reads = await audited_reads(api, seeded.child, "practitioner:teacher")
    assert reads[-1]["route"] == "GET /children/{id}/record" and reads[-1]["as"] == "teacher"

    parent = await signed_in_as(api, seeded, "parent")
    page = await parent.get(f"/our-child/{seeded.child}")
    r = await parent.post(
        f"/our-child/{seeded.child}/consents/c-edu-{UPN}/withdraw",
        data={"csrf_token": csrf_of(page.text)},
    )
    assert r.status_code == 303
    after = await teacher.get(f"/child/{seeded.child}/shared")
    assert "Sen status recorded" not in after.text
    assert f"c-edu-{UPN}" not in after.text
