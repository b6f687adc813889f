"""Review and learn through the real API: a coordinator records a plan's outcomes (with
priority and horizon), provision, informal support and a personal budget from the family's
request to its audit; at the annual review, progress against each outcome, a revised
outcome, what worked and what did not, and the next review agreed with the family; and
completes a meeting's action. The timeline shows each outcome at its current wording
with its history and progress, the budget's stages, the review's conclusions and the next
review date; from Year 9 it prompts for preparation for adulthood. Steps that refer to
what the plan does not hold are refused naming the rule and the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.auth.keys import Publishing
from tests.e2e.test_plan_journey import LA, get, post, set_up_child
from tests.support.api import Api, embedded, running_api
from tests.support.web import sign_in


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        await a.key("oak-school-mis", "agency", "oak-school", publishing=Publishing("education"))
        await a.key("city-health", "agency", "city-health", publishing=Publishing("health"))
        await a.key("camhs", "agency", "camhs-north", publishing=Publishing("health"))
        await a.key("la-case-system", "agency", "local_authority", publishing=LA)
        await a.key("casey", "coordinator")
        await a.key("other", "coordinator")
        await a.key("ops", "admin")
        yield a


async def refused(api: Api, url: str, body: dict[str, Any], status: int, rule: str) -> str:
    r = await api.client.post(url, json=body, headers=api.auth("casey"))
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["rule"] == rule, problem
    return str(problem["field"])


async def a_final_plan(api: Api, child: str) -> str:
    made = await post(
        api,
        f"/children/{child}/plans",
        {"requested_on": "2024-01-15", "received_on": "2024-01-18", "requested_by": "parent"},
    )
    plan = str(made["plan_id"])
    await post(api, f"/plans/{plan}/decision", {"decision": "assess", "decided_on": "2024-02-01"})
    await post(
        api, f"/plans/{plan}/draft", {"issued_on": "2024-05-02", "comments_by": "2024-05-17"}
    )
    await post(api, f"/plans/{plan}/final", {"finalised_on": "2024-05-30"})
    return plan


def of_kind(tl: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [c for c in tl["contributions"] if c["kind"] == kind]


async def test_a_plan_is_reviewed_and_learnt_from(api: Api) -> None:
    child = await set_up_child(api)
    plan = await a_final_plan(api, child)

    # -- what the plan holds -----------------------------------------------------------
    await post(
        api,
        f"/plans/{plan}/outcomes",
        {
            "outcome_id": "out-read",
            "need_section": "B",
            "area": "cognition_and_learning",
            "what": "Reads a short book aloud to a friend",
            "by_when": "2025-04-30",
            "how_measured": "Reading age assessment",
            "agreed_on": "2024-05-30",
            "priority": 1,
            "horizon": "short_term",
        },
    )
    assert "outcome_ids[0]" == await refused(
        api,
        f"/plans/{plan}/provision",
        {
            "section": "F",
            "description": "Daily phonics",
            "provider": {"agency": "education"},
            "outcome_ids": ["out-none"],
            "agreed_on": "2024-05-30",
        },
        422,
        "unknown_outcome",
    )
    await post(
        api,
        f"/plans/{plan}/provision",
        {
            "provision_id": "prov-phonics",
            "section": "F",
            "description": "Small-group phonics, 20 minutes daily",
            "provider": {"agency": "education", "organisation_code": "100001"},
            "amount": {"quantity": "20", "unit": "minutes", "frequency": "daily"},
            "outcome_ids": ["out-read"],
            "agreed_on": "2024-05-30",
        },
    )
    await post(
        api,
        f"/plans/{plan}/informal-support",
        {
            "kind": "community",
            "description": "Library reading club on Saturdays",
            "recorded_on": "2024-05-30",
            "outcome_ids": ["out-read"],
        },
    )

    # -- the personal budget: asked for, indicated, agreed ------------------------------
    assert "budget_id" == await refused(
        api,
        f"/plans/{plan}/personal-budget",
        {
            "budget_id": "pb-1",
            "indication": {"indicated_on": "2024-05-20", "amount": "900", "period": "annual"},
        },
        409,
        "budget_not_requested",
    )
    await post(
        api,
        f"/plans/{plan}/personal-budget",
        {
            "budget_id": "pb-1",
            "request": {
                "requested_on": "2024-05-10",
                "requested_by": "parent",
                "covers": ["education"],
            },
            "indication": {"indicated_on": "2024-05-20", "amount": "900", "period": "annual"},
        },
    )
    await post(
        api,
        f"/plans/{plan}/personal-budget",
        {
            "budget_id": "pb-1",
            "agreement": {
                "agreed_on": "2024-05-30",
                "amount": "950.00",
                "period": "annual",
                "direct_payment": True,
                "covers": ["education"],
            },
        },
    )

    # -- the annual review --------------------------------------------------------------
    await post(
        api,
        f"/plans/{plan}/reviews",
        {"review_id": "rev-1", "held_on": "2025-05-12", "family_attended": True},
    )
    assert "outcome_id" == await refused(
        api,
        f"/plans/{plan}/outcomes/out-none/progress",
        {"recorded_on": "2025-05-12", "progress": "achieved"},
        422,
        "unknown_outcome",
    )
    await post(
        api,
        f"/plans/{plan}/outcomes/out-read/progress",
        {
            "review_id": "rev-1",
            "recorded_on": "2025-05-12",
            "progress": "partly_achieved",
            "evidence": "Reads a page aloud; a short book not yet",
        },
    )
    await post(
        api,
        f"/plans/{plan}/outcomes/out-read/revision",
        {
            "review_id": "rev-1",
            "revised_on": "2025-05-12",
            "what": "Reads a short book aloud to the class",
            "by_when": "2026-04-30",
            "how_measured": "Reading age assessment and teacher observation",
            "reason": "Partly achieved: the next step",
        },
    )
    await post(
        api,
        f"/plans/{plan}/personal-budget",
        {
            "budget_id": "pb-1",
            "audit": {
                "review_id": "rev-1",
                "audited_on": "2025-05-12",
                "spent": "950.00",
                "finding": "used_as_agreed",
            },
        },
    )
    conclusion = {
        "concluded_on": "2025-05-12",
        "what_worked": ["Small-group phonics"],
        "what_did_not_work": ["A reading diary at home"],
        "next_review_on": "2026-05-13",
        "agreed_with_family": True,
    }
    assert "next_review_on" == await refused(
        api, f"/plans/{plan}/reviews/rev-1/conclusion", conclusion, 422, "invalid_reviewconcluded"
    )
    assert "review_id" == await refused(
        api,
        f"/plans/{plan}/reviews/rev-9/conclusion",
        {**conclusion, "next_review_on": "2026-05-01"},
        422,
        "unknown_review",
    )
    conclusion["next_review_on"] = "2026-05-01"
    await post(api, f"/plans/{plan}/reviews/rev-1/conclusion", conclusion)
    assert "review_id" == await refused(
        api, f"/plans/{plan}/reviews/rev-1/conclusion", conclusion, 409, "review_concluded"
    )

    tl = await get(api, f"/plans/{plan}/timeline?as_of=2025-06-01")
    [outcome] = of_kind(tl, "outcome")
    assert (outcome["what"], outcome["by_when"], outcome["revised_on"]) == (
        "Reads a short book aloud to the class",
        "2026-04-30",
        "2025-05-12",
    )
    assert (outcome["priority"], outcome["horizon"]) == (1, "short_term")
    assert [(h["what"], h["by_when"], h["reason"]) for h in outcome["history"]] == [
        ("Reads a short book aloud to a friend", "2025-04-30", "Partly achieved: the next step")
    ]
    assert outcome["latest_progress"] == "partly_achieved"
    assert outcome["progress"][0]["evidence"] == "Reads a page aloud; a short book not yet"
    assert [p["provision_id"] for p in outcome["provision"]] == ["prov-phonics"]
    [budget] = of_kind(tl, "personal_budget")
    assert (budget["stage"], budget["requested_by"], budget["indicative_amount"]) == (
        "agreed",
        "parent",
        "900",
    )
    assert (budget["amount"], budget["direct_payment"]) == ("950.00", True)
    assert [(a["spent"], a["finding"]) for a in budget["audits"]] == [("950.00", "used_as_agreed")]
    [support] = of_kind(tl, "informal_support")
    assert support["description"] == "Library reading club on Saturdays"
    [review] = of_kind(tl, "review")
    assert (review["what_worked"], review["what_did_not_work"]) == (
        ["Small-group phonics"],
        ["A reading diary at home"],
    )
    assert tl["next_review_on"] == "2026-05-01"
    steps = [s["text"] for s in tl["steps"]]
    assert "Progress towards an outcome: partly achieved" in steps
    assert "Review concluded; next review by 1 May 2026" in steps
    assert "Indicative personal budget: £900.00 (annual)" in steps
    assert tl["prompts"] == []  # Year 6 in 2025: not yet preparing for adulthood

    # -- the coordinator's page of the plan says the same ---------------------------------
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app), base_url="http://hub.test"
    ) as page:
        assert (await sign_in(page, api.tokens["casey"])).status_code == 303
        r = await page.get(f"/plan/{plan}")
    assert r.status_code == 200, r.text
    assert 'data-testid="next-review">1 May 2026<' in r.text
    assert 'data-testid="progress">Partly achieved<' in r.text
    assert "What worked: Small-group phonics" in r.text
    assert "Reads a short book aloud to the class" in r.text

    # -- from Year 9 (this child, born March 2015, from September 2028) -----------------
    later = await get(api, f"/plans/{plan}/timeline?as_of=2028-09-01")
    assert [p["rule"] for p in later["prompts"]] == ["pfa_outcomes_from_year_9"]
    before = await get(api, f"/plans/{plan}/timeline?as_of=2028-08-31")
    assert before["prompts"] == []


async def test_a_meeting_action_is_completed_once_and_only_in_reach(api: Api) -> None:
    child = await set_up_child(api)
    await post(
        api,
        f"/children/{child}/meetings",
        {
            "held_on": "2024-02-20",
            "kind": "tac",
            "attendee_ids": ["senco-1"],
            "actions": [
                {
                    "action_id": "act-1",
                    "text": "Share the provision map",
                    "owner_id": "senco-1",
                    "due_on": "2024-03-01",
                }
            ],
        },
    )
    team = await get(api, f"/children/{child}/team?as_of=2024-02-21")
    assert [a["action_id"] for a in team["open_actions"]] == ["act-1"]

    url = f"/children/{child}/actions/act-1/completion"
    r = await api.client.post(url, json={"completed_on": "2024-02-28"}, headers=api.auth("other"))
    assert r.status_code == 404, r.text  # not on their caseload
    r = await api.client.post(
        f"/children/{child}/actions/act-9/completion",
        json={"completed_on": "2024-02-28"},
        headers=api.auth("casey"),
    )
    assert r.status_code == 404, r.text  # no such action
    await post(api, url, {"completed_on": "2024-02-28", "completed_by": "senco-1"})
    team = await get(api, f"/children/{child}/team?as_of=2024-03-05")
    assert team["open_actions"] == []
    r = await api.client.post(url, json={"completed_on": "2024-02-28"}, headers=api.auth("casey"))
    assert r.status_code == 404, r.text  # completed already: no longer open
