"""Opening a few fields of a sealed record (`EnvelopeOpener.open_fields`) gives the values
a full open gives, and nothing where a full open could not read the record."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson

from hub.consent.crypto import MasterKey, MemoryKeyStore
from hub.consent.opener import EnvelopeOpener, data_key_id
from hub.consent.sealing import seal_envelope
from hub.events import Envelope, Source, encode
from hub.events.education import PupilIdentified, SenStatusRecorded
from hub.events.envelope import EventPayload
from hub.events.team import PractitionerJoined

AT = datetime(2024, 9, 2, 9, tzinfo=UTC)
PUPIL = PupilIdentified(
    upn="H801200001001", forename="Sam", middle_names="Lee", surname="Example", gender="M"
)
JOINED = PractitionerJoined(
    practitioner_id="p-1",
    role="orthotist",
    agency="health",
    since=date(2024, 1, 10),
    contact="orthotics@example.org",
)


async def sealed(keys: MemoryKeyStore, payload: EventPayload, child: str = "hc-1") -> bytes:
    env = Envelope.wrap(payload, child_id=child, source=Source(agency="oak"), occurred_at=AT)
    key = await keys.create(data_key_id(child, env.category))
    return orjson.dumps(seal_envelope(orjson.loads(encode(env)), key))


async def test_the_fields_asked_for_match_a_full_open() -> None:
    keys = MemoryKeyStore(MasterKey(bytes(range(32))))
    opener = EnvelopeOpener(keys)
    pupil = await sealed(keys, PUPIL)
    whole = await sealed(keys, JOINED, child="hc-2")  # no personal fields: sealed whole
    assert b"Example" not in pupil and b"orthotics" not in whole
    plain = encode(
        Envelope.wrap(
            SenStatusRecorded(sen_provision="K", start_date=date(2024, 9, 1)),
            child_id="hc-3",
            source=Source(agency="oak"),
            occurred_at=AT,
        )
    )
    got = await opener.open_fields(
        [pupil, whole, plain], ["forename", "surname", "contact", "role", "sen_provision", "nope"]
    )
    full = await opener.open_values([pupil, whole, plain])
    expected: list[dict[str, Any]] = [
        {"forename": "Sam", "surname": "Example"},
        {"contact": "orthotics@example.org", "role": "orthotist"},
        {"sen_provision": "K"},
    ]
    assert got == expected
    for fields, env in zip(got, full, strict=True):
        assert isinstance(env, Envelope)
        assert fields is not None
        assert {k: getattr(env.payload, k) for k in fields} == fields


async def test_nothing_where_the_record_cannot_be_read() -> None:
    keys = MemoryKeyStore(MasterKey(bytes(range(32))))
    opener = EnvelopeOpener(keys)
    pupil = await sealed(keys, PUPIL)
    await keys.delete(data_key_id("hc-1", "education"))  # erased
    old = orjson.loads(await sealed(keys, PUPIL, child="hc-9"))
    old["schema_version"] = 99  # not the type's current version: a full open would upcast
    got = await opener.open_fields(
        [pupil, orjson.dumps(old), b"not json", b'{"event_type": "no.such_type"}'], ["surname"]
    )
    assert got == [None, None, None, None]
    # without keys a sealed field cannot be read either
    assert await EnvelopeOpener(None).open_fields(
        [old_bytes := orjson.dumps({**old, "schema_version": 1})], ["surname"]
    ) == [None]
    assert (await opener.open_fields([old_bytes], ["surname"])) == [{"surname": "Example"}]


def test_a_health_payload_declares_what_is_not_sealed_and_seals_the_rest() -> None:
    from hub.consent.sealing import personal_fields
    from hub.events.health import ConditionRecorded, EncounterRecorded

    sealed = set(personal_fields(ConditionRecorded) or ())
    assert {"code", "severity", "notes", "onset"} <= sealed
    assert "condition_ref" not in sealed
    encounter = set(personal_fields(EncounterRecorded) or ())
    assert {"types", "reasons", "service_type", "attendance"} <= encounter
    assert not encounter & {"encounter_ref", "service_provider_code"}
