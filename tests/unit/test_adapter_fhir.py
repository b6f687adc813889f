"""The FHIR R4 adapter: every published sample is read into the facts it must yield, with
every resource it does not take explained; bundles link resources to their Patient; the
sensitive-service, attendance, team and advice rules hold; bad input of any kind gives
`PermanentError` or a not-taken line, never a crash. Sample content is treated as personal
data: values compared with a sample are read from the sample file, never copied here.
"""

from __future__ import annotations

import collections
import copy
import json
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum.gb import nhs

from bench.gen_fhir import generate_bundle
from hub.adapters.fhir import (
    ADVICE_REQUEST_SYSTEM,
    HUB_DOCUMENT_CATEGORY_SYSTEM,
    PLAN_ID_SYSTEM,
    parse_fhir,
)
from hub.consent.fhir import consent_to_fhir
from hub.consent.policy import load_policy
from hub.consent.sealing import personal_fields
from hub.errors import PermanentError
from hub.events.consent import ConsentRecorded
from hub.events.envelope import Envelope
from hub.events.family import RelatedPersonRecorded
from hub.events.health import (
    ConditionRecorded,
    DocumentRecorded,
    EncounterRecorded,
    ObservationRecorded,
    PatientIdentified,
)
from hub.events.plan import AdviceSubmitted
from hub.events.team import PractitionerJoined, PractitionerLeft
from hub.ingest.model import AdapterResult

JSON = "application/fhir+json"
XML = "application/fhir+xml"
NDJSON = "application/fhir+ndjson"
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SNOMED = "http://snomed.info/sct"
RECEIVED = datetime(2025, 1, 15, 9, 0, tzinfo=UTC)
POLICY = load_policy(Path(__file__).resolve().parents[2] / "contracts" / "consent-policy.yaml")

PATIENT_NOT_IN_MESSAGE = {("invalid", "subject_not_identifiable"): 1}
UNSUPPORTED = {("unsupported", "resource_type"): 1}
CONTEXT_ONLY = {("unsupported", "context_only"): 1}
SYNTHEA_UNSUPPORTED = (
    "Claim",
    "ExplanationOfBenefit",
    "Immunization",
    "Procedure",
    "DiagnosticReport",
    "MedicationRequest",
)

# file -> (facts per event type, not-taken lines per (kind, rule))
EXPECTED: dict[str, tuple[dict[str, int], dict[tuple[str, str], int]]] = {
    # UK Core examples reference Patient/UKCore-Patient-RichardSmith-Example, which is not
    # in their message and is referenced without an NHS number: nothing can be linked.
    "ukcore/UKCore-Bundle-BatchPOST-Example.xml": (
        {},
        {("invalid", "subject_not_identifiable"): 5},
    ),
    "ukcore/UKCore-CarePlan-WellnessPlan-Example.xml": ({}, PATIENT_NOT_IN_MESSAGE),
    "ukcore/UKCore-CareTeam-WeightManagementTeam-Example.xml": ({}, PATIENT_NOT_IN_MESSAGE),
    "ukcore/UKCore-Condition-BleedingFromEar-Example.xml": ({}, PATIENT_NOT_IN_MESSAGE),
    "ukcore/UKCore-Condition-HipReplacement-Example.xml": ({}, PATIENT_NOT_IN_MESSAGE),
    "ukcore/UKCore-Consent-ForInformationAccess-Example.xml": ({}, PATIENT_NOT_IN_MESSAGE),
    "ukcore/UKCore-DocumentReference-CarePlanReportPDF-Example.xml": ({}, PATIENT_NOT_IN_MESSAGE),
    "ukcore/UKCore-Encounter-InpatientEncounter-Example.xml": ({}, PATIENT_NOT_IN_MESSAGE),
    "ukcore/UKCore-EpisodeOfCare-SmokingCessationTherapy-Example.xml": ({}, UNSUPPORTED),
    "ukcore/UKCore-Flag-FoodAllergy-Example.xml": ({}, UNSUPPORTED),
    "ukcore/UKCore-Observation-Group-FullBloodCount-Example.xml": ({}, PATIENT_NOT_IN_MESSAGE),
    "ukcore/UKCore-Observation-HeavyDrinker-Example.xml": ({}, PATIENT_NOT_IN_MESSAGE),
    "ukcore/UKCore-Observation-Lab-Albumin-Example.xml": ({}, PATIENT_NOT_IN_MESSAGE),
    "ukcore/UKCore-Observation-VitalSigns-BMI-Example.xml": ({}, PATIENT_NOT_IN_MESSAGE),
    "ukcore/UKCore-Observation-VitalSigns-BloodPressure-Example.xml": ({}, PATIENT_NOT_IN_MESSAGE),
    "ukcore/UKCore-Observation-VitalSigns-BodyWeight-Example.xml": ({}, PATIENT_NOT_IN_MESSAGE),
    "ukcore/UKCore-Organization-LeedsTeachingHospital-Example.xml": ({}, CONTEXT_ONLY),
    "ukcore/UKCore-Organization-WhiteRoseMedicalCentre-Example.xml": ({}, CONTEXT_ONLY),
    "ukcore/UKCore-Patient-RichardSmith-Example.xml": (
        {"health.patient_identified": 1, "family.related_person_recorded": 1},
        {},
    ),
    "ukcore/UKCore-Practitioner-ConsultantSandraGose-Example.xml": ({}, CONTEXT_ONLY),
    "ukcore/UKCore-Practitioner-DoctorPaulRastall-Example.xml": ({}, CONTEXT_ONLY),
    "ukcore/UKCore-PractitionerRole-GeneralPractitioner-Example.xml": ({}, CONTEXT_ONLY),
    "ukcore/UKCore-Provenance-RARecordConsent-Example.xml": ({}, UNSUPPORTED),
    "ukcore/UKCore-Questionnaire-EOLPlan-Example.xml": ({}, UNSUPPORTED),
    "ukcore/UKCore-QuestionnaireResponse-EOLPlan-Example.xml": ({}, UNSUPPORTED),
    # HL7 spec examples: subject Patient/f201, and the Consent's Patient/f001, not included
    "fhir-r4/careplan-example-f201-renal.json": ({}, PATIENT_NOT_IN_MESSAGE),
    "fhir-r4/consent-example-smartonfhir.json": ({}, PATIENT_NOT_IN_MESSAGE),
    # Synthea (US): claims, immunisations, procedures, reports and medications are not
    # taken; the Practitioner is referenced only by fields the hub does not read.
    "synthea/Buster_Hoeger_ad2e3fc5-2b5d-4cb9-8d03-9ea0f4ac8423.json": (
        {
            "health.patient_identified": 1,
            "health.encounter_recorded": 6,
            "health.condition_recorded": 3,
            "health.observation_recorded": 33,
        },
        {("unsupported", "resource_type"): 21, ("unsupported", "context_only"): 1},
    ),
    "synthea/Clemente_Kreiger_1484a42d-0eaf-4654-9cbf-6b050a5cd73b.json": (
        {
            "health.patient_identified": 1,
            "health.encounter_recorded": 3,
            "health.condition_recorded": 1,
            "health.observation_recorded": 48,
        },
        {("unsupported", "resource_type"): 15, ("unsupported", "context_only"): 1},
    ),
    "synthea/Edward_Gulgowski_43481611-2459-44f5-ab20-4b142dac160f.json": (
        {
            "health.patient_identified": 1,
            "health.encounter_recorded": 6,
            "health.condition_recorded": 4,
            "health.observation_recorded": 32,
            "health.care_plan_recorded": 1,
        },
        {("unsupported", "resource_type"): 28, ("unsupported", "context_only"): 1},
    ),
    "synthea/bulk10-Organization.000.ndjson": ({}, {("unsupported", "context_only"): 43}),
    "synthea/bulk10-Patient.000.ndjson": ({"health.patient_identified": 13}, {}),
    "synthea/bulk10-Practitioner.000.ndjson": ({}, {("unsupported", "context_only"): 43}),
    "synthea/bulk10-PractitionerRole.000.ndjson": ({}, {("unsupported", "context_only"): 43}),
}


def content_type(path: Path) -> str:
    return {".xml": XML, ".ndjson": NDJSON}.get(path.suffix, JSON)


def read(path: Path) -> AdapterResult:
    return parse_fhir(
        path.read_bytes(), content_type=content_type(path), agency="nhs-trust", received_at=RECEIVED
    )


def fact_counts(result: AdapterResult) -> dict[str, int]:
    return dict(collections.Counter(type(f.payload).event_type for f in result.facts))


def not_taken_counts(result: AdapterResult) -> dict[tuple[str, str], int]:
    """Not-taken lines per (kind, rule), leaving out the elements not read (each sample's
    are accounted for by `test_sample_accounting`)."""
    return dict(
        collections.Counter(
            (n.kind, n.rule or "") for n in result.not_taken if n.rule != "hub.not_read"
        )
    )


def not_taken(result: AdapterResult) -> list[Any]:
    """The not-taken lines other than the elements not read."""
    return [n for n in result.not_taken if n.rule != "hub.not_read"]


def payloads(result: AdapterResult, cls: type[Any]) -> list[Any]:
    return [f.payload for f in result.facts if isinstance(f.payload, cls)]


def bundle(*resources: dict[str, Any], **fields: Any) -> bytes:
    entries = [
        {"fullUrl": r.pop("fullUrl"), "resource": r} if "fullUrl" in r else {"resource": r}
        for r in copy.deepcopy(list(resources))
    ]
    return json.dumps(
        {"resourceType": "Bundle", "type": "collection", **fields, "entry": entries}
    ).encode()


def parse(data: bytes, ctype: str = JSON, **kwargs: Any) -> AdapterResult:
    return parse_fhir(data, content_type=ctype, agency="nhs-trust", received_at=RECEIVED, **kwargs)


def patient(**overrides: Any) -> dict[str, Any]:
    """A made-up child (a valid NHS number from the 943 test range); None drops a field."""
    resource = {
        "resourceType": "Patient",
        "id": "p1",
        "fullUrl": "urn:uuid:0f0e0d0c-0000-4000-8000-000000000001",
        "identifier": [{"system": NHS_SYSTEM, "value": "9434765919"}],
        "name": [{"use": "official", "family": "Testchild", "given": ["Alex"]}],
        "birthDate": "2015-05-05",
        "address": [{"use": "home", "postalCode": "ZZ99 3VZ"}],
        **overrides,
    }
    return {k: v for k, v in resource.items() if v is not None}


PAT = "urn:uuid:0f0e0d0c-0000-4000-8000-000000000001"


def alone(resource: dict[str, Any]) -> bytes:
    """A resource sent on its own (no bundle entry, so no fullUrl)."""
    return json.dumps({k: v for k, v in resource.items() if k != "fullUrl"}).encode()


def xml_values(path: Path, element: str) -> list[str]:
    """The value attributes of `element` in a sample (compare with the file, never a copy)."""
    return re.findall(rf'<{element} value="([^"]*)"', path.read_text(encoding="utf-8"))


# =========================================================================== the samples


@pytest.mark.samples
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_sample_yields_its_facts_and_explains_the_rest(samples_dir: Path, name: str) -> None:
    result = read(samples_dir / name)
    facts, not_taken = EXPECTED[name]
    assert fact_counts(result) == facts
    assert not_taken_counts(result) == not_taken
    for line in result.not_taken:  # every line says where, what and why
        assert line.ref and line.reason and line.field and line.rule
    assert result.message_id
    for fact in result.facts:
        assert fact.occurred_at.tzinfo is not None
        assert fact.source.agency == "nhs-trust" and fact.source.message_id == result.message_id
        assert fact.ref.startswith(("Bundle.entry[", "resource(", "line["))


@pytest.mark.samples
def test_every_sample_folder_file_is_covered(samples_dir: Path) -> None:
    on_disk = {
        str(p.relative_to(samples_dir))
        for folder in ("ukcore", "fhir-r4", "synthea")
        for p in (samples_dir / folder).glob("*.*")
    }
    assert on_disk == set(EXPECTED)


@pytest.mark.samples
def test_uk_core_patient_carries_nhs_number_verification_and_demographics(
    samples_dir: Path,
) -> None:
    path = samples_dir / "ukcore" / "UKCore-Patient-RichardSmith-Example.xml"
    result = read(path)
    (identified,) = payloads(result, PatientIdentified)
    assert nhs.is_valid(identified.nhs_number)
    assert identified.nhs_number in xml_values(path, "value")
    verification = identified.nhs_number_verification
    assert verification is not None and verification.code == "01"
    assert verification.system.endswith("UKCore-NHSNumberVerificationStatusEngland")
    assert identified.family_name in xml_values(path, "family")
    assert identified.given_names[0] in xml_values(path, "given")
    assert identified.date_of_birth == date.fromisoformat(xml_values(path, "birthDate")[0])
    assert identified.gender == "male"
    assert (
        identified.postcode == xml_values(path, "postalCode")[0]
    )  # the patient's, not the contact's
    fact = result.facts[0]
    assert fact.subject.nhs_number == identified.nhs_number
    assert fact.subject.date_of_birth == identified.date_of_birth
    assert fact.ref == "resource(Patient/UKCore-Patient-RichardSmith-Example)"
    assert fact.category is None  # the payload's own: identity
    # the contact is a related person of the child, under the child's identifiers
    (contact,) = payloads(result, RelatedPersonRecorded)
    assert contact.recorded_as == "patient_contact"
    assert contact.relationships[0].code == "Personal"
    assert contact.contacts[0].system == "phone"
    assert result.facts[1].ref.endswith(".contact[0]")
    assert result.facts[1].subject == fact.subject
    # one message, no id of its own: its content hash
    assert result.message_id is not None and result.message_id.startswith("sha256:")


@pytest.mark.samples
def test_uk_core_batch_bundle_links_nothing_it_cannot_identify(samples_dir: Path) -> None:
    result = read(samples_dir / "ukcore" / "UKCore-Bundle-BatchPOST-Example.xml")
    assert result.message_id == "Bundle/UKCore-Bundle-BatchPOST-Example"
    assert [n.ref for n in not_taken(result)] == [
        f"Bundle.entry[{i}].resource(Observation)" for i in range(5)
    ]
    assert {n.field for n in not_taken(result)} == {"Observation.subject"}
    assert all(n.reason.startswith("subject not identifiable") for n in not_taken(result))


@pytest.mark.samples
@pytest.mark.parametrize(
    "name",
    [
        "Buster_Hoeger_ad2e3fc5-2b5d-4cb9-8d03-9ea0f4ac8423.json",
        "Clemente_Kreiger_1484a42d-0eaf-4654-9cbf-6b050a5cd73b.json",
        "Edward_Gulgowski_43481611-2459-44f5-ab20-4b142dac160f.json",
    ],
)
def test_synthea_bundles_carry_demographics_only_never_an_nhs_number(
    samples_dir: Path, name: str
) -> None:
    path = samples_dir / "synthea" / name
    source = json.loads(path.read_bytes())
    result = read(path)
    pat = next(e["resource"] for e in source["entry"] if e["resource"]["resourceType"] == "Patient")
    for fact in result.facts:  # the identity layer will queue these, not link them
        assert fact.subject.nhs_number is None
        assert fact.subject.family_name == pat["name"][0]["family"]
        assert fact.subject.given_name == pat["name"][0]["given"][0]
        assert fact.subject.date_of_birth == date.fromisoformat(pat["birthDate"])
        assert fact.subject.postcode == pat["address"][0]["postalCode"]
    (identified,) = payloads(result, PatientIdentified)
    assert identified.nhs_number is None and identified.nhs_number_verification is None
    # every taken resource is linked through its urn:uuid reference to that Patient
    encounters = payloads(result, EncounterRecorded)
    assert all(e.attendance == "attended" for e in encounters)
    conditions = payloads(result, ConditionRecorded)
    assert all(c.code.codings[0].system == SNOMED for c in conditions)
    assert all(c.encounter_ref and c.encounter_ref.startswith("Encounter/") for c in conditions)
    observations = payloads(result, ObservationRecorded)
    assert any(o.value is not None and o.value.kind == "quantity" for o in observations)
    # nothing of US health data is sensitive-service data
    assert {f.category for f in result.facts} == {None}
    taken_types = {e["resource"]["resourceType"] for e in source["entry"]} - set(
        SYNTHEA_UNSUPPORTED
    )
    assert taken_types <= {
        "Patient",
        "Encounter",
        "Condition",
        "Observation",
        "CarePlan",
        "Organization",
        "Practitioner",
    }


@pytest.mark.samples
def test_synthea_bulk_patients_are_demographics_for_the_match_queue(samples_dir: Path) -> None:
    path = samples_dir / "synthea" / "bulk10-Patient.000.ndjson"
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    result = read(path)
    assert [f.ref for f in result.facts] == [
        f"line[{i}](Patient/{p['id']})" for i, p in enumerate(lines, start=1)
    ]
    for fact, source in zip(result.facts, lines, strict=True):
        assert fact.subject.nhs_number is None
        assert fact.subject.date_of_birth == date.fromisoformat(source["birthDate"])
        payload = fact.payload
        assert isinstance(payload, PatientIdentified)
        assert payload.nhs_number is None
        assert payload.deceased == ("deceasedDateTime" in source or None)


@pytest.mark.samples
def test_hl7_care_plan_is_refused_for_want_of_its_patient(samples_dir: Path) -> None:
    result = read(samples_dir / "fhir-r4" / "careplan-example-f201-renal.json")
    (line,) = not_taken(result)
    assert line.ref == "resource(CarePlan/f201)"
    assert line.field == "CarePlan.subject"


@pytest.mark.samples
def test_hl7_care_plan_with_its_patient_joins_the_contained_care_team(samples_dir: Path) -> None:
    plan = json.loads((samples_dir / "fhir-r4" / "careplan-example-f201-renal.json").read_bytes())
    data = bundle(patient(id="f201", fullUrl="Patient/f201"), plan)
    result = parse(data)
    assert fact_counts(result) == {
        "health.patient_identified": 1,
        "health.care_plan_recorded": 1,
        "team.practitioner_joined": 2,
    }
    joined = payloads(result, PractitionerJoined)
    assert [j.practitioner_id for j in joined] == ["Practitioner/f201", "Practitioner/f204"]
    assert {j.role for j in joined} == {"health_practitioner"}  # "Review of care plan", "Carer"
    assert all(j.since == date(2013, 3, 11) for j in joined)  # undated: from the plan's period
    refs = [f.ref for f in result.facts if isinstance(f.payload, PractitionerJoined)]
    assert (
        refs[0]
        == "Bundle.entry[1].resource(CarePlan/f201).careTeam[0](CareTeam#careteam).participant[0]"
    )


@pytest.mark.samples
@pytest.mark.parametrize(
    ("name", "field", "fragment"),
    [
        # the grantor is a RelatedPerson, and then a Practitioner: in what capacity they
        # decided is not said, and the hub does not guess it
        ("fhir-r4/consent-example-smartonfhir.json", "Consent.performer[0]", "capacity is unknown"),
        (
            "ukcore/UKCore-Consent-ForInformationAccess-Example.xml",
            "Consent.performer[0]",
            "capacity is unknown",
        ),
    ],
)
def test_sample_consents_with_their_patient_reach_the_consent_import(
    samples_dir: Path, name: str, field: str, fragment: str
) -> None:
    path = samples_dir / name
    if path.suffix == ".xml":
        from hub.consent.fhir import parse_consent_xml

        consent = json.loads(parse_consent_xml(path.read_bytes()).model_dump_json())
    else:
        consent = json.loads(path.read_bytes())
    reference = consent["patient"]["reference"]
    pid = reference.split("/")[-1]
    result = parse(bundle(patient(id=pid, fullUrl=reference), consent), policy=POLICY)
    assert fact_counts(result) == {"health.patient_identified": 1}
    (line,) = not_taken(result)
    assert line.field == field and fragment in line.reason and line.rule == "consent_import"


# =========================================================================== generated


def test_generated_bundle_of_1000_resources_yields_the_expected_facts() -> None:
    data = generate_bundle(1000, seed=7)
    source = json.loads(data)
    types = collections.Counter(e["resource"]["resourceType"] for e in source["entry"])
    assert sum(types.values()) == 1000
    result = parse(data)
    advice = sum(
        1
        for e in source["entry"]
        if e["resource"]["resourceType"] == "DocumentReference" and "category" in e["resource"]
    )
    participants = sum(
        len(e["resource"]["participant"])
        for e in source["entry"]
        if e["resource"]["resourceType"] == "CareTeam"
    )
    assert fact_counts(result) == {
        "health.patient_identified": types["Patient"],
        "family.related_person_recorded": types["RelatedPerson"],
        "health.encounter_recorded": types["Encounter"],
        "health.condition_recorded": types["Condition"],
        "health.observation_recorded": types["Observation"],
        "health.care_plan_recorded": types["CarePlan"],
        "team.practitioner_joined": participants,
        "health.document_recorded": types["DocumentReference"] - advice,
        "plan.advice_submitted": advice,
    }
    # Immunizations are not taken; the GP's role and practitioner are referenced by no team
    assert not_taken_counts(result) == {
        ("unsupported", "resource_type"): types["Immunization"],
        ("unsupported", "context_only"): 2,
    }
    # every NHS number passes its check digit, and the verification status travels with it
    for p in payloads(result, PatientIdentified):
        assert nhs.is_valid(p.nhs_number)
        assert p.nhs_number_verification is not None
        assert p.gp_practice_code == "Y99999"
    # CAMHS encounters (treatment function 711) and what hangs off them are mental health
    encounters = [
        e["resource"] for e in source["entry"] if e["resource"]["resourceType"] == "Encounter"
    ]
    camhs_sent = sum(1 for e in encounters if "711" in json.dumps(e.get("serviceType")))
    camhs = [
        f
        for f in result.facts
        if isinstance(f.payload, EncounterRecorded) and f.category == "mental_health"
    ]
    assert camhs_sent > 0 and len(camhs) == camhs_sent
    assert all(f.source.organisation_code == "RYY" for f in camhs)
    dna_sent = sum(1 for e in encounters if e["status"] == "cancelled")
    dna = [p for p in payloads(result, EncounterRecorded) if p.attendance == "did_not_attend"]
    assert dna_sent > 0 and len(dna) == dna_sent
    assert result.message_id == "Bundle/synthetic-7-1000@2024-06-01T12:00:00+00:00"
    # the same bytes give the same facts (idempotency rests on message id + ref)
    again = parse(data)
    assert [(f.ref, f.payload) for f in again.facts] == [(f.ref, f.payload) for f in result.facts]


# =========================================================================== bundle rules


def test_subject_by_nhs_number_identifier_needs_no_patient_in_the_message() -> None:
    obs = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"identifier": {"system": NHS_SYSTEM, "value": "9434765919"}},
        "effectiveDateTime": "2024-02-01",
        "valueQuantity": {"value": 31.5, "unit": "kg"},
    }
    result = parse(json.dumps(obs).encode())
    (fact,) = result.facts
    assert fact.subject.nhs_number == "9434765919"
    assert fact.subject.given_name is None
    assert fact.occurred_at == datetime(2024, 2, 1, tzinfo=UTC)


def test_a_patient_with_no_nhs_number_and_no_name_and_birth_date_is_not_identifiable() -> None:
    data = bundle(
        patient(identifier=[], birthDate=None),
        {
            "resourceType": "Condition",
            "id": "c",
            "subject": {"reference": PAT},
            "code": {"text": "x"},
        },
    )
    result = parse(data)
    assert result.facts == []
    assert [n.rule for n in not_taken(result)] == ["subject_not_identifiable"] * 2


def test_impossible_dates_are_refused_with_the_field_and_rule() -> None:
    data = bundle(
        patient(birthDate="2099-01-01"),
        {
            "resourceType": "Encounter",
            "id": "e",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": PAT},
            "period": {"start": "2024-01-02T10:00:00Z", "end": "2024-01-01"},
        },
        {
            "resourceType": "CarePlan",
            "id": "cp",
            "status": "active",
            "intent": "plan",
            "subject": {"reference": PAT},
            "period": {"start": "2024-03-01", "end": "2024-02-01"},
        },
    )
    result = parse(data)
    lines = {(n.field, n.rule) for n in not_taken(result)}
    assert lines == {
        ("Patient.birthDate", "not_in_future"),
        ("Encounter.period.end", "end_before_start"),
        ("CarePlan.period.end", "end_before_start"),
    }
    assert result.facts == []  # the NHS number alone would link, but nothing else was valid


def test_invalid_resources_name_the_fhir_path_and_reason_never_the_value() -> None:
    data = bundle(
        patient(),
        {
            "resourceType": "Condition",
            "id": "c",
            "subject": {"reference": PAT},
            "code": {"text": "x"},
            "onsetDateTime": "2024-13-45",
        },
        {
            "resourceType": "Observation",
            "id": "o",
            "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": PAT},
            "valueString": "private words",
            "valueInteger": 3,
        },
        {
            "resourceType": "Encounter",
            "id": "e",
            "status": "walked-in",
            "class": {"code": "AMB"},
            "subject": {"reference": PAT},
        },
    )
    result = parse(data)
    by_field = {n.field: n for n in not_taken(result)}
    assert by_field["Condition.onsetDateTime"].reason.startswith("not valid FHIR R4 Condition")
    assert "value[x]" in by_field["Observation"].reason or "value" in by_field["Observation"].reason
    assert by_field["Encounter.status"].rule == "code_not_in_value_set"
    for line in not_taken(result):
        assert "2024-13-45" not in line.reason and "private words" not in line.reason
        assert "walked-in" not in line.reason
    assert fact_counts(result) == {"health.patient_identified": 1}


def test_unsupported_duplicate_and_delete_entries_are_explained() -> None:
    doc = json.loads(bundle(patient(), {"resourceType": "Immunization", "id": "i"}))
    doc["entry"].append({"resource": {**doc["entry"][0]["resource"]}})
    doc["entry"].append({"request": {"method": "DELETE", "url": "Patient/p1"}})
    doc["entry"].append({"resource": "not an object"})
    result = parse(json.dumps(doc).encode())
    assert [(n.kind, n.field) for n in not_taken(result)] == [
        ("unsupported", "Bundle.entry[3].request.method"),
        ("invalid", "Bundle.entry[4].resource"),
        ("unsupported", "Bundle.entry[1].resource"),
        ("duplicate", "Bundle.entry[2].resource.id"),
    ]
    assert "Immunization" in not_taken(result)[2].reason


def test_an_nhs_number_used_as_a_resource_id_is_masked_in_every_ref() -> None:
    data = bundle(
        patient(id="9434765919", fullUrl="Patient/9434765919"),
        {
            "resourceType": "Encounter",
            "id": "e",
            "status": "finished",
            "class": {"code": "AMB"},
            "subject": {"reference": "Patient/9434765919"},
        },
    )
    result = parse(data)
    assert len(result.facts) == 2
    for fact in result.facts:
        assert "9434765919" not in fact.ref
        assert "9434765919" not in json.dumps(
            fact.payload.model_dump(mode="json", exclude={"nhs_number"})
        )
    assert payloads(result, PatientIdentified)[0].patient_ref == "Patient/masked1"


def test_message_id_is_the_message_header_then_identifier_then_bundle_id_then_a_hash() -> None:
    header = {
        "resourceType": "MessageHeader",
        "id": "mh-1",
        "eventCoding": {"system": "https://example.org/events", "code": "x"},
        "source": {"endpoint": "https://trust.example.nhs.uk/fhir", "software": "EPR"},
        "sender": {"identifier": {"system": ODS_SYSTEM, "value": "RR8"}},
    }
    msg = json.loads(bundle(header, patient()))
    msg["type"] = "message"
    result = parse(json.dumps(msg).encode())
    assert result.message_id == "MessageHeader/mh-1"
    assert result.facts[0].source.system == "EPR"
    assert result.facts[0].source.organisation_code == "RR8"
    assert not not_taken(result)
    with_identifier = bundle(patient(), identifier={"system": "https://x.example", "value": "b-9"})
    assert parse(with_identifier).message_id == "https://x.example|b-9"
    assert parse(bundle(patient(), id="b-1")).message_id == "Bundle/b-1"
    anonymous = bundle(patient())
    assert parse(anonymous).message_id == parse(anonymous).message_id
    assert (parse(anonymous).message_id or "").startswith("sha256:")


def test_partial_birth_date_is_not_guessed() -> None:
    result = parse(bundle(patient(birthDate="2015")))
    (identified,) = payloads(result, PatientIdentified)
    assert identified.date_of_birth is None
    assert result.facts[0].subject.nhs_number == "9434765919"
    assert any("partial date" in w for w in result.warnings)


# =========================================================================== team, attendance


def _team_bundle(role_code: dict[str, Any], **team: Any) -> bytes:
    return bundle(
        patient(),
        {
            "resourceType": "Organization",
            "id": "org",
            "fullUrl": "urn:uuid:org",
            "identifier": [{"system": ODS_SYSTEM, "value": "RXX"}],
        },
        {
            "resourceType": "Practitioner",
            "id": "pr",
            "fullUrl": "urn:uuid:pr",
            "identifier": [
                {"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "C1234567"}
            ],
        },
        {
            "resourceType": "PractitionerRole",
            "id": "role",
            "fullUrl": "urn:uuid:role",
            "practitioner": {"reference": "urn:uuid:pr"},
            "organization": {"reference": "urn:uuid:org"},
            "code": [role_code],
        },
        {
            "resourceType": "CareTeam",
            "id": "team",
            "status": "active",
            "subject": {"reference": PAT},
            "participant": [
                {"member": {"reference": "urn:uuid:role"}, "period": {"start": "2024-01-10"}}
            ],
            **team,
        },
    )


def test_care_team_members_join_with_role_ods_code_and_health_category() -> None:
    role = {
        "coding": [
            {"system": SNOMED, "code": "159026005", "display": "Speech and language therapist"}
        ]
    }
    result = parse(_team_bundle(role))
    assert fact_counts(result) == {"health.patient_identified": 1, "team.practitioner_joined": 1}
    fact = next(f for f in result.facts if isinstance(f.payload, PractitionerJoined))
    assert fact.payload == PractitionerJoined(
        practitioner_id="gmc:C1234567",
        role="speech_and_language_therapist",
        agency="health",
        organisation_code="RXX",
        since=date(2024, 1, 10),
    )
    assert fact.category == "health"
    assert fact.source.organisation_code == "RXX"
    assert fact.ref == "Bundle.entry[4].resource(CareTeam/team).participant[0]"
    assert not_taken(result) == []  # Organization, Practitioner, PractitionerRole were read


def test_a_members_work_contact_comes_from_the_role_else_the_practitioner() -> None:
    role = {"text": "Speech and language therapist"}
    data = json.loads(_team_bundle(role))
    resources = {e["resource"]["resourceType"]: e["resource"] for e in data["entry"]}
    resources["Practitioner"]["telecom"] = [
        {"system": "phone", "value": "07700 900123", "use": "home"},  # never shown
        {"system": "email", "value": "sam.lee@example.nhs.uk", "use": "work"},
    ]
    joined = next(
        f.payload
        for f in parse(json.dumps(data).encode()).facts
        if isinstance(f.payload, PractitionerJoined)
    )
    assert joined.contact == "sam.lee@example.nhs.uk"
    resources["PractitionerRole"]["telecom"] = [
        {"system": "phone", "value": "0113 496 0456", "use": "work"},
        {"system": "email", "value": "slt.team@example.nhs.uk"},
    ]
    joined = next(
        f.payload
        for f in parse(json.dumps(data).encode()).facts
        if isinstance(f.payload, PractitionerJoined)
    )
    assert joined.contact == "0113 496 0456, slt.team@example.nhs.uk"


def test_a_camhs_clinician_joining_is_mental_health_and_a_leaver_is_recorded() -> None:
    role = {"text": "CAMHS primary mental health worker"}
    result = parse(_team_bundle(role, period={"start": "2024-01-01", "end": "2024-06-30"}))
    joined = [f for f in result.facts if isinstance(f.payload, PractitionerJoined)]
    left = [f for f in result.facts if isinstance(f.payload, PractitionerLeft)]
    assert joined[0].payload.role == "camhs_clinician"  # type: ignore[attr-defined]
    assert joined[0].category == left[0].category == "mental_health"
    assert left[0].payload == PractitionerLeft(
        practitioner_id="gmc:C1234567", until=date(2024, 6, 30)
    )
    assert left[0].ref.endswith(".participant[0].period.end")


@pytest.mark.parametrize(
    ("status", "extension", "attendance"),
    [
        ("finished", None, "attended"),
        ("cancelled", None, "cancelled"),
        ("planned", None, "planned"),
        (
            "cancelled",
            {"system": "https://fhir.nhs.uk/CodeSystem/attended-or-did-not-attend", "code": "3"},
            "did_not_attend",
        ),
        ("cancelled", {"system": SNOMED, "code": "281399006"}, "did_not_attend"),
    ],
)
def test_attendance_comes_from_status_and_any_did_not_attend_code(
    status: str, extension: dict[str, str] | None, attendance: str
) -> None:
    enc: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": "e",
        "status": status,
        "class": {"code": "AMB"},
        "subject": {"reference": PAT},
    }
    if extension:
        enc["extension"] = [{"url": "https://example.org/attendance", "valueCoding": extension}]
    (encounter,) = payloads(parse(bundle(patient(), enc)), EncounterRecorded)
    assert encounter.attendance == attendance


@pytest.mark.parametrize(
    ("field", "concept", "category"),
    [
        (
            "serviceType",
            {
                "coding": [
                    {"system": "https://fhir.nhs.uk/CodeSystem/treatment-function", "code": "711"}
                ]
            },
            "mental_health",
        ),
        ("serviceType", {"text": "Sexual health clinic"}, "sexual_health"),
        (
            "reasonCode",
            [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "F32.1"}]}],
            "mental_health",
        ),
        ("reasonCode", [{"coding": [{"system": SNOMED, "code": "105629000"}]}], "sexual_health"),
        # neurodevelopmental needs are SEND needs, not mental health: not raised
        (
            "reasonCode",
            [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "F84.0"}]}],
            None,
        ),
        ("serviceType", {"text": "Community paediatrics"}, None),
    ],
)
def test_sensitive_services_raise_the_category_of_the_encounter_and_what_hangs_off_it(
    field: str, concept: Any, category: str | None
) -> None:
    enc = {
        "resourceType": "Encounter",
        "id": "e",
        "fullUrl": "urn:uuid:e",
        "status": "finished",
        "class": {"code": "AMB"},
        "subject": {"reference": PAT},
        field: concept,
    }
    obs = {
        "resourceType": "Observation",
        "id": "o",
        "status": "final",
        "code": {"text": "score"},
        "subject": {"reference": PAT},
        "encounter": {"reference": "urn:uuid:e"},
        "valueInteger": 12,
    }
    result = parse(bundle(patient(), enc, obs))
    cats = {type(f.payload).__name__: f.category for f in result.facts}
    assert cats == {
        "PatientIdentified": None,
        "EncounterRecorded": category,
        "ObservationRecorded": category,
    }


# =========================================================================== documents


def _document(**fields: Any) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "id": "d1",
        "status": "current",
        "subject": {"reference": PAT},
        "date": "2024-04-02T10:00:00+01:00",
        "author": [{"reference": "urn:uuid:pr"}],
        "custodian": {"identifier": {"system": ODS_SYSTEM, "value": "RXX"}},
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "url": "https://docs.example.nhs.uk/d1.pdf",
                    "title": "Paediatric advice",
                }
            }
        ],
        **fields,
    }


PRACTITIONER = {
    "resourceType": "Practitioner",
    "id": "pr",
    "fullUrl": "urn:uuid:pr",
    "identifier": [{"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "C7654321"}],
}


def test_a_document_answering_an_advice_request_is_plan_advice() -> None:
    request = {
        "resourceType": "ServiceRequest",
        "id": "sr",
        "fullUrl": "urn:uuid:sr",
        "status": "active",
        "intent": "order",
        "subject": {"reference": PAT},
        "identifier": [
            {"system": ADVICE_REQUEST_SYSTEM, "value": "AR-42"},
            {"system": PLAN_ID_SYSTEM, "value": "plan-7"},
        ],
    }
    doc = _document(context={"related": [{"reference": "urn:uuid:sr"}]})
    result = parse(bundle(patient(), PRACTITIONER, request, doc))
    assert fact_counts(result) == {"health.patient_identified": 1, "plan.advice_submitted": 1}
    fact = result.facts[1]
    advice = fact.payload
    assert isinstance(advice, AdviceSubmitted)
    assert advice.advice_request_id == "AR-42"
    assert advice.practitioner_id == "gmc:C7654321"
    assert advice.submitted_on == date(2024, 4, 2)
    assert advice.document.document_id == "DocumentReference/d1"
    assert advice.document.url == "https://docs.example.nhs.uk/d1.pdf"
    assert advice.advice_category == "health"
    assert fact.plan_id == "plan-7"
    assert fact.category == "health"
    assert fact.purposes == ("ehc_assessment",) and fact.statutory_basis == "reg6_ehc_advice"
    assert not_taken(result) == []


def test_a_document_in_the_hub_advice_category_is_advice_even_without_a_request() -> None:
    doc = _document(
        category=[{"coding": [{"system": HUB_DOCUMENT_CATEGORY_SYSTEM, "code": "ehc-advice"}]}]
    )
    result = parse(bundle(patient(), PRACTITIONER, doc))
    (advice,) = payloads(result, AdviceSubmitted)
    assert advice.advice_request_id is None
    assert result.facts[1].statutory_basis is None


def test_any_other_document_is_a_health_document() -> None:
    doc = _document(
        type={"coding": [{"system": SNOMED, "code": "734163000", "display": "Care plan"}]}
    )
    result = parse(bundle(patient(), PRACTITIONER, doc))
    (recorded,) = payloads(result, DocumentRecorded)
    assert recorded.custodian_code == "RXX"
    assert recorded.dated == datetime(2024, 4, 2, 9, 0, tzinfo=UTC)
    assert recorded.attachments[0].content_type == "application/pdf"
    assert "attachments" in (personal_fields(DocumentRecorded) or ())
    # the practitioner is not read for a plain document
    assert [n.rule for n in not_taken(result)] == ["context_only"]


# =========================================================================== consent, family


def test_a_consent_given_by_the_young_person_in_the_bundle_is_recorded() -> None:
    original = ConsentRecorded.model_validate(
        {
            "consent_id": "c-9",
            "decision": "permit",
            "grantor": {"reference": "Patient/p1", "capacity": "young_person"},
            "given_on": "2024-03-01",
            "scope": {"categories": ["health"], "purposes": ["ehc_assessment"]},
            "period": {"start": "2024-03-01"},
            "capture_method": "form",
            "recorded_by": "coord-1",
        }
    )
    fhir = json.loads(consent_to_fhir(original, child_id="x", policy=POLICY).model_dump_json())
    fhir["extension"] = [e for e in fhir["extension"] if not e["url"].endswith("grantor-capacity")]
    fhir["patient"] = {"reference": PAT}
    fhir["performer"] = [{"reference": PAT}]
    fhir["id"] = "consent-9"
    result = parse(bundle(patient(), fhir), policy=POLICY)
    recorded = payloads(result, ConsentRecorded)
    assert len(recorded) == 1, not_taken(result)
    assert recorded[0].grantor.capacity == "young_person"
    assert recorded[0].scope.categories == ("health",)
    assert recorded[0].recorded_by == "fhir-import:nhs-trust"
    assert result.facts[1].occurred_at == datetime(2024, 3, 1, tzinfo=UTC)


def test_a_related_person_is_a_family_fact_in_the_identity_category() -> None:
    person = {
        "resourceType": "RelatedPerson",
        "id": "rp",
        "patient": {"reference": PAT},
        "relationship": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH"}
                ]
            }
        ],
        "name": [{"family": "Parentname", "given": ["Sam"]}],
        "telecom": [{"system": "email", "value": "sam@example.org"}],
        "address": [{"use": "home", "line": ["1 Road"], "postalCode": "ZZ99 3VZ"}],
    }
    result = parse(bundle(patient(), person))
    (recorded,) = payloads(result, RelatedPersonRecorded)
    assert recorded.relationships[0].code == "MTH"
    assert recorded.given_names == ("Sam",) and recorded.family_name == "Parentname"
    assert recorded.address is not None and recorded.address.postcode == "ZZ99 3VZ"
    assert RelatedPersonRecorded.category == "identity"
    assert {"given_names", "family_name", "contacts", "address"} <= set(
        personal_fields(RelatedPersonRecorded) or ()
    )
    # every fact wraps into an envelope of its declared category
    for fact in result.facts:
        env = Envelope.wrap(
            fact.payload, child_id="hc-1", source=fact.source, occurred_at=fact.occurred_at
        )
        assert env.category == "identity"


# =========================================================================== bad input


@pytest.mark.parametrize(
    ("data", "ctype", "fragment"),
    [
        (b"", JSON, "empty"),
        (b"{not json", JSON, "not valid JSON"),
        (b"[1, 2]", JSON, "JSON object"),
        (b'{"resourceType": "Bundle", "type": "history"}', JSON, "history"),
        (b'{"resourceType": "Bundle", "type": "collection", "entry": {}}', JSON, "array"),
        (b"\xff\xfe\x00garbage", JSON, "not valid"),
        ('{"resourceType": "Patient"}'.encode("utf-16-be"), JSON, "not valid JSON"),
        (b"<Patient><id value='x'/></Patient>", XML, "FHIR namespace"),
        (b"<Patient xmlns='http://hl7.org/fhir'><id value='x'/>", XML, "not well-formed"),
        (b"not json\nalso not\n", NDJSON, "no line"),
        (b"{}", "text/csv", "unsupported media type"),
    ],
)
def test_unreadable_bodies_are_permanent_errors_with_a_reason(
    data: bytes, ctype: str, fragment: str
) -> None:
    with pytest.raises(PermanentError) as err:
        parse(data, ctype)
    assert fragment in str(err.value)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>
<Patient xmlns="http://hl7.org/fhir"><id value="&lol2;"/></Patient>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE p [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Patient xmlns="http://hl7.org/fhir"><id value="&secret;"/></Patient>"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY])
def test_xml_with_a_dtd_or_entities_is_refused_before_parsing(data: bytes) -> None:
    with pytest.raises(PermanentError) as err:
        parse(data, XML)
    assert "unsafe XML refused" in str(err.value)


def test_other_charsets_are_decoded_and_a_wrong_one_refused() -> None:
    body = alone(patient(name=[{"family": "Zoë", "given": ["A"]}])).decode("unicode_escape")
    ok = parse(body.encode("latin-1"), f"{JSON}; charset=iso-8859-1")
    assert payloads(ok, PatientIdentified)[0].family_name == "Zoë"
    assert payloads(parse(body.encode("utf-16"), JSON), PatientIdentified)
    with pytest.raises(PermanentError):
        parse(body.encode("latin-1"), JSON)


def test_ndjson_takes_the_good_lines_and_explains_the_bad() -> None:
    good = alone(patient()).decode()
    result = parse(f"{good}\n{{broken\n\n[1]\n".encode(), NDJSON)
    assert fact_counts(result) == {"health.patient_identified": 1}
    assert [(n.ref, n.rule) for n in not_taken(result)] == [
        ("line[2]", "json"),
        ("line[4]", "required"),
    ]


def test_importing_the_adapter_does_not_import_fhir_resources() -> None:
    code = "import sys, hub.adapters.fhir; print('fhir.resources' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- properties

CONTENT_TYPES = st.sampled_from([JSON, XML, NDJSON, f"{JSON}; charset=utf-16"])


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=2000), ctype=CONTENT_TYPES)
def test_random_bytes_never_raise_anything_but_permanent_error(data: bytes, ctype: str) -> None:
    try:
        parse(data, ctype)
    except PermanentError:
        pass


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["2024-13-01", "Patient/p1", PAT, "urn:uuid:e", ""]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
SMALL_BUNDLE = json.loads(generate_bundle(40, seed=3))


def _nodes(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_nodes(value, (*path, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_nodes(value, (*path, i)))
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_bundles_never_raise_anything_but_permanent_error(data: st.DataObject) -> None:
    doc = copy.deepcopy(SMALL_BUNDLE)
    paths = _nodes(doc)
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(paths[1:]))
        try:
            parent: Any = doc
            for key in path[:-1]:
                parent = parent[key]
            if data.draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = data.draw(JSON_VALUES)
        except (IndexError, KeyError, TypeError):
            pass  # an earlier mutation removed the way there
    try:
        result = parse(json.dumps(doc).encode())
    except PermanentError:
        return
    assert all(n.reason for n in result.not_taken)
    assert all(n.rule != "adapter_error" for n in result.not_taken), result.not_taken


@pytest.mark.samples
def test_mutated_sample_xml_never_raises_anything_but_permanent_error(samples_dir: Path) -> None:
    xml = (samples_dir / "ukcore" / "UKCore-Patient-RichardSmith-Example.xml").read_bytes()

    @settings(max_examples=80, deadline=None)
    @given(cut=st.integers(0, len(xml)), insert=st.binary(max_size=8), drop=st.integers(0, 16))
    def check(cut: int, insert: bytes, drop: int) -> None:
        try:
            parse(xml[:cut] + insert + xml[cut + drop :], XML)
        except PermanentError:
            pass

    check()


@pytest.mark.parametrize(
    ("text", "role"),
    [
        ("Consultant paediatric neurologist", "neurologist"),  # not "paediatrician"
        ("Consultant paediatrician", "paediatrician"),
        ("Consultant orthopaedic surgeon", "orthopaedic_surgeon"),
        ("Scoliosis clinical nurse specialist", "scoliosis_nurse"),
        ("Orthotist", "orthotist"),
        ("Consultant ophthalmologist", "ophthalmologist"),
        ("Community dentist", "dentist"),
        ("Continence nurse adviser", "continence_adviser"),
        ("Wheelchair services therapist", "wheelchair_services"),
        ("Review of care plan", None),
    ],
)
def test_role_words_map_onto_the_vocabulary(text: str, role: str | None) -> None:
    from fhir.resources.R4B.codeableconcept import CodeableConcept

    from hub.adapters.fhir_codes import role_from_concepts
    from hub.consent.policy import load_policy

    found = role_from_concepts([CodeableConcept(text=text)])
    assert found == role
    assert found is None or load_policy().roles[found].kind == "practitioner"


# =========================================================================== people by name


def xml_bundle(samples: Path, *entries: tuple[str, str | Path]) -> bytes:
    """An XML collection Bundle of (fullUrl, sample file or inline resource XML): sample
    resources are placed in it as published, never copied into the test."""
    parts = []
    for full_url, resource in entries:
        text = resource.read_text(encoding="utf-8") if isinstance(resource, Path) else resource
        text = re.sub(r"^<\?xml[^>]*\?>", "", text.strip())
        parts.append(f'<entry><fullUrl value="{full_url}"/><resource>{text}</resource></entry>')
    return (
        '<Bundle xmlns="http://hl7.org/fhir"><type value="collection"/>'
        + "".join(parts)
        + "</Bundle>"
    ).encode()


def _uk_core_team(member: str) -> str:
    return (
        '<CareTeam xmlns="http://hl7.org/fhir"><id value="tac"/><status value="active"/>'
        '<subject><reference value="Patient/UKCore-Patient-RichardSmith-Example"/></subject>'
        f'<participant><member><reference value="{member}"/></member>'
        '<period><start value="2024-01-10"/></period></participant></CareTeam>'
    )


@pytest.mark.samples
def test_uk_core_gp_joins_by_name_with_the_name_of_their_practice(samples_dir: Path) -> None:
    uk = samples_dir / "ukcore"
    practitioner = uk / "UKCore-Practitioner-DoctorPaulRastall-Example.xml"
    practice = uk / "UKCore-Organization-WhiteRoseMedicalCentre-Example.xml"
    role = "PractitionerRole/UKCore-PractitionerRole-GeneralPractitioner-Example"
    data = xml_bundle(
        samples_dir,
        (
            "Patient/UKCore-Patient-RichardSmith-Example",
            uk / "UKCore-Patient-RichardSmith-Example.xml",
        ),
        ("Practitioner/UKCore-Practitioner-DoctorPaulRastall-Example", practitioner),
        ("Organization/UKCore-Organization-WhiteRoseMedicalCentre-Example", practice),
        (role, uk / "UKCore-PractitionerRole-GeneralPractitioner-Example.xml"),
        ("CareTeam/tac", _uk_core_team(role)),
    )
    result = parse(data, XML)
    (joined,) = payloads(result, PractitionerJoined)
    expected = " ".join(
        v for element in ("prefix", "given", "family") for v in xml_values(practitioner, element)
    )
    assert joined.name == expected
    assert joined.role == "gp"  # SNOMED CT 62247001 on the PractitionerRole
    assert joined.organisation_name in xml_values(practice, "name")
    assert joined.organisation_code in xml_values(practice, "value")
    assert not_taken(result) == []  # Practitioner, PractitionerRole and Organization all read


@pytest.mark.samples
def test_the_uk_core_care_teams_unresolved_member_joins_by_id_without_a_guessed_name(
    samples_dir: Path,
) -> None:
    """The published CareTeam names `Practitioner/UKCore-Practitioner-PaulRastall-Example`,
    which is not the Practitioner sample's id: nothing in the message names that member."""
    uk = samples_dir / "ukcore"
    data = xml_bundle(
        samples_dir,
        (
            "Patient/UKCore-Patient-RichardSmith-Example",
            uk / "UKCore-Patient-RichardSmith-Example.xml",
        ),
        (
            "Practitioner/UKCore-Practitioner-DoctorPaulRastall-Example",
            uk / "UKCore-Practitioner-DoctorPaulRastall-Example.xml",
        ),
        (
            "CareTeam/UKCore-CareTeam-WeightManagementTeam-Example",
            uk / "UKCore-CareTeam-WeightManagementTeam-Example.xml",
        ),
    )
    result = parse(data, XML)
    (joined,) = payloads(result, PractitionerJoined)
    assert joined.practitioner_id == "Practitioner/UKCore-Practitioner-PaulRastall-Example"
    assert joined.name is None and joined.organisation_name is None
    assert joined.role == "health_practitioner"  # the sample gives no role at all


@pytest.mark.samples
def test_hl7_care_team_members_are_named_by_their_reference_display_and_unmapped_roles_reported(
    samples_dir: Path,
) -> None:
    path = samples_dir / "fhir-r4" / "careplan-example-f201-renal.json"
    plan = json.loads(path.read_bytes())
    team = next(c for c in plan["contained"] if c["resourceType"] == "CareTeam")
    result = parse(bundle(patient(id="f201", fullUrl="Patient/f201"), plan))
    joined = payloads(result, PractitionerJoined)
    assert [j.name for j in joined] == [p["member"]["display"] for p in team["participant"]]
    # "Review of care plan" and "Carer" map to no role of the vocabulary: each is reported
    # by its path, with its code, and the member still joins
    lines = [n for n in result.not_taken if n.rule == "role_not_in_vocabulary"]
    base = "Bundle.entry[1].resource(CarePlan/f201).careTeam[0](CareTeam#careteam)"
    assert [n.ref for n in lines] == [
        f"{base}.participant[0].role[0]",
        f"{base}.participant[1].role[0]",
    ]
    for line, participant in zip(lines, team["participant"], strict=True):
        coding = participant["role"][0]["coding"][0]
        assert f"{coding['system']}|{coding['code']}" in line.reason
        assert coding["display"] not in line.reason  # codes, never free text
        assert line.kind == "unsupported" and line.field == "CareTeam.participant.role"


def _named_team_bundle(role_code: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_team_bundle(role_code))
    resources = {e["resource"]["resourceType"]: e["resource"] for e in data["entry"]}
    resources["Practitioner"]["name"] = [
        {"use": "old", "family": "Oldname", "given": ["Priya"]},
        {"use": "official", "prefix": ["Dr"], "given": ["Priya"], "family": "Shah"},
    ]
    resources["Organization"]["name"] = "Synthetic Community Health NHS Trust"
    return data


def test_a_member_is_named_from_the_practitioner_and_their_organisation() -> None:
    role = {"coding": [{"system": SNOMED, "code": "82296001", "display": "Pediatrician"}]}
    result = parse(json.dumps(_named_team_bundle(role)).encode())
    (joined,) = payloads(result, PractitionerJoined)
    assert joined.name == "Dr Priya Shah"  # the official name, not the old one
    assert joined.organisation_name == "Synthetic Community Health NHS Trust"
    assert joined.organisation_code == "RXX"
    assert not_taken(result) == []


def test_a_member_whose_organisation_has_no_resource_is_named_by_the_reference_display() -> None:
    data = _named_team_bundle({"text": "Paediatrician"})
    team = data["entry"][-1]["resource"]
    team["participant"][0]["onBehalfOf"] = {
        "identifier": {"system": ODS_SYSTEM, "value": "RYY"},
        "display": "Synthetic Children's Hospital",
    }
    (joined,) = payloads(parse(json.dumps(data).encode()), PractitionerJoined)
    assert (joined.organisation_code, joined.organisation_name) == (
        "RYY",
        "Synthetic Children's Hospital",
    )


def test_an_unmapped_practitioner_role_code_is_reported_by_its_path() -> None:
    role = {
        "coding": [
            {"system": SNOMED, "code": "309294001", "display": "Accident and emergency doctor"}
        ]
    }
    result = parse(json.dumps(_named_team_bundle(role)).encode())
    (joined,) = payloads(result, PractitionerJoined)
    assert joined.role == "health_practitioner" and joined.name == "Dr Priya Shah"
    (line,) = not_taken(result)
    assert line.ref == "Bundle.entry[3].resource(PractitionerRole/role).code[0]"
    assert line.field == "PractitionerRole.code" and line.rule == "role_not_in_vocabulary"
    assert f"{SNOMED}|309294001" in line.reason and "Accident" not in line.reason


def test_a_member_with_no_name_anywhere_joins_without_one() -> None:
    role = {"coding": [{"system": SNOMED, "code": "82296001"}]}
    (joined,) = payloads(parse(_team_bundle(role)), PractitionerJoined)
    assert joined.name is None and joined.organisation_name is None


# =========================================================================== versions


def test_each_fact_names_its_resource_and_the_resources_version() -> None:
    cond = {
        "resourceType": "Condition",
        "id": "c1",
        "meta": {"versionId": "4", "lastUpdated": "2024-10-01T08:00:00Z", "source": "#a"},
        "text": {"status": "generated", "div": "<div xmlns='http://www.w3.org/1999/xhtml'>x</div>"},
        "code": {"coding": [{"system": SNOMED, "code": "35489007"}]},
        "subject": {"reference": PAT},
    }
    unversioned = {**cond, "id": "c2"}
    del unversioned["meta"]
    team = _team_bundle({"coding": [{"system": SNOMED, "code": "309343006"}]})
    result = parse(bundle(patient(), cond, unversioned))
    by_ref = {
        f.payload.condition_ref: f.source
        for f in result.facts
        if isinstance(f.payload, ConditionRecorded)
    }
    assert by_ref["Condition/c1"].record_id == "Condition/c1"
    assert by_ref["Condition/c1"].record_version == "4"
    assert by_ref["Condition/c1"].record_updated == datetime(2024, 10, 1, 8, tzinfo=UTC)
    assert by_ref["Condition/c2"].record_id == "Condition/c2"
    assert (
        by_ref["Condition/c2"].record_version is None
        and by_ref["Condition/c2"].record_updated is None
    )
    joined = [f for f in parse(team).facts if isinstance(f.payload, PractitionerJoined)]
    assert joined and all(f.source.record_id and "#" in f.source.record_id for f in joined)


def test_elements_of_a_taken_resource_the_hub_does_not_read_each_have_a_line() -> None:
    child = patient(
        identifier=[{"system": NHS_SYSTEM, "value": "9434765919"},
                    {"system": "http://hospital.example/mrn", "value": "MRN-1"}],
        address=[{"use": "home", "line": ["1 Lane"], "city": "Leeds", "postalCode": "ZZ99 3VZ"}],
        contact=[{"name": {"family": "Parent"}, "gender": "female"}],
        text={"status": "generated", "div": "<div xmlns='http://www.w3.org/1999/xhtml'>A</div>"},
    )  # fmt: skip
    obs = {"resourceType": "Observation", "status": "final", "subject": {"reference": PAT},
           "code": {"text": "weight"}, "meta": {"profile": ["http://x/p"]}}  # fmt: skip
    result = parse(bundle(child, dict(obs, id="o1"), dict(obs, id="o2")))
    lines = {n.ref: n for n in result.not_taken if n.rule == "hub.not_read"}
    where = "Bundle.entry[*].resource"
    for element in ("address.line", "address.city", "contact.gender", "text"):
        assert f"{where}(Patient).{element}" in lines, element
    assert f"{where}(Patient).address.postalCode" not in lines  # read: the child's postcode
    assert lines[f"{where}(Observation).meta.profile"].reason.endswith(
        "(in 2 Observation resources)"
    )
    assert "Bundle.entry[0].resource(Patient/p1).identifier[1]" in lines  # the MRN, not carried
    assert "Bundle.entry[0].resource(Patient/p1).identifier[0]" not in lines
    assert all("MRN-1" not in n.reason and "Leeds" not in n.reason for n in lines.values())
