"""Every event type decides what of it is not about the child (`open_fields`); everything
else is sealed with the child's key, together, and opens again; records sealed field by
field by older writers still open, and read as erased once the key is gone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from hub.consent.crypto import PLACEHOLDER, encrypt_fields, is_encrypted, new_data_key
from hub.consent.sealing import (
    WHOLE,
    ErasedPayload,
    declared_open,
    open_envelope,
    personal_fields,
    seal_envelope,
)
from hub.events import Envelope, EventPayload, Source, registry
from hub.events.education import PupilIdentified
from hub.events.health import Concept, ConditionRecorded
from hub.service_layer.submit_facts import GOVERNANCE_PREFIXES

TYPES = list(registry)


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.event_type)
def test_every_event_type_declares_its_open_fields_itself(cls: type[EventPayload]) -> None:
    # a base class's declaration does not count: a new event type must decide
    assert "open_fields" in cls.__dict__, f"{cls.event_type} declares no open_fields"
    declared = declared_open(cls)
    assert declared is not None
    assert declared <= set(cls.model_fields), f"{cls.event_type}: not fields {declared}"
    assert WHOLE not in cls.model_fields


@pytest.mark.parametrize(
    "cls", [c for c in TYPES if c.event_type.startswith(("casework.", "identity."))],
    ids=lambda c: c.event_type,
)  # fmt: skip
def test_casework_and_identity_events_are_all_open(cls: type[EventPayload]) -> None:
    # the caseload folds the coordinator without keys; a tombstone is read after erasure
    assert personal_fields(cls) == ()


def test_what_the_family_decided_is_sealed_and_only_ids_are_open() -> None:
    recorded = registry.payload_class("consent.recorded")
    assert set(personal_fields(recorded) or ()) >= {"decision", "grantor", "scope", "period"}
    capacity = registry.payload_class("consent.capacity_assessed")
    assert "lacks_capacity" in (personal_fields(capacity) or ())
    for cls in TYPES:
        if cls.event_type.startswith(GOVERNANCE_PREFIXES):
            assert (declared_open(cls) or set()) <= {
                "consent_id", "assessment_id", "recorded_by", "assessed_by", "coordinator",
                *(cls.model_fields if not cls.event_type.startswith("consent.") else ()),
            }, cls.event_type  # fmt: skip


def test_a_class_that_declares_nothing_is_sealed_whole() -> None:
    class Undeclared(EventPayload):
        event_type = "test.undeclared"
        category = "health"

        note: str

    assert personal_fields(Undeclared) is None
    assert personal_fields(PupilIdentified) == tuple(PupilIdentified.model_fields)


def _envelope(payload: EventPayload) -> dict[str, Any]:
    env = Envelope.wrap(
        payload,
        child_id="hc-1",
        source=Source(agency="city-health", organisation_code="RR8"),
        occurred_at=datetime(2024, 9, 3, tzinfo=UTC),
    )
    return env.model_dump(mode="json")


CONDITION = ConditionRecorded(
    condition_ref="Condition/1",
    code=Concept(text="Cerebral palsy Qv7"),
    onset=date(2016, 4, 1),
    notes=("Note Kp9",),
)


def test_everything_but_the_open_fields_is_sealed_as_one_field_and_opens_again() -> None:
    key = new_data_key()
    sealed = seal_envelope(_envelope(CONDITION), key)
    assert set(sealed["payload"]) == {"condition_ref", "encounter_ref", WHOLE}
    assert is_encrypted(sealed["payload"][WHOLE])
    raw = orjson.dumps(sealed)
    for value in (b"Cerebral palsy Qv7", b"Note Kp9", b"2016-04-01", b"clinical_status"):
        assert value not in raw
    assert b"Condition/1" in raw  # declared open
    opened = open_envelope(sealed, key)
    assert opened.payload == CONDITION


def test_a_field_the_class_does_not_know_is_sealed_with_the_rest() -> None:
    key = new_data_key()
    data = _envelope(CONDITION)
    data["payload"]["added_by_a_newer_writer"] = "Unknown Zx1"
    assert b"Unknown Zx1" not in orjson.dumps(seal_envelope(data, key))


def test_without_the_key_the_payload_reads_as_erased() -> None:
    sealed = seal_envelope(_envelope(CONDITION), new_data_key())
    opened = open_envelope(sealed, None)
    assert isinstance(opened.payload, ErasedPayload)
    assert opened.payload.original_event_type == "health.condition_recorded"


def test_a_record_sealed_field_by_field_by_an_older_writer_still_opens() -> None:
    key = new_data_key()
    data = _envelope(CONDITION)
    data["payload"] = encrypt_fields(data["payload"], ("code", "notes", "onset"), key, aad="hc-1")
    assert open_envelope(data, key).payload == CONDITION
    erased = open_envelope(data, None)
    assert isinstance(erased.payload, ErasedPayload)
    assert PLACEHOLDER not in orjson.dumps(erased.model_dump(mode="json")).decode()
