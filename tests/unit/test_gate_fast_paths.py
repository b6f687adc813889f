"""The gate's hot-path shortcuts give exactly what the plain paths give: the envelope's
JSON form (`envelope_doc`) as pydantic's, decision ids as `uuid.uuid5`, a batch's shared
decisions as one made per fact, sealed records that open to the envelope, and identifier
hashes as HMAC-SHA256 of `system:value`."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.gen_ctf import generate_ctf
from bench.gen_fhir import generate_bundle
from hub.adapters.registry import parse
from hub.consent.crypto import data_cipher, new_data_key
from hub.consent.decision import (
    DECISION_NAMESPACE,
    DecisionMemo,
    Fact,
    _decision_uuid,
    decide_sharing,
)
from hub.consent.policy import load_policy
from hub.consent.sealing import open_envelope, seal_envelope
from hub.consent.state import ConsentState
from hub.events import Envelope, Sharing, Source
from hub.events.codec import DOC_OPTIONS, envelope_doc, payload_json
from hub.events.education import SenStatusRecorded
from hub.events.envelope import ConsentRef, new_event_id
from hub.identity.identifiers import Identifier, IdSystem, InvalidIdentifier, check_nhs_number
from hub.identity.match_queue import strong_identifiers
from hub.identity.person_index import IdentifierHash
from hub.identity.subject import Subject
from hub.ingest.natural_keys import NATURAL_FIELDS, child_named, fact_key, restatement_key


def _envelopes() -> list[Envelope]:
    facts = [
        *parse("ctf", generate_ctf(20, seed=3), "application/xml", "t").facts,
        *parse("fhir", generate_bundle(60, seed=2), "application/fhir+json", "t").facts,
    ]
    return [
        Envelope.wrap(
            f.payload,
            child_id=f"hc-{i}",
            source=f.source,
            occurred_at=f.occurred_at,
            plan_id=f.plan_id,
            sharing=Sharing.of(f.purposes, f.statutory_basis),
            **({"category": f.category} if f.category else {}),
        )
        for i, f in enumerate(facts)
    ]


def _json(envelope: Envelope) -> bytes:
    return orjson.dumps(envelope.model_dump(mode="json"))


def test_envelope_doc_is_pydantics_json_for_adapter_facts() -> None:
    envelopes = _envelopes()
    assert len({e.event_type for e in envelopes}) >= 8
    parts: dict[int, object] = {}  # shared across the batch, as the gate shares it
    for env in envelopes:
        doc = envelope_doc(env, payload=payload_json(env.payload), parts=parts)  # type: ignore[arg-type]
        assert orjson.dumps(doc, option=DOC_OPTIONS) == _json(env)
        assert orjson.dumps(envelope_doc(env), option=DOC_OPTIONS) == _json(env)


def test_envelope_doc_with_every_optional_part_set() -> None:
    env = Envelope.wrap(
        SenStatusRecorded(sen_provision="K", start_date=date(2024, 9, 1)),
        child_id="hc-1",
        source=Source(
            agency="oak",
            record_id="Condition/c1",
            record_updated=datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-5))),
        ),
        occurred_at=datetime(2024, 9, 2, 10, 30, tzinfo=timezone(timedelta(hours=1))),
        plan_id="plan-1",
        sharing=Sharing.of(["review"], "reg6_ehc_advice"),
    )
    full = Envelope.model_validate(
        {
            **env.model_dump(),
            "correlation_id": uuid.uuid4(),
            "causation_id": uuid.uuid4(),
            "consent": ConsentRef(decision_id=uuid.uuid4(), lawful_basis="consent:c1"),
            "payload": env.payload,
        }
    )
    for e in (env, full):
        assert orjson.dumps(envelope_doc(e), option=DOC_OPTIONS) == _json(e)


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    )
    | st.builds(
        lambda d, s: d.replace(tzinfo=timezone(timedelta(seconds=s))),
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
        st.integers(min_value=-86_399, max_value=86_399),
    )
)
def test_envelope_doc_writes_times_as_pydantic_does(at: datetime) -> None:
    env = Envelope.wrap(
        SenStatusRecorded(sen_provision="K", start_date=date(2024, 9, 1)),
        child_id="hc-1",
        source=Source(agency="oak"),
        occurred_at=at,
    )
    assert orjson.dumps(envelope_doc(env), option=DOC_OPTIONS) == _json(env)


@given(st.text(max_size=200))
def test_decision_ids_are_uuid5_in_the_decision_namespace(name: str) -> None:
    assert _decision_uuid(name) == uuid.uuid5(DECISION_NAMESPACE, name)
    assert str(_decision_uuid(name)) == str(uuid.uuid5(DECISION_NAMESPACE, name))


def test_event_ids_stay_version_7_of_the_current_millisecond() -> None:
    before = datetime.now(UTC)
    ids = [new_event_id() for _ in range(2000)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert all(uuid.UUID(str(i)) == i and uuid.UUID(int=i.int) == i for i in ids)
    assert len(set(ids)) == len(ids)
    assert abs((ids[0].int >> 80) - int(before.timestamp() * 1000)) < 5_000


def test_a_batchs_shared_decision_is_the_one_made_per_fact() -> None:
    policy = load_policy()
    at = datetime(2024, 6, 1, tzinfo=UTC)
    envelopes = _envelopes()
    memo = DecisionMemo(policy, at)
    for env in envelopes:
        state = ConsentState(env.child_id)
        alone = decide_sharing(Fact.of(env), state, policy, at=at)
        shared, decision_id = memo.decide_envelope(env, state)
        assert decision_id == alone.decision_id
        ignore = {"decision_id", "event_id", "child_id"}
        assert shared.model_dump(exclude=ignore) == alone.model_dump(exclude=ignore)
        assert memo.decide(Fact.of(env), state) == alone


def test_a_record_sealed_on_the_fast_path_opens_to_its_envelope() -> None:
    key = new_data_key()
    cipher = data_cipher(key)
    parts: dict[int, object] = {}
    for env in _envelopes():
        doc = envelope_doc(env, payload=payload_json(env.payload), parts=parts)  # type: ignore[arg-type]
        fast = orjson.loads(
            orjson.dumps(seal_envelope(doc, key, cipher=cipher), option=DOC_OPTIONS)
        )
        plain = seal_envelope(env.model_dump(mode="json"), key)
        assert open_envelope(fast, key) == open_envelope(plain, key) == env
        assert {k: v for k, v in fast.items() if k != "payload"} == {
            k: v for k, v in plain.items() if k != "payload"
        }
        assert fast["payload"].keys() == plain["payload"].keys()


def test_restatement_keys_with_the_payloads_json_given_are_the_same() -> None:
    facts = parse("ctf", generate_ctf(10, seed=5), "application/xml", "t").facts
    for f in facts:
        assert restatement_key(f, secret=b"s" * 32) == restatement_key(
            f, secret=b"s" * 32, content=payload_json(f.payload)
        )


def test_identifier_hashes_are_hmac_sha256_of_system_and_value() -> None:
    secret = b"k" * 32
    key = hashlib.sha256(b"hub-person-index|" + secret).digest()
    ident = Identifier(IdSystem.NHS_NUMBER, "9434765919")
    expected = hmac.new(key, b"nhs_number:9434765919", hashlib.sha256).hexdigest()
    assert IdentifierHash(secret)(ident) == expected


def test_natural_keys_made_once_are_the_digest_of_their_parts() -> None:
    facts = parse("ctf", generate_ctf(10, seed=7), "application/xml", "t").facts
    checked = 0
    for f in facts:
        fields = NATURAL_FIELDS.get(f.payload.event_type)
        if fields is None:
            continue
        content = payload_json(f.payload)
        parts = [
            f.source.agency,
            f.source.organisation_code,
            f.payload.event_type,
            [content.get(n) for n in fields],
        ]
        plain = hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:40]
        for _ in range(2):  # made, then kept
            assert fact_key(f.source, f.payload, f.ref, content=content) == plain
            assert fact_key(f.source, f.payload, f.ref) == plain
        checked += 1
    assert checked > 0


def test_identifier_hashes_kept_are_the_ones_made_beyond_what_is_kept() -> None:
    secret = b"k" * 32
    key = hashlib.sha256(b"hub-person-index|" + secret).digest()
    hashes = IdentifierHash(secret)
    idents = [Identifier(IdSystem.UPN, f"A{n:012d}") for n in range(IdentifierHash._KEEP + 10)]
    for ident in [*idents, *idents[:20]]:
        expected = hmac.new(key, f"upn:{ident.value}".encode(), hashlib.sha256).hexdigest()
        assert hashes(ident) == expected


def test_nhs_numbers_checked_again_give_the_same_answer() -> None:
    for _ in range(2):
        assert check_nhs_number("9434765919") == Identifier(IdSystem.NHS_NUMBER, "9434765919")
        with pytest.raises(InvalidIdentifier) as exc:
            check_nhs_number("9434765918")
        assert exc.value.rule == "check_digit"


@given(
    st.builds(
        Subject,
        nhs_number=st.none() | st.text(max_size=12),
        upn=st.none() | st.text(max_size=13),
        la_code=st.none() | st.text(max_size=8),
        given_name=st.none() | st.text(max_size=20),
        date_of_birth=st.none() | st.dates(),
        postcode=st.none() | st.text(max_size=8),
    )
)
def test_the_child_as_named_is_the_subjects_json_form(subject: Subject) -> None:
    plain = subject.model_dump(mode="json", exclude_none=True) or None
    named = child_named(subject)
    assert named == plain
    assert orjson.dumps(named, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        plain, option=orjson.OPT_SORT_KEYS
    )


def test_strong_identifiers_of_a_child_named_by_nhs_number_alone() -> None:
    nhs = Identifier(IdSystem.NHS_NUMBER, "9434765919")
    assert strong_identifiers(Subject(nhs_number="9434765919")) == ([nhs], [])
    assert strong_identifiers(Subject(nhs_number="")) == ([], [])
    assert strong_identifiers(Subject(given_name="Ann")) == ([], [])
    good, bad = strong_identifiers(Subject(nhs_number="9434765918"))
    assert good == [] and [b.rule for b in bad] == ["check_digit"]
    good, bad = strong_identifiers(Subject(nhs_number="9434765919", la_code="123"))
    assert good == [nhs] and len(bad) == 1  # the LA child id still checked
