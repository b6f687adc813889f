"""FHIR R4 `Consent` interchange: the hub's consents round-trip through FHIR (JSON and
XML), real published examples import or are refused with the FHIR path of the problem,
and unsafe XML is refused before it is parsed."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.consent import Consent
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.consent.fhir import (
    consent_from_fhir,
    consent_from_fhir_xml,
    consent_to_fhir,
    parse_consent_xml,
)
from hub.consent.policy import load_policy
from hub.errors import PermanentError
from hub.events.consent import PURPOSES, ConsentRecorded

POLICY = load_policy(Path(__file__).resolve().parents[2] / "contracts" / "consent-policy.yaml")
SYSTEMS = POLICY.fhir.systems


def recorded(**overrides: Any) -> ConsentRecorded:
    data: dict[str, Any] = {
        "consent_id": "c-1",
        "decision": "permit",
        "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
        "given_on": "2024-03-01",
        "scope": {
            "categories": ["health", "education"],
            "purposes": ["ehc_assessment", "review"],
            "roles": ["coordinator", "paediatrician"],
            "agencies": ["health"],
            "organisations": ["RR8"],
        },
        "period": {"start": "2024-03-01", "end": "2025-02-28"},
        "capture_method": "verbal_witnessed",
        "witness": "staff-9",
        "recorded_by": "coord-1",
        "exceptions": [
            {
                "decision": "deny",
                "scope": {"categories": ["health"], "roles": ["paediatrician"]},
                "exceptions": [{"decision": "permit", "scope": {"purposes": ["ehc_assessment"]}}],
            }
        ],
    }
    data.update(overrides)
    return ConsentRecorded.model_validate(data)


def test_export_follows_fhir_r4_consent() -> None:
    fhir = consent_to_fhir(recorded(), child_id="child-1", policy=POLICY)
    assert isinstance(fhir, Consent)
    assert fhir.status == "active"
    assert fhir.policyRule is not None and fhir.policyRule.coding is not None
    assert fhir.policyRule.coding[0].code == "OPTIN"
    root = fhir.provision
    assert root is not None and root.type is None  # R4: type is not permitted in the root rule
    assert root.period is not None and str(root.period.start) == "2024-03-01"
    assert [c.code for c in root.class_fhir or []] == ["health", "education"]
    assert {c.system for c in root.class_fhir or []} == {SYSTEMS.data_category}
    assert [c.code for c in root.purpose or []] == ["ehc_assessment", "review"]
    nested = (root.provision or [])[0]
    assert nested.type == "deny"
    assert (nested.provision or [])[0].type == "permit"
    assert fhir.patient is not None and fhir.patient.identifier is not None
    assert fhir.patient.identifier.value == "child-1"
    assert str(fhir.dateTime) == "2024-03-01"
    refusal = consent_to_fhir(
        recorded(decision="deny", exceptions=[]), child_id="child-1", policy=POLICY
    )
    assert refusal.policyRule is not None and refusal.policyRule.coding is not None
    assert refusal.policyRule.coding[0].code == "OPTOUT"


def test_a_consent_round_trips_through_fhir_json() -> None:
    original = recorded()
    fhir = consent_to_fhir(original, child_id="child-1", policy=POLICY)
    assert consent_from_fhir(fhir, policy=POLICY, recorded_by="coord-1") == original
    assert (
        consent_from_fhir(fhir.model_dump_json(), policy=POLICY, recorded_by="coord-1") == original
    )
    as_dict = json.loads(fhir.model_dump_json())
    assert consent_from_fhir(as_dict, policy=POLICY, recorded_by="coord-1") == original


def test_a_consent_round_trips_through_fhir_xml() -> None:
    original = recorded()
    xml = consent_to_fhir(original, child_id="child-1", policy=POLICY).model_dump_xml()
    assert consent_from_fhir_xml(xml, policy=POLICY, recorded_by="coord-1") == original


def test_a_typed_grantor_reference_is_exported_as_a_reference() -> None:
    fhir = consent_to_fhir(
        recorded(grantor={"reference": "RelatedPerson/p-1", "capacity": "parent_with_pr"}),
        child_id="child-1",
        policy=POLICY,
    )
    assert fhir.performer is not None and fhir.performer[0].reference == "RelatedPerson/p-1"


CODES: dict[str, list[str]] = {
    "categories": list(POLICY.categories),
    "purposes": list(PURPOSES),
    "roles": ["coordinator", "paediatrician", "gp", "senco", "safeguarding_lead"],
    "agencies": ["health", "education", "social_care"],
    "organisations": ["RR8", "100001", "X.9"],
}


def _subset(axis: str, parent: list[str]) -> st.SearchStrategy[list[str]]:
    pool = parent or CODES[axis]
    return st.lists(st.sampled_from(pool), unique=True, max_size=3)


@st.composite
def scope_dicts(
    draw: st.DrawFn, parent: dict[str, list[str]] | None = None
) -> dict[str, list[str]]:
    parent = parent or {k: [] for k in CODES}
    return {axis: draw(_subset(axis, parent[axis])) for axis in CODES}


@st.composite
def random_consents(draw: st.DrawFn) -> ConsentRecorded:
    decision = draw(st.sampled_from(["permit", "deny"]))
    scope = draw(scope_dicts())
    exceptions = []
    for _ in range(draw(st.integers(0, 2))):
        inner = draw(scope_dicts(scope))
        exceptions.append(
            {"decision": "deny" if decision == "permit" else "permit", "scope": inner}
        )
    start = draw(st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1)))
    end = draw(st.one_of(st.none(), st.integers(0, 800).map(lambda d: start + timedelta(days=d))))
    verbal = draw(st.booleans())
    return ConsentRecorded.model_validate(
        {
            "consent_id": draw(st.from_regex(r"[a-z0-9][a-z0-9:-]{0,20}", fullmatch=True)),
            "decision": decision,
            "grantor": {
                "reference": draw(st.sampled_from(["g-1", "RelatedPerson/p-2", "Patient/yp.3"])),
                "capacity": draw(
                    st.sampled_from(["parent_with_pr", "young_person", "deputy", "representative"])
                ),
            },
            "given_on": start,
            "scope": scope,
            "period": {"start": start, "end": end},
            "capture_method": "verbal_witnessed"
            if verbal
            else draw(st.sampled_from(["form", "fhir_import"])),
            "witness": "w-1" if verbal else None,
            "recorded_by": "coord-1",
            "exceptions": exceptions,
        }
    )


@settings(max_examples=150, deadline=None)
@given(random_consents())
def test_any_hub_consent_round_trips_through_fhir(original: ConsentRecorded) -> None:
    fhir = consent_to_fhir(original, child_id="child-1", policy=POLICY)
    back = consent_from_fhir(fhir.model_dump_json(), policy=POLICY, recorded_by="coord-1")
    assert back == original


# --------------------------------------------------------------------------- real samples


def test_the_hl7_smart_on_fhir_example_imports(samples_dir: Path) -> None:
    raw = (samples_dir / "fhir-r4" / "consent-example-smartonfhir.json").read_bytes()
    # the example does not say in what capacity the related person decided
    with pytest.raises(PermanentError) as err:
        consent_from_fhir(raw, policy=POLICY, recorded_by="coord-1")
    assert err.value.field == "performer[0]"
    assert "capacity is unknown" in err.value.reason

    c = consent_from_fhir(
        raw, policy=POLICY, recorded_by="coord-1", grantor_capacity="parent_with_pr"
    )
    assert c.consent_id == "consent-example-smartonfhir"
    assert c.decision == "permit"  # policyRule OPTIN
    assert c.grantor.reference == "RelatedPerson/peter"
    assert c.given_on == date(2016, 6, 23)
    # "permit access to MedicationRequest" for half an hour on one day
    assert c.scope.categories == ("health",)
    assert c.scope.purposes == () and c.scope.roles == ()
    assert c.period.start == c.period.end == date(2016, 6, 23)
    assert c.capture_method == "fhir_import"
    assert c.exceptions == ()


def test_the_uk_core_example_parses_safely_and_is_refused_for_want_of_a_decision(
    samples_dir: Path,
) -> None:
    xml = (samples_dir / "ukcore" / "UKCore-Consent-ForInformationAccess-Example.xml").read_bytes()
    fhir = parse_consent_xml(xml)
    assert fhir.id == "UKCore-Consent-ForInformationAccess-Example"
    assert fhir.status == "active"
    assert fhir.provision is not None and fhir.provision.purpose is not None
    assert fhir.provision.purpose[0].code == "GOV"
    # no provision.type and no OPTIN/OPTOUT policyRule: nothing says permit or deny
    with pytest.raises(PermanentError) as err:
        consent_from_fhir_xml(
            xml, policy=POLICY, recorded_by="coord-1", grantor_capacity="young_person"
        )
    assert err.value.field == "provision.type"
    # given a decision, the next problem is its purpose, which maps to no hub purpose
    dumped = json.loads(fhir.model_dump_json())
    dumped["policyRule"] = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]
    }
    with pytest.raises(PermanentError) as err:
        consent_from_fhir(
            dumped, policy=POLICY, recorded_by="coord-1", grantor_capacity="young_person"
        )
    assert err.value.field == "provision.purpose[0]"
    assert "'GOV'" in err.value.reason


# --------------------------------------------------------------------------- errors


def _exported() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        consent_to_fhir(recorded(), child_id="child-1", policy=POLICY).model_dump_json()
    )
    return data


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    data = _exported()
    node: Any = data
    for part in path[:-1]:
        node = node[part]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


_DELETE = object()

ERRORS: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "period end before start",
        _with(["provision", "period", "end"], "2024-01-01"),
        "provision.period.end",
        "before start",
    ),
    (
        "period end not a date",
        _with(["provision", "period", "end"], "soon"),
        "provision.period.end",
        "not a valid FHIR R4 Consent",
    ),
    ("not active", _with(["status"], "inactive"), "status", "only an active consent"),
    ("no dateTime", _with(["dateTime"], _DELETE), "dateTime", "required"),
    ("no performer", _with(["performer"], _DELETE), "performer", "exactly one performer"),
    (
        "two performers",
        _with(["performer"], [{"reference": "Patient/a"}, {"reference": "Patient/b"}]),
        "performer",
        "exactly one performer",
    ),
    (
        "a grantor reference that looks like a name",
        _with(["performer"], [{"display": "Jane Smith"}]),
        "performer[0]",
        "no reference or identifier",
    ),
    ("no provision", _with(["provision"], _DELETE), "provision", "required"),
    (
        "unknown data category",
        _with(["provision", "class", 1, "code"], "astrology"),
        "provision.class[1]",
        "unknown data category 'astrology'",
    ),
    (
        "class from an unmapped code system",
        _with(["provision", "class", 0], {"system": "http://loinc.org", "code": "11369-6"}),
        "provision.class[0]",
        "does not map to a hub data category",
    ),
    (
        "unknown purpose",
        _with(["provision", "purpose", 0, "code"], "marketing"),
        "provision.purpose[0]",
        "unknown purpose",
    ),
    (
        "unknown role",
        _with(["provision", "actor", 0, "role", "coding", 0, "code"], "wizard"),
        "provision.actor[0].role",
        "unknown hub role 'wizard'",
    ),
    (
        "an actor the hub cannot place",
        _with(
            ["provision", "actor", 0],
            {"role": {"text": "friend"}, "reference": {"reference": "Person/x"}},
        ),
        "provision.actor[0]",
        "an actor must be a hub role",
    ),
    (
        "a code restriction the hub cannot enforce",
        _with(["provision", "code"], [{"text": "asthma"}]),
        "provision.code",
        "not supported",
    ),
    (
        "an action that is not sharing",
        _with(
            ["provision", "action"],
            [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                            "code": "correct",
                        }
                    ]
                }
            ],
        ),
        "provision.action",
        "access, use or disclose",
    ),
    (
        "a nested provision of the same type",
        _with(["provision", "provision", 0, "type"], "permit"),
        "provision.provision[0].type",
        "must be the opposite of its parent",
    ),
    (
        "a nested provision without a type",
        _with(["provision", "provision", 0, "type"], _DELETE),
        "provision.provision[0].type",
        "needs a type",
    ),
    (
        "a nested period",
        _with(["provision", "provision", 0, "period"], {"start": "2024-04-01"}),
        "provision.provision[0].period",
        "not supported",
    ),
    (
        "an exception outside its parent",
        _with(["provision", "provision", 0, "class", 0, "code"], "social_care"),
        "provision.provision[0].class",
        "must lie within the parent's categories",
    ),
    (
        "unknown grantor capacity",
        _with(["extension", 0, "valueCode"], "neighbour"),
        "extension",
        "unknown grantor capacity",
    ),
    (
        "a verbal consent without its witness",
        _with(["extension", 3], {"url": "https://example.org/other", "valueString": "x"}),
        "extension",
        "needs a witness",
    ),
    ("not a Consent", {"resourceType": "Patient"}, "resourceType", "expected a Consent"),
]


@pytest.mark.parametrize(
    ("resource", "field", "fragment"),
    [pytest.param(r, f, m, id=name) for name, r, f, m in ERRORS],
)
def test_import_errors_name_the_fhir_path(
    resource: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(PermanentError) as err:
        consent_from_fhir(resource, policy=POLICY, recorded_by="coord-1")
    assert err.value.field == field, str(err.value)
    assert fragment in err.value.reason, str(err.value)


def test_a_consent_id_falls_back_to_the_argument_then_the_resource_id() -> None:
    data = _with(["identifier"], _DELETE)
    assert (
        consent_from_fhir(data, policy=POLICY, recorded_by="c", consent_id="arg-1").consent_id
        == "arg-1"
    )
    data["id"] = "res-1"
    assert consent_from_fhir(data, policy=POLICY, recorded_by="c").consent_id == "res-1"
    del data["id"]
    with pytest.raises(PermanentError) as err:
        consent_from_fhir(data, policy=POLICY, recorded_by="c")
    assert err.value.field == "identifier"


def test_a_root_type_is_honoured_when_present() -> None:
    data = _with(["policyRule"], _DELETE)
    data["provision"]["type"] = "permit"
    assert consent_from_fhir(data, policy=POLICY, recorded_by="c").decision == "permit"


def test_nhs_ods_codes_are_organisations() -> None:
    data = _with(
        ["provision", "actor", 3, "reference", "identifier", "system"],
        "https://fhir.nhs.uk/Id/ods-organization-code",
    )
    assert consent_from_fhir(data, policy=POLICY, recorded_by="c").scope.organisations == ("RR8",)


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Consent [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Consent xmlns="http://hl7.org/fhir"><id value="&xxe;"/><status value="active"/></Consent>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Consent xmlns="http://hl7.org/fhir"><id value="&lol2;"/></Consent>"""


@pytest.mark.parametrize("xml", [XXE, BILLION_LAUGHS], ids=["external-entity", "entity-expansion"])
def test_unsafe_xml_is_refused_before_parsing(xml: bytes) -> None:
    with pytest.raises(PermanentError, match="unsafe XML refused"):
        parse_consent_xml(xml)


def test_malformed_xml_is_a_clear_error() -> None:
    with pytest.raises(PermanentError, match="not well-formed XML"):
        parse_consent_xml(b"<Consent xmlns='http://hl7.org/fhir'><status value='active'></Consent>")
