"""Consent event payloads: what a valid grant, refusal, withdrawal, expiry and capacity
record look like, and that they travel through the codec unchanged."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from hub.events import Envelope, EventPayload, Source, decode, encode, registry
from hub.events.consent import (
    CapacityAssessed,
    ConsentExpired,
    ConsentRecorded,
    ConsentScope,
    ConsentWithdrawn,
)


def grant(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "consent_id": "c-1",
        "decision": "permit",
        "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
        "given_on": "2024-03-01",
        "scope": {"categories": ["health"], "purposes": ["ehc_assessment"]},
        "period": {"start": "2024-03-01"},
        "capture_method": "form",
        "recorded_by": "coord-1",
    }
    data.update(overrides)
    return data


def test_consent_event_types_are_registered_under_identity() -> None:
    pairs: list[tuple[type[EventPayload], str]] = [
        (ConsentRecorded, "consent.recorded"),
        (ConsentWithdrawn, "consent.withdrawn"),
        (ConsentExpired, "consent.expired"),
        (CapacityAssessed, "consent.capacity_assessed"),
    ]
    for cls, name in pairs:
        assert cls.event_type == name
        assert name in registry
        assert registry.payload_class(name) is cls
        assert cls.category == "identity"


def test_a_grant_with_nested_exceptions_is_valid() -> None:
    c = ConsentRecorded.model_validate(
        grant(
            scope={"categories": ["health", "sexual_health"]},
            exceptions=[
                {
                    "decision": "deny",
                    "scope": {"categories": ["sexual_health"]},
                    "exceptions": [{"decision": "permit", "scope": {"roles": ["gp"]}}],
                }
            ],
        )
    )
    assert c.exceptions[0].exceptions[0].scope.roles == ("gp",)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"decision": "maybe"}, "decision"),
        ({"grantor": {"reference": "parent-1", "capacity": "aunt"}}, "capacity"),
        ({"grantor": {"reference": "Jane Smith", "capacity": "parent_with_pr"}}, "reference"),
        ({"capture_method": "verbal_witnessed"}, "needs a witness"),
        ({"witness": "w-1"}, "only a verbal consent has a witness"),
        ({"period": {"start": "2024-03-01", "end": "2024-02-01"}}, "end is before start"),
        ({"scope": {"categories": ["Health"]}}, "categories"),
        ({"scope": {"purposes": ["marketing"]}}, "purposes"),
        ({"consent_id": ""}, "consent_id"),
        (
            {"exceptions": [{"decision": "permit", "scope": {"categories": ["health"]}}]},
            "opposite of its parent",
        ),
        (
            {
                "scope": {"categories": ["health"]},
                "exceptions": [{"decision": "deny", "scope": {"categories": ["education"]}}],
            },
            "exceptions[0].scope.categories: must lie within",
        ),
        (
            {
                "scope": {"categories": ["health"], "roles": ["coordinator"]},
                "exceptions": [{"decision": "deny", "scope": {"roles": ["gp"]}}],
            },
            "exceptions[0].scope.roles",
        ),
    ],
)
def test_invalid_grants_are_rejected_with_the_offending_field(
    overrides: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ValidationError) as err:
        ConsentRecorded.model_validate(grant(**overrides))
    assert fragment in str(err.value)


def test_exceptions_nest_at_most_four_deep() -> None:
    def nest(depth: int, decision: str) -> dict[str, Any]:
        other = "deny" if decision == "permit" else "permit"
        node: dict[str, Any] = {"decision": decision, "scope": {}}
        if depth > 1:
            node["exceptions"] = [nest(depth - 1, other)]
        return node

    ConsentRecorded.model_validate(grant(exceptions=[nest(4, "deny")]))
    with pytest.raises(ValidationError, match="deeper than 4"):
        ConsentRecorded.model_validate(grant(exceptions=[nest(5, "deny")]))


def test_an_empty_exception_axis_inherits_the_parent() -> None:
    scope = ConsentScope(categories=("health",), roles=("gp",))
    assert ConsentScope().within(scope) is None
    assert ConsentScope(categories=("health",)).within(scope) is None
    assert ConsentScope(categories=("education",)).within(scope) == "categories"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"lacks_capacity": True}, "must name who acts"),
        ({"lacks_capacity": False, "acting_capacity": "deputy"}, "only a lack of capacity"),
        ({"lacks_capacity": True, "acting_capacity": "young_person"}, "acting_capacity"),
        (
            {"lacks_capacity": True, "acting_capacity": "deputy", "review_by": "2020-01-01"},
            "review_by is before",
        ),
    ],
)
def test_capacity_records_must_name_who_acts_only_when_capacity_is_lacking(
    data: dict[str, Any], fragment: str
) -> None:
    base = {"assessment_id": "a-1", "assessed_on": "2024-01-01", "assessed_by": "sw-1"}
    with pytest.raises(ValidationError) as err:
        CapacityAssessed.model_validate({**base, **data})
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "payload",
    [
        ConsentRecorded.model_validate(
            grant(
                capture_method="verbal_witnessed",
                witness="staff-9",
                exceptions=[{"decision": "deny", "scope": {"roles": ["gp"]}}],
            )
        ),
        ConsentWithdrawn(consent_id="c-1", recorded_by="coord-1"),
        ConsentExpired(consent_id="c-1", reason="grantor_authority_ended"),
        CapacityAssessed(
            assessment_id="a-1",
            lacks_capacity=True,
            acting_capacity="deputy",
            acting_reference="deputy-1",
            assessed_on=date(2024, 1, 1),
            assessed_by="sw-1",
        ),
    ],
    ids=lambda p: type(p).__name__,
)
def test_consent_events_round_trip_through_the_codec(payload: Any) -> None:
    env = Envelope.wrap(
        payload,
        child_id="child-1",
        source=Source(agency="hub"),
        occurred_at=datetime(2024, 3, 1, 10, tzinfo=UTC),
    )
    back = decode(encode(env))
    assert back == env
    assert back.category == "identity"
