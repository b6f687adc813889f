"""Key working that lasts, through the real API: a coordinator records a key worker, a
handover to the next one with a two-week overlap, and a cover contact for absence; the
team view shows both key workers during the overlap (the outgoing one handing over until
its last day), then only the new one with their cover, and never a key worker who has
left the team; the caseload warns while a plan in the 20-week process has no single
point of contact. A handover whose overlap ends before it starts is refused with a 422
naming the field and the rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.auth.keys import Publishing
from tests.support.api import Api, embedded, running_api

UPN = "H801200001001"


LA = Publishing("local_authority")  # the LA's SEN case system


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        await a.key("oak-school-mis", "agency", "oak-school", publishing=Publishing("education"))
        await a.key("la-case-system", "agency", "local_authority", publishing=LA)
        await a.key("casey", "coordinator")
        await a.key("ops", "admin")
        yield a


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


def joined(
    child: str, pid: str, role: str, contact: str, name: str | None = None
) -> dict[str, Any]:
    named = {"name": name, "organisation_name": "Leeds City Council"} if name else {}
    return {
        "event_type": "team.practitioner_joined",
        "schema_version": 1,
        "subject": {"hub_child_id": child},
        "source": {"agency": "local_authority", "message_id": f"join-{pid}"},
        "occurred_at": "2024-01-10T09:00:00Z",
        "statutory_basis": "ehc_statutory_record",
        "payload": {
            "practitioner_id": pid,
            "role": role,
            "agency": "local_authority",
            "since": "2024-01-10",
            "contact": contact,
            **named,
        },
    }


async def ingest(api: Api, who: str, *events: dict[str, Any]) -> list[dict[str, Any]]:
    r = await api.client.post(
        "/ingest/events", json={"events": list(events)}, headers=api.auth(who)
    )
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


async def a_child_in_the_20_week_process(api: Api) -> str:
    [sen] = await ingest(
        api,
        "oak-school-mis",
        {
            "event_type": "education.sen_status_recorded",
            "schema_version": 2,
            "subject": {"upn": UPN, "date_of_birth": "2015-03-02"},
            "source": {"agency": "oak-school", "message_id": "sen-1"},
            "occurred_at": "2024-01-02T09:00:00Z",
            "payload": {"sen_provision": "K", "start_date": "2023-09-01"},
        },
    )
    child = str(sen["child_id"])
    r = await api.client.post(
        f"/children/{child}/coordinators", json={"coordinator": "casey"}, headers=api.auth("ops")
    )
    assert r.status_code == 200, r.text
    results = await ingest(
        api,
        "la-case-system",
        joined(child, "kw-1", "key_worker", "01632 960001"),
        joined(child, "kw-2", "key_worker", "01632 960002"),
        joined(child, "sen-9", "la_sen_officer", "sen-team@la.example", "Sam Okafor"),
    )
    assert [x["status"] for x in results] == ["appended"] * 3, results
    await post(
        api,
        f"/children/{child}/plans",
        {"requested_on": "2024-01-15", "received_on": "2024-01-18", "requested_by": "parent"},
    )
    return child


def warnings(caseload: dict[str, Any], child: str) -> list[str]:
    [row] = [c for c in caseload["children"] if c["child_id"] == child]
    return [w["code"] for w in row["warnings"]]


async def test_a_handover_and_a_cover_contact_through_the_api(api: Api) -> None:
    child = await a_child_in_the_20_week_process(api)
    caseload = await get(api, "/caseload?as_of=2024-01-20")
    assert warnings(caseload, child) == ["no_single_point_of_contact"]

    await post(
        api,
        f"/children/{child}/key-worker",
        {
            "practitioner_id": "kw-1",
            "model": "single_person",
            "assigned_on": "2024-01-22",
            "level": "high",
            "family_agreed_on": "2024-01-22",
            "choice_reason": "Already knows the family from early help",
        },
    )
    assert warnings(await get(api, "/caseload?as_of=2024-01-23"), child) == []
    team = await get(api, f"/children/{child}/team?as_of=2024-01-23")
    assert team["key_worker"]["key_worker_id"] == "kw-1"
    assert team["key_worker"]["choice_reason"] == "Already knows the family from early help"

    # an overlap that ends before the handover starts is refused, naming the field
    r = await api.client.post(
        f"/children/{child}/key-worker/handover",
        headers=api.auth("casey"),
        json={
            "outgoing_id": "kw-1",
            "incoming": {"practitioner_id": "kw-2", "model": "single_person"},
            "handed_over_on": "2024-04-01",
            "overlap_until": "2024-03-20",
        },
    )
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["field"] == "overlap_until"
    assert problem["rule"] == "invalid_keyworkerhandoverstarted"
    # ... and an incoming key worker who is no one names the incoming field
    r = await api.client.post(
        f"/children/{child}/key-worker/handover",
        headers=api.auth("casey"),
        json={
            "outgoing_id": "kw-1",
            "incoming": {"model": "single_person"},
            "handed_over_on": "2024-04-01",
            "overlap_until": "2024-04-14",
        },
    )
    assert r.status_code == 422 and r.json()["field"] == "incoming.practitioner_id", r.text

    done = await post(
        api,
        f"/children/{child}/key-worker/handover",
        {
            "outgoing_id": "kw-1",
            "incoming": {"practitioner_id": "kw-2", "model": "single_person", "level": "high"},
            "handed_over_on": "2024-04-01",
            "overlap_until": "2024-04-14",
            "reason": "kw-1 moves to the 0-5 team",
        },
    )
    assert [e["event_type"] for e in done["events"]] == [
        "team.key_worker_assigned",
        "team.key_worker_handover_started",
    ]
    await post(
        api,
        f"/children/{child}/key-worker/cover",
        {
            "key_worker_id": "kw-2",
            "cover_practitioner_id": "sen-9",
            "cover_contact": "SEN duty line 01632 960999",
            "arranged_on": "2024-04-02",
        },
    )

    during = await get(api, f"/children/{child}/team?as_of=2024-04-10")
    assert during["key_worker"]["practitioner_id"] == "kw-2"
    assert [
        (k["practitioner_id"], k["handing_over_until"], k["handing_over_to"])
        for k in during["key_workers"]
    ] == [("kw-2", None, None), ("kw-1", "2024-04-14", "kw-2")]

    after = await get(api, f"/children/{child}/team?as_of=2024-04-15")
    kw = after["key_worker"]
    assert (kw["practitioner_id"], kw["contact"], kw["level"], kw["since"]) == (
        "kw-2",
        "01632 960002",
        "high",
        "2024-04-01",
    )
    assert (kw["cover"]["cover_practitioner_id"], kw["cover"]["contact"]) == (
        "sen-9",
        "sen-team@la.example",
    )
    assert kw["cover"]["cover_contact"] == "SEN duty line 01632 960999"
    assert (kw["cover"]["name"], kw["cover"]["organisation_name"]) == (
        "Sam Okafor",
        "Leeds City Council",
    )
    assert [k["practitioner_id"] for k in after["key_workers"]] == ["kw-2"]
    assert [
        (p["key_worker_id"], p["ended_on"], p["ended_because"], p["current"])
        for p in after["key_working_periods"]
    ] == [("kw-1", "2024-04-14", "handed_over", False), ("kw-2", None, None, True)]
    assert after["key_working_periods"][0]["end_reason"] == "kw-1 moves to the 0-5 team"
    assert warnings(await get(api, "/caseload?as_of=2024-04-15"), child) == []

    # the new key worker leaves the team: never named again, and the caseload warns
    [left] = await ingest(
        api,
        "la-case-system",
        {
            "event_type": "team.practitioner_left",
            "schema_version": 1,
            "subject": {"hub_child_id": child},
            "source": {"agency": "local_authority", "message_id": "left-kw-2"},
            "occurred_at": "2024-05-01T09:00:00Z",
            "statutory_basis": "ehc_statutory_record",
            "payload": {"practitioner_id": "kw-2", "until": "2024-04-30"},
        },
    )
    assert left["status"] == "appended", left
    gone = await get(api, f"/children/{child}/team?as_of=2024-05-02")
    assert gone["key_worker"] is None and gone["key_workers"] == []
    assert gone["key_working_periods"][1]["ended_because"] == "left_the_team"
    caseload = await get(api, "/caseload?as_of=2024-05-02")
    assert warnings(caseload, child) == ["no_single_point_of_contact"]


async def test_ending_key_working_is_recorded_with_its_date_and_reason(api: Api) -> None:
    child = await a_child_in_the_20_week_process(api)
    await post(
        api,
        f"/children/{child}/key-worker",
        {"family_member": "young_person", "model": "single_person", "assigned_on": "2024-01-22"},
    )
    team = await get(api, f"/children/{child}/team?as_of=2024-02-01")
    assert team["key_worker"]["key_worker_id"] == "family:young_person"
    assert team["key_worker"]["practitioner_id"] is None
    await post(
        api,
        f"/children/{child}/key-worker/end",
        {"ended_on": "2024-03-01", "reason": "Chose a practitioner key worker instead"},
    )
    team = await get(api, f"/children/{child}/team?as_of=2024-03-02")
    assert team["key_worker"] is None
    [period] = team["key_working_periods"]
    assert (period["ended_on"], period["end_reason"]) == (
        "2024-03-01",
        "Chose a practitioner key worker instead",
    )
    # a date in the future is refused, naming the field
    r = await api.client.post(
        f"/children/{child}/key-worker/end",
        headers=api.auth("casey"),
        json={"ended_on": "2999-01-01", "reason": "x"},
    )
    assert r.status_code == 422 and r.json()["field"] == "ended_on", r.text
