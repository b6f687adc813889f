"""The write path's shortcuts give what the validated path gives, and refuse what it
refuses: audit records sealed with their line in one pass, envelopes and facts built from
validated parts without validating them again, and XML screened by expat before the C
parser reads it."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from defusedxml.ElementTree import fromstring as defused_fromstring
from pydantic import ValidationError

from bench.gen_ctf import generate_ctf
from hub.adapters.xml_safety import parse_xml
from hub.consent.audit_chain import GENESIS_HASH, AuditRecord, seal_line, verify_lines
from hub.consent.decision import Fact
from hub.errors import PermanentError
from hub.events import ENVELOPE_VERSION, Envelope, Sharing, Source, decode, encode
from hub.events.education import SenStatusRecorded

TIMES = [
    datetime(2024, 1, 1, tzinfo=UTC),
    datetime(2024, 1, 1, 1, 2, 3, 4500, tzinfo=UTC),
    datetime(2024, 6, 1, 12, tzinfo=timezone(timedelta(hours=1))),
    datetime(2024, 6, 1, 12, 0, 0, 1, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
]
DETAILS: list[dict[str, Any]] = [
    {},
    {"event_id": "e-1", "n": 3, "ok": True, "none": None, "audience": ["a", "b"]},
    {"nested": {"k": [1, {"q": "r"}]}, "reason": "withheld: no consent covers it"},
]


def _validated(prev: AuditRecord | None, **kw: Any) -> AuditRecord:
    """A record as `AuditRecord` validation makes it (the path the shortcut stands for)."""
    body = {
        "seq": 1 if prev is None else prev.seq + 1,
        "prev_hash": GENESIS_HASH if prev is None else prev.hash,
        "child_id": None,
        **kw,
        "hash": GENESIS_HASH,
    }
    draft = AuditRecord.model_validate(body)
    return draft.model_copy(update={"hash": draft.expected_hash()})


def test_a_record_sealed_in_one_pass_is_the_validated_record_and_line() -> None:
    prev: AuditRecord | None = None
    lines = []
    for at in TIMES:
        for details in DETAILS:
            rid = uuid.uuid4()
            fields = dict(chain="c", kind="decision", at=at, actor="a", details=details)
            record, line = seal_line(prev, child_id="hc-1", record_id=rid, **fields)
            expected = _validated(prev, record_id=rid, child_id="hc-1", **fields)
            assert record == expected
            assert line == expected.to_line() == record.to_line()
            lines.append(line)
            prev = record
    assert verify_lines(lines).ok


@pytest.mark.parametrize(
    "fields",
    [
        {"details": {"nhs_number": "943 476 5919"}},  # personal data in the details
        {"details": {"when": 1.5}},  # not canonical
        {"at": datetime(2024, 1, 1)},  # no timezone
        {"actor": ""},
        {"kind": "gossip"},
        {"child_id": "x" * 65},
    ],
)
def test_what_the_record_refuses_is_still_refused(fields: dict[str, Any]) -> None:
    kw: dict[str, Any] = {"chain": "c", "kind": "read", "at": TIMES[0], "actor": "x", **fields}
    with pytest.raises(ValidationError):
        seal_line(None, **kw)


def _payload() -> SenStatusRecorded:
    return SenStatusRecorded(sen_provision="K", start_date=date(2024, 9, 1))


def test_an_envelope_of_validated_parts_is_the_validated_envelope() -> None:
    source = Source(agency="oak-school", message_id="m1")
    sharing = Sharing.of(["ehc_assessment"], "reg6_ehc_advice")
    env = Envelope.wrap(
        _payload(),
        child_id="hc-1",
        source=source,
        occurred_at=TIMES[1],
        plan_id="p-1",
        sharing=sharing,
    )
    again = Envelope(
        envelope_version=ENVELOPE_VERSION,
        sharing=sharing,
        event_id=env.event_id,
        recorded_at=env.recorded_at,
        event_type=SenStatusRecorded.event_type,
        schema_version=SenStatusRecorded.schema_version,
        category=SenStatusRecorded.category,
        child_id="hc-1",
        plan_id="p-1",
        source=source,
        occurred_at=TIMES[1],
        payload=env.payload,
    )
    assert env == again
    assert encode(env) == encode(again)
    assert decode(encode(env)) == env
    assert env.event_type == SenStatusRecorded.event_type and env.category == "education"
    fact = Fact.of(env)
    assert fact == Fact.model_validate(fact.model_dump())
    assert fact.purposes == ("ehc_assessment",) and fact.basis_claimed == "reg6_ehc_advice"


@pytest.mark.parametrize(
    "fields",
    [
        {"occurred_at": datetime(2024, 9, 2)},  # naive
        {"child_id": ""},
        {"child_id": "x" * 65},
        {"category": ""},
        {"plan_id": "p" * 65},
    ],
)
def test_what_the_envelope_refuses_is_still_refused(fields: dict[str, Any]) -> None:
    kw: dict[str, Any] = {
        "child_id": "hc-1",
        "source": Source(agency="s"),
        "occurred_at": TIMES[0],
        **fields,
    }
    with pytest.raises(ValidationError):
        Envelope.wrap(_payload(), **kw)


def test_a_fact_with_an_unknown_purpose_is_still_refused() -> None:
    with pytest.raises(ValidationError):
        Sharing.of(["marketing"])
    unchecked = Sharing.model_construct(purposes=("marketing",), basis_claimed=None)
    env = Envelope.wrap(
        _payload(), child_id="hc-1", source=Source(agency="s"), occurred_at=TIMES[0]
    )
    with pytest.raises(ValidationError):
        Fact.of(env.model_copy(update={"sharing": unchecked}))


def test_screened_xml_is_the_tree_defusedxml_gives() -> None:
    data = generate_ctf(20, seed=3)
    ours = parse_xml(data, document="CTF")
    theirs = defused_fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    for el in theirs.iter():  # parse_xml strips namespaces
        el.tag = el.tag.rpartition("}")[2]
    assert ET.tostring(ours) == ET.tostring(theirs)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>', "xml.doctype"),
        (b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://example.org/x.dtd"><x/>', "xml.doctype"),
        (b"<x><y></x>", "xml"),
        (b'<?xml version="1.0" encoding="no-such-encoding"?><x/>', "xml.encoding"),
    ],
)
def test_screened_xml_refuses_as_before(data: bytes, field: str) -> None:
    with pytest.raises(PermanentError) as caught:
        parse_xml(data, document="file")
    assert caught.value.field == field
