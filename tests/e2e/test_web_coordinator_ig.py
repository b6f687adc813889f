"""The coordinator's forms and pages and IG's further pages over HTTP, as a browser without
JavaScript meets them: each admits only its roles (the sign-in page for nobody, a 403
page for a wrong role, a 404 page for a child or plan out of reach), no POST is taken
without the session's CSRF token; a form with a missing or wrong field answers its GOV.UK
error summary naming the field and the rule (pydantic's, or the API handler's own
refusal), a good one records through the API's handler once (retried: still once) and
redirects to a page whose banner says so; the search takes its key in the body and
finds the child; IG reads the access log, downloads the child's trail, the whole trail
and the signed heads (each audited), erases a child after a confirmation step, and the
verify page names the first record someone altered.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from hub.consent.audit_heads import check_export
from hub.web import pages_coordinator, pages_ig
from hub.web.step_forms import STEP_FORMS
from tests.e2e.test_team_access import NHS, OTHER_UPN, SENCO, UPN
from tests.e2e.test_web_pages import audited_reads, browser, signed_in_as
from tests.support.api import Api, embedded, running_api
from tests.support.web import Seeded, csrf_of, seed


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        yield a


@pytest.fixture
async def seeded(api: Api) -> Seeded:
    return await seed(api)


ROLES = ("casey", "senco", "parent", "ig", "ops")
TODAY = datetime.now(UTC).date()

PAGES: dict[str, set[str]] = {
    "/plan/{plan_id}/record/{step}": {"casey"},
    "/child/{child_id}/record/{step}": {"casey"},
    "/search": {"casey"},
    "/plan/{plan_id}/contributions": {"casey"},
    "/plan/{plan_id}/meetings": {"casey"},
    "/trail/{child_id}/access-log": {"ig"},
    "/trail/{child_id}/export": {"ig"},
    "/trail-export": {"ig"},
    "/trail-heads": {"ig"},
    "/erasure": {"ig"},
}
"""Each page (GET) and who may open it."""
POSTS: dict[str, set[str]] = {
    "/plan/{plan_id}/record/{step}": {"casey"},
    "/child/{child_id}/record/{step}": {"casey"},
    "/search": {"casey"},
    "/plan/{plan_id}/actions/{action_id}/done": {"casey"},
    "/erasure": {"ig"},
    "/erasure/confirm": {"ig"},
}
"""Each form's POST and who may send it."""


def urls(template: str, s: Seeded) -> list[str]:
    """The page's addresses: one for each form of a form route."""
    url = template.replace("{child_id}", s.child).replace("{plan_id}", s.plan)
    url = url.replace("{action_id}", "act-1")
    if "{step}" in url:
        on = "plan" if template.startswith("/plan") else "child"
        return [url.replace("{step}", f.slug) for f in STEP_FORMS.values() if f.on == on]
    return [url]


def d(prefix: str, day: Any) -> dict[str, str]:
    """A GOV.UK date input's three boxes."""
    return {
        f"{prefix}-day": str(day.day),
        f"{prefix}-month": str(day.month),
        f"{prefix}-year": str(day.year),
    }


async def send(client: httpx.AsyncClient, path: str, data: dict[str, Any]) -> httpx.Response:
    """Open the form, then post it with its CSRF token and idempotency key, as a browser."""
    page = await client.get(path)
    assert page.status_code == 200, (path, page.status_code, page.text[-500:])
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    hidden = {
        "csrf_token": csrf_of(page.text),
        **({"idempotency_key": key.group(1)} if key else {}),
    }
    return await client.post(path, data={**hidden, **data})


def summary(html: str) -> list[tuple[str, str, str]]:
    """The error summary's (link target, rule, text) for each error."""
    body = html.split('govuk-error-summary__list">')[1].split("</ul>")[0]
    return [
        (href, rule, re.sub(r"\s+", " ", text).strip())
        for rule, href, text in re.findall(
            r'<li data-rule="([^"]*)" data-field="[^"]*"><a href="#([^"]+)">([^<]+)</a>', body
        )
    ]


def test_the_role_matrices_know_every_route_of_these_page_modules() -> None:
    gets = {
        r.path for m in (pages_coordinator, pages_ig) for r in m.router.routes if "GET" in r.methods
    }
    posts = {
        r.path
        for m in (pages_coordinator, pages_ig)
        for r in m.router.routes
        if "POST" in r.methods
    }
    assert gets == set(PAGES), gets ^ set(PAGES)
    assert posts == set(POSTS), posts ^ set(POSTS)


async def test_every_page_and_form_admits_its_roles_only(api: Api, seeded: Seeded) -> None:
    clients = {who: await signed_in_as(api, seeded, who) for who in ROLES}
    anonymous = browser(api)
    for template, allowed in PAGES.items():
        for path in urls(template, seeded):
            r = await anonymous.get(path)
            assert r.status_code == 401 and 'action="/sign-in"' in r.text, (path, r.status_code)
            for who, client in clients.items():
                r = await client.get(path)
                if who in allowed:
                    assert r.status_code == 200, (path, who, r.status_code, r.text[-600:])
                else:
                    assert r.status_code == 403, (path, who, r.status_code)
                    assert "You cannot see this page" in r.text
    for template, allowed in POSTS.items():
        for path in urls(template, seeded):
            r = await anonymous.post(path, data={"csrf_token": "x"})
            assert r.status_code == 401, (path, r.status_code)
            for who, client in clients.items():
                if who in allowed:
                    continue
                token = csrf_of((await client.get("/", follow_redirects=True)).text)
                r = await client.post(path, data={"csrf_token": token})
                assert r.status_code == 403, (path, who, r.status_code)
    # the forms are linked for the coordinator only
    plan_page = await clients["senco"].get(f"/plan/{seeded.plan}")
    assert plan_page.status_code == 200 and 'data-testid="plan-forms"' not in plan_page.text
    child_page = await clients["senco"].get(f"/child/{seeded.child}")
    assert 'data-testid="child-forms"' not in child_page.text
    assert (
        'data-testid="child-forms"' in (await clients["casey"].get(f"/child/{seeded.child}")).text
    )
    # out of reach (or no such plan): the 404 page, for forms as for pages
    casey = clients["casey"]
    for path in (
        f"/child/{seeded.other_child}/record/key-worker",
        "/plan/no-such-plan/record/decision",
        "/plan/no-such-plan/meetings",
        "/plan/no-such-plan/contributions",
        f"/plan/{seeded.plan}/record/no-such-form",
        f"/child/{seeded.child}/record/decision",  # a plan's form is not a child's
    ):
        r = await casey.get(path)
        assert r.status_code == 404 and "Page not found" in r.text, (path, r.status_code)


async def test_no_form_is_taken_without_the_sessions_csrf_token(api: Api, seeded: Seeded) -> None:
    casey = await signed_in_as(api, seeded, "casey")
    ig = await signed_in_as(api, seeded, "ig")
    stolen = csrf_of((await ig.get("/erasure")).text)  # a token from another session
    decision = {"decision": "assess", **d("decided_on", TODAY)}
    path = f"/plan/{seeded.plan}/record/decision"
    for token in (None, "", stolen):
        data = decision if token is None else {**decision, "csrf_token": token}
        r = await casey.post(path, data=data)
        assert r.status_code == 403 and "could not be sent" in r.text, token
    erase = {"child_id": seeded.child, "reason": "ER-1", "confirm": "yes"}
    r = await ig.post(
        "/erasure/confirm", data={**erase, "csrf_token": csrf_of((await casey.get("/")).text)}
    )
    assert r.status_code == 403
    casey_token = csrf_of((await casey.get("/")).text)
    for template, allowed in POSTS.items():  # every form, by the role it is for
        client, other = (casey, stolen) if "casey" in allowed else (ig, casey_token)
        for url in urls(template, seeded):
            for data in ({}, {"csrf_token": ""}, {"csrf_token": other}):
                r = await client.post(url, data=data)
                assert r.status_code == 403 and "could not be sent" in r.text, (url, data)
    timeline = await casey.get(f"/plan/{seeded.plan}")
    assert "The LA decided to assess" not in timeline.text  # nothing was recorded
    assert (await casey.get(f"/child/{seeded.child}")).status_code == 200  # nor erased


async def test_a_decision_names_the_missing_field_then_the_rule_then_is_recorded_once(
    api: Api, seeded: Seeded
) -> None:
    casey = await signed_in_as(api, seeded, "casey")
    path = f"/plan/{seeded.plan}/record/decision"
    r = await send(casey, path, {"decision": "assess"})
    assert r.status_code == 422
    assert r.text.count("<title>Error: ") == 1
    assert summary(r.text) == [("decided_on-day", "missing", "Enter the date of the decision")]
    assert 'id="decided_on-error"' in r.text and 'value="assess" checked' in r.text

    r = await send(
        casey, path, {"decision": "assess", **d("decided_on", TODAY)} | {"decided_on-month": "13"}
    )
    assert summary(r.text) == [
        ("decided_on-day", "date_real", "Date of the decision must be a real date")
    ]

    before = TODAY - timedelta(weeks=4)  # the request was received three weeks ago
    r = await send(casey, path, {"decision": "assess", **d("decided_on", before)})
    assert r.status_code == 422
    [(target, rule, text)] = summary(r.text)
    assert target == "decided_on-day" and rule == "decided_on_before_request"
    assert text.startswith("Date of the decision: decided_on") and "before the request" in text

    page = await casey.get(path)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text)
    assert key is not None
    good = {
        "csrf_token": csrf_of(page.text),
        "idempotency_key": key.group(1),
        "decision": "assess",
        **d("decided_on", TODAY - timedelta(days=1)),
    }
    for _ in range(2):  # sent twice (a double click, a reload): recorded once
        r = await casey.post(path, data=good)
        assert (
            r.status_code == 303
            and r.headers["location"] == f"/plan/{seeded.plan}?recorded=decision"
        )
    done = await casey.get(r.headers["location"])
    assert (
        "govuk-notification-banner--success" in done.text
        and "The decision was recorded" in done.text
    )
    steps = done.text.split('data-testid="steps"')[1].split("</ol>")[0]
    assert steps.count("The LA decided to assess") == 1
    # the same rule as the API's: a second decision conflicts with the first
    r = await send(casey, path, {"decision": "assess", **d("decided_on", TODAY)})
    assert r.status_code == 422 and summary(r.text)[0][:2] == (
        "decision",
        "already_decided_to_assess",
    ), summary(r.text)


async def test_each_of_the_las_steps_records_through_the_api_handler(
    api: Api, seeded: Seeded
) -> None:
    casey = await signed_in_as(api, seeded, "casey")
    plan, child = f"/plan/{seeded.plan}", f"/child/{seeded.child}"
    day = TODAY - timedelta(days=14)
    for path, data, shows in (
        (f"{plan}/record/decision", {"decision": "assess", **d("decided_on", day)},
         "decided to assess"),
        (
            f"{plan}/record/advice-request",
            {"reg6_category": "educational_psychologist", "practitioner_id": "ep-9",
             "agency": "education", **d("requested_on", day)},
            "Advice requested (educational psychologist)",
        ),
        (
            f"{plan}/record/exception",
            {"kind": "family_absent", **d("starts_on", day),
             **d("ends_on", day + timedelta(weeks=4))},
            "Family absent from",
        ),
        (
            f"{plan}/record/meeting",
            {"kind": "tac", **d("held_on", day), "attendee_ids": f"{SENCO}\nep-9",
             "decisions": "Refer for a sensory assessment", "family_attended": "yes",
             "actions.0.text": "Book the sensory assessment", "actions.0.owner_id": SENCO,
             **d("actions.0.due_on", TODAY + timedelta(days=20))},
            "Meeting",
        ),
    ):  # fmt: skip
        r = await send(casey, path, data)
        assert r.status_code == 303, (
            path,
            r.status_code,
            summary(r.text) if r.status_code == 422 else "",
        )
        page = await casey.get(r.headers["location"])
        assert "govuk-notification-banner--success" in page.text, path
        assert shows in page.text, (path, shows)
    # advice from CAMHS no consent covers: recorded, kept back, and the banner says so
    camhs = {"reg6_category": "medical", "practitioner_id": "camhs-1", "agency": "health",
             "advice_category": "mental_health", **d("requested_on", day)}  # fmt: skip
    r = await send(casey, f"{plan}/record/advice-request", camhs)
    assert r.status_code == 303 and r.headers["location"].endswith("&held=yes"), r.headers
    held = await casey.get(r.headers["location"])
    assert "kept back until a consent covers it" in held.text
    assert "govuk-notification-banner--success" not in held.text
    meetings = await casey.get(f"{plan}/meetings")
    assert 'data-testid="meeting"' in meetings.text
    assert "Book the sensory assessment" in meetings.text and SENCO in meetings.text
    assert "Refer for a sensory assessment" in meetings.text
    # the action is marked done through the completion route's builder and handler
    [done_url] = re.findall(r'action="(/plan/[^"]+/actions/[^"]+/done)"', meetings.text)
    r = await casey.post(done_url, data={"csrf_token": csrf_of(meetings.text)})
    assert r.status_code == 303 and r.headers["location"] == f"{plan}/meetings?done=action"
    after = await casey.get(r.headers["location"])
    assert "The action was marked done" in after.text and "/done" not in after.text
    assert 'govuk-tag--green">Done' in after.text
    again = await casey.post(done_url, data={"csrf_token": csrf_of(after.text)})
    assert again.status_code == 404  # no longer an open action
    contributions = await casey.get(f"{plan}/contributions")
    assert contributions.text.count('data-testid="contribution"') >= 2  # the advice and the meeting

    # the review: the API's own cross-field rule, named on its field
    r = await send(casey, f"{plan}/record/review", {"kind": "annual"})
    assert summary(r.text)[0][:2] == ("held_on-day", "review_needs_a_step")
    r = await send(casey, f"{plan}/record/review", {"kind": "annual", **d("held_on", day)})
    assert r.status_code == 422 and summary(r.text)[0][1] == "review_needs_final_plan"
    r = await send(casey, f"{plan}/record/draft", {**d("issued_on", TODAY)})
    assert r.status_code == 303, summary(r.text)
    assert "The draft plan was recorded" in (await casey.get(r.headers["location"])).text

    for path, data, shows in (
        (f"{child}/record/key-worker", {"practitioner_id": SENCO, "model": "single_person",
         **d("assigned_on", day)}, 'data-testid="key-worker"'),
        (f"{child}/record/key-worker-cover", {"key_worker_id": SENCO,
         "cover_contact": "SEN duty line 01632 960999", **d("arranged_on", day)},
         "The cover was recorded"),
        (f"{child}/record/key-worker-handover", {"outgoing_id": SENCO,
         "incoming.practitioner_id": "dfe:teacher-1",
         "incoming.model": "single_person", **d("handed_over_on", TODAY - timedelta(days=2)),
         **d("overlap_until", TODAY + timedelta(days=5))}, 'data-testid="key-worker"'),
        (f"{child}/record/consent", {"consent.consent_id": "c-web-1", "consent.decision": "permit",
         "consent.grantor.reference": "parent-1", "consent.grantor.capacity": "parent_with_pr",
         **d("consent.given_on", day), "consent.scope.categories": "social_care",
         "consent.scope.purposes": "plan_delivery", **d("consent.period.start", day),
         "consent.capture_method": "form"}, "The consent decision was recorded"),
        (f"{child}/record/key-working-end", {**d("ended_on", TODAY), "reason": "Needs met"},
         "The end of key working was recorded"),
    ):  # fmt: skip
        r = await send(casey, path, data)
        assert r.status_code == 303, (
            path,
            r.status_code,
            summary(r.text) if r.status_code == 422 else "",
        )
        assert r.headers["location"].startswith(f"{child}?recorded=")
        page = await casey.get(r.headers["location"])
        assert "govuk-notification-banner--success" in page.text and shows in page.text, path
    consents = (
        await api.client.get(f"/children/{seeded.child}/consents", headers=api.auth("casey"))
    ).json()
    assert "c-web-1" in orjson.dumps(consents).decode()

    # the consent's own rules, on their fields: a verbal consent needs a witness
    r = await send(casey, f"{child}/record/consent", {"consent.consent_id": "c-web-2",
        "consent.decision": "permit", "consent.grantor.reference": "parent-1",
        "consent.grantor.capacity": "parent_with_pr", **d("consent.given_on", day),
        "consent.scope.categories": "education", "consent.scope.purposes": "review",
        **d("consent.period.start", day),
        "consent.capture_method": "verbal_witnessed"})  # fmt: skip
    assert r.status_code == 422
    [(target, _, text)] = summary(r.text)
    assert target == "consent-witness" and "needs a witness" in text
    r = await send(
        casey, f"{child}/record/key-worker", {"practitioner_id": "has spaces", "model": "x"}
    )
    errors = {t: text for t, _, text in summary(r.text)}
    assert "may have only letters" in errors["practitioner_id"]
    assert errors["model"] == "Key working model: choose one of the options"
    assert errors["assigned_on-day"] == "Enter the date assigned"


async def test_the_plans_contents_are_recorded_through_the_api_builders(
    api: Api, seeded: Seeded
) -> None:
    """An outcome, provision serving it, progress towards it and a review's conclusion,
    each from its form through the builder its API route uses, each rule of the plan's
    history named on its field."""
    casey = await signed_in_as(api, seeded, "casey")
    plan = f"/plan/{seeded.plan}"
    day = TODAY - timedelta(days=7)
    outcome = {"need_section": "B", "what": "Reads a short book aloud", "outcome_id": "out-w1",
               **d("by_when", TODAY + timedelta(days=300)), "how_measured": "Reading record",
               **d("agreed_on", day), "priority": "1", "horizon": "short_term"}  # fmt: skip
    provision = {"section": "F", "description": "Phonics group", "outcome_ids": "out-w1",
                 **d("agreed_on", day), "provider.agency": "education",
                 "amount.quantity": "2", "amount.unit": "hours",
                 "amount.frequency": "weekly"}  # fmt: skip
    progress = {"outcome_id": "out-w1", "progress": "partly_achieved",
                **d("recorded_on", TODAY), "evidence": "Reads with prompts"}  # fmt: skip
    r = await send(casey, f"{plan}/record/outcome", outcome)  # before the decision to assess
    assert r.status_code == 422 and summary(r.text)[0][1] == "contents_need_assessment"
    assess = {"decision": "assess", **d("decided_on", day - timedelta(days=7))}
    for slug, data in (("decision", assess), ("outcome", outcome), ("provision", provision),
                       ("outcome-progress", progress)):  # fmt: skip
        r = await send(casey, f"{plan}/record/{slug}", data)
        assert r.status_code == 303, (slug, summary(r.text) if r.status_code == 422 else "")
        page = await casey.get(r.headers["location"])
        assert "govuk-notification-banner--success" in page.text, slug
    timeline = (
        await api.client.get(f"/plans/{seeded.plan}/timeline", headers=api.auth("casey"))
    ).json()
    text = orjson.dumps(timeline).decode()
    assert "out-w1" in text and "Phonics group" in text and "partly_achieved" in text
    # the plan's history refuses what it does not hold, on the field to blame
    r = await send(casey, f"{plan}/record/provision", {**provision, "outcome_ids": "out-none"})
    assert r.status_code == 422 and summary(r.text)[0][0] == "outcome_ids", summary(r.text)
    r = await send(casey, f"{plan}/record/outcome-progress", {**progress, "outcome_id": "out-x"})
    assert r.status_code == 422 and summary(r.text)[0][0] == "outcome_id", summary(r.text)
    r = await send(casey, f"{plan}/record/review-conclusion", {"review_id": "rev-none",
        **d("concluded_on", TODAY), **d("next_review_on", TODAY + timedelta(days=300)),
        "agreed_with_family": "true"})  # fmt: skip
    assert r.status_code in (409, 422) and summary(r.text)[0][0] == "review_id", summary(r.text)
    r = await send(casey, f"{plan}/record/outcome", {**outcome, "what": ""})
    assert r.status_code == 422 and summary(r.text)[0][0] == "what", summary(r.text)


async def test_opening_a_form_and_the_plan_pages_are_audited_reads(
    api: Api, seeded: Seeded
) -> None:
    casey = await signed_in_as(api, seeded, "casey")
    before = len(await audited_reads(api, seeded.child, "coordinator:casey"))
    assert (await casey.get(f"/plan/{seeded.plan}/record/draft")).status_code == 200
    assert (await casey.get(f"/child/{seeded.child}/record/consent")).status_code == 200
    assert (await casey.get(f"/plan/{seeded.plan}/meetings")).status_code == 200
    assert (await casey.get(f"/plan/{seeded.plan}/contributions")).status_code == 200
    new = (await audited_reads(api, seeded.child, "coordinator:casey"))[before:]
    assert [n["route"] for n in new] == [
        "GET /children/{id}/team",  # a form shows the team, whose ids it asks for
        "GET /children/{id}/team",
        "GET /plans/{id}/timeline",
        "GET /plans/{id}/timeline",
    ]
    assert all(n["outcome"] == "shown" and n["event_ids"] for n in new)
    page = await casey.get(f"/child/{seeded.child}/record/key-worker")
    assert SENCO in page.text.split('data-testid="team-ids"')[1].split("</details>")[0]
    parent = await signed_in_as(api, seeded, "parent")
    looked = (await parent.get(f"/our-child/{seeded.child}")).text.split(
        'data-testid="who-looked"'
    )[1]
    assert "casey (coordinator) looked at the team around the child" in looked


async def test_the_search_takes_its_key_in_the_body_and_names_a_broken_one(
    api: Api, seeded: Seeded
) -> None:
    casey = await signed_in_as(api, seeded, "casey")
    r = await send(casey, "/search", {"nhs_number": "943 476 5910"})
    assert r.status_code == 422
    [(target, rule, text)] = summary(r.text)
    assert (target, rule) == ("nhs_number", "nhs_number.check_digit") and "NHS number" in text
    assert "943 476 5910" in r.text.split('id="nhs_number"')[1][:200]  # shown again to correct
    r = await send(casey, "/search", {"nhs_number": NHS, "upn": UPN})
    assert summary(r.text)[0][1] == "search.one_key"
    r = await send(casey, "/search", {"given_name": "Ava"})
    assert summary(r.text)[0][:2] == ("family_name", "search.name_and_date_of_birth")
    for key in ({"upn": UPN}, {"nhs_number": NHS}):
        r = await send(casey, "/search", key)
        assert r.status_code == 200 and "1 child found" in r.text
        assert f'href="/child/{seeded.child}"' in r.text.split('data-testid="search-results"')[1]
    r = await send(casey, "/search", {"upn": OTHER_UPN})  # a child not on the caseload
    assert r.status_code == 200 and 'data-testid="search-none"' in r.text
    await api.hub.views.catch_up_partitions(["audit_index"])
    rows = await api.hub.store.fetchall(
        "SELECT line FROM audit_entry WHERE kind = 'read' AND actor = 'coordinator:casey'"
        " ORDER BY at, part, log_offset",
        (),
    )
    searches = [orjson.loads(bytes(r[0]))["details"] for r in rows]
    searches = [s for s in searches if s.get("route") == "POST /children/search"]
    assert [s["search_key"] for s in searches][-3:] == ["upn", "nhs_number", "upn"]
    assert UPN not in orjson.dumps(searches).decode() and NHS not in orjson.dumps(searches).decode()


async def test_ig_reads_the_access_log_and_downloads_the_trail_and_heads_each_audited(
    api: Api, seeded: Seeded
) -> None:
    casey = await signed_in_as(api, seeded, "casey")
    await casey.get(f"/child/{seeded.child}")
    ig = await signed_in_as(api, seeded, "ig")
    log = await ig.get(f"/trail/{seeded.child}/access-log")
    assert log.status_code == 200
    assert "coordinator:casey" in log.text and "GET /children/{id}/team" in log.text
    assert log.text.count('data-testid="access-record"') >= 2
    assert (
        "consent" not in log.text.split('data-testid="access-log"')[1].split("</table>")[0].lower()
    )

    csv = await ig.get(f"/trail/{seeded.child}/export?format=csv")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["content-disposition"] == f'attachment; filename="trail-{seeded.child}.csv"'
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("record_id,chain,seq,kind,at,actor,child_id")
    assert len(lines) > 4 and all(seeded.child in line for line in lines[1:])
    jsonl = await ig.get(f"/trail/{seeded.child}/export?format=jsonl")
    records = [orjson.loads(line) for line in jsonl.content.splitlines()]
    # as many as the CSV's rows, and the CSV's own download, audited in the child's trail
    assert {r["child_id"] for r in records} == {seeded.child} and len(records) == len(lines)
    assert (await ig.get(f"/trail/{seeded.child}/export?format=xml")).status_code == 400

    heads = await ig.get("/trail-heads")
    assert heads.headers["content-disposition"] == 'attachment; filename="audit-heads.json"'
    export = heads.json()
    assert check_export(export, public_key=export["public_key"]) == []
    whole = await ig.get("/trail-export?format=jsonl")
    assert whole.status_code == 200 and len(whole.content.splitlines()) > len(records)
    by_api = await api.client.get("/audit/export?format=csv", headers=api.auth("ig"))
    web_csv = await ig.get("/trail-export?format=csv")
    assert by_api.text.splitlines()[0] == web_csv.text.splitlines()[0] == lines[0]

    await api.hub.views.catch_up_partitions(["audit_index"])
    rows = await api.hub.store.fetchall(
        "SELECT line FROM audit_entry WHERE kind = 'read' AND actor = 'ig_auditor:ig'", ()
    )
    routes = [orjson.loads(bytes(r[0]))["details"].get("route") for r in rows]
    assert routes.count("GET /audit/children/{id}") >= 3  # the access log and two downloads
    assert "GET /audit/heads" in routes and "GET /audit/export" in routes


async def test_ig_erases_a_child_after_reading_what_will_happen_and_confirming(
    api: Api, seeded: Seeded
) -> None:
    ig = await signed_in_as(api, seeded, "ig")
    r = await send(ig, "/erasure", {"child_id": seeded.child, "reason": ""})
    assert r.status_code == 422 and 'href="#reason"' in r.text
    assert "Enter the erasure request" in r.text
    r = await send(
        ig, "/erasure", {"child_id": "hc-00000000000000000000000000000000", "reason": "ER-7"}
    )
    assert r.status_code == 422 and "holds no child with this id" in r.text
    r = await send(ig, "/erasure", {"child_id": seeded.child, "reason": "ER-7"})
    assert r.status_code == 200 and "Erase this child" in r.text
    assert "cannot be undone" in r.text and 'data-testid="what-happens"' in r.text
    token = csrf_of(r.text)
    confirm = {"csrf_token": token, "child_id": seeded.child, "reason": "ER-7"}
    r = await ig.post("/erasure/confirm", data=confirm)  # the box not ticked
    assert r.status_code == 422 and 'href="#confirm"' in r.text
    casey = await signed_in_as(api, seeded, "casey")
    assert (await casey.get(f"/child/{seeded.child}")).status_code == 200  # not yet erased
    r = await ig.post("/erasure/confirm", data={**confirm, "confirm": "yes"})
    assert r.status_code == 303 and r.headers["location"].startswith(
        f"/erasure?erased={seeded.child}"
    )
    done = await ig.get(r.headers["location"])
    assert 'data-testid="erased"' in done.text and "keys were deleted" in done.text
    assert (await casey.get(f"/child/{seeded.child}")).status_code == 404
    trail = await ig.get(f"/trail/{seeded.child}")
    assert "erasure" in trail.text.split('data-testid="trail"')[1]
    r = await ig.post("/erasure/confirm", data={**confirm, "confirm": "yes"})
    assert r.status_code == 422 and "erased already" in r.text
    r = await send(ig, "/erasure", {"child_id": seeded.child, "reason": "ER-8"})
    assert r.status_code == 422 and "erased already" in r.text  # the first step says so too


async def test_verify_names_the_first_record_someone_altered(
    api: Api, seeded: Seeded, tmp_path: Path
) -> None:
    ig = await signed_in_as(api, seeded, "ig")
    fine = await ig.get("/verify")
    assert 'data-testid="verify-ok"' in fine.text and 'href="/trail-heads"' in fine.text
    with sqlite3.connect(tmp_path / "data" / "log.db") as db:  # someone with the data file
        db.execute("DROP TRIGGER IF EXISTS log_hub_audit_no_update")
        part, offset, value = db.execute(
            "SELECT partition, offset, value FROM log_hub_audit ORDER BY partition, offset LIMIT 1"
        ).fetchone()
        record = orjson.loads(value)
        altered = {**record, "actor": record["actor"] + "-not"}
        db.execute(
            "UPDATE log_hub_audit SET value = ? WHERE partition = ? AND offset = ?",
            (orjson.dumps(altered), part, offset),
        )
    broken = await ig.get("/verify")
    assert broken.status_code == 200 and 'data-testid="verify-broken"' in broken.text
    named = broken.text.split('data-testid="first-broken"')[1].split("</p>")[0]
    assert record["record_id"] in named and record["chain"] in named


async def test_verify_names_a_chain_cut_short_though_every_record_left_fits(
    api: Api, seeded: Seeded, tmp_path: Path
) -> None:
    ig = await signed_in_as(api, seeded, "ig")
    await api.hub.trail.signed_heads()  # the heads are signed as the trail grows
    with sqlite3.connect(tmp_path / "data" / "log.db") as db:  # someone cuts a chain's tail
        db.execute("DROP TRIGGER IF EXISTS log_hub_audit_no_delete")
        part, last = db.execute(
            "SELECT partition, MAX(offset) FROM log_hub_audit GROUP BY partition"
            " ORDER BY MAX(offset) DESC LIMIT 1"
        ).fetchone()
        db.execute("DELETE FROM log_hub_audit WHERE partition = ? AND offset = ?", (part, last))
    broken = await ig.get("/verify")
    assert broken.status_code == 200 and 'data-testid="verify-broken"' in broken.text
    problems = broken.text.split('data-testid="chain-problems"')[1].split("</ul>")[0]
    assert f"hub.audit/{part}" in problems and "truncated" in problems
    assert 'data-testid="first-broken"' not in broken.text  # every record left fits
