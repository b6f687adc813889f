"""Consent ids are scoped per child, through the real API: two children may each have a
consent "c-1"; a coordinator cannot learn of, squat or withdraw another child's consent,
and a consent of a child outside their reach answers exactly as one that does not exist."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import Api, embedded, running_api

DOB = "2015-03-02"
WITHDRAWN_BY = {"withdrawn_by": {"reference": "parent-1", "capacity": "parent_with_pr"}}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(embedded(tmp_path)) as a:
        await a.key("oak-school-mis", "agency", "oak-school")
        await a.key("casey", "coordinator")
        await a.key("dana", "coordinator")
        await a.key("ops", "admin")
        yield a


async def child(api: Api, upn: str, coordinator: str) -> str:
    event = {
        "event_type": "education.sen_status_recorded", "schema_version": 2,
        "subject": {"upn": upn, "date_of_birth": DOB},
        "source": {"agency": "oak-school", "message_id": f"sen-{upn}"},
        "occurred_at": "2024-09-02T09:00:00Z",
        "payload": {"sen_provision": "K", "start_date": "2024-09-01", "needs": []},
    }  # fmt: skip
    r = await api.client.post(
        "/ingest/events", json={"events": [event]}, headers=api.auth("oak-school-mis")
    )
    assert r.status_code == 200, r.text
    child_id = str(r.json()["results"][0]["child_id"])
    r = await api.client.post(
        f"/children/{child_id}/coordinators",
        json={"coordinator": coordinator},
        headers=api.auth("ops"),
    )
    assert r.status_code == 200, r.text
    return child_id


async def record_consent(api: Api, child_id: str, consent_id: str, who: str) -> Any:
    body = {
        "consent": {
            "consent_id": consent_id, "decision": "permit",
            "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
            "given_on": "2024-09-04", "period": {"start": "2024-09-04"},
            "scope": {"categories": ["education"], "roles": ["coordinator"]},
            "capture_method": "form", "recorded_by": "ignored",
        },
        "child_date_of_birth": DOB,
    }  # fmt: skip
    return await api.client.post(f"/children/{child_id}/consents", json=body,
                                 headers=api.auth(who))  # fmt: skip


async def test_consent_ids_are_per_child_and_anothers_answers_as_none(api: Api) -> None:
    a = await child(api, "H801200001001", "casey")
    b = await child(api, "X801200001002", "dana")
    # each child may have its own "c-1": the second is neither refused nor told of the first
    assert (await record_consent(api, a, "c-1", "casey")).status_code == 200
    r = await record_consent(api, b, "c-1", "dana")
    assert r.status_code == 200, r.text
    assert (await record_consent(api, b, "c-2", "dana")).status_code == 200

    def withdraw(url: str, who: str = "casey") -> Any:
        return api.client.post(url, json=WITHDRAWN_BY, headers=api.auth(who))

    answers = [
        await withdraw(f"/children/{b}/consents/c-1/withdraw"),  # dana's child
        await withdraw(f"/children/{a}/consents/c-9/withdraw"),  # no such consent
        await withdraw("/children/hc-nobody/consents/c-1/withdraw"),  # no such child
        await withdraw("/consents/c-2/withdraw"),  # only dana's child has a c-2
        await withdraw("/consents/c-9/withdraw"),  # nobody has a c-9
    ]
    assert {(r.status_code, r.json()["detail"]) for r in answers} == {
        (404, "no such consent on your caseload")
    }
    # casey's own c-1 (the only one in reach) is withdrawn by either route; dana's stays
    r = await withdraw("/consents/c-1/withdraw")
    assert r.status_code == 200, r.text
    r = await withdraw(f"/children/{b}/consents/c-1/withdraw", who="dana")
    assert r.status_code == 200, r.text
    r = await withdraw(f"/children/{b}/consents/c-1/withdraw", who="dana")
    assert r.status_code == 409, r.text  # withdrawn before
