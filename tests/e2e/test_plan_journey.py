"""One EHC plan through the real API, from the request to the final plan and the first
annual review — with a late advice, a recorded exception and a withdrawn consent —
asserting the timeline and the team around the child at each step. Time moves with
`?as_of=` (the statutory clock's day); consent is always judged now. The dates cross a
leap day: 6 weeks from a request received on 18 January 2024 fall on 29 February."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.auth.keys import Publishing
from tests.support.api import Api, embedded, running_api

UPN = "H801200001001"
NHS = "9434765919"
DOB = "2015-03-02"
UPN_2 = "X801200001002"  # a second child, with a plan and no exceptions


LA = Publishing("local_authority")  # the LA's SEN case system


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        await a.key("oak-school-mis", "agency", "oak-school", publishing=Publishing("education"))
        await a.key("city-health", "agency", "city-health", publishing=Publishing("health"))
        await a.key("camhs", "agency", "camhs-north", publishing=Publishing("health"))
        await a.key("la-case-system", "agency", "local_authority", publishing=LA)
        await a.key("casey", "coordinator")
        await a.key("ops", "admin")
        await a.key("ig", "ig_auditor")
        yield a


def event(
    event_type: str,
    payload: dict[str, Any],
    *,
    agency: str,
    message_id: str,
    subject: dict[str, Any],
    occurred_at: str = "2024-01-10T09:00:00Z",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "schema_version": 2 if event_type == "education.sen_status_recorded" else 1,
        "subject": subject,
        "source": {
            "agency": agency,
            "organisation_code": extra.pop("org", None),
            "message_id": message_id,
        },
        "occurred_at": occurred_at,
        "payload": payload,
        **extra,
    }


async def ingest(api: Api, who: str, *events: dict[str, Any]) -> list[dict[str, Any]]:
    r = await api.client.post(
        "/ingest/events", json={"events": list(events)}, headers=api.auth(who)
    )
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


async def post(api: Api, url: str, body: dict[str, Any], expect: int = 201) -> dict[str, Any]:
    r = await api.client.post(url, json=body, headers=api.auth("casey"))
    assert r.status_code == expect, r.text
    out: dict[str, Any] = r.json()
    return out


async def get(api: Api, url: str) -> dict[str, Any]:
    r = await api.client.get(url, headers=api.auth("casey"))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def consent(consent_id: str, categories: list[str], roles: list[str]) -> dict[str, Any]:
    return {
        "consent": {
            "consent_id": consent_id,
            "decision": "permit",
            "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
            "given_on": "2024-01-10",
            "scope": {
                "categories": categories,
                "roles": roles,
                "purposes": ["ehc_assessment", "plan_delivery", "review"],
            },
            "period": {"start": "2024-01-10"},
            "capture_method": "form",
            "recorded_by": "x",
        },
        "child_date_of_birth": DOB,
    }


def milestone(view: dict[str, Any], key: str) -> dict[str, Any]:
    found = [m for m in view["milestones"] if m["key"] == key]
    assert found, (key, [m["key"] for m in view["milestones"]])
    first: dict[str, Any] = found[0]
    return first


def advice(view: dict[str, Any], request_id: str) -> dict[str, Any]:
    [a] = [
        c
        for c in view["contributions"]
        if c["kind"] == "advice" and c["advice_request_id"] == request_id
    ]
    found: dict[str, Any] = a
    return found


def members(team: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        m["practitioner_id"]: m | {"agency": g["agency"]}
        for g in team["agencies"]
        for m in g["members"]
    }


async def set_up_child(api: Api) -> str:
    school = {"upn": UPN, "nhs_number": NHS, "date_of_birth": DOB}
    [sen] = await ingest(
        api,
        "oak-school-mis",
        event(
            "education.sen_status_recorded",
            {
                "sen_provision": "K",
                "start_date": "2023-09-01",
                "needs": [{"type": "SLCN", "rank": 1}],
            },
            agency="oak-school",
            message_id="sen-1",
            subject=school,
            org="100001",
        ),
    )
    child = str(sen["child_id"])
    r = await api.client.post(
        f"/children/{child}/coordinators", json={"coordinator": "casey"}, headers=api.auth("ops")
    )
    assert r.status_code == 200, r.text
    await post(
        api,
        f"/children/{child}/consents",
        consent("c-main", ["education", "identity", "family_views"], ["coordinator"]),
        200,
    )
    await post(
        api,
        f"/children/{child}/consents",
        consent("c-health", ["health"], ["coordinator", "paediatrician"]),
        200,
    )
    # CAMHS may share with the GP and CAMHS only: never with the coordinator
    await post(
        api,
        f"/children/{child}/consents",
        consent("c-mh", ["mental_health"], ["camhs_clinician", "gp"]),
        200,
    )
    results = await ingest(
        api,
        "oak-school-mis",
        event(
            "education.pupil_identified",
            {"upn": UPN, "forename": "Sam", "surname": "Example", "date_of_birth": DOB},
            agency="oak-school",
            message_id="pupil-1",
            subject={"upn": UPN},
        ),
        event(
            "education.placement_recorded",
            {
                "urn": "100001",
                "school_name": "Oak Primary",
                "phase": "primary",
                "entry_date": "2019-09-04",
                "nc_year": "4",
            },
            agency="oak-school",
            message_id="place-1",
            subject={"upn": UPN},
        ),
        event(
            "family.contact_recorded",
            {
                "contact_order": 1,
                "relationship": "PAM",
                "parental_responsibility": True,
                "forename": "Alex",
                "surname": "Example",
                "lives_with_child": True,
                "contact_points": [{"system": "phone", "value": "07700 900123"}],
            },
            agency="oak-school",
            message_id="contact-1",
            subject={"upn": UPN},
        ),
        event(
            "team.practitioner_joined",
            {
                "practitioner_id": "senco-1",
                "role": "senco",
                "agency": "education",
                "organisation_code": "100001",
                "since": "2023-09-01",
            },
            agency="oak-school",
            message_id="join-senco",
            subject={"upn": UPN},
        ),
    )
    assert [x["status"] for x in results] == ["appended"] * 4, results
    [paed] = await ingest(
        api,
        "city-health",
        event(
            "team.practitioner_joined",
            {
                "practitioner_id": "paed-1",
                "role": "paediatrician",
                "agency": "health",
                "organisation_code": "RR8",
                "since": "2023-11-01",
            },
            agency="city-health",
            message_id="join-paed",
            subject={"nhs_number": NHS},
            category="health",
        ),
    )
    [camhs] = await ingest(
        api,
        "camhs",
        event(
            "team.practitioner_joined",
            {
                "practitioner_id": "camhs-7",
                "role": "camhs_clinician",
                "agency": "health",
                "since": "2023-12-01",
            },
            agency="camhs-north",
            message_id="join-camhs",
            subject={"nhs_number": NHS},
            category="mental_health",
        ),
    )
    [kw] = await ingest(
        api,
        "la-case-system",
        event(
            "team.practitioner_joined",
            {
                "practitioner_id": "kw-1",
                "role": "key_worker",
                "agency": "local_authority",
                "organisation_code": "801",
                "since": "2024-01-20",
            },
            agency="local_authority",
            message_id="join-kw",
            subject={"hub_child_id": child},
            statutory_basis="ehc_statutory_record",
        ),
    )
    assert (paed["status"], camhs["status"], kw["status"]) == ("appended",) * 3
    return child


async def test_one_plan_from_request_to_first_annual_review(api: Api) -> None:
    child = await set_up_child(api)

    # -- the team before any plan: the CAMHS clinician is left out silently ------------
    team = await get(api, f"/children/{child}/team?as_of=2024-01-20")
    assert set(members(team)) == {"senco-1", "paed-1", "kw-1"}
    assert "camhs-7" not in str(team)
    assert team["child"]["name"] == "Sam Example" and team["child"]["date_of_birth"] == DOB
    assert {"system": "upn", "value": UPN, "source_agency": "oak-school"} in team["child"][
        "identifiers"
    ]
    assert team["child"]["current_setting"]["school_name"] == "Oak Primary"
    assert team["child"]["sen_status"]["provision_label"] == "SEN support"
    [mother] = team["family"]["members"]
    assert mother["relationships"] == ["mother"] and mother["parental_responsibility"] is True
    assert team["family"]["who_decides"]["decides"] == "parent_with_pr"
    assert any("c-health" in line and "in force" in line for line in team["consent"])
    assert [g["agency"] for g in team["agencies"]] == ["local_authority", "education", "health"]
    assert members(team)["paed-1"]["role_label"] == "Community or acute paediatrician"

    # -- the request (received 18 January 2024) ----------------------------------------
    made = await post(
        api,
        f"/children/{child}/plans",
        {"requested_on": "2024-01-15", "received_on": "2024-01-18", "requested_by": "parent"},
    )
    assert made["status"] == "recorded"
    plan = made["plan_id"]
    tl = await get(api, f"/plans/{plan}/timeline?as_of=2024-01-20")
    assert (tl["status"], tl["stage"], tl["weeks_elapsed"]) == ("requested", "enter", 0)
    assert milestone(tl, "assessment_decision:2024-01-18")["due_on"] == "2024-02-29"
    assert milestone(tl, "final_plan:2024-01-18")["due_on"] == "2024-06-06"
    assert tl["next_due"]["key"] == "assessment_decision:2024-01-18"

    await post(
        api,
        f"/children/{child}/key-worker",
        {"practitioner_id": "kw-1", "model": "single_person", "assigned_on": "2024-01-22"},
    )

    # -- decision, requests for advice ------------------------------------------------
    await post(api, f"/plans/{plan}/decision", {"decision": "assess", "decided_on": "2024-02-01"})
    for body in (
        {
            "advice_request_id": "adv-paed",
            "reg6_category": "medical",
            "practitioner_id": "paed-1",
            "agency": "health",
            "requested_on": "2024-02-01",
        },
        {
            "advice_request_id": "adv-ep",
            "reg6_category": "educational_psychologist",
            "practitioner_id": "ep-9",
            "agency": "education",
            "requested_on": "2024-02-01",
        },
    ):
        assert (await post(api, f"/plans/{plan}/advice-requests", body))["status"] == "recorded"
    tl = await get(api, f"/plans/{plan}/timeline?as_of=2024-02-10")
    assert (tl["status"], tl["stage"]) == ("assessing", "listen_and_understand")
    assert milestone(tl, "assessment_decision:2024-01-18")["state"] == "met"
    assert advice(tl, "adv-paed")["due_on"] == "2024-03-14"
    assert advice(tl, "adv-paed")["state"] == "outstanding"

    # -- a TAC meeting with actions ----------------------------------------------------
    await post(
        api,
        f"/children/{child}/meetings",
        {
            "plan_id": plan,
            "held_on": "2024-02-20",
            "kind": "tac",
            "attendee_ids": ["senco-1", "paed-1", "kw-1"],
            "family_attended": True,
            "decisions": ["Ask for a sensory assessment"],
            "actions": [
                {
                    "action_id": "act-senco",
                    "text": "Share the provision map",
                    "owner_id": "senco-1",
                    "due_on": "2024-03-01",
                },
                {
                    "action_id": "act-paed",
                    "text": "Send the clinic letter",
                    "owner_id": "paed-1",
                    "due_on": "2024-03-08",
                },
            ],
        },
    )
    team = await get(api, f"/children/{child}/team?as_of=2024-03-05")
    assert team["key_worker"]["practitioner_id"] == "kw-1"
    assert team["key_worker"]["model"] == "single_person"
    assert len(team["key_worker"]["functions"]) == 10
    assert [(a["action_id"], a["overdue"]) for a in team["open_actions"]] == [
        ("act-senco", True),
        ("act-paed", False),
    ]
    assert members(team)["senco-1"]["last_contribution"]["kind"] == "meeting"

    # -- the family goes away: an exception, first open-ended ---------------------------
    await post(
        api,
        f"/plans/{plan}/exceptions",
        {
            "exception_id": "exc-away",
            "kind": "family_absent",
            "starts_on": "2024-03-01",
            "details": "Family abroad for a funeral",
        },
    )
    tl = await get(api, f"/plans/{plan}/timeline?as_of=2024-03-10")
    assert tl["paused"] is True
    assert milestone(tl, "final_plan:2024-01-18")["state"] == "paused"
    assert advice(tl, "adv-paed")["state"] == "paused"
    [exc] = tl["exceptions"]
    assert exc["details"] == "Family abroad for a funeral" and exc["ends_on"] is None
    # ... then with its end: 28 days, so every clock it pauses moves 28 days
    await post(
        api,
        f"/plans/{plan}/exceptions",
        {
            "exception_id": "exc-away",
            "kind": "family_absent",
            "starts_on": "2024-03-01",
            "ends_on": "2024-03-28",
        },
    )
    tl = await get(api, f"/plans/{plan}/timeline?as_of=2024-04-15")
    final = milestone(tl, "final_plan:2024-01-18")
    assert (final["due_on"], final["paused_days"], final["exception_ids"]) == (
        "2024-07-04",
        28,
        ["exc-away"],
    )
    assert advice(tl, "adv-paed")["due_on"] == "2024-04-11"
    assert advice(tl, "adv-paed")["state"] == "overdue"
    assert tl["overdue_count"] == 2  # both advisers' 6 weeks have run out
    caseload = await get(api, "/caseload?as_of=2024-04-15")
    [row] = [c for c in caseload["children"] if c["child_id"] == child]
    assert row["overdue_count"] == 2 and row["next_deadline"]["due_on"] == "2024-04-11"
    assert row["days_to_20_week_date"] == (80)  # 15 April -> 4 July 2024
    assert row["name"] == "Sam Example"  # as the school's pupil record names the child

    # -- advice arrives: the EP's on time, the paediatrician's late ----------------------
    results = await ingest(
        api,
        "la-case-system",
        event(
            "plan.advice_submitted",
            {
                "advice_request_id": "adv-ep",
                "practitioner_id": "ep-9",
                "agency": "education",
                "submitted_on": "2024-04-05",
                "advice_category": "education",
                "document": {"document_id": "doc-ep", "title": "EP advice for Sam"},
            },
            agency="local_authority",
            message_id="adv-ep-1",
            subject={"hub_child_id": child},
            plan_id=plan,
            statutory_basis="ehc_statutory_record",
        ),
        event(
            "family.views_recorded",
            {
                "whose": "child",
                "recorded_on": "2024-04-10",
                "views": "I like trains.",
                "aspirations": ["To go to big school with my friends"],
            },
            agency="local_authority",
            message_id="views-1",
            subject={"hub_child_id": child},
            plan_id=plan,
        ),
    )
    assert [x["status"] for x in results] == ["appended", "appended"], results
    [late] = await ingest(
        api,
        "city-health",
        event(
            "plan.advice_submitted",
            {
                "advice_request_id": "adv-paed",
                "practitioner_id": "paed-1",
                "agency": "health",
                "submitted_on": "2024-04-20",
                "advice_category": "health",
                "document": {"document_id": "doc-paed", "title": "Medical advice"},
            },
            agency="city-health",
            message_id="adv-paed-1",
            subject={"nhs_number": NHS},
            plan_id=plan,
            category="health",
            purposes=["ehc_assessment"],
            statutory_basis="reg6_ehc_advice",
        ),
    )
    assert late["status"] == "appended", late
    tl = await get(api, f"/plans/{plan}/timeline?as_of=2024-04-22")
    assert tl["stage"] == "agree_and_allocate"  # every requested advice is in
    paed = advice(tl, "adv-paed")
    assert (paed["state"], paed["days_late"], paed["submitted_on"]) == (
        "submitted_late",
        9,
        "2024-04-20",
    )
    assert paed["document"]["title"] == "Medical advice"
    assert advice(tl, "adv-ep")["state"] == "submitted_on_time"
    [views] = [c for c in tl["contributions"] if c["kind"] == "family_views"]
    assert views["views"] == "I like trains."
    [meeting] = [c for c in tl["contributions"] if c["kind"] == "meeting"]
    assert {a["action_id"] for a in meeting["actions"]} == {"act-senco", "act-paed"}
    team = await get(api, f"/children/{child}/team?as_of=2024-04-22")
    assert members(team)["paed-1"]["last_contribution"] == {
        "kind": "advice",
        "on": "2024-04-20",
        "event_id": late["event_id"],
        "plan_id": plan,
    }

    # -- outcomes and provision, the draft and the final plan ---------------------------
    la = {"hub_child_id": child}
    results = await ingest(
        api,
        "la-case-system",
        event(
            "plan.outcome_agreed",
            {
                "outcome_id": "out-1",
                "need_section": "B",
                "area": "communication_and_interaction",
                "what": "Sam will ask for help in class",
                "by_when": "2025-07-18",
                "how_measured": "Teacher observation, termly",
                "agreed_on": "2024-04-25",
            },
            agency="local_authority",
            message_id="out-1",
            subject=la,
            plan_id=plan,
            purposes=["plan_delivery"],
            statutory_basis="ehc_statutory_record",
        ),
        event(
            "plan.provision_agreed",
            {
                "provision_id": "prov-f",
                "section": "F",
                "description": "Small-group language",
                "provider": {"agency": "education", "organisation_code": "100001"},
                "amount": {"quantity": "2", "unit": "hours", "frequency": "weekly"},
                "outcome_ids": ["out-1"],
                "agreed_on": "2024-04-25",
            },
            agency="local_authority",
            message_id="prov-f",
            subject=la,
            plan_id=plan,
            purposes=["plan_delivery"],
            statutory_basis="ehc_statutory_record",
        ),
        event(
            "plan.provision_agreed",
            {
                "provision_id": "prov-g",
                "section": "G",
                "description": "Speech therapy block",
                "provider": {"agency": "health", "organisation_code": "RR8"},
                "outcome_ids": ["out-1"],
                "agreed_on": "2024-04-25",
            },
            agency="local_authority",
            message_id="prov-g",
            subject=la,
            plan_id=plan,
            category="health",
            purposes=["plan_delivery"],
        ),
    )
    assert [x["status"] for x in results] == ["appended"] * 3, results
    await post(
        api, f"/plans/{plan}/draft", {"issued_on": "2024-05-02", "comments_by": "2024-05-17"}
    )
    # the family's 15 days have not run: a final plan now is refused, naming the rule
    r = await api.client.post(
        f"/plans/{plan}/final", json={"finalised_on": "2024-05-10"}, headers=api.auth("casey")
    )
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["rule"] == "final_before_family_comment_period"
    tl = await get(api, f"/plans/{plan}/timeline?as_of=2024-05-05")
    assert (tl["status"], tl["stage"]) == ("drafting", "plan")
    assert milestone(tl, "draft_comments:2024-05-02")["state"] == "period_open"
    await post(
        api,
        f"/plans/{plan}/final",
        {
            "finalised_on": "2024-05-30",
            "placement": "100001",
            "document": {"document_id": "ehcp-1"},
        },
    )
    tl = await get(api, f"/plans/{plan}/timeline?as_of=2024-06-01")
    assert (tl["status"], tl["stage"]) == ("final", "review_and_learn")
    final = milestone(tl, "final_plan:2024-01-18")
    assert (final["state"], final["met_on"], final["days_late"]) == ("met", "2024-05-30", 0)
    assert tl["days_to_final"] == 133
    assert milestone(tl, "annual_review:2024-05-30")["due_on"] == "2025-05-29"
    [outcome] = [c for c in tl["contributions"] if c["kind"] == "outcome"]
    assert {p["provision_id"] for p in outcome["provision"]} == {"prov-f", "prov-g"}
    documents = [c["what"] for c in tl["contributions"] if c["kind"] == "document"]
    assert documents == ["Final plan"]
    assert [s["event_type"] for s in tl["steps"]][:2] == [
        "plan.assessment_requested",
        "plan.assessment_decided",
    ]

    # -- the family withdraws its health consent: health vanishes from both views -------
    r = await api.client.post(
        "/consents/c-health/withdraw",
        json={"withdrawn_by": {"reference": "parent-1", "capacity": "parent_with_pr"}},
        headers=api.auth("casey"),
    )
    assert r.status_code == 200, r.text
    team = await get(api, f"/children/{child}/team?as_of=2024-06-01")
    assert set(members(team)) == {"senco-1", "kw-1"}
    assert [a["action_id"] for a in team["open_actions"]] == ["act-senco"]
    assert [g["agency"] for g in team["agencies"]] == ["local_authority", "education"]
    assert any("c-health" in line and "withdrawn" in line for line in team["consent"])
    tl = await get(api, f"/plans/{plan}/timeline?as_of=2024-06-01")
    [outcome] = [c for c in tl["contributions"] if c["kind"] == "outcome"]
    assert [p["provision_id"] for p in outcome["provision"]] == ["prov-f"]
    # the medical advice came on the reg 6 statutory basis: still the LA's to see
    assert advice(tl, "adv-paed")["state"] == "submitted_late"
    [meeting] = [c for c in tl["contributions"] if c["kind"] == "meeting"]
    assert [a["action_id"] for a in meeting["actions"]] == ["act-senco"]
    assert "paed-1" not in meeting["attendee_ids"]

    # -- the first annual review -------------------------------------------------------
    tl = await get(api, f"/plans/{plan}/timeline?as_of=2025-05-23")
    assert milestone(tl, "annual_review:2024-05-30")["state"] == "due_soon"
    await post(
        api,
        f"/plans/{plan}/reviews",
        {
            "review_id": "rev-2025",
            "held_on": "2025-05-12",
            "kind": "annual",
            "attendee_ids": ["senco-1", "kw-1"],
            "family_attended": True,
            "report_sent_on": "2025-05-20",
        },
    )
    tl = await get(api, f"/plans/{plan}/timeline?as_of=2025-05-21")
    assert (tl["status"], tl["stage"]) == ("reviewing", "review_and_learn")
    assert milestone(tl, "annual_review:2024-05-30")["met_on"] == "2025-05-12"
    assert milestone(tl, "review_decision:rev-2025")["due_on"] == "2025-06-09"
    await post(
        api,
        f"/plans/{plan}/reviews",
        {"review_id": "rev-2025", "decision": {"decision": "maintain", "decided_on": "2025-06-02"}},
    )
    tl = await get(api, f"/plans/{plan}/timeline?as_of=2025-06-03")
    assert tl["status"] == "final"
    assert milestone(tl, "review_decision:rev-2025")["state"] == "met"
    assert milestone(tl, "annual_review:2025-05-12")["due_on"] == "2026-05-11"
    assert tl["next_due"]["key"] == "annual_review:2025-05-12"
    # from 1 September 2025 the transfer to secondary school (September 2026) is due
    tl = await get(api, f"/plans/{plan}/timeline?as_of=2025-10-01")
    transfer = milestone(tl, "phase_transfer:primary_to_secondary:2026")
    assert (transfer["due_on"], transfer["state"]) == ("2026-02-14", "due")
    plans = await get(api, f"/children/{child}/plans?as_of=2025-10-01")
    [standing] = plans["plans"]
    assert standing["next_due"]["key"] == "phase_transfer:primary_to_secondary:2026"

    # -- every read was audited, with the facts it showed ------------------------------
    r = await api.client.get(f"/audit/children/{child}", headers=api.auth("ig"))
    assert r.status_code == 200, r.text
    reads = [x["details"] for x in r.json()["records"] if x["kind"] == "read"]
    routes = {d["route"] for d in reads}
    assert {
        "GET /children/{id}/team",
        "GET /plans/{id}/timeline",
        "GET /caseload",
        "GET /children/{id}/plans",
    } <= routes
    assert all(d["event_ids"] for d in reads if d["route"] != "GET /children/{id}/consents")
    assert late["event_id"] in {i for d in reads for i in d["event_ids"]}
    assert "Sam" not in str(r.json()) and UPN not in str(r.json())


async def test_the_caseload_agrees_with_each_timeline_and_sorts_by_urgency(api: Api) -> None:
    child = await set_up_child(api)
    plan = (
        await post(
            api,
            f"/children/{child}/plans",
            {"requested_on": "2024-01-15", "received_on": "2024-01-18", "requested_by": "parent"},
        )
    )["plan_id"]
    await post(api, f"/plans/{plan}/decision", {"decision": "assess", "decided_on": "2024-02-01"})
    await post(
        api,
        f"/plans/{plan}/advice-requests",
        {
            "advice_request_id": "adv-ep",
            "reg6_category": "educational_psychologist",
            "practitioner_id": "ep-9",
            "requested_on": "2024-02-01",
        },
    )
    [second] = await ingest(
        api,
        "oak-school-mis",
        event(
            "education.sen_status_recorded",
            {"sen_provision": "K", "start_date": "2023-09-01"},
            agency="oak-school",
            message_id="sen-2",
            subject={"upn": UPN_2, "date_of_birth": "2018-07-01"},
        ),
    )
    other = str(second["child_id"])
    await api.client.post(
        f"/children/{other}/coordinators", json={"coordinator": "casey"}, headers=api.auth("ops")
    )
    plan_2 = (
        await post(
            api,
            f"/children/{other}/plans",
            {"requested_on": "2024-03-01", "received_on": "2024-03-04", "requested_by": "school"},
        )
    )["plan_id"]

    for as_of in ("2024-02-10", "2024-03-20", "2024-04-20", "2024-06-30"):
        caseload = await get(api, f"/caseload?as_of={as_of}")
        rows = {c["child_id"]: c for c in caseload["children"]}
        for c, p in ((child, plan), (other, plan_2)):
            tl = await get(api, f"/plans/{p}/timeline?as_of={as_of}")
            row = rows[c]
            assert row["stage"] == tl["stage"] and row["status"] == tl["status"]
            assert row["overdue_count"] == tl["overdue_count"], as_of
            assert (row["next_deadline"] or {}).get("due_on") == (tl["next_due"] or {}).get(
                "due_on"
            ), as_of
        urgency = [
            (0 if c["overdue_count"] else 1, (c["next_deadline"] or {}).get("due_on", "9"))
            for c in caseload["children"]
        ]
        assert urgency == sorted(urgency)

    overdue = await get(api, "/caseload?as_of=2024-04-20&overdue=true")
    # the advice due 14 March first, then the decision due 15 April
    assert [c["child_id"] for c in overdue["children"]] == [child, other]
    assert [c["next_deadline"]["due_on"] for c in overdue["children"]] == [
        "2024-03-14",
        "2024-04-15",
    ]
    entering = await get(api, "/caseload?as_of=2024-03-20&stage=enter")
    assert [c["child_id"] for c in entering["children"]] == [other]


async def test_invalid_steps_answer_409_or_422_naming_the_rule(api: Api) -> None:
    child = await set_up_child(api)
    plan = (
        await post(
            api,
            f"/children/{child}/plans",
            {"requested_on": "2024-01-15", "received_on": "2024-01-18", "requested_by": "parent"},
        )
    )["plan_id"]
    cases = [
        (
            f"/plans/{plan}/final",
            {"finalised_on": "2024-05-30"},
            409,
            "final_needs_decision_to_assess",
        ),
        (
            f"/plans/{plan}/decision",
            {"decision": "assess", "decided_on": "2024-01-10"},
            422,
            "decided_on_before_request",
        ),
        (
            f"/plans/{plan}/advice-requests",
            {"reg6_category": "medical", "agency": "health", "requested_on": "2024-02-01"},
            409,
            "advice_needs_decision_to_assess",
        ),
        (f"/plans/{plan}/reviews", {"held_on": "2024-02-01"}, 409, "review_needs_final_plan"),
        (
            f"/plans/{plan}/decision",
            {"decision": "assess", "decided_on": "2099-01-01"},
            422,
            "date_in_the_future",
        ),
        (
            f"/plans/{plan}/exceptions",
            {"kind": "school_closed", "starts_on": "2024-02-01", "ends_on": "2024-02-10"},
            422,
            "invalid_exceptionrecorded",
        ),
    ]
    for url, body, status, rule in cases:
        r = await api.client.post(url, json=body, headers=api.auth("casey"))
        assert r.status_code == status, (url, r.text)
        problem = r.json()
        assert r.headers["content-type"].startswith("application/problem+json")
        assert (problem["status"], problem["rule"]) == (status, rule), problem
        assert problem["detail"]

    # an Idempotency-Key makes a retry answer the first call's event
    headers = api.auth("casey") | {"Idempotency-Key": "decide-1"}
    body = {"decision": "assess", "decided_on": "2024-02-01"}
    first = await api.client.post(f"/plans/{plan}/decision", json=body, headers=headers)
    again = await api.client.post(f"/plans/{plan}/decision", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200), again.text
    assert again.json()["status"] == "duplicate"
    assert again.json()["events"][0]["event_id"] == first.json()["events"][0]["event_id"]

    # advice in a category no consent or basis covers (sexual health) is kept back
    r = await api.client.post(
        f"/plans/{plan}/advice-requests",
        json={
            "reg6_category": "other_appropriate",
            "practitioner_id": "camhs-7",
            "agency": "health",
            "requested_on": "2024-02-02",
            "advice_category": "sexual_health",
        },
        headers=api.auth("casey"),
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "withheld"
