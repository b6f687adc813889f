"""The sharing context travels in the envelope (version 2); records of version 1, which
carried it in headers, still give the same `Fact`."""

from __future__ import annotations

from datetime import UTC, date, datetime

import orjson
import pytest
from pydantic import ValidationError

from hub.consent.decision import Fact
from hub.consent.opener import EnvelopeOpener
from hub.events import (
    DEFAULT_PURPOSES,
    ENVELOPE_VERSION,
    Envelope,
    Sharing,
    Source,
    decode,
    encode,
    upcast_envelope,
    upcast_envelope_data,
)
from hub.events.education import SenStatusRecorded
from hub.log import LogName, StoredRecord
from hub.projections.base import sharing_columns
from hub.projections.runner import decode_records

V1_RECORD = (
    b'{"event_id":"0190e5a0-0000-7000-8000-000000000001","event_type":'
    b'"education.sen_status_recorded","schema_version":2,"child_id":"hc-7","plan_id":null,'
    b'"source":{"agency":"oak-school","organisation_code":"8881234","system":null,'
    b'"message_id":"m1"},"category":"education","occurred_at":"2024-09-02T00:00:00Z",'
    b'"recorded_at":"2024-09-02T08:00:00Z","correlation_id":null,"causation_id":null,'
    b'"consent":null,"payload":{"sen_provision":"K","start_date":"2024-09-01",'
    b'"end_date":null,"needs":[]}}'
)
"""A record as the hub wrote it before the envelope had a version (encoded by that code)."""

V1_HEADERS = (
    ("x-dedupe-key", b"oak-school|m1|sen"),
    ("x-purposes", b"direct_care,review"),
    ("x-basis-claimed", b"reg6_ehc_advice"),
)

OLD_FACT = Fact(  # what the readers of version 1 records built from the record and headers
    event_id="0190e5a0-0000-7000-8000-000000000001",  # type: ignore[arg-type]
    child_id="hc-7",
    category="education",
    source_agency="oak-school",
    source_organisation="8881234",
    purposes=("direct_care", "review"),
    occurred_at=datetime(2024, 9, 2, tzinfo=UTC),
    basis_claimed="reg6_ehc_advice",
)


def _stored(value: bytes, headers: tuple[tuple[str, bytes], ...]) -> StoredRecord:
    return StoredRecord(LogName.EVENTS, 0, 5, "hc-7", value, headers, datetime.now(UTC))


def test_a_version_1_record_upcast_with_its_headers_gives_the_same_fact() -> None:
    env = decode(V1_RECORD)
    assert env.envelope_version == 1 and env.sharing is None
    upcast = upcast_envelope(env, V1_HEADERS)
    assert upcast.envelope_version == ENVELOPE_VERSION
    assert Fact.of(upcast) == OLD_FACT
    assert Fact.from_stored(upcast_envelope_data(orjson.loads(V1_RECORD), V1_HEADERS)) == OLD_FACT


def test_a_version_1_record_without_sharing_headers_is_shared_for_the_default_purposes() -> None:
    env = upcast_envelope(decode(V1_RECORD), (("x-dedupe-key", b"k"),))
    assert Fact.of(env).purposes == DEFAULT_PURPOSES and Fact.of(env).basis_claimed is None
    data = upcast_envelope_data(orjson.loads(V1_RECORD), ())
    assert Fact.from_stored(data) == Fact.of(env)


async def test_the_projection_runner_upcasts_version_1_records_once_for_every_view() -> None:
    good, bad = await decode_records(EnvelopeOpener(None), "open", [_stored(V1_RECORD, V1_HEADERS)])
    assert not bad
    [applied] = good
    assert Fact.of(applied.envelope) == OLD_FACT
    assert sharing_columns(applied.envelope) == ("direct_care,review", "reg6_ehc_advice")


def test_a_version_2_envelope_carries_its_sharing_context_and_ignores_headers() -> None:
    env = Envelope.wrap(
        SenStatusRecorded(sen_provision="K", start_date=date(2024, 9, 1)),
        child_id="hc-7",
        source=Source(agency="oak-school", organisation_code="8881234", message_id="m1"),
        occurred_at=datetime(2024, 9, 2, tzinfo=UTC),
        sharing=Sharing.of(["direct_care", "review"], "reg6_ehc_advice"),
    )
    raw = encode(env)
    assert orjson.loads(raw)["sharing"] == {
        "purposes": ["direct_care", "review"],
        "basis_claimed": "reg6_ehc_advice",
    }
    again = upcast_envelope(decode(raw), (("x-purposes", b"ehc_assessment"),))
    assert again == env
    expected = OLD_FACT.model_copy(update={"event_id": env.event_id})
    assert Fact.of(again) == expected
    assert Fact.from_stored(upcast_envelope_data(orjson.loads(raw), ())) == expected


def test_an_unknown_purpose_in_old_headers_still_reads_and_is_refused_by_the_fact() -> None:
    env = upcast_envelope(decode(V1_RECORD), (("x-purposes", b"marketing"),))
    assert env.sharing is not None and env.sharing.purposes == ("marketing",)
    with pytest.raises(ValidationError):
        Fact.of(env)


def test_no_purposes_means_the_defaults_and_an_empty_basis_means_none() -> None:
    assert Sharing.of([], "") == Sharing()
    assert Sharing.of(["review"]) is Sharing.of(["review"])  # built once
