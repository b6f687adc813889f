"""The family JSON form: the checked-in schema matches the code, its example is valid and
yields the facts it describes, a bad part is reported by its JSON path while the rest is
taken, a bad message is refused whole, and no input crashes the adapter."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.adapters import family
from hub.adapters.family import parse_family_json
from hub.errors import PermanentError
from hub.events.family import ContactRecorded, ViewsRecorded

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def message(**changes: Any) -> dict[str, Any]:
    m = copy.deepcopy(family.EXAMPLE)
    m.update(changes)
    return m


def as_bytes(m: object) -> bytes:
    return json.dumps(m).encode()


def test_the_family_schema_has_not_drifted() -> None:
    on_disk = family.SCHEMA_PATH.read_text(encoding="utf-8")
    assert on_disk == family.schema_text(), "run `python -m hub.adapters.family`"


def test_the_example_is_valid_against_the_schema_and_yields_its_facts() -> None:
    jsonschema.Draft202012Validator(family.json_schema()).validate(family.EXAMPLE)
    result = parse_family_json(as_bytes(family.EXAMPLE), agency="family-portal", now=NOW)
    assert result.message_id == "portal-2024-10-01-0042"
    assert [f.ref for f in result.facts] == ["/views/0", "/views/1", "/contacts/0"]
    child_views, parent_views = (f.payload for f in result.facts[:2])
    assert isinstance(child_views, ViewsRecorded) and isinstance(parent_views, ViewsRecorded)
    assert child_views.whose == "child" and child_views.interests == ("trains", "drawing")
    assert parent_views.contributor_ref == "parent-1"
    assert result.facts[0].occurred_at == datetime(2024, 9, 28, tzinfo=UTC)
    contact = result.facts[2].payload
    assert isinstance(contact, ContactRecorded)
    assert contact.relationship == "PAM" and contact.parental_responsibility
    assert [p.system for p in contact.contact_points] == ["phone", "email"]
    assert all(f.subject.upn == "A999200100001" for f in result.facts)
    assert {f.source.agency for f in result.facts} == {"family-portal"}
    assert result.not_taken == []


def test_a_bad_part_is_reported_by_its_path_and_the_rest_is_taken() -> None:
    m = message()
    m["views"][1]["recorded_on"] = "2024-02-30"
    m["views"].append({"whose": "child", "recorded_on": "2030-01-01", "views": "later"})
    m["contacts"].append({"parental_responsibility": False, "forename": "Neighbour"})
    m["favourite_colour"] = "blue"
    result = parse_family_json(as_bytes(m), agency="family-portal", now=NOW)
    assert [f.ref for f in result.facts] == ["/views/0", "/contacts/0"]
    reasons = {(n.ref, n.rule) for n in result.not_taken}
    assert ("/views/1/recorded_on", "hub.payload") in reasons
    assert ("/views/2/recorded_on", "hub.date_in_future") in reasons
    assert ("/contacts/1", "hub.contact_without_parental_responsibility") in reasons
    assert ("/favourite_colour", "hub.not_read") in reasons
    assert all(
        "Neighbour" not in n.reason and "2024-02-30" not in n.reason for n in result.not_taken
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "json"),
        (b"[]", "json"),
        (as_bytes(message(message_id="")), "message_id"),
        (as_bytes(message(sent_at="2024-10-01T19:30:00")), "sent_at"),
        (as_bytes(message(child={})), "child"),
        (
            as_bytes(message(child={"given_name": "Sam", "date_of_birth": "2099-01-01"})),
            "child.date_of_birth",
        ),
    ],
)
def test_a_bad_message_is_refused_whole_naming_the_field(body: bytes, field: str) -> None:
    with pytest.raises(PermanentError) as refused:
        parse_family_json(body, agency="family-portal", now=NOW)
    assert refused.value.field == field


def test_a_child_named_by_demographics_only_is_left_to_the_match_queue() -> None:
    m = message(
        child={"given_name": "Sam", "family_name": "Example", "date_of_birth": "2016-02-29"}
    )
    result = parse_family_json(as_bytes(m), agency="family-portal", now=NOW)
    assert result.facts and all(f.subject.upn is None for f in result.facts)
    assert result.facts[0].subject.date_of_birth == date(2016, 2, 29)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        _json.map(as_bytes),
        st.fixed_dictionaries(
            {
                "message_id": st.text(max_size=5),
                "sent_at": st.just("2024-01-01T00:00:00Z"),
                "child": st.dictionaries(
                    st.sampled_from(["upn", "given_name", "date_of_birth"]), _json
                ),
                "views": st.lists(
                    st.dictionaries(st.sampled_from(["whose", "recorded_on", "views"]), _json)
                ),
                "contacts": _json,
            }
        ).map(as_bytes),
    )
)
def test_no_input_crashes_the_family_adapter(body: bytes) -> None:
    try:
        result = parse_family_json(body, agency="family-portal", now=NOW)
    except PermanentError as exc:
        assert exc.reason
        return
    for n in result.not_taken:
        assert n.ref.startswith("/") and n.reason
