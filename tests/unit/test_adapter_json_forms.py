"""The hub's own JSON forms for school MIS and social care systems: the checked-in JSON
Schemas match the code, each schema's example is valid and parses to the facts it
describes, a bad part of a message is reported by its JSON path while the rest is taken,
a bad message or header is refused whole, and no input crashes either adapter."""

from __future__ import annotations

import copy
import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.adapters import school_mis_json, social_care_json
from hub.adapters.cin import RULES as CIN_RULES
from hub.adapters.school_mis_json import parse_school_mis_json
from hub.adapters.social_care_json import parse_social_care_json
from hub.errors import PermanentError
from hub.events.education import SenNeedRanked, SenStatusRecorded
from hub.events.safeguarding import ChildProtectionPlanRecorded
from hub.events.social_care import LookedAfterEpisodeRecorded
from hub.events.team import PractitionerJoined
from hub.ingest.model import AdapterResult

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def counts(result: AdapterResult) -> dict[str, int]:
    return dict(Counter(type(f.payload).event_type for f in result.facts))


def explained(result: AdapterResult) -> None:
    for n in result.not_taken:
        assert n.ref.startswith("/") and n.reason and n.rule, n.ref


def school(**changes: Any) -> dict[str, Any]:
    message = copy.deepcopy(school_mis_json.EXAMPLE)
    message.update(changes)
    return message


def care(**changes: Any) -> dict[str, Any]:
    message = copy.deepcopy(social_care_json.EXAMPLE)
    message.update(changes)
    return message


def as_bytes(message: object) -> bytes:
    return json.dumps(message).encode()


# --- the contracts -----------------------------------------------------------------------


@pytest.mark.parametrize("module", [school_mis_json, social_care_json])
def test_checked_in_inbound_schemas_match_the_code(module: Any) -> None:
    """Fails when an inbound model changes without `python -m hub.adapters.<module>`."""
    assert module.SCHEMA_PATH.read_text(encoding="utf-8") == module.schema_text(), (
        f"{module.SCHEMA_PATH.name} drifted: run `python -m {module.__name__}`"
    )


@pytest.mark.parametrize("module", [school_mis_json, social_care_json])
def test_each_schema_is_2020_12_documented_and_its_example_valid(module: Any) -> None:
    schema = json.loads(module.SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["description"] and schema["properties"]["message_id"]["description"]
    assert "message_id" in schema["required"]
    (example,) = schema["examples"]
    jsonschema.Draft202012Validator(schema).validate(example)
    without_id = {k: v for k, v in example.items() if k != "message_id"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(without_id)


# --- school MIS ----------------------------------------------------------------------------


def test_the_school_example_yields_its_facts() -> None:
    result = parse_school_mis_json(as_bytes(school()), agency="school-a", now=NOW)
    assert counts(result) == {
        "education.pupil_identified": 1,
        "education.sen_status_recorded": 1,
        "education.attendance_recorded": 1,
        "education.placement_recorded": 1,
        "family.contact_recorded": 1,
        "team.practitioner_joined": 1,
    }
    assert result.not_taken == [] and result.message_id == "mis-2024-09-30-000123"
    facts = {f.ref: f for f in result.facts}
    assert facts["/pupils/0/sen_history/0"].payload == SenStatusRecorded(
        sen_provision="K", start_date=date(2022, 9, 5), needs=(SenNeedRanked(type="SLCN", rank=1),)
    )
    staff = facts["/pupils/0/staff/0"]
    assert staff.payload == PractitionerJoined(
        practitioner_id="school:100001:T042",
        role="senco",
        agency="education",
        organisation_code="100001",
        since=date(2022, 9, 5),
        contact="senco@example.org, 0113 496 0042",
        name="Ms Jo Example",
        organisation_name="Example Primary School",  # the sending school's name
    )
    identity = facts["/pupils/0"]
    assert identity.subject.upn == "A999200100001" and identity.subject.postcode == "ZZ99 9ZZ"
    assert identity.occurred_at == datetime(2024, 9, 30, 15, 5, tzinfo=UTC)  # +01:00 to UTC
    assert identity.source.message_id == "mis-2024-09-30-000123"


def test_a_bad_item_costs_only_that_item() -> None:
    message = school()
    pupil = message["pupils"][0]
    pupil["sen_history"].append({"provision": "Z", "start_date": "2023-01-01"})
    pupil["sen_history"].append(
        {"provision": "E", "start_date": "2023-09-01", "end_date": "2023-01-01"}
    )
    pupil["attendance"].append(
        {
            "academic_year": 2022,
            "sessions_possible": 10,
            "sessions_attended": 20,
            "sessions_authorised_absence": 0,
            "sessions_unauthorised_absence": 0,
        }
    )
    pupil["contacts"].append({"order": 2, "parental_responsibility": False, "surname": "Example"})
    pupil["staff"] = "not a list"
    pupil["colour"] = "blue"
    message["pupils"].append({"upn": 42})
    message["pupils"].append({"surname": "Other", "date_of_birth": "2031-01-01"})
    result = parse_school_mis_json(as_bytes(message), agency="school-a", now=NOW)
    found = {(n.ref, n.rule) for n in result.not_taken}
    assert found == {
        ("/pupils/0/sen_history/1/provision", "hub.payload"),
        ("/pupils/0/sen_history/2", "hub.payload"),  # end before start: the event's invariant
        ("/pupils/0/attendance/1", "hub.payload"),
        ("/pupils/0/contacts/1", "hub.contact_without_parental_responsibility"),
        ("/pupils/0/staff", "hub.payload"),
        ("/pupils/1/upn", "hub.payload"),
        ("/pupils/2/date_of_birth", "hub.date_in_future"),
        ("/pupils/*/colour", "hub.not_read"),
    }
    assert counts(result)["education.pupil_identified"] == 2
    assert counts(result)["education.sen_status_recorded"] == 1
    explained(result)
    for n in result.not_taken:
        assert "blue" not in n.reason and "Other" not in n.reason


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        (b"{not json", "json", "line 1, column 2"),
        (b"[]", "json", "JSON object"),
        (b"\xff\xfe\x00", "json.encoding", "UTF-8"),
        (
            as_bytes({k: v for k, v in school().items() if k != "message_id"}),
            "message_id",
            "required",
        ),
        (as_bytes(school(sent_at="2024-09-30T16:05:00")), "sent_at", "timezone"),
        (as_bytes(school(school={"la_code": "12"})), "school.la_code", "pattern"),
    ],
)
def test_a_bad_message_is_refused_whole(body: bytes, field: str, fragment: str) -> None:
    with pytest.raises(PermanentError) as info:
        parse_school_mis_json(body, agency="school-a", now=NOW)
    assert info.value.field == field
    assert fragment in info.value.reason


# --- social care ---------------------------------------------------------------------------


def test_the_social_care_example_yields_its_facts() -> None:
    result = parse_social_care_json(as_bytes(care()), agency="la-csc", now=NOW)
    assert counts(result) == {
        "social_care.child_identified": 1,
        "social_care.disability_recorded": 1,
        "social_care.cin_episode_recorded": 1,
        "social_care.assessment_recorded": 1,
        "social_care.cin_plan_recorded": 1,
        "team.practitioner_joined": 1,
    }
    assert result.not_taken == []
    worker = next(f for f in result.facts if isinstance(f.payload, PractitionerJoined))
    assert worker.category == "social_care"  # that a child has a social worker is sensitive
    assert isinstance(worker.payload, PractitionerJoined)
    assert (worker.payload.practitioner_id, worker.payload.role) == ("la:999:SW17", "social_worker")
    assert worker.payload.contact == "Duty team, 0113 496 0017"
    assert worker.payload.name == "Sam Example"
    assert worker.payload.organisation_name == "Example County Council"  # the LA's la_name
    assert {f.subject.la_code for f in result.facts} == {"999"}
    assert {f.subject.la_child_id for f in result.facts} == {"C0001"}


def test_episode_rules_apply_with_the_census_codes_and_the_rest_is_taken() -> None:
    message = care()
    child = message["children"][0]
    episode = child["cin_episodes"][0]
    episode["assessments"].append({"start_date": "2023-12-01"})
    episode["cp_plans"] = [
        {"start_date": "2024-02-01", "initial_category": "NEG", "latest_category": "EMO",
         "review_dates": ["2024-05-01"]},
        {"start_date": "2024-02-01", "end_date": "2024-02-01", "initial_category": "NEG",
         "latest_category": "NEG"},
    ]  # fmt: skip
    episode["section47_enquiries"] = [
        {"start_date": "2024-01-20", "initial_cpc_date": "2024-01-15"}
    ]
    child["looked_after_episodes"] = [
        {"start_date": "2024-03-01", "reason_new_episode": "S", "legal_status": "V2",
         "category_of_need": "N2", "placement_type": "K2"},
        {"start_date": "2024-03-01", "reason_new_episode": "S", "legal_status": "V2",
         "category_of_need": "N2", "placement_type": "ZZ"},
    ]  # fmt: skip
    closed_before_referral = {
        "referral_date": "2024-05-01",
        "closure_date": "2024-04-01",
        "closure_reason": "RC7",
    }
    message["children"].append({"la_child_id": "C0002", "cin_episodes": [closed_before_referral]})
    result = parse_social_care_json(as_bytes(message), agency="la-csc", now=NOW)
    found = {(n.ref, n.rule) for n in result.not_taken}
    assert found == {
        ("/children/0/cin_episodes/0/assessments/1", "1103"),
        ("/children/0/cin_episodes/0/cp_plans/1", "8840"),
        ("/children/0/cin_episodes/0/section47_enquiries/0", "8615"),
        ("/children/0/looked_after_episodes/1/placement_type", "hub.payload"),
        ("/children/1/cin_episodes/0", "8630"),
    }
    for n in result.not_taken:
        if n.rule in CIN_RULES:
            assert n.reason == CIN_RULES[n.rule]
    plan = next(f for f in result.facts if isinstance(f.payload, ChildProtectionPlanRecorded))
    assert (plan.category or type(plan.payload).category) == "safeguarding"
    assert isinstance(plan.payload, ChildProtectionPlanRecorded)
    assert plan.payload.referral_date == date(2024, 1, 10)
    looked_after = [
        f.payload for f in result.facts if isinstance(f.payload, LookedAfterEpisodeRecorded)
    ]
    assert [e.placement_type for e in looked_after] == ["K2"]
    assert counts(result)["social_care.child_identified"] == 2


def test_activity_after_closure_is_reported_against_the_late_date() -> None:
    message = care()
    episode = message["children"][0]["cin_episodes"][0]
    episode.update(closure_date="2024-04-01", closure_reason="RC7")
    closure = date(2024, 4, 1)
    before, after = str(closure - timedelta(days=5)), str(closure + timedelta(days=5))
    episode["assessments"] = [{"start_date": before, "authorisation_date": after}]
    episode["cin_plans"] = [{"start_date": before, "end_date": after}]
    episode["section47_enquiries"] = [{"start_date": before, "initial_cpc_date": after}]
    result = parse_social_care_json(as_bytes(message), agency="la-csc", now=NOW)
    late = sorted((n.ref.rsplit("/", 2)[-2], n.field) for n in result.not_taken if n.rule == "8565")
    assert late == [
        ("assessments", "authorisation_date"),
        ("cin_plans", "end_date"),
        ("section47_enquiries", "initial_cpc_date"),
    ]


def test_dates_after_the_message_was_sent_are_not_taken() -> None:
    message = care()
    message["children"][0]["date_of_birth"] = "2025-06-01"
    message["children"][0]["cin_episodes"][0]["closure_date"] = "2024-12-01"
    message["children"][0]["cin_episodes"][0]["closure_reason"] = "RC7"
    result = parse_social_care_json(as_bytes(message), agency="la-csc", now=NOW)
    found = {(n.ref, n.field, n.rule) for n in result.not_taken}
    assert ("/children/0", "date_of_birth", "hub.date_in_future") in found
    assert ("/children/0/cin_episodes/0", "closure_date", "hub.date_in_future") in found
    assert "social_care.child_identified" not in counts(result)
    assert all(f.subject.date_of_birth is None for f in result.facts)


def test_a_social_care_message_without_its_la_code_is_refused() -> None:
    with pytest.raises(PermanentError) as info:
        parse_social_care_json(
            as_bytes({k: v for k, v in care().items() if k != "la_code"}), agency="la"
        )
    assert info.value.field == "la_code"


# --- no input crashes either adapter -------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=12)
    | st.sampled_from(["2024-01-01", "K", "N2"]),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)


@st.composite
def mangled(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """The example message with some nested values replaced by arbitrary JSON."""
    message = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 6))):
        node: Any = message
        while isinstance(node, (dict, list)) and node and draw(st.booleans()):
            key = draw(
                st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node))))
            )
            child = node[key]
            if not isinstance(child, (dict, list)) or not child:
                node[key] = draw(json_values)
                break
            node = child
    return message


@given(st.binary(max_size=500) | json_values.map(lambda v: json.dumps(v).encode()))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bodies_raise_nothing_but_permanent_errors(body: bytes) -> None:
    for parse in (parse_school_mis_json, parse_social_care_json):
        try:
            explained(parse(body, agency="a"))
        except PermanentError as exc:
            assert exc.reason and exc.field


@given(mangled(school_mis_json.EXAMPLE))
@settings(max_examples=300, deadline=None)
def test_mangled_school_messages_are_reported_never_raised(message: dict[str, Any]) -> None:
    try:
        explained(parse_school_mis_json(as_bytes(message), agency="a", now=NOW))
    except PermanentError as exc:
        assert exc.field


@given(mangled(social_care_json.EXAMPLE))
@settings(max_examples=300, deadline=None)
def test_mangled_social_care_messages_are_reported_never_raised(message: dict[str, Any]) -> None:
    try:
        explained(parse_social_care_json(as_bytes(message), agency="a", now=NOW))
    except PermanentError as exc:
        assert exc.field


# --- people by name ------------------------------------------------------------------------


def test_staff_without_a_name_or_school_name_join_by_id_alone() -> None:
    message = school(school={"la_code": "999", "estab": "2001", "urn": "100001"})
    del message["pupils"][0]["staff"][0]["name"]
    result = parse_school_mis_json(as_bytes(message), agency="school-a", now=NOW)
    (staff,) = [f.payload for f in result.facts if isinstance(f.payload, PractitionerJoined)]
    assert (staff.practitioner_id, staff.name, staff.organisation_name) == (
        "school:100001:T042",
        None,
        None,
    )


def test_a_staff_role_outside_the_vocabulary_is_reported_by_its_path() -> None:
    message = school()
    message["pupils"][0]["staff"].append(
        {"staff_id": "T077", "role": "midday_supervisor", "since": "2023-01-09", "name": "Mr X"}
    )
    result = parse_school_mis_json(as_bytes(message), agency="school-a", now=NOW)
    assert {(n.ref, n.rule) for n in result.not_taken} == {
        ("/pupils/0/staff/1/role", "hub.payload")
    }
    assert counts(result)["team.practitioner_joined"] == 1
    assert all("Mr X" not in n.reason for n in result.not_taken)


def test_a_social_care_worker_role_outside_the_vocabulary_is_reported_by_its_path() -> None:
    message = care()
    message["children"][0]["allocated_workers"].append(
        {"worker_id": "SW99", "role": "team_manager", "since": "2024-02-01", "name": "Ms Y"}
    )
    result = parse_social_care_json(as_bytes(message), agency="la-csc", now=NOW)
    assert {(n.ref, n.rule) for n in result.not_taken} == {
        ("/children/0/allocated_workers/1/role", "hub.payload")
    }
    assert counts(result)["team.practitioner_joined"] == 1
    assert all("Ms Y" not in n.reason for n in result.not_taken)
