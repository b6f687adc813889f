"""The FHIR R4 read API through the real app: every answer parses as its fhir.resources
R4B model; a SENCO's CareTeam leaves out the health member the policy withholds from
education while the coordinator's shows them; the IG auditor finds the SENCO's read as a
BALP PatientRead AuditEvent; Patient search takes the NHS number in a form body, never a
URL; a child out of reach is the same OperationOutcome as no child; consents come back as
FHIR Consent, a withdrawn one inactive."""

from __future__ import annotations

from typing import Any

import httpx
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.careteam import CareTeam
from fhir.resources.R4B.consent import Consent
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

from hub.api.fhir_out import BALP_PATIENT_READ, FHIR_JSON, NHS_NUMBER, UK_CORE_PATIENT
from tests.e2e.test_team_access import (
    NHS,
    OTHER_UPN,
    SALT,
    SENCO,
    TEACHER,
    a_child_with_a_team,
    api,
)
from tests.support.api import Api

__all__ = ["api"]


async def fhir_get(api: Api, who: str | None, url: str, status: int = 200) -> dict[str, Any]:
    headers = api.auth(who) if who else {}
    r = await api.client.get(url, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(FHIR_JSON), r.headers
    body: dict[str, Any] = r.json()
    return body


def entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    Bundle.model_validate(bundle)
    return [e["resource"] for e in bundle.get("entry", [])]


def members(team: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Participants by practitioner id (from the contained Practitioner)."""
    contained = {c["id"]: c for c in team.get("contained", [])}
    out = {}
    for p in team.get("participant", []):
        who = contained[p["member"]["reference"].removeprefix("#")]
        out[who["identifier"][0]["value"]] = p
    return out


async def test_the_care_team_is_what_the_policy_lets_each_caller_see_and_the_read_is_audited(
    api: Api,
) -> None:
    child = await a_child_with_a_team(api)

    cap = await fhir_get(api, None, "/fhir/metadata")
    CapabilityStatement.model_validate(cap)
    assert {r["type"] for r in cap["rest"][0]["resource"]} == {
        "Patient",
        "CareTeam",
        "Consent",
        "AuditEvent",
    }

    as_coordinator = entries(
        await fhir_get(api, "casey", f"/fhir/CareTeam?patient=Patient/{child}")
    )
    [team] = as_coordinator
    CareTeam.model_validate(team)
    assert team["subject"]["reference"] == f"Patient/{child}"
    assert set(members(team)) == {SENCO, TEACHER, SALT}
    salt_role = members(team)[SALT]["role"][0]["coding"][0]["code"]
    assert salt_role == "speech_and_language_therapist"

    [senco_team] = entries(await fhir_get(api, "senco", f"/fhir/CareTeam?patient={child}"))
    CareTeam.model_validate(senco_team)
    assert set(members(senco_team)) == {SENCO, TEACHER}  # health is withheld from education
    assert SALT not in str(senco_team)
    by_id = await fhir_get(api, "senco", f"/fhir/CareTeam/tac-{child}")
    assert CareTeam.model_validate(by_id).id == f"tac-{child}"

    # the IG auditor sees the SENCO's read as a BALP PatientRead
    trail = entries(await fhir_get(api, "ig", f"/fhir/AuditEvent?patient={child}&_count=200"))
    events = [AuditEvent.model_validate(e) for e in trail]
    reads = [
        e
        for e in events
        if e.action == "R"
        and e.agent[0].who.identifier.value.endswith("senco")
        and any("GET /fhir/CareTeam" in p for p in (e.agent[0].policy or []))
    ]
    assert len(reads) == 2, [e.agent[0].policy for e in events if e.action == "R"]
    assert all(BALP_PATIENT_READ in e.meta.profile for e in reads)
    assert all(e.entity[0].what.reference == f"Patient/{child}" for e in reads)

    # paging: one at a time, the next link leads on without overlap
    first = await fhir_get(api, "ig", f"/fhir/AuditEvent?patient={child}&_count=1")
    [next_link] = [link["url"] for link in first["link"] if link["relation"] == "next"]
    second = await fhir_get(api, "ig", next_link[next_link.index("/fhir/") :])
    assert entries(first)[0]["id"] != entries(second)[0]["id"]

    # the patient, as the SENCO may see them
    pat = await fhir_get(api, "senco", f"/fhir/Patient/{child}")
    assert UK_CORE_PATIENT in Patient.model_validate(pat).meta.profile
    assert pat["id"] == child


async def test_patient_search_takes_the_identifier_in_the_body_and_reaches_only_your_children(
    api: Api,
) -> None:
    child = await a_child_with_a_team(api)
    other = await a_child_with_a_team(api, OTHER_UPN)
    form = {"content-type": "application/x-www-form-urlencoded"}

    async def search(who: str, identifier: str) -> httpx.Response:
        return await api.client.post(
            "/fhir/Patient/_search",
            content=f"identifier={identifier}",
            headers={**api.auth(who), **form},
        )

    r = await search("casey", f"{NHS_NUMBER}|{NHS}")
    assert r.status_code == 200, r.text
    assert [p["id"] for p in entries(r.json())] == [child]
    assert NHS not in str(r.request.url)
    r = await search("casey", "nhs|x")
    assert r.status_code == 400
    issue = OperationOutcome.model_validate(r.json()).issue[0]
    assert issue.expression == ["Parameters.identifier.system"]

    # out of reach is the same answer as no such child
    assert other != child
    unknown = await fhir_get(api, "teacher", "/fhir/Patient/hc-nobody", 404)
    OperationOutcome.model_validate(unknown)
    # a coordinator whose caseload does not hold the child
    await api.key("cory", "coordinator")
    not_mine = await fhir_get(api, "cory", f"/fhir/Patient/{child}", 404)
    assert not_mine == unknown
    empty = await fhir_get(api, "cory", f"/fhir/CareTeam?patient={child}")
    assert entries(empty) == []

    # wrong role and no credentials
    for who, status in (("ig", 403), (None, 401)):
        r = await api.client.get(
            f"/fhir/CareTeam?patient={child}", headers=api.auth(who) if who else {}
        )
        assert r.status_code == status, (who, r.text)
    r = await api.client.get(f"/fhir/AuditEvent?patient={child}", headers=api.auth("casey"))
    assert r.status_code == 403


async def test_consents_are_fhir_consents_and_a_withdrawn_one_is_inactive(
    api: Api,
) -> None:
    child = await a_child_with_a_team(api)
    consents = entries(await fhir_get(api, "casey", f"/fhir/Consent?patient={child}"))
    assert len(consents) == 2
    assert {Consent.model_validate(c).status for c in consents} == {"active"}
    r = await api.client.post(
        "/consents/c-health-H801200001001/withdraw",
        json={"withdrawn_by": {"reference": "parent-1", "capacity": "parent_with_pr"}},
        headers=api.auth("casey"),
    )
    assert r.status_code == 200, r.text
    after = entries(await fhir_get(api, "casey", f"/fhir/Consent?patient={child}"))
    assert sorted(c["status"] for c in after) == ["active", "inactive"]


async def test_a_fhir_ingest_answer_is_an_operation_outcome_naming_each_element(
    api: Api,
) -> None:
    from tests.e2e.test_people_by_name import care_team_bundle

    r = await api.client.post(
        "/ingest/fhir",
        content=care_team_bundle(),
        headers={
            **api.auth("city-health"),
            "content-type": "application/fhir+json",
            "accept": "application/fhir+json",
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(FHIR_JSON)
    oo = OperationOutcome.model_validate(r.json())
    where = {i.expression[0]: i for i in oo.issue if i.expression}
    unmapped = where["Bundle.entry[4].resource.ofType(CareTeam).participant[1].role[0]"]
    assert (unmapped.severity, unmapped.details.coding[0].code) == (
        "warning",
        "role_not_in_vocabulary",
    )
    assert any(i.severity == "information" for i in oo.issue)

    # a refusal of a message that was read is an OperationOutcome too
    r = await api.client.post(
        "/ingest/fhir",
        content=b'{"resourceType": "Bundle", "type": "collection", "entry": "x"}',
        headers={
            **api.auth("city-health"),
            "content-type": "application/fhir+json",
            "accept": "application/fhir+json",
        },
    )
    assert r.status_code in (400, 422), r.text
    refused = OperationOutcome.model_validate(r.json())
    assert refused.issue[0].severity == "error"
