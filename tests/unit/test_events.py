"""Events: the codec round-trips exactly, old versions upcast, bad input names its field,
and the checked-in JSON Schemas match the code."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.errors import PermanentError
from hub.events import Envelope, Source, decode, encode, registry
from hub.events.education import SenNeedRanked, SenStatusRecorded, upcast_sen_status_v1_v2
from hub.events.envelope import new_event_id
from hub.events.schemas import CONTRACTS_EVENTS, all_schemas

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"

need_types = st.sampled_from(["SPLD", "MLD", "SLD", "PMLD", "SEMH", "SLCN", "ASD", "OTH"])
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)


@st.composite
def sen_envelopes(draw: st.DrawFn) -> Envelope:
    start = draw(st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 1, 1)))
    end = draw(st.none() | st.dates(min_value=start, max_value=date(2031, 1, 1)))
    needs = draw(st.lists(need_types, max_size=3, unique=True))
    payload = SenStatusRecorded(
        sen_provision=draw(st.sampled_from(["E", "K", "N"])),
        start_date=start,
        end_date=end,
        needs=tuple(SenNeedRanked(type=t, rank=i + 1) for i, t in enumerate(needs)),  # type: ignore[arg-type]
    )
    occurred = draw(
        st.datetimes(
            min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
        )
    )
    return Envelope.wrap(
        payload,
        child_id=draw(st.from_regex(r"hc-[0-9a-f]{8}", fullmatch=True)),
        source=Source(
            agency=draw(texts),
            organisation_code=draw(st.none() | st.from_regex(r"[A-Z0-9]{3,8}", fullmatch=True)),
            message_id=draw(st.none() | texts),
        ),
        occurred_at=occurred,
        plan_id=draw(st.none() | st.from_regex(r"plan-[0-9]{3}", fullmatch=True)),
        correlation_id=draw(st.none() | st.uuids()),
    )


@given(sen_envelopes())
@settings(max_examples=200)
def test_codec_round_trips_exactly(env: Envelope) -> None:
    raw = encode(env)
    back = decode(raw)
    assert back == env
    assert encode(back) == raw
    assert isinstance(back.payload, SenStatusRecorded)


def test_stored_v1_sample_upcasts_to_the_current_version() -> None:
    raw = (FIXTURES / "education.sen_status_recorded.v1.json").read_bytes()
    env = decode(raw)
    assert env.schema_version == 2
    assert isinstance(env.payload, SenStatusRecorded)
    # School Action Plus (P) became SEN support (K); BESD became SEMH in the 2014 Code
    assert env.payload.sen_provision == "K"
    assert env.payload.needs == (SenNeedRanked(type="SEMH", rank=1),)
    assert env.payload.start_date == date(2013, 9, 4)
    assert str(env.event_id) == "0191d3a4-7c00-7000-8000-0000000000a1"
    # once upcast, it encodes as the current version
    assert json.loads(encode(env))["schema_version"] == 2


@pytest.mark.parametrize(
    ("v1", "provision", "needs"),
    [
        (
            {"sen_provision": "S", "start_date": "2010-01-01", "need_type": "ASD"},
            "E",
            [{"type": "ASD", "rank": 1}],
        ),
        ({"sen_provision": "A", "start_date": "2010-01-01", "need_type": None}, "K", []),
        ({"sen_provision": "N", "start_date": "2010-01-01"}, "N", []),
    ],
)
def test_upcaster_maps_pre_2014_codes(
    v1: dict[str, object], provision: str, needs: list[object]
) -> None:
    out = upcast_sen_status_v1_v2(v1)
    assert out["sen_provision"] == provision
    assert out["needs"] == needs
    assert "need_type" not in out


def _raw(**changes: object) -> dict[str, object]:
    data = json.loads((FIXTURES / "education.sen_status_recorded.v1.json").read_bytes())
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"event_type": "no.such"}, "event_type", "unknown event type"),
        ({"schema_version": 9}, "schema_version", "newer than this hub understands"),
        ({"schema_version": "1"}, "schema_version", "positive integer"),
        ({"payload": []}, "payload", "object"),
        ({"child_id": ""}, "child_id", "at least 1 character"),
        ({"occurred_at": "2013-09-04T08:30:00"}, "occurred_at", "timezone"),
        ({"payload": {"sen_provision": "P", "start_date": "2013-13-40"}}, "payload.start_date", ""),
        (
            {
                "payload": {
                    "sen_provision": "P",
                    "start_date": "2013-09-04",
                    "end_date": "2012-01-01",
                }
            },
            "payload",
            "end_date is before start_date",
        ),
    ],
)
def test_bad_events_name_the_field_and_reason(
    changes: dict[str, object], field: str, fragment: str
) -> None:
    with pytest.raises(PermanentError) as info:
        decode(json.dumps(_raw(**changes)))
    assert info.value.field == field
    assert fragment in info.value.reason


def test_not_json_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match="not valid JSON"):
        decode(b"\xff{")


def test_unknown_fields_from_newer_writers_are_tolerated() -> None:
    data = _raw(new_envelope_field=1)
    data["payload"] = {"sen_provision": "K", "start_date": "2020-01-01", "colour": "blue"}
    data["schema_version"] = 2
    env = decode(json.dumps(data))
    assert env.payload == SenStatusRecorded(sen_provision="K", start_date=date(2020, 1, 1))


def test_event_ids_are_time_ordered_uuid7() -> None:
    ids = [new_event_id() for _ in range(50)]
    assert all(i.version == 7 for i in ids)
    assert [i.bytes[:6] for i in ids] == sorted(i.bytes[:6] for i in ids)


IRREGULAR_PAST = {"left", "held", "made", "withdrawn", "given", "sent", "met", "set", "undertaken"}


def test_every_event_type_declares_a_category_and_is_past_tense() -> None:
    for cls in registry:
        assert cls.category, cls.event_type
        area, _, name = cls.event_type.partition(".")
        assert area and name, cls.event_type
        verb = name.split("_")[-1]
        assert verb.endswith("ed") or verb in IRREGULAR_PAST, cls.event_type


def test_checked_in_json_schemas_match_the_code() -> None:
    """Fails when an event model changes without `python -m hub.events.schemas`."""
    wanted = all_schemas()
    on_disk = {
        p.name: p.read_text(encoding="utf-8") for p in CONTRACTS_EVENTS.glob("*.schema.json")
    }
    assert sorted(on_disk) == sorted(wanted), "event types and contracts/events/ differ"
    for name, text in wanted.items():
        assert on_disk[name] == text, f"{name} drifted: run `python -m hub.events.schemas`"


def test_schemas_validate_real_encoded_events() -> None:
    import jsonschema

    env = Envelope.wrap(
        SenStatusRecorded(sen_provision="E", start_date=date(2024, 1, 1)),
        child_id="hc-1",
        source=Source(agency="school-a"),
        occurred_at=datetime(2024, 1, 2, tzinfo=UTC),
    )
    schema = json.loads(all_schemas()["education.sen_status_recorded.schema.json"])
    jsonschema.validate(json.loads(encode(env)), schema)
    bad = json.loads(encode(env))
    bad["payload"]["sen_provision"] = "Z"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
