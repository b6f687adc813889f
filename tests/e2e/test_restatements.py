"""Facts told once: a later message restating a fact is absorbed, a later message changing
it is recorded as its correction, and the record shows one fact with its history. Two
annual CIN census returns (built here from the public CIN format) name the same child's
episode, plan and disability: the second return's restatements are answered `duplicate`
with the first return's event ids, its closure of the episode is a new version of it;
SEN statuses sent as events in three messages are one fact in the child's record with
the earlier version under `history`. The same again after a restart answers the same, on
the embedded store and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.settings import Settings
from tests.e2e.test_ingest_routes import taken
from tests.support.api import Api, embedded, running_api

UPN = "H801200001001"
NHS = "9434765919"
XML = {"content-type": "application/xml"}


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return embedded(tmp_path)
    return Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        store_backend="postgres",
        postgres_dsn=request.getfixturevalue("postgres_dsn"),
        postgres_schema=request.getfixturevalue("postgres_schema"),
        _env_file=None,
    )


async def keys(api: Api) -> None:
    await api.key("county-sc", "agency", "county-social-care")
    await api.key("oak-school-mis", "agency", "oak-school")
    await api.key("casey", "coordinator")
    await api.key("ops", "admin")


def census(year: int, *, closed: bool) -> bytes:
    """A CIN census return for one child (collection year ending 31 March `year`)."""
    closure = "<CINclosureDate>2024-02-01</CINclosureDate><ReasonForClosure>RC7</ReasonForClosure>"
    return (
        "<Message><Header><CollectionDetails><Collection>CIN</Collection>"
        f"<Year>{year}</Year><ReferenceDate>{year}-03-31</ReferenceDate></CollectionDetails>"
        f"<Source><LEA>801</LEA><SoftwareCode>la-system</SoftwareCode>"
        f"<DateTime>{year}-04-10T09:00:00</DateTime></Source></Header><Children><Child>"
        f"<ChildIdentifiers><LAchildID>SC-1</LAchildID><UPN>{UPN}</UPN>"
        "<PersonBirthDate>2015-03-02</PersonBirthDate><Sex>F</Sex></ChildIdentifiers>"
        "<ChildCharacteristics><Disabilities><Disability>HEAR</Disability></Disabilities>"
        "</ChildCharacteristics><CINdetails><CINreferralDate>2023-01-10</CINreferralDate>"
        "<ReferralSource>2A</ReferralSource><PrimaryNeedCode>N2</PrimaryNeedCode>"
        f"{closure if closed else ''}<ReferralNFA>false</ReferralNFA>"
        "<CINPlanDates><CINPlanStartDate>2023-02-01</CINPlanStartDate>"
        "<CINPlanEndDate>2023-03-01</CINPlanEndDate></CINPlanDates>"
        "</CINdetails></Child></Children></Message>"
    ).encode()


def sen_event(message_id: str, **payload: Any) -> dict[str, Any]:
    return {
        "event_type": "education.sen_status_recorded",
        "schema_version": 2,
        "subject": {"upn": UPN, "nhs_number": NHS, "date_of_birth": "2015-03-02"},
        "source": {"agency": "oak-school", "organisation_code": "8881234",
                   "message_id": message_id},
        "occurred_at": "2024-09-02T09:00:00Z",
        "payload": {"sen_provision": "K", "start_date": "2024-09-01",
                    "needs": [{"type": "SLCN", "rank": 1}], **payload},
    }  # fmt: skip


def by_type(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["event_type"]: r for r in answer["results"]}


async def events(api: Api, *evs: dict[str, Any]) -> list[dict[str, Any]]:
    r = await api.client.post("/ingest/events", json={"events": list(evs)},
                              headers=api.auth("oak-school-mis"))  # fmt: skip
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


async def test_a_second_census_return_restates_and_corrects_and_the_record_shows_one_fact(
    settings: Settings,
) -> None:
    async with running_api(settings) as api:
        await keys(api)
        first = by_type(await taken(api, "/ingest/social-care", census(2023, closed=False),
                                    "county-sc", XML))  # fmt: skip
        assert {r["status"] for r in first.values()} <= {"appended", "withheld"}
        second = by_type(await taken(api, "/ingest/social-care", census(2024, closed=True),
                                     "county-sc", XML))  # fmt: skip
        for restated in ("social_care.child_identified", "social_care.disability_recorded",
                         "social_care.cin_plan_recorded"):  # fmt: skip
            assert second[restated]["status"] == "duplicate", second[restated]
            assert second[restated]["event_id"] == first[restated]["event_id"]
        episode = "social_care.cin_episode_recorded"
        assert second[episode]["status"] in ("appended", "withheld")  # closed: a new version
        assert second[episode]["event_id"] != first[episode]["event_id"]

        # SEN status from the school in three messages: one fact, corrected once
        [one] = await events(api, sen_event("sen-2024-a"))
        [again] = await events(api, sen_event("sen-2024-b"))
        assert again["status"] == "duplicate" and again["event_id"] == one["event_id"]
        [ended] = await events(api, sen_event("sen-2025-a", end_date="2025-03-31"))
        assert ended["status"] in ("appended", "withheld") and ended["event_id"] != one["event_id"]
        child = one["child_id"]
        assert child == first["social_care.child_identified"]["child_id"]  # the same child
        await share_with_casey(api, child)
        record = await api.client.get(f"/children/{child}/record", headers=api.auth("casey"))
        assert record.status_code == 200, record.text
        sen = [f for f in record.json()["agencies"]["oak-school"]
               if f["event_type"] == "education.sen_status_recorded"]  # fmt: skip
        assert len(sen) == 1  # one fact ...
        assert sen[0]["event_id"] == ended["event_id"]  # ... its latest version ...
        assert sen[0]["payload"]["end_date"] == "2025-03-31"
        assert [h["event_id"] for h in sen[0]["history"]] == [one["event_id"]]  # ... and history
        assert "end_date" not in sen[0]["history"][0]["payload"] or (
            sen[0]["history"][0]["payload"]["end_date"] is None
        )
        tokens = dict(api.tokens)
        view = record.json()["agencies"]

    async with running_api(settings) as api:  # a restart: the same answers
        api.tokens.update(tokens)
        again_first = by_type(await taken(api, "/ingest/social-care", census(2023, closed=False),
                                          "county-sc", XML))  # fmt: skip
        assert {r["status"] for r in again_first.values()} == {"duplicate"}
        [later] = await events(api, sen_event("sen-2026-a", end_date="2025-03-31"))
        assert later["status"] == "duplicate" and later["event_id"] == ended["event_id"]
        record = await api.client.get(f"/children/{child}/record", headers=api.auth("casey"))
        assert record.json()["agencies"] == view  # the rebuilt views give the same answer


async def share_with_casey(api: Api, child: str) -> None:
    r = await api.client.post(f"/children/{child}/coordinators", json={"coordinator": "casey"},
                              headers=api.auth("ops"))  # fmt: skip
    assert r.status_code == 200, r.text
    consent = {
        "consent_id": "c-edu-1",
        "decision": "permit",
        "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
        "given_on": "2024-09-04",
        "scope": {"categories": ["education", "social_care"],
                  "purposes": ["ehc_assessment", "plan_delivery"], "roles": ["coordinator"]},
        "period": {"start": "2024-09-04"},
        "capture_method": "form",
        "recorded_by": "ignored",
    }  # fmt: skip
    r = await api.client.post(f"/children/{child}/consents",
                              json={"consent": consent, "child_date_of_birth": "2015-03-02"},
                              headers=api.auth("casey"))  # fmt: skip
    assert r.status_code == 200, r.text
