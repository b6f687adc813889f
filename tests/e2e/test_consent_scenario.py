"""The consent story through the real API: a health fact with no consent is withheld;
the parent grants consent for health to the EHC team and it appears; consent is
withdrawn and it disappears; the child's audit trail tells the story in order and
verifies; one byte changed in the stored trail is named by verify."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import Api, embedded, running_api

UPN = "H801200001001"  # a valid UPN (check letter H)
NHS = "9434765919"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        await a.key("oak-school-mis", "agency", "oak-school")
        await a.key("city-health", "agency", "city-health")
        await a.key("casey", "coordinator")
        await a.key("other-coordinator", "coordinator")
        await a.key("ig", "ig_auditor")
        await a.key("ops", "admin")
        yield a


def sen_event(message_id: str = "sen-1") -> dict[str, Any]:
    return {
        "event_type": "education.sen_status_recorded",
        "schema_version": 2,
        "subject": {"upn": UPN, "nhs_number": NHS, "date_of_birth": "2015-03-02"},
        "source": {
            "agency": "oak-school",
            "organisation_code": "8881234",
            "message_id": message_id,
        },
        "occurred_at": "2024-09-02T09:00:00Z",
        "payload": {
            "sen_provision": "K",
            "start_date": "2024-09-01",
            "needs": [{"type": "SLCN", "rank": 1}],
        },
    }


def health_event(message_id: str = "h-1") -> dict[str, Any]:
    # a team membership fact from health, filed under the health category
    return {
        "event_type": "team.practitioner_joined",
        "schema_version": 1,
        "subject": {"nhs_number": NHS},
        "source": {"agency": "city-health", "organisation_code": "RR8", "message_id": message_id},
        "occurred_at": "2024-09-03T10:00:00Z",
        "category": "health",
        "payload": {
            "practitioner_id": "salt-42",
            "role": "speech_and_language_therapist",
            "agency": "health",
            "organisation_code": "RR8",
            "since": "2024-09-03",
        },
    }


def health_consent(consent_id: str = "c-health-1") -> dict[str, Any]:
    return {
        "consent": {
            "consent_id": consent_id,
            "decision": "permit",
            "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
            "given_on": "2024-09-04",
            "scope": {
                "categories": ["health", "education"],
                "purposes": ["ehc_assessment", "plan_delivery"],
                "roles": ["coordinator"],
            },
            "period": {"start": "2024-09-04"},
            "capture_method": "form",
            "recorded_by": "ignored",
        }
    }


async def record(api: Api, child: str, who: str = "casey") -> dict[str, Any]:
    r = await api.client.get(f"/children/{child}/record", headers=api.auth(who))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def shown_types(body: dict[str, Any]) -> list[str]:
    return sorted(f["event_type"] for facts in body["agencies"].values() for f in facts)


async def test_withheld_then_released_then_hidden_and_the_trail_tells_it(
    api: Api, tmp_path: Path
) -> None:
    c = api.client
    r = await c.post(
        "/ingest/events", json={"events": [health_event()]}, headers=api.auth("city-health")
    )
    assert r.status_code == 200, r.text
    [res] = r.json()["results"]
    assert res["status"] == "withheld", res
    assert "no consent" in res["reason"]
    child = res["child_id"]

    # assign the coordinator; the fact is not visible without consent
    r = await c.post(
        f"/children/{child}/coordinators", json={"coordinator": "casey"}, headers=api.auth("ops")
    )
    assert r.status_code == 200, r.text
    assert shown_types(await record(api, child)) == []

    # the parent grants consent for health (and education) to the EHC coordinator
    r = await c.post(
        f"/children/{child}/consents",
        json={**health_consent(), "child_date_of_birth": "2015-03-02"},
        headers=api.auth("casey"),
    )
    assert r.status_code == 200, r.text
    assert shown_types(await record(api, child)) == ["team.practitioner_joined"]
    body = await record(api, child)
    [fact] = body["agencies"]["city-health"]
    assert fact["payload"]["role"] == "speech_and_language_therapist"
    assert fact["basis"]["kind"] == "consent" and fact["basis"]["name"] == "c-health-1"

    # withdrawn: it disappears at once
    r = await c.post(
        "/consents/c-health-1/withdraw",
        json={"withdrawn_by": {"reference": "parent-1", "capacity": "parent_with_pr"}},
        headers=api.auth("casey"),
    )
    assert r.status_code == 200, r.text
    assert shown_types(await record(api, child)) == []

    r = await c.get(f"/audit/children/{child}", headers=api.auth("ig"))
    assert r.status_code == 200, r.text
    story = [(rec["kind"], rec["details"].get("outcome")) for rec in r.json()["records"]]
    kinds = [k for k, _ in story]
    assert kinds[0] == "decision" and story[0][1] == "withhold"
    assert (
        kinds.index("coordinator_change") < kinds.index("consent_change") < kinds.index("release")
    )
    assert "redaction" in kinds[kinds.index("release") :]
    assert kinds.count("read") >= 3
    assert all("nhs_number" not in str(rec) and NHS not in str(rec) for rec in r.json()["records"])

    r = await c.get("/audit/verify", headers=api.auth("ig"))
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    checked = r.json()["checked"]
    assert checked >= len(story)

    # change one byte of one stored audit record: verify must name it
    db = tmp_path / "data" / "log.db"
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER log_hub_audit_no_update")
    part, offset, value = conn.execute(
        "SELECT partition, offset, value FROM log_hub_audit"
        " ORDER BY partition, offset LIMIT 1 OFFSET 1"
    ).fetchone()
    tampered = bytearray(value)
    pos = bytes(value).index(b'"kind":"') + len(b'"kind":"')
    tampered[pos] = ord("X")
    conn.execute(
        "UPDATE log_hub_audit SET value = ? WHERE partition = ? AND offset = ?",
        (bytes(tampered), part, offset),
    )
    conn.commit()
    conn.close()
    r = await c.get("/audit/verify", headers=api.auth("ig"))
    assert r.status_code == 200
    result = r.json()
    assert result["ok"] is False
    broken = result["first_broken"]
    assert broken["index"] == offset and broken["chain"] == f"hub.audit/{part}"
    assert "altered" in broken["reason"] or "valid audit record" in broken["reason"]


async def test_a_child_off_the_caseload_is_404_like_a_missing_child(api: Api) -> None:
    r = await api.client.post(
        "/ingest/events", json={"events": [sen_event()]}, headers=api.auth("oak-school-mis")
    )
    child = r.json()["results"][0]["child_id"]
    await api.client.post(
        f"/children/{child}/coordinators", json={"coordinator": "casey"}, headers=api.auth("ops")
    )
    other = await api.client.get(f"/children/{child}/record", headers=api.auth("other-coordinator"))
    missing = await api.client.get(
        "/children/hc-nope/record", headers=api.auth("other-coordinator")
    )
    assert other.status_code == missing.status_code == 404
    assert other.json()["detail"] == missing.json()["detail"]


async def test_an_agency_publishes_only_as_itself_and_duplicates_are_taken_once(api: Api) -> None:
    r = await api.client.post(
        "/ingest/events", json={"events": [sen_event()]}, headers=api.auth("city-health")
    )
    [res] = r.json()["results"]
    assert res["status"] == "rejected" and res["field"] == "source.agency"
    first = await api.client.post(
        "/ingest/events", json={"events": [sen_event("m-9")]}, headers=api.auth("oak-school-mis")
    )
    again = await api.client.post(
        "/ingest/events", json={"events": [sen_event("m-9")]}, headers=api.auth("oak-school-mis")
    )
    assert first.json()["results"][0]["status"] in ("appended", "withheld")
    assert again.json()["results"][0]["status"] == "duplicate"
    assert again.json()["results"][0]["event_id"] == first.json()["results"][0]["event_id"]


async def test_bad_events_are_answered_per_event_naming_the_field(api: Api) -> None:
    bad_upn = sen_event("b-1") | {"subject": {"upn": "A123456789012"}}
    bad_payload = sen_event("b-2")
    bad_payload["payload"] = {"sen_provision": "Z", "start_date": "2024-09-01"}
    unknown = sen_event("b-3") | {"event_type": "education.nothing"}
    r = await api.client.post(
        "/ingest/events",
        json={"events": [bad_upn, bad_payload, unknown, sen_event("ok")]},
        headers=api.auth("oak-school-mis"),
    )
    assert r.status_code == 200
    results = r.json()["results"]
    # a record with no valid strong identifier is held for a person to match, never dropped
    assert [x["status"] for x in results[:3]] == ["queued", "rejected", "rejected"]
    assert results[0]["field"] == "subject"
    assert results[0]["rule"] == "match_queue.invalid_identifier"
    assert "LA code" in results[0]["reason"]
    assert results[1]["field"] == "payload.sen_provision"
    assert results[2]["field"] == "event_type"
    assert results[3]["status"] in ("appended", "withheld")


async def test_a_parent_cannot_consent_for_a_young_person_over_compulsory_school_age(
    api: Api,
) -> None:
    ev = sen_event("yp") | {"subject": {"upn": "X801200001002", "date_of_birth": "2006-01-10"}}
    r = await api.client.post(
        "/ingest/events", json={"events": [ev]}, headers=api.auth("oak-school-mis")
    )
    child = r.json()["results"][0]["child_id"]
    assert child, r.text
    r = await api.client.post(
        f"/children/{child}/coordinators", json={"coordinator": "casey"}, headers=api.auth("ops")
    )
    assert r.status_code == 200, r.text
    r = await api.client.post(
        f"/children/{child}/consents", json=health_consent("c-yp"), headers=api.auth("casey")
    )
    assert r.status_code == 422
    assert "young person" in r.json()["detail"]
