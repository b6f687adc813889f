"""People by name through the real API: a FHIR CareTeam and a hub event name the
practitioners; the coordinator's team view shows them and their organisations by name,
the plan timeline's advice step reads "Advice from Dr Priya Shah, educational
psychologist", an unmapped FHIR role code is reported with its path, the names are sealed
on the logs and in the projections (never in the clear, never in a log line), and
after erasure they cannot be read anywhere.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from hub.auth.keys import Publishing
from tests.e2e.test_erasure import opened_text, plaintext_hits, records_of
from tests.e2e.test_plan_journey import DOB, NHS, event, get, ingest, members, post, set_up_child
from tests.support.api import Api, embedded, running_api

EP_NAME = "Dr Priya Shah"
PAED_NAME = "Dr Amirah Quennell"
TRUST_NAME = "Synthetic Children's Hospital NHS Trust"
NAMES = (EP_NAME, PAED_NAME)
SNOMED = "http://snomed.info/sct"


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


def care_team_bundle() -> bytes:
    """A made-up paediatrician (named, with a mapped role) and a made-up second member
    whose only role is a code the vocabulary does not have."""
    res: list[dict[str, Any]] = [
        {
            "fullUrl": "urn:uuid:pat",
            "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}],
                "birthDate": DOB,
            },
        },
        {
            "fullUrl": "urn:uuid:org",
            "resource": {
                "resourceType": "Organization",
                "identifier": [
                    {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RZ9"}
                ],
                "name": TRUST_NAME,
            },
        },
        {
            "fullUrl": "urn:uuid:pr",
            "resource": {
                "resourceType": "Practitioner",
                "identifier": [
                    {"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "C9900010"}
                ],
                "name": [{"prefix": ["Dr"], "given": ["Amirah"], "family": "Quennell"}],
            },
        },
        {
            "fullUrl": "urn:uuid:role",
            "resource": {
                "resourceType": "PractitionerRole",
                "practitioner": {"reference": "urn:uuid:pr"},
                "organization": {"reference": "urn:uuid:org"},
                "code": [{"coding": [{"system": SNOMED, "code": "82296001"}]}],
            },
        },
        {
            "fullUrl": "urn:uuid:team",
            "resource": {
                "resourceType": "CareTeam",
                "status": "active",
                "subject": {"reference": "urn:uuid:pat"},
                "participant": [
                    {"member": {"reference": "urn:uuid:role"}, "period": {"start": "2023-11-01"}},
                    {
                        "role": [{"coding": [{"system": SNOMED, "code": "309294001"}]}],
                        "member": {
                            "identifier": {
                                "system": "https://fhir.hl7.org.uk/Id/gmc-number",
                                "value": "C9900011",
                            }
                        },
                        "period": {"start": "2023-11-02"},
                    },
                ],
            },
        },
    ]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": res}).encode()


async def test_the_team_and_timeline_name_people_and_the_names_are_sealed_and_erasable(
    api: Api,
) -> None:
    with capture_logs() as logs:
        child = await set_up_child(api)
        # a FHIR CareTeam names the paediatrician and their trust
        r = await api.client.post(
            "/ingest/fhir",
            content=care_team_bundle(),
            headers={**api.auth("city-health"), "content-type": "application/fhir+json"},
        )
        assert r.status_code == 200, r.text
        answer = r.json()
        joined = [x for x in answer["results"] if x["event_type"] == "team.practitioner_joined"]
        assert [x["status"] for x in joined] == ["appended", "appended"], answer
        (unmapped,) = answer["not_taken"]
        assert unmapped["ref"] == "Bundle.entry[4].resource(CareTeam).participant[1].role[0]"
        assert unmapped["rule"] == "role_not_in_vocabulary"
        # the LA's case system names the educational psychologist
        [ep] = await ingest(
            api,
            "la-case-system",
            event(
                "team.practitioner_joined",
                {
                    "practitioner_id": "ep-9",
                    "role": "educational_psychologist",
                    "agency": "education",
                    "organisation_code": "801",
                    "organisation_name": "Exampleshire Educational Psychology Service",
                    "since": "2024-01-05",
                    "name": EP_NAME,
                },
                agency="local_authority",
                message_id="join-ep",
                subject={"hub_child_id": child},
                statutory_basis="ehc_statutory_record",
            ),
        )
        assert ep["status"] == "appended", ep

        team = await get(api, f"/children/{child}/team?as_of=2024-01-20")
        people = members(team)
        assert people["gmc:C9900010"]["name"] == PAED_NAME
        assert people["gmc:C9900010"]["organisation_name"] == TRUST_NAME
        assert people["gmc:C9900010"]["role"] == "paediatrician"
        assert people["gmc:C9900011"]["name"] is None  # nothing names them: shown by id
        assert people["gmc:C9900011"]["role"] == "health_practitioner"
        assert people["ep-9"]["name"] == EP_NAME
        assert people["senco-1"]["organisation_name"] == "Oak Primary"  # the placement's URN
        assert people["senco-1"]["name"] is None

        made = await post(
            api,
            f"/children/{child}/plans",
            {"requested_on": "2024-01-15", "received_on": "2024-01-18", "requested_by": "parent"},
        )
        plan = made["plan_id"]
        await post(
            api, f"/plans/{plan}/decision", {"decision": "assess", "decided_on": "2024-02-01"}
        )
        await post(
            api,
            f"/plans/{plan}/advice-requests",
            {
                "advice_request_id": "adv-ep",
                "reg6_category": "educational_psychologist",
                "practitioner_id": "ep-9",
                "agency": "education",
                "requested_on": "2024-02-01",
            },
        )
        [adv] = await ingest(
            api,
            "la-case-system",
            event(
                "plan.advice_submitted",
                {
                    "advice_request_id": "adv-ep",
                    "practitioner_id": "ep-9",
                    "agency": "education",
                    "submitted_on": "2024-03-05",
                    "advice_category": "education",
                    "document": {"document_id": "doc-ep"},
                },
                agency="local_authority",
                message_id="adv-ep-1",
                subject={"hub_child_id": child},
                plan_id=plan,
                statutory_basis="ehc_statutory_record",
            ),
        )
        assert adv["status"] == "appended", adv
        tl = await get(api, f"/plans/{plan}/timeline?as_of=2024-03-10")
        steps = {s["event_type"]: s["text"] for s in tl["steps"]}
        assert steps["plan.advice_submitted"] == (
            "Advice from Dr Priya Shah, educational psychologist"
        )
        [advice] = [c for c in tl["contributions"] if c["kind"] == "advice"]
        assert advice["practitioner_name"] == EP_NAME

        # a meeting names its attendees and its actions' owners (the unnamed one by id only)
        await post(
            api,
            f"/children/{child}/meetings",
            {
                "plan_id": plan,
                "held_on": "2024-03-06",
                "kind": "tac",
                "attendee_ids": ["ep-9", "gmc:C9900011", "gmc:C9900010"],
                "actions": [
                    {
                        "action_id": "act-ep",
                        "text": "Observe in class",
                        "owner_id": "ep-9",
                        "due_on": "2024-03-20",
                    },
                    {
                        "action_id": "act-x",
                        "text": "Send the letter",
                        "owner_id": "gmc:C9900011",
                        "due_on": "2024-03-20",
                    },
                ],
            },
        )
        tl = await get(api, f"/plans/{plan}/timeline?as_of=2024-03-10")
        [meeting] = [c for c in tl["contributions"] if c["kind"] == "meeting"]
        assert meeting["attendees"] == [
            "Dr Priya Shah, educational psychologist",
            "Dr Amirah Quennell, community or acute paediatrician",
        ]
        assert [(a["owner_id"], a["owner_name"]) for a in meeting["actions"]] == [
            ("ep-9", EP_NAME),
            ("gmc:C9900011", None),
        ]

    # names never reach a log line (the routes take ids only, so never a URL either)
    lines = json.dumps(logs, default=str)
    assert "ingest.message" in lines  # the log lines were captured (so this can fail)
    assert all(n not in lines for n in NAMES)

    # sealed on the logs and in every projection table: never stored in the clear
    records = await records_of(api, child)
    raw = b"".join(rec.value for rec in records)
    assert all(n.encode() not in raw for n in NAMES)
    data_dir = api.hub.settings.data_dir
    assert plaintext_hits(data_dir / "log.db", NAMES) == []
    assert plaintext_hits(data_dir / "store.db", NAMES) == []
    _, text = await opened_text(api, records)  # ... and open with the child's keys
    assert all(n in text for n in NAMES)

    r = await api.client.post(
        f"/children/{child}/erase", json={"reason": "ERQ-9"}, headers=api.auth("ops")
    )
    assert r.status_code == 200, r.text
    r = await api.client.get(f"/children/{child}/team", headers=api.auth("casey"))
    assert r.status_code == 404, r.text
    _, text = await opened_text(api, await records_of(api, child))
    assert all(n not in text for n in NAMES)
