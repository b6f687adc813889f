"""Who may call the joined-view routes: every one of them refuses the roles that are not
`coordinator` with 403, and answers a coordinator 404 for a child (or plan) that is not
on their caseload — exactly as it answers for one that does not exist, so a refusal never
reveals that a child is known. The caseload lists only the caller's own children. (The
generic every-route test in test_auth_routes.py also covers these routes' credentials.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import Api, embedded, running_api

UPN = "H801200001001"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        await a.key("oak-school-mis", "agency", "oak-school")
        await a.key("casey", "coordinator")
        await a.key("other", "coordinator")
        await a.key("ig", "ig_auditor")
        await a.key("ops", "admin")
        yield a


async def a_child_with_a_plan(api: Api) -> tuple[str, str]:
    r = await api.client.post(
        "/ingest/events",
        headers=api.auth("oak-school-mis"),
        json={
            "events": [
                {
                    "event_type": "education.sen_status_recorded",
                    "schema_version": 2,
                    "subject": {"upn": UPN, "date_of_birth": "2015-03-02"},
                    "source": {"agency": "oak-school", "message_id": "sen-1"},
                    "occurred_at": "2024-09-02T09:00:00Z",
                    "payload": {"sen_provision": "K", "start_date": "2024-09-01"},
                }
            ]
        },
    )
    child = str(r.json()["results"][0]["child_id"])
    r = await api.client.post(
        f"/children/{child}/coordinators", json={"coordinator": "casey"}, headers=api.auth("ops")
    )
    assert r.status_code == 200, r.text
    r = await api.client.post(
        f"/children/{child}/plans",
        headers=api.auth("casey"),
        json={"requested_on": "2024-01-15", "received_on": "2024-01-18", "requested_by": "parent"},
    )
    assert r.status_code == 201, r.text
    return child, str(r.json()["plan_id"])


def routes(child: str, plan: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every joined-view route, with a valid body, so that only who calls decides."""
    return [
        ("GET", f"/children/{child}/team", None),
        ("GET", f"/children/{child}/plans", None),
        ("GET", f"/plans/{plan}/timeline", None),
        (
            "POST",
            f"/children/{child}/plans",
            {"requested_on": "2024-03-01", "received_on": "2024-03-01", "requested_by": "school"},
        ),
        ("POST", f"/plans/{plan}/decision", {"decision": "assess", "decided_on": "2024-02-01"}),
        (
            "POST",
            f"/plans/{plan}/advice-requests",
            {"reg6_category": "medical", "agency": "health", "requested_on": "2024-02-01"},
        ),
        ("POST", f"/plans/{plan}/draft", {"issued_on": "2024-05-02"}),
        ("POST", f"/plans/{plan}/final", {"finalised_on": "2024-05-30"}),
        (
            "POST",
            f"/plans/{plan}/exceptions",
            {"kind": "missed_appointment", "starts_on": "2024-02-05", "ends_on": "2024-02-06"},
        ),
        ("POST", f"/plans/{plan}/reviews", {"held_on": "2025-05-12"}),
        ("POST", f"/children/{child}/meetings", {"held_on": "2024-02-20", "kind": "tac"}),
        (
            "POST",
            f"/children/{child}/key-worker",
            {"practitioner_id": "kw-1", "model": "single_person", "assigned_on": "2024-02-05"},
        ),
        (
            "POST",
            f"/children/{child}/key-worker/handover",
            {
                "outgoing_id": "kw-1",
                "incoming": {"practitioner_id": "kw-2", "model": "single_person"},
                "handed_over_on": "2024-04-01",
                "overlap_until": "2024-04-14",
            },
        ),
        (
            "POST",
            f"/children/{child}/key-worker/cover",
            {"key_worker_id": "kw-2", "cover_contact": "duty line", "arranged_on": "2024-04-02"},
        ),
        (
            "POST",
            f"/children/{child}/key-worker/end",
            {"ended_on": "2024-07-19", "reason": "Needs met"},
        ),
    ]


async def test_roles_other_than_coordinator_are_refused_with_403(api: Api) -> None:
    child, plan = await a_child_with_a_plan(api)
    for method, url, body in [*routes(child, plan), ("GET", "/caseload", None)]:
        for who in ("oak-school-mis", "ig", "ops"):
            r = await api.client.request(method, url, json=body, headers=api.auth(who))
            assert r.status_code == 403, (who, method, url, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert "needs one of: coordinator" in r.json()["detail"]


async def test_a_child_or_plan_off_the_caseload_is_404_like_one_that_does_not_exist(
    api: Api,
) -> None:
    child, plan = await a_child_with_a_plan(api)
    real = routes(child, plan)
    missing = routes("hc-nobody", "plan-nobody")
    for (method, url, body), (_, nowhere, _) in zip(real, missing, strict=True):
        off = await api.client.request(method, url, json=body, headers=api.auth("other"))
        gone = await api.client.request(method, nowhere, json=body, headers=api.auth("other"))
        assert off.status_code == gone.status_code == 404, (method, url, off.text, gone.text)
        assert off.headers["content-type"].startswith("application/problem+json")
        assert off.json()["detail"] == gone.json()["detail"], (method, url)
        assert child not in off.text and plan not in off.text

    # nothing was recorded by the refused writes, and the owner still sees the plan alone
    r = await api.client.get(f"/children/{child}/plans", headers=api.auth("casey"))
    assert r.status_code == 200, r.text
    [only] = r.json()["plans"]
    assert (only["plan_id"], only["status"]) == (plan, "requested")


async def test_the_caseload_lists_only_the_callers_children(api: Api) -> None:
    child, _ = await a_child_with_a_plan(api)
    mine = await api.client.get("/caseload", headers=api.auth("casey"))
    theirs = await api.client.get("/caseload", headers=api.auth("other"))
    assert mine.status_code == theirs.status_code == 200, (mine.text, theirs.text)
    assert [c["child_id"] for c in mine.json()["children"]] == [child]
    assert theirs.json()["children"] == [] and theirs.json()["total"] == 0
