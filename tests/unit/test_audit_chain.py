"""The audit trail's hash chain: canonical JSON, sealing, and verification that names
the first broken record — including when any single byte of a stored trail changes."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hub.consent.audit_chain import (
    GENESIS_HASH,
    AuditRecord,
    canonical_json,
    chain_hash,
    seal,
    verify_chain,
    verify_lines,
)
from hub.consent.audit_trail import AuditEntry, MemoryAuditTrail

T0 = datetime(2024, 6, 1, 9, tzinfo=UTC)


def trail(n: int = 5, chain: str = "child-1") -> list[AuditRecord]:
    records: list[AuditRecord] = []
    kinds = ["consent_change", "decision", "read", "release", "redaction"]
    for i in range(n):
        records.append(
            seal(
                records[-1] if records else None,
                chain=chain,
                kind=kinds[i % len(kinds)],  # type: ignore[arg-type]
                at=T0 + timedelta(minutes=i),
                actor="coord-1" if i % 2 else "gate",
                child_id=chain,
                details={"event_id": f"e-{i}", "outcome": "permit", "facts": [f"e-{i}"], "n": i},
                record_id=uuid.UUID(int=i + 1),
            )
        )
    return records


def test_canonical_json_sorts_keys_and_has_no_whitespace() -> None:
    assert canonical_json({"b": 1, "a": {"d": [1, 2], "c": "é"}}) == (
        '{"a":{"c":"é","d":[1,2]},"b":1}'.encode()
    )


def test_chain_hash_is_sha256_over_the_previous_hash_and_the_canonical_body() -> None:
    body = {"b": 2, "a": 1}
    expected = hashlib.sha256(GENESIS_HASH.encode() + b'{"a":1,"b":2}').hexdigest()
    assert chain_hash(GENESIS_HASH, body) == expected


def test_seal_links_records_in_sequence() -> None:
    records = trail(3)
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS_HASH
    assert records[1].prev_hash == records[0].hash
    assert records[2].prev_hash == records[1].hash
    assert all(r.hash == r.expected_hash() for r in records)
    with pytest.raises(ValueError, match="another chain"):
        seal(records[-1], chain="child-2", kind="read", at=T0, actor="x")


def test_an_intact_trail_verifies() -> None:
    records = trail()
    result = verify_chain(records)
    assert result.ok and result.checked == 5 and result.chains == 1 and result.first_broken is None
    assert verify_lines([r.to_line() for r in records]).ok
    assert verify_chain([r.model_dump(mode="json") for r in records]).ok
    assert verify_chain([]).ok


def test_interleaved_chains_verify_independently() -> None:
    a, b = trail(3, "child-a"), trail(4, "child-b")
    mixed = [a[0], b[0], b[1], a[1], b[2], a[2], b[3]]
    result = verify_chain(mixed)
    assert result.ok and result.chains == 2 and result.checked == 7


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("actor", "someone-else"),
        ("kind", "erasure"),
        ("child_id", "child-2"),
        ("at", "2024-06-01T09:02:01Z"),
        ("details", {"event_id": "e-2", "outcome": "withhold", "facts": ["e-2"], "n": 2}),
        ("record_id", str(uuid.UUID(int=99))),
    ],
)
def test_an_altered_field_is_detected_and_named(field: str, value: Any) -> None:
    lines = [r.model_dump(mode="json") for r in trail()]
    lines[2][field] = value
    result = verify_chain(lines)
    assert not result.ok
    assert result.first_broken is not None
    assert result.first_broken.index == 2 and result.first_broken.seq == 3
    assert "altered" in result.first_broken.reason
    assert result.checked == 2


def test_a_removed_record_is_a_sequence_gap() -> None:
    records = trail()
    result = verify_chain([*records[:2], *records[3:]])
    assert result.first_broken is not None
    assert result.first_broken.seq == 4 and "expected seq 3" in result.first_broken.reason


def test_a_reordered_trail_is_detected() -> None:
    records = trail()
    result = verify_chain([records[0], records[2], records[1], *records[3:]])
    assert result.first_broken is not None and result.first_broken.index == 1


def test_a_rehashed_forgery_breaks_the_next_link() -> None:
    records = trail()
    forged = records[2].model_copy(update={"actor": "intruder"})
    forged = forged.model_copy(update={"hash": forged.expected_hash()})
    result = verify_chain([*records[:2], forged, *records[3:]])
    assert result.first_broken is not None
    assert result.first_broken.index == 3 and "prev_hash" in result.first_broken.reason


def test_verification_can_start_from_an_anchor() -> None:
    records = trail()
    anchors = {"child-1": (records[1].seq, records[1].hash)}
    assert verify_chain(records[2:], anchors=anchors).ok
    assert not verify_chain(records[2:]).ok


def test_a_record_that_is_not_valid_is_named() -> None:
    lines = [r.model_dump(mode="json") for r in trail(3)]
    lines[1]["surprise"] = 1
    result = verify_chain(lines)
    assert result.first_broken is not None and result.first_broken.index == 1
    assert "not a valid audit record" in result.first_broken.reason


@pytest.mark.parametrize(
    "details",
    [
        {"name": "Ada"},
        {"nested": {"date_of_birth": "2010-01-01"}},
        {"items": [{"nhs_number": "943 476 5919"}]},
        {"score": 1.5},
    ],
)
def test_audit_details_refuse_personal_data_keys_and_floats(details: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        seal(None, chain="c", kind="read", at=T0, actor="x", details=details)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        seal(None, chain="c", kind="read", at=datetime(2024, 1, 1), actor="x")


def test_verify_lines_refuses_a_non_canonical_line() -> None:
    lines = [r.to_line() for r in trail(3)]
    lines[1] = orjson.dumps(orjson.loads(lines[1]), option=orjson.OPT_INDENT_2)
    result = verify_lines(lines)
    assert result.first_broken is not None and result.first_broken.index == 1


def test_verify_lines_reports_the_first_problem_in_trail_order() -> None:
    lines = [r.to_line() for r in trail(5)]
    altered = bytearray(lines[1])
    altered[altered.index(b"coord-1")] = ord("k")
    lines[1] = bytes(altered)
    lines[3] = b"{not json"
    result = verify_lines(lines)
    assert result.first_broken is not None and result.first_broken.index == 1


def test_changing_one_byte_of_a_stored_trail_is_detected() -> None:
    lines = [r.to_line() for r in trail(4)]
    stored = b"\n".join(lines)
    # every position of the stored trail, one byte flipped
    for position in range(len(stored)):
        if stored[position : position + 1] == b"\n":
            continue
        tampered = bytearray(stored)
        tampered[position] ^= 0x01
        result = verify_lines(bytes(tampered).split(b"\n"))
        assert not result.ok, position
        broken = result.first_broken
        assert broken is not None
        line = stored[:position].count(b"\n")
        assert broken.index == line, (position, broken)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=1, max_value=255),
)
def test_any_single_byte_change_is_detected(position_seed: int, xor: int) -> None:
    lines = [r.to_line() for r in trail(3)]
    stored = b"\n".join(lines)
    position = position_seed % len(stored)
    tampered = bytearray(stored)
    tampered[position] ^= xor
    parts = bytes(tampered).split(b"\n")
    result = verify_lines(parts)
    assert not result.ok


async def test_a_changed_byte_of_a_memory_trail_is_detected() -> None:
    trail = MemoryAuditTrail()
    entry = AuditEntry(kind="read", actor="coordinator:casey", child_id="hc-1")
    await trail.append([entry, entry, entry])
    lines = trail.lines("hc-1")
    lines[1] = lines[1].replace(b"coordinator:casey", b"coordinator:cases")
    result = await trail.verify()
    assert not result.ok and result.first_broken is not None
    assert (result.first_broken.seq, result.checked) == (2, 1)
