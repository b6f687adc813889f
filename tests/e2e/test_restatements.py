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

import orjson
import pytest

from hub.projections.runner import rebuild_together
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


async def share_with_casey(
    api: Api,
    child: str,
    consent_id: str = "c-edu-1",
    categories: tuple[str, ...] = ("education", "social_care"),
) -> None:
    """The child on casey's caseload, and a parent's consent to share `categories` with
    coordinators."""
    r = await api.client.post(f"/children/{child}/coordinators", json={"coordinator": "casey"},
                              headers=api.auth("ops"))  # fmt: skip
    assert r.status_code == 200, r.text
    consent = {
        "consent_id": consent_id,
        "decision": "permit",
        "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
        "given_on": "2024-09-04",
        "scope": {"categories": list(categories),
                  "purposes": ["ehc_assessment", "plan_delivery"], "roles": ["coordinator"]},
        "period": {"start": "2024-09-04"},
        "capture_method": "form",
        "recorded_by": "ignored",
    }  # fmt: skip
    r = await api.client.post(f"/children/{child}/consents",
                              json={"consent": consent, "child_date_of_birth": "2015-03-02"},
                              headers=api.auth("casey"))  # fmt: skip
    assert r.status_code == 200, r.text


async def share_health_with_casey(api: Api, child: str) -> None:
    await share_with_casey(api, child, "c-health-1", ("health",))


FHIR_JSON = {"content-type": "application/fhir+json"}
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def fhir_bundle(bundle_id: str, version: str | None, status: str, **extra: Any) -> bytes:
    """A Bundle (its own id each time) holding the child and Condition c1 at `version`."""
    meta: dict[str, Any] = {"lastUpdated": f"2024-0{version or 1}-01T09:00:00Z"}
    if version is not None:
        meta["versionId"] = version
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "meta": {**meta, **extra.pop("meta", {})},
        "subject": {"reference": "urn:uuid:p1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "408856003"}]},
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": status}]},
        "recordedDate": "2024-01-01",
        **extra,
    }
    child = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}],
        "birthDate": "2015-03-02",
    }
    return orjson.dumps({
        "resourceType": "Bundle", "id": bundle_id, "type": "collection",
        "entry": [{"fullUrl": "urn:uuid:p1", "resource": child},
                  {"fullUrl": f"urn:uuid:c1-{bundle_id}", "resource": condition}],
    })  # fmt: skip


def condition_of(answer: dict[str, Any]) -> dict[str, Any]:
    return by_type(answer)["health.condition_recorded"]


async def conditions(api: Api, child: str) -> list[dict[str, Any]]:
    r = await api.client.get(f"/children/{child}/record", headers=api.auth("casey"))
    assert r.status_code == 200, r.text
    return [f for f in r.json()["agencies"]["city-health"]
            if f["event_type"] == "health.condition_recorded"]  # fmt: skip


async def test_a_fhir_resource_is_one_fact_current_at_its_newest_version_whatever_the_order(
    settings: Settings,
) -> None:
    async with running_api(settings) as api:
        await api.key("city-health", "agency", "city-health")
        await api.key("casey", "coordinator")
        await api.key("ops", "admin")
        v1 = condition_of(await taken(api, "/ingest/fhir", fhir_bundle("a", "1", "active"),
                                      "city-health", FHIR_JSON))  # fmt: skip
        child = v1["child_id"]
        await share_health_with_casey(api, child)
        # version 1 again, in another bundle, with only a narrative and meta.source added
        narrative = {"status": "generated",
                     "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Asthma</div>"}  # fmt: skip
        again = fhir_bundle("b", "1", "active", text=narrative, meta={"source": "#feed-2"})
        restated = condition_of(await taken(api, "/ingest/fhir", again, "city-health", FHIR_JSON))
        assert restated["status"] == "duplicate" and restated["event_id"] == v1["event_id"]
        r = await api.client.post(
            "/ingest/fhir", content=again,
            headers={**api.auth("city-health"), **FHIR_JSON, "accept": "application/fhir+json"},
        )  # fmt: skip
        assert r.json()["resourceType"] == "OperationOutcome"
        issues = {i.get("expression", [""])[0]: i["code"] for i in r.json()["issue"]}
        assert issues["Bundle.entry[1].resource(Condition/c1)"] == "duplicate"
        # what the restatement adds is not read, and is said so (the narrative, meta.source)
        assert issues["Bundle.entry[*].resource.ofType(Condition).text"] == "not-supported"
        assert issues["Bundle.entry[*].resource.ofType(Condition).meta.source"] == "not-supported"
        v3 = condition_of(await taken(api, "/ingest/fhir", fhir_bundle("c", "3", "resolved"),
                                      "city-health", FHIR_JSON))  # fmt: skip
        assert v3["status"] == "appended" and v3["event_id"] != v1["event_id"]
        # version 2 arrives late: kept in the history, never made current
        v2 = condition_of(await taken(api, "/ingest/fhir", fhir_bundle("d", "2", "remission"),
                                      "city-health", FHIR_JSON))  # fmt: skip
        assert v2["status"] == "appended"
        [fact] = await conditions(api, child)
        assert fact["event_id"] == v3["event_id"]
        assert fact["payload"]["clinical_status"] == "resolved"
        assert fact["source"]["record_version"] == "3"
        assert [h["event_id"] for h in fact["history"]] == [v1["event_id"], v2["event_id"]]
        assert [h["source"]["record_version"] for h in fact["history"]] == ["1", "2"]
        tokens, view = dict(api.tokens), fact

        await rebuild_together(list(api.hub.runners))  # `hub replay --all`
        assert await conditions(api, child) == [view]

    async with running_api(settings) as api:  # a restart: the same answers
        api.tokens.update(tokens)
        late = condition_of(await taken(api, "/ingest/fhir", fhir_bundle("e", "2", "remission"),
                                        "city-health", FHIR_JSON))  # fmt: skip
        assert late["status"] == "duplicate" and late["event_id"] == v2["event_id"]
        assert await conditions(api, child) == [view]


def care_team(bundle_id: str, version: str, role: str) -> bytes:
    """A Bundle with the child and CareTeam t1 at `version`: one GP-practice clinician in
    the SNOMED CT role `role`."""
    child = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}],
        "birthDate": "2015-03-02",
    }
    clinician = {
        "resourceType": "Practitioner",
        "id": "pr1",
        "identifier": [{"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "C1234567"}],
    }
    team = {
        "resourceType": "CareTeam",
        "id": "t1",
        "meta": {"versionId": version},
        "status": "active",
        "subject": {"reference": "urn:uuid:p1"},
        "participant": [{
            "member": {"reference": "urn:uuid:pr1"},
            "role": [{"coding": [{"system": "http://snomed.info/sct", "code": role}]}],
            "period": {"start": "2024-01-10"},
        }],
    }  # fmt: skip
    return orjson.dumps({
        "resourceType": "Bundle", "id": bundle_id, "type": "collection",
        "entry": [{"fullUrl": "urn:uuid:p1", "resource": child},
                  {"fullUrl": "urn:uuid:pr1", "resource": clinician},
                  {"fullUrl": "urn:uuid:t1", "resource": team}],
    })  # fmt: skip


def roles_in(team: dict[str, Any]) -> list[str]:
    return [m["role"] for group in team["agencies"] for m in group["members"]]


async def test_the_team_shows_a_care_teams_newest_version_when_an_older_arrives_late(
    settings: Settings,
) -> None:
    async with running_api(settings) as api:
        await api.key("city-health", "agency", "city-health")
        await api.key("casey", "coordinator")
        await api.key("ops", "admin")
        now = await taken(api, "/ingest/fhir", care_team("t-2", "2", "62247001"),  # a GP
                          "city-health", FHIR_JSON)  # fmt: skip
        child = now["results"][0]["child_id"]
        await share_health_with_casey(api, child)
        late = await taken(api, "/ingest/fhir", care_team("t-1", "1", "82296001"),
                           "city-health", FHIR_JSON)  # fmt: skip
        joined = by_type(late)["team.practitioner_joined"]
        assert joined["status"] == "appended"  # recorded: an earlier version of the team
        team = await api.client.get(f"/children/{child}/team", headers=api.auth("casey"))
        assert team.status_code == 200, team.text
        assert roles_in(team.json()) == ["gp"]  # version 2's role, not the late version 1's
