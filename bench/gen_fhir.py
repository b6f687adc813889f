"""Synthetic NHS FHIR R4 bundles for the FHIR adapter benchmark and tests.

`generate_bundle(n_resources, seed)` writes a `collection` Bundle of exactly
`n_resources` resources, as JSON bytes: shared Organizations (ODS codes), Practitioners
and PractitionerRoles first, then for each synthetic child a Patient (a valid NHS number
with its verification status), a RelatedPerson, two Encounters (one in four with CAMHS,
one in four a did-not-attend), a Condition, three Observations (a quantity, a blood
pressure with components, a coded answer), a CarePlan, a CareTeam of two practitioners,
a DocumentReference (one in three an EHC advice answer) and an Immunization (a type the
hub does not take). All names, numbers and dates are made up from `seed`. `python -m
bench.gen_fhir [N]` measures facts/s through `parse_fhir` beside fhir.resources' own
`Bundle.model_validate_json` of the same bytes, and prints the ratio.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
import uuid
from datetime import date, timedelta
from typing import Any

import orjson

NHS = "https://fhir.nhs.uk/Id/nhs-number"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
VERIFICATION_URL = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
)
TREATMENT_FUNCTION = "https://fhir.nhs.uk/CodeSystem/NHSDataModelAndDictionary-treatment-function"
ATTENDANCE = "https://fhir.nhs.uk/CodeSystem/NHSDataModelAndDictionary-attended-or-did-not-attend"
HUB_DOC_CATEGORY = "https://tac-hub.example/fhir/CodeSystem/document-category"
ADVICE_REQUEST = "https://tac-hub.example/fhir/NamingSystem/advice-request-id"

GIVEN = ["Amara", "Ben", "Chloe", "Dev", "Ella", "Finn", "Grace", "Harun", "Isla", "Jonah"]
FAMILY = ["Ashworth", "Bello", "Carter", "Dhillon", "Evans", "Fraser", "Gill", "Hughes"]
ROLES = [  # (SNOMED occupation code or None, display, treatment function)
    ("82296001", "Paediatrician", "321"),
    ("159026005", "Speech and language therapist", "652"),
    ("80546007", "Occupational therapist", "651"),
    ("36682004", "Physiotherapist", "650"),
    (None, "CAMHS clinical psychologist", "711"),
    ("62247001", "General practitioner", "600"),
]
PER_CHILD = 12
SHARED = 3 + 2 * len(ROLES)


def nhs_number(rng: random.Random) -> str:
    """A made-up NHS number with a correct modulus-11 check digit (999 test range)."""
    while True:
        digits = [9, 9, 9] + [rng.randrange(10) for _ in range(6)]
        total = sum(d * w for d, w in zip(digits, range(10, 1, -1), strict=True))
        check = 11 - total % 11
        check = 0 if check == 11 else check
        if check != 10:
            return "".join(map(str, digits)) + str(check)


def _urn(rng: random.Random) -> str:
    return f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"


def _cc(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _shared(rng: random.Random) -> tuple[list[dict[str, Any]], dict[str, str]]:
    entries: list[dict[str, Any]] = []
    refs: dict[str, str] = {}
    for key, code, name in (
        ("trust", "RXX", "SYNTHETIC COMMUNITY HEALTH NHS TRUST"),
        ("gp", "Y99999", "SYNTHETIC MEDICAL PRACTICE"),
        ("camhs", "RYY", "SYNTHETIC MENTAL HEALTH NHS TRUST"),
    ):
        url = _urn(rng)
        refs[key] = url
        entries.append(
            {
                "fullUrl": url,
                "resource": {
                    "resourceType": "Organization",
                    "identifier": [{"system": ODS, "value": code}],
                    "name": name,
                },
            }
        )
    for i, (snomed, display, function) in enumerate(ROLES):
        prac_url, role_url = _urn(rng), _urn(rng)
        refs[f"role{i}"] = role_url
        entries.append(
            {
                "fullUrl": prac_url,
                "resource": {
                    "resourceType": "Practitioner",
                    "identifier": [
                        {
                            "system": "https://fhir.hl7.org.uk/Id/gmc-number",
                            "value": f"C{7000000 + i}",
                        }
                    ],
                    "name": [{"family": rng.choice(FAMILY), "given": [rng.choice(GIVEN)]}],
                },
            }
        )
        coding = {"system": SNOMED, "code": snomed, "display": display} if snomed else None
        entries.append(
            {
                "fullUrl": role_url,
                "resource": {
                    "resourceType": "PractitionerRole",
                    "practitioner": {"reference": prac_url},
                    "organization": {"reference": refs["camhs" if function == "711" else "trust"]},
                    "code": [
                        {"coding": [coding], "text": display} if coding else {"text": display}
                    ],
                    "specialty": [_cc(TREATMENT_FUNCTION, function, display)],
                },
            }
        )
    return entries, refs


def _child(rng: random.Random, n: int, refs: dict[str, str]) -> list[dict[str, Any]]:
    dob = date(2008, 1, 1) + timedelta(days=rng.randrange(12 * 365))
    seen = date(2023, 1, 1) + timedelta(days=rng.randrange(700))
    day = seen.isoformat()
    pat, enc_a, enc_b, cond = _urn(rng), _urn(rng), _urn(rng), _urn(rng)
    family = rng.choice(FAMILY)
    out: list[dict[str, Any]] = [
        {
            "fullUrl": pat,
            "resource": {
                "resourceType": "Patient",
                "identifier": [
                    {
                        "extension": [
                            {
                                "url": VERIFICATION_URL,
                                "valueCodeableConcept": _cc(
                                    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland",
                                    "01",
                                    "Number present and verified",
                                ),
                            }
                        ],
                        "system": NHS,
                        "value": nhs_number(rng),
                    }
                ],
                "name": [{"use": "official", "family": family, "given": [rng.choice(GIVEN)]}],
                "gender": rng.choice(["male", "female"]),
                "birthDate": dob.isoformat(),
                "address": [
                    {
                        "use": "home",
                        "line": [f"{n % 200 + 1} Synthetic Road"],
                        "postalCode": "ZZ99 3VZ",
                    }
                ],
                "generalPractitioner": [{"reference": refs["gp"]}],
            },
        },
        {
            "fullUrl": _urn(rng),
            "resource": {
                "resourceType": "RelatedPerson",
                "patient": {"reference": pat},
                "relationship": [
                    _cc("http://terminology.hl7.org/CodeSystem/v3-RoleCode", "MTH", "mother")
                ],
                "name": [{"family": family, "given": [rng.choice(GIVEN)]}],
                "telecom": [{"system": "phone", "value": "07700 900000", "use": "mobile"}],
            },
        },
        {
            "fullUrl": enc_a,
            "resource": {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "AMB",
                },
                "type": [_cc(SNOMED, "185389009", "Follow-up visit")],
                "serviceType": _cc(TREATMENT_FUNCTION, "290", "Community Paediatrics"),
                "subject": {"reference": pat},
                "period": {"start": f"{day}T09:30:00+00:00", "end": f"{day}T10:15:00+00:00"},
                "serviceProvider": {"reference": refs["trust"]},
            },
        },
    ]
    kind = n % 4
    enc_b_resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": pat},
        "period": {"start": f"{day}T14:00:00+00:00"},
        "serviceProvider": {"reference": refs["trust"]},
    }
    if kind == 0:
        enc_b_resource["serviceType"] = _cc(
            TREATMENT_FUNCTION, "711", "Child and Adolescent Psychiatry"
        )
        enc_b_resource["serviceProvider"] = {"reference": refs["camhs"]}
    elif kind == 1:
        enc_b_resource["status"] = "cancelled"
        enc_b_resource["extension"] = [
            {
                "url": "https://tac-hub.example/fhir/StructureDefinition/attendance",
                "valueCoding": {"system": ATTENDANCE, "code": "3", "display": "Did not attend"},
            }
        ]
    out.append({"fullUrl": enc_b, "resource": enc_b_resource})
    out.append(
        {
            "fullUrl": cond,
            "resource": {
                "resourceType": "Condition",
                "clinicalStatus": _cc(
                    "http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"
                ),
                "verificationStatus": _cc(
                    "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "confirmed",
                    "Confirmed",
                ),
                "code": _cc(SNOMED, "35919005", "Pervasive developmental disorder"),
                "subject": {"reference": pat},
                "encounter": {"reference": enc_a},
                "onsetDateTime": (dob + timedelta(days=900)).isoformat(),
                "recordedDate": day,
            },
        }
    )
    vital = {
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ]
    }
    out.append(
        {
            "fullUrl": _urn(rng),
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                **vital,
                "code": _cc(LOINC, "29463-7", "Body weight"),
                "subject": {"reference": pat},
                "encounter": {"reference": enc_a},
                "effectiveDateTime": f"{day}T09:40:00+00:00",
                "valueQuantity": {
                    "value": round(rng.uniform(15, 70), 1),
                    "unit": "kg",
                    "system": "http://unitsofmeasure.org",
                    "code": "kg",
                },
            },
        }
    )
    out.append(
        {
            "fullUrl": _urn(rng),
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                **vital,
                "code": _cc(LOINC, "85354-9", "Blood pressure panel"),
                "subject": {"reference": pat},
                "encounter": {"reference": enc_a},
                "effectiveDateTime": f"{day}T09:45:00+00:00",
                "component": [
                    {
                        "code": _cc(LOINC, code, name),
                        "valueQuantity": {
                            "value": rng.randrange(low, high),
                            "unit": "mmHg",
                            "system": "http://unitsofmeasure.org",
                            "code": "mm[Hg]",
                        },
                    }
                    for code, name, low, high in (
                        ("8480-6", "Systolic blood pressure", 90, 125),
                        ("8462-4", "Diastolic blood pressure", 55, 85),
                    )
                ],
            },
        }
    )
    out.append(
        {
            "fullUrl": _urn(rng),
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": _cc(SNOMED, "364644000", "Functional observable"),
                "subject": {"reference": pat},
                "encounter": {"reference": enc_b},
                "effectiveDateTime": f"{day}T14:10:00+00:00",
                "valueCodeableConcept": _cc(SNOMED, "371150009", "Improved"),
            },
        }
    )
    out.append(
        {
            "fullUrl": _urn(rng),
            "resource": {
                "resourceType": "CarePlan",
                "status": "active",
                "intent": "plan",
                "category": [_cc(SNOMED, "736271009", "Outpatient care plan")],
                "subject": {"reference": pat},
                "period": {"start": day},
                "created": day,
                "addresses": [{"reference": cond}],
                "activity": [
                    {
                        "detail": {
                            "code": _cc(SNOMED, "5154007", "Speech therapy"),
                            "status": "in-progress",
                        }
                    }
                ],
            },
        }
    )
    out.append(
        {
            "fullUrl": _urn(rng),
            "resource": {
                "resourceType": "CareTeam",
                "status": "active",
                "subject": {"reference": pat},
                "period": {"start": day},
                "participant": [
                    {"member": {"reference": refs["role0"]}},
                    {"member": {"reference": refs[f"role{1 + n % 4}"]}},
                ],
                "managingOrganization": [{"reference": refs["trust"]}],
            },
        }
    )
    advice = n % 3 == 0
    document: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": _cc(SNOMED, "371531000", "Report of clinical encounter"),
        "subject": {"reference": pat},
        "date": f"{day}T16:00:00+00:00",
        "author": [{"reference": refs["role0"]}],
        "custodian": {"reference": refs["trust"]},
        "content": [
            {
                "attachment": {
                    "contentType": "application/pdf",
                    "url": f"https://docs.example.nhs.uk/synthetic/{n}.pdf",
                    "title": "Clinic letter",
                }
            }
        ],
    }
    if advice:
        document["category"] = [_cc(HUB_DOC_CATEGORY, "ehc-advice", "EHC needs assessment advice")]
        document["context"] = {
            "related": [{"identifier": {"system": ADVICE_REQUEST, "value": f"AR-{n:06d}"}}]
        }
    out.append({"fullUrl": _urn(rng), "resource": document})
    out.append(
        {
            "fullUrl": _urn(rng),
            "resource": {
                "resourceType": "Immunization",
                "status": "completed",
                "vaccineCode": _cc(SNOMED, "871751006", "Hepatitis A vaccine"),
                "patient": {"reference": pat},
                "occurrenceDateTime": day,
            },
        }
    )
    assert len(out) == PER_CHILD
    return out


def generate_bundle(n_resources: int, seed: int) -> bytes:
    """A collection Bundle of exactly `n_resources` synthetic resources (JSON bytes)."""
    if n_resources < 1:
        raise ValueError("n_resources must be at least 1")
    rng = random.Random(seed)
    entries, refs = _shared(rng)
    child = 0
    while len(entries) < n_resources:
        entries.extend(_child(rng, child, refs))
        child += 1
    bundle = {
        "resourceType": "Bundle",
        "id": f"synthetic-{seed}-{n_resources}",
        "meta": {"lastUpdated": "2024-06-01T12:00:00+00:00"},
        "type": "collection",
        "timestamp": "2024-06-01T12:00:00+00:00",
        "entry": entries[:n_resources],
    }
    return orjson.dumps(bundle)


def measure(n_resources: int = 1000, rounds: int = 7) -> dict[str, float]:
    """Median facts/s through `parse_fhir`, resources/s of the raw fhir.resources parse of
    the same bytes, and the ratio of the two throughputs (raw time / our time)."""
    from fhir.resources.R4B.bundle import Bundle

    from hub.adapters.fhir import parse_fhir

    data = generate_bundle(n_resources, seed=1)
    Bundle.model_validate_json(data)  # warm: imports and model classes
    result = parse_fhir(data, content_type="application/fhir+json", agency="bench-trust")
    facts = len(result.facts)
    ours: list[float] = []
    raw: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        Bundle.model_validate_json(data)
        raw.append(time.perf_counter() - start)
        start = time.perf_counter()
        parse_fhir(data, content_type="application/fhir+json", agency="bench-trust")
        ours.append(time.perf_counter() - start)
    ours_s, raw_s = statistics.median(ours), statistics.median(raw)
    return {
        "resources": n_resources,
        "facts": facts,
        "not_taken": len(result.not_taken),
        "parse_fhir_s": ours_s,
        "raw_parse_s": raw_s,
        "facts_per_s": facts / ours_s,
        "raw_resources_per_s": n_resources / raw_s,
        "ratio": raw_s / ours_s,
    }


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    m = measure(n)
    print(
        f"FHIR bundle of {m['resources']:.0f} resources: {m['facts']:.0f} facts, "
        f"{m['not_taken']:.0f} not taken\n"
        f"  parse_fhir            {m['parse_fhir_s'] * 1000:8.1f} ms  "
        f"{m['facts_per_s']:>9,.0f} facts/s\n"
        f"  Bundle.model_validate {m['raw_parse_s'] * 1000:8.1f} ms  "
        f"{m['raw_resources_per_s']:>9,.0f} resources/s\n"
        f"  ratio (raw time / parse_fhir time) {m['ratio']:.2f}  goal >= 0.80 "
        f"{'MET' if m['ratio'] >= 0.8 else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
