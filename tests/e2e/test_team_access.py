"""The team and the family through the real API: a practitioner reaches a child only
while on the child's team and sees only what the policy lets their role; a family member
redeems a coordinator's invitation, reads their own child's view, withdraws consent (the
practitioner's view loses those facts at once) and reads who looked; who may consent is
checked for the family as for anyone; nobody reaches another child on any child route.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub.auth.keys import Identity, Publishing
from tests.support.api import Api, embedded, running_api
from tests.unit.test_oidc import JwksServer, claims, sign

UPN, NHS = "H801200001001", "9434765919"
OTHER_UPN = "X801200001002"
SENCO, TEACHER, SALT = "dfe:senco-1", "dfe:teacher-1", "hcpc:SL00042"
TODAY = datetime.now(UTC).date().isoformat()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        await a.key("oak-school-mis", "agency", "oak-school")
        await a.key("city-health", "agency", "city-health")
        await a.key("county-sc", "agency", "county-social-care",
                    publishing=Publishing("social_care"))  # fmt: skip
        await a.key("casey", "coordinator")
        await a.key("ig", "ig_auditor")
        await a.key("ops", "admin")
        for who, pid, role in (("senco", SENCO, "senco"), ("teacher", TEACHER, "teacher")):
            identity = Identity(practitioner_id=pid, policy_role=role, organisation="8881234")
            await a.key(who, "practitioner", "education", identity)
        yield a


def event(
    event_type: str, payload: dict[str, Any], *, message_id: str, subject: dict[str, Any],
    agency: str = "oak-school", category: str | None = None, version: int = 1,
) -> dict[str, Any]:  # fmt: skip
    return {
        "event_type": event_type,
        "schema_version": version,
        "subject": subject,
        "source": {"agency": agency, "organisation_code": "8881234", "message_id": message_id},
        "occurred_at": "2024-09-02T09:00:00Z",
        **({"category": category} if category else {}),
        "payload": payload,
    }


def joined(pid: str, role: str, their_agency: str, message_id: str, **kw: Any) -> dict[str, Any]:
    payload = {"practitioner_id": pid, "role": role, "agency": their_agency, "since": "2024-09-02"}
    return event("team.practitioner_joined", payload, message_id=message_id, **kw)


async def ingest(api: Api, who: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = await api.client.post("/ingest/events", json={"events": events}, headers=api.auth(who))
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


def consent(consent_id: str, categories: list[str], roles: list[str]) -> dict[str, Any]:
    return {
        "consent_id": consent_id,
        "decision": "permit",
        "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
        "given_on": "2024-09-04",
        "scope": {
            "categories": categories,
            "purposes": ["ehc_assessment", "plan_delivery", "review"],
            "roles": roles,
        },
        "period": {"start": "2024-09-04"},
        "capture_method": "form",
        "recorded_by": "ignored",
    }


async def a_child_with_a_team(api: Api, upn: str = UPN, dob: str = "2015-03-02") -> str:
    """A child with a SENCO and a teacher from school and a speech and language
    therapist from health; education is shared with the team, health with the coordinator
    and the therapist only."""
    subject = {"upn": upn, "date_of_birth": dob}
    sen = event(
        "education.sen_status_recorded",
        {"sen_provision": "K", "start_date": "2024-09-01"},
        message_id=f"sen-{upn}",
        subject={**subject, "nhs_number": NHS} if upn == UPN else subject,
        version=2,
    )
    school = [
        sen,
        joined(SENCO, "senco", "education", f"j1-{upn}", subject=subject),
        joined(TEACHER, "teacher", "education", f"j2-{upn}", subject=subject),
    ]
    [first, *_] = await ingest(api, "oak-school-mis", school)
    child = str(first["child_id"])
    health = joined(
        SALT, "speech_and_language_therapist", "health", f"h-{upn}",
        subject={"upn": upn}, agency="city-health", category="health",
    )  # fmt: skip
    await ingest(api, "city-health", [health])
    r = await api.client.post(
        f"/children/{child}/coordinators", json={"coordinator": "casey"}, headers=api.auth("ops")
    )
    assert r.status_code == 200, r.text
    grants = [
        consent(f"c-edu-{upn}", ["education", "identity"], []),
        consent(f"c-health-{upn}", ["health"], ["coordinator", "speech_and_language_therapist"]),
    ]
    for grant in grants:
        r = await api.client.post(
            f"/children/{child}/consents",
            json={"consent": grant, "child_date_of_birth": dob},
            headers=api.auth("casey"),
        )
        assert r.status_code == 200, r.text
    return child


async def family_token(api: Api, child: str, capacity: str, who: str) -> str:
    r = await api.client.post(
        f"/children/{child}/invitations", json={"capacity": capacity}, headers=api.auth("casey")
    )
    assert r.status_code == 201, r.text
    code = r.json()["code"]
    r = await api.client.post("/invitations/redeem", json={"code": code.lower()})
    assert r.status_code == 200, r.text
    assert r.json()["child_id"] == child and r.json()["capacity"] == capacity
    api.tokens[who] = r.json()["token"]
    again = await api.client.post("/invitations/redeem", json={"code": code})
    assert again.status_code == 400 and "not valid" in again.json()["detail"]
    return str(api.tokens[who])


def record_types(body: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["event_type"], f["category"]) for fs in body["agencies"].values() for f in fs}


def members(team: dict[str, Any]) -> set[str]:
    return {m["practitioner_id"] for g in team["agencies"] for m in g["members"]}


async def get(api: Api, url: str, who: str) -> dict[str, Any]:
    r = await api.client.get(url, headers=api.auth(who))
    assert r.status_code == 200, (url, who, r.text)
    body: dict[str, Any] = r.json()
    return body


# --------------------------------------------------------------------------- practitioner


async def test_a_senco_on_the_team_sees_education_not_health_and_loses_the_child_on_leaving(
    api: Api,
) -> None:
    child = await a_child_with_a_team(api)
    seen = record_types(await get(api, f"/children/{child}/record", "senco"))
    assert ("education.sen_status_recorded", "education") in seen
    assert ("team.practitioner_joined", "health") not in seen
    coordinator_sees = record_types(await get(api, f"/children/{child}/record", "casey"))
    assert ("team.practitioner_joined", "health") in coordinator_sees  # held, just not theirs

    team = await get(api, f"/children/{child}/team", "senco")
    assert {SENCO, TEACHER} <= members(team) and SALT not in members(team)
    mine = await get(api, "/me/children", "senco")
    assert mine["role"] == "senco" and [c["child_id"] for c in mine["children"]] == [child]

    left = event(
        "team.practitioner_left", {"practitioner_id": SENCO, "until": "2024-12-20"},
        message_id="left-1", subject={"upn": UPN},
    )  # fmt: skip
    [res] = await ingest(api, "oak-school-mis", [left])
    assert res["status"] == "appended", res
    for url in (f"/children/{child}/team", f"/children/{child}/record", f"/children/{child}/plans"):
        r = await api.client.get(url, headers=api.auth("senco"))
        assert r.status_code == 404, (url, r.text)
    assert (await get(api, "/me/children", "senco"))["children"] == []
    # the teacher, still on the team, still reads
    assert (await api.client.get(f"/children/{child}/team", headers=api.auth("teacher"))).is_success

    # every read of the record was audited with who and in what role
    trail = await get(api, f"/audit/children/{child}", "ig")
    reads = [r for r in trail["records"] if r["kind"] == "read"]
    assert any(
        r["actor"] == "practitioner:senco" and r["details"].get("as") == "senco" for r in reads
    )


# --------------------------------------------------------------------------- family


async def test_a_parent_reads_the_team_withdraws_consent_and_the_practitioner_loses_it(
    api: Api,
) -> None:
    child = await a_child_with_a_team(api)
    await family_token(api, child, "parent_with_pr", "parent")
    before = record_types(await get(api, f"/children/{child}/record", "teacher"))
    assert ("education.sen_status_recorded", "education") in before

    team = await get(api, f"/children/{child}/team", "parent")
    assert {SENCO, TEACHER, SALT} <= members(team)  # the family's own right of access
    assert (
        await api.client.get(f"/children/{child}/record", headers=api.auth("parent"))
    ).status_code == 403

    r = await api.client.post(
        f"/family/children/{child}/consents/c-edu-{UPN}/withdraw", headers=api.auth("parent")
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "appended"
    after = record_types(await get(api, f"/children/{child}/record", "teacher"))
    assert ("education.sen_status_recorded", "education") not in after
    # the family still sees its own record's team after withdrawing sharing
    assert {SENCO, TEACHER} <= members(await get(api, f"/children/{child}/team", "parent"))

    # a safeguarding fact (shared on its statutory basis, which children's social care
    # may claim) is never shown to the family
    social_worker = joined(
        "swe:SW123", "social_worker", "social_care", "sg-1", subject={"upn": UPN},
        category="safeguarding", agency="county-social-care",
    ) | {"statutory_basis": "safeguarding", "purposes": ["direct_care"]}  # fmt: skip
    [res] = await ingest(api, "county-sc", [social_worker])
    assert res["status"] == "appended", res
    assert "swe:SW123" in members(await get(api, f"/children/{child}/team", "casey"))
    assert "swe:SW123" not in members(await get(api, f"/children/{child}/team", "parent"))

    log = await get(api, f"/children/{child}/access-log", "parent")
    texts = [line["text"] for line in log["lines"]]
    assert any(t.startswith("teacher (teacher) looked at the shared record") for t in texts), texts
    assert any(t.startswith("You looked at the team around the child") for t in texts), texts
    assert all(NHS not in t and UPN not in t for t in texts)

    access = await get(api, f"/children/{child}/access", "parent")
    by_who = {p["who"]: p for p in access["people"]}
    assert by_who["casey"]["kind"] == "coordinator"
    assert by_who[SALT]["role"] == "speech_and_language_therapist"
    teacher = {c["category"]: c for c in by_who[TEACHER]["sees"]}
    assert teacher["education"]["facts_seen"] == 0 < teacher["education"]["facts_held"]
    salt = {c["category"]: c for c in by_who[SALT]["sees"]}
    assert salt["health"]["facts_seen"] == 1 and salt["health"]["grounds"] == [
        f"consent c-health-{UPN}"
    ]
    assert any(p["kind"] == "family" for p in access["people"])
    admin_view = await get(api, f"/children/{child}/access", "ops")
    # admin (and IG) see everyone who can see the child, the safeguarding member too
    assert {p["who"] for p in admin_view["people"]} == set(by_who) | {"swe:SW123"}


async def test_a_young_person_of_17_can_and_their_parent_cannot_give_consent(api: Api) -> None:
    today = datetime.now(UTC).date()
    dob = today.replace(year=today.year - 17, day=1).isoformat()
    child = await a_child_with_a_team(api, upn=OTHER_UPN, dob=dob)
    await family_token(api, child, "young_person", "yp")
    await family_token(api, child, "parent_with_pr", "parent")
    mine = consent("c-yp-own", ["education"], [])
    del mine["grantor"], mine["capture_method"], mine["recorded_by"]
    mine["given_on"] = mine["period"]["start"] = TODAY
    r = await api.client.post(
        f"/family/children/{child}/consents", json={"consent": mine}, headers=api.auth("yp")
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "appended"
    theirs = {**mine, "consent_id": "c-parent-for-yp"}
    r = await api.client.post(
        f"/family/children/{child}/consents", json={"consent": theirs}, headers=api.auth("parent")
    )
    assert r.status_code == 422, r.text
    assert "young person" in r.json()["detail"] and r.json()["detail"].startswith("grantor")
    # a family member cannot name someone else as the grantor
    forged = {**theirs, "grantor": {"reference": "yp", "capacity": "young_person"}}
    r = await api.client.post(
        f"/family/children/{child}/consents", json={"consent": forged}, headers=api.auth("parent")
    )
    assert r.status_code == 422 and r.json()["detail"].startswith("consent.grantor")
    consents = await get(api, f"/children/{child}/consents", "yp")
    assert "c-yp-own" in {c["consent_id"] for c in consents["consents"]}
    assert "c-parent-for-yp" not in {c["consent_id"] for c in consents["consents"]}


async def test_the_family_adds_its_views(api: Api) -> None:
    child = await a_child_with_a_team(api)
    await family_token(api, child, "parent_with_pr", "parent")
    r = await api.client.post(
        f"/family/children/{child}/views",
        json={"views": "He loves trains", "interests": ["trains"]},
        headers=api.auth("parent"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] in ("appended", "withheld")
    r = await api.client.post(
        f"/family/children/{child}/views",
        json={"views": "x", "whose": "child"},
        headers=api.auth("parent"),
    )
    assert r.status_code == 422 and "whose" in r.text


# --------------------------------------------------------------------------- reach


def child_routes(child: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    body = consent("c-x", ["education"], [])
    del body["grantor"], body["capture_method"], body["recorded_by"]
    return [
        ("GET", f"/children/{child}/team", None),
        ("GET", f"/children/{child}/plans", None),
        ("GET", f"/children/{child}/record", None),
        ("GET", f"/children/{child}/consents", None),
        ("GET", f"/children/{child}/access", None),
        ("GET", f"/children/{child}/access-log", None),
        ("POST", f"/family/children/{child}/consents", {"consent": body}),
        ("POST", f"/family/children/{child}/consents/c-x/withdraw", None),
        ("POST", f"/family/children/{child}/views", {"views": "hello"}),
        ("POST", f"/children/{child}/invitations", {"capacity": "parent_with_pr"}),
    ]


async def test_nobody_reaches_another_child_on_any_child_route(api: Api) -> None:
    child = await a_child_with_a_team(api)
    other = await a_child_with_a_team(api, upn=OTHER_UPN, dob="2014-05-05")
    await family_token(api, child, "parent_with_pr", "parent")
    left = [
        event("team.practitioner_left", {"practitioner_id": p, "until": "2024-12-20"},
              message_id=f"l-{p}", subject={"upn": OTHER_UPN})
        for p in (SENCO, TEACHER)
    ]  # fmt: skip
    await ingest(api, "oak-school-mis", left)
    for who in ("parent", "senco", "teacher"):
        for (method, url, body), (_, nowhere, _) in zip(
            child_routes(other), child_routes("hc-nobody"), strict=True
        ):
            r = await api.client.request(method, url, json=body, headers=api.auth(who))
            gone = await api.client.request(method, nowhere, json=body, headers=api.auth(who))
            if r.status_code == 403:  # the role may not call this route at all
                assert gone.status_code == 403, (who, url)
                continue
            assert r.status_code == gone.status_code == 404, (who, method, url, r.text)
            assert r.json()["detail"] == gone.json()["detail"]
            assert other not in r.text
    # while on the team of their own child, each still reaches it
    for who in ("parent", "senco", "teacher"):
        assert (await api.client.get(f"/children/{child}/team", headers=api.auth(who))).is_success


async def test_erasing_the_child_revokes_the_family_keys_and_invitations(api: Api) -> None:
    child = await a_child_with_a_team(api)
    await family_token(api, child, "parent_with_pr", "parent")
    r = await api.client.post(
        f"/children/{child}/invitations",
        json={"capacity": "young_person"},
        headers=api.auth("casey"),
    )
    unused = r.json()["code"]
    r = await api.client.post(
        f"/children/{child}/erase", json={"reason": "family request"}, headers=api.auth("ops")
    )
    assert r.status_code == 200, r.text
    r = await api.client.get(f"/children/{child}/team", headers=api.auth("parent"))
    assert r.status_code == 401 and r.json()["detail"] == "unknown or revoked API key"
    r = await api.client.post("/invitations/redeem", json={"code": unused})
    assert r.status_code == 400
    trail = await get(api, f"/audit/children/{child}", "ig")
    [erasure] = [rec for rec in trail["records"] if rec["kind"] == "erasure"]
    assert erasure["details"]["family_keys_revoked"] == 1


async def test_the_family_comments_on_the_draft_once_there_is_one(api: Api) -> None:
    child = await a_child_with_a_team(api)
    await family_token(api, child, "parent_with_pr", "parent")
    r = await api.client.post(
        f"/children/{child}/plans",
        json={"requested_on": "2024-01-15", "received_on": "2024-01-18", "requested_by": "parent"},
        headers=api.auth("casey"),
    )
    assert r.status_code == 201, r.text
    plan = r.json()["plan_id"]
    comments = {"summary": "We would like Oak School named"}
    r = await api.client.post(
        f"/family/plans/{plan}/comments", json=comments, headers=api.auth("parent")
    )
    assert r.status_code == 409, r.text  # no draft yet, and the rule says so
    for step, body in (
        ("decision", {"decision": "assess", "decided_on": "2024-02-01"}),
        ("draft", {"issued_on": "2024-05-02", "comments_by": "2024-05-17"}),
    ):
        r = await api.client.post(f"/plans/{plan}/{step}", json=body, headers=api.auth("casey"))
        assert r.status_code == 201, r.text
    r = await api.client.post(
        f"/family/plans/{plan}/comments", json=comments, headers=api.auth("parent")
    )
    assert r.status_code == 201, r.text
    assert r.json()["status"] in ("recorded", "withheld") and r.json()["event_ids"]
    [event_id] = r.json()["event_ids"]
    timeline = await get(api, f"/plans/{plan}/timeline", "casey")
    assert event_id in timeline["facts_shown"]
    r = await api.client.post(
        "/family/plans/plan-nobody/comments", json=comments, headers=api.auth("parent")
    )
    assert r.status_code == 404


async def test_a_family_member_signing_in_with_an_identity_provider_links_their_children(
    tmp_path: Path,
) -> None:
    """GOV.UK One Login-style sign-in: the token names a person, never a child; redeeming
    an invitation while signed in links the subject to the child; siblings can be linked
    to one sign-in; a sign-in never linked is refused with what to do."""
    with JwksServer() as jwks:
        jwks.add_rsa_key("k1")
        async with running_api(jwks.settings(tmp_path / "data")) as api:
            await api.key("oak-school-mis", "agency", "oak-school")
            await api.key("city-health", "agency", "city-health")
            await api.key("casey", "coordinator")
            await api.key("ops", "admin")
            first = await a_child_with_a_team(api)
            second = await a_child_with_a_team(api, upn=OTHER_UPN, dob="2014-05-05")
            parent = sign(jwks.keys["k1"], "k1", claims(hub_role="family", sub="one-login-1"))
            stranger = sign(jwks.keys["k1"], "k1", claims(hub_role="family", sub="one-login-2"))
            signed_in = {"Authorization": f"Bearer {parent}"}

            r = await api.client.get(f"/children/{first}/team", headers=signed_in)
            assert r.status_code == 401 and "redeem your invitation" in r.json()["detail"]
            for child in (first, second):
                r = await api.client.post(
                    f"/children/{child}/invitations",
                    json={"capacity": "parent_with_pr"},
                    headers=api.auth("casey"),
                )
                r = await api.client.post(
                    "/invitations/redeem", json={"code": r.json()["code"]}, headers=signed_in
                )
                assert r.status_code == 200, r.text
                assert r.json()["token"] is None and r.json()["child_id"] == child
            mine = await api.client.get("/me/children", headers=signed_in)
            assert {c["child_id"] for c in mine.json()["children"]} == {first, second}
            for child in (first, second):
                r = await api.client.get(f"/children/{child}/team", headers=signed_in)
                assert r.status_code == 200, r.text
            r = await api.client.get(
                f"/children/{first}/team", headers={"Authorization": f"Bearer {stranger}"}
            )
            assert r.status_code == 401
            coordinator = sign(jwks.keys["k1"], "k1", claims(hub_role="coordinator"))
            r = await api.client.post(
                "/invitations/redeem",
                json={"code": "AAAA-BBBB-CCCC-DDDD"},
                headers={"Authorization": f"Bearer {coordinator}"},
            )
            assert r.status_code == 401 and "only a family sign-in" in r.json()["detail"]


async def test_a_practitioner_and_a_parent_find_only_the_children_in_their_reach(
    api: Api,
) -> None:
    child = await a_child_with_a_team(api)
    other = await a_child_with_a_team(api, upn=OTHER_UPN, dob="2014-05-05")
    left = event(
        "team.practitioner_left", {"practitioner_id": SENCO, "until": "2024-12-20"},
        message_id="l-other", subject={"upn": OTHER_UPN},
    )  # fmt: skip
    await ingest(api, "oak-school-mis", [left])
    await family_token(api, child, "parent_with_pr", "parent")
    for who in ("senco", "parent"):
        found = await api.client.post("/children/search", json={"upn": UPN}, headers=api.auth(who))
        assert found.status_code == 200, found.text
        assert [c["child_id"] for c in found.json()["children"]] == [child]
        hidden = await api.client.post(
            "/children/search", json={"upn": OTHER_UPN}, headers=api.auth(who)
        )
        assert hidden.json()["count"] == 0 and other not in hidden.text
    # the teacher is still on the other child's team, so finds it
    r = await api.client.post(
        "/children/search", json={"upn": OTHER_UPN}, headers=api.auth("teacher")
    )
    assert [c["child_id"] for c in r.json()["children"]] == [other]
