"""The match queue through the real consent gate on an embedded hub: a record the hub
cannot link without a person's judgement is held, never guessed and never lost; a
coordinator's decision releases its facts for the chosen child, re-keyed; everything is
idempotent and nothing personal is stored in the clear."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from stdnum.gb import nhs as stdnum_nhs
from stdnum.gb import upn as stdnum_upn

from hub.bootstrap import Hub, open_hub
from hub.consent.opener import data_key_id
from hub.events import Source, decode
from hub.events.education import SenStatusRecorded
from hub.identity.identifiers import check_upn
from hub.identity.match_queue import MatchError, Unlinked
from hub.ingest.model import FactOutcome, InboundFact, Subject
from hub.log import LogName, StoredRecord
from hub.queries.match_queue import review_queue
from hub.settings import Settings


def upn(n: int) -> str:
    body = f"8012000{n:05d}"
    return stdnum_upn.calc_check_digit(body) + body


def nhs_number(n: int) -> str:
    """A valid NHS number (modulus 11; a body whose check would be 10 is skipped)."""
    body = 943476000 + n
    while True:
        digits = f"{body:09d}"
        check = 11 - sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check != 10:
            number = digits + str(check % 11)
            assert stdnum_nhs.is_valid(number)
            return number
        body += 1


def bad_nhs_number(n: int) -> str:
    """An NHS number whose check digit is wrong."""
    good = nhs_number(n)
    return good[:-1] + str((int(good[-1]) + 1) % 10)


DOB = date(2015, 3, 2)
NAMES = {"given_name": "Zebedee", "family_name": "Quillfeather"}


def fact(
    subject: Subject, message: str, ref: str = "f1", agency: str = "city-health"
) -> InboundFact:
    # one SEN status per ref: facts at different places are different facts (the same
    # status again, wherever it is sent, is a restatement: hub.ingest.natural_keys)
    start = date(2024, 9, 1) + timedelta(days=sum(map(ord, ref)) % 28)
    return InboundFact(
        subject=subject,
        payload=SenStatusRecorded(sen_provision="K", start_date=start),
        occurred_at=datetime(2024, 9, 2, 9, tzinfo=UTC),
        source=Source(agency=agency, message_id=message),
        ref=ref,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def hub(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Hub]:
    """An embedded hub; its read store on SQLite, or on PostgreSQL (a fresh schema)."""
    options: dict[str, Any] = {}
    if request.param == "postgres":
        options = {
            "store_backend": "postgres",
            "postgres_dsn": request.getfixturevalue("postgres_dsn"),
            "postgres_schema": request.getfixturevalue("postgres_schema"),
        }
    settings = Settings(data_dir=tmp_path / "data", _env_file=None, **options)  # type: ignore[call-arg]
    the_hub = await open_hub(settings)
    try:
        yield the_hub
    finally:
        await the_hub.close()


async def records(hub: Hub, log: LogName) -> list[StoredRecord]:
    out: list[StoredRecord] = []
    for part in range(hub.log.partitions(log)):
        out.extend(await hub.log.read(log, part, 0, 10_000))
    return out


async def event_types(hub: Hub, log: LogName = LogName.EVENTS) -> Counter[str]:
    return Counter(orjson.loads(r.value)["event_type"] for r in await records(hub, log))


async def known_child(hub: Hub, subject: Subject, message: str) -> str:
    [out] = await hub.handlers.submit_facts([fact(subject, message)], actor="test")
    assert out.status in ("appended", "withheld"), out
    assert out.child_id is not None
    return out.child_id


def statuses(outcomes: list[FactOutcome]) -> list[str]:
    return [o.status for o in outcomes]


async def test_a_record_with_only_demographics_is_queued_held_and_never_linked(hub: Hub) -> None:
    subject = Subject(**NAMES, date_of_birth=DOB, postcode="ZZ99 9ZZ")
    outcomes = await hub.handlers.submit_facts(
        [fact(subject, "m1", "a"), fact(subject, "m1", "b")], actor="test"
    )
    assert statuses(outcomes) == ["queued", "queued"]
    assert all(o.child_id is None and o.rule == "match_queue.no_identifier" for o in outcomes)
    [item] = await hub.matches.items()
    assert item.reason == "no_identifier" and item.facts_held == 2
    assert item.item_id in (outcomes[0].reason or "")
    # nothing reached the shared truth: only the ids-only queue event; the facts are held
    assert await event_types(hub) == Counter({"identity.match_queued": 1})
    held = await records(hub, LogName.WITHHELD)
    assert {orjson.loads(r.value)["child_id"] for r in held} == {item.provisional_child_id}
    assert {r.header("x-match-queue-item") for r in held} == {item.item_id.encode()}
    [queued] = [decode(r.value) for r in await records(hub, LogName.EVENTS)]
    assert queued.payload.model_dump() == {  # type: ignore[union-attr]
        "item_id": item.item_id, "reason": "no_identifier", "rule": None,
        "candidate_child_ids": (), "facts_held": 2,
    }  # fmt: skip
    assert not await hub.persons.exists(item.provisional_child_id)


async def test_nothing_personal_is_stored_in_the_clear(hub: Hub, tmp_path: Path) -> None:
    subject = Subject(**NAMES, date_of_birth=DOB, postcode="ZZ99 9ZZ", upn=upn(999)[:-1] + "X")
    [out] = await hub.handlers.submit_facts([fact(subject, "m1")], actor="test")
    assert out.status == "queued"
    checkpoint = getattr(hub.store, "checkpoint", None)
    if checkpoint is not None:
        await checkpoint()
    blob = b"".join(p.read_bytes() for p in (tmp_path / "data").iterdir() if p.is_file())
    for value in ("Zebedee", "Quillfeather", "ZZ99 9ZZ", "2015-03-02", subject.upn):
        assert value is not None and value.encode() not in blob, value


async def test_the_same_message_again_is_a_duplicate_not_a_second_item(hub: Hub) -> None:
    subject = Subject(**NAMES, date_of_birth=DOB)
    await hub.handlers.submit_facts([fact(subject, "m1")], actor="test")
    again = await hub.handlers.submit_facts(
        [fact(subject, "m1"), fact(subject, "m1", "new-ref")], actor="test"
    )
    assert statuses(again) == ["duplicate", "queued"]
    [item] = await hub.matches.items()
    assert item.facts_held == 2
    assert (await event_types(hub))["identity.match_queued"] == 1


async def test_linking_releases_the_held_facts_re_keyed_to_the_chosen_child(hub: Hub) -> None:
    child = await known_child(hub, Subject(upn=upn(1), **NAMES, date_of_birth=DOB), "known")
    held = Subject(**NAMES, date_of_birth=DOB, nhs_number=bad_nhs_number(7))
    outcomes = await hub.handlers.submit_facts(
        [fact(held, "m2", "a"), fact(held, "m2", "b")], actor="test"
    )
    assert statuses(outcomes) == ["queued", "queued"]
    [item] = await hub.matches.items()
    assert item.reason == "invalid_identifier" and item.rule == "nhs_number.check_digit"
    assert item.candidates == (child,)  # same name and date of birth: proposed, not linked

    [view] = await review_queue(hub.reads, actor="coordinator:casey", route="test")
    assert view["record"]["given_name"] == "Zebedee"
    assert view["candidates"][0]["name_and_date_of_birth_match"] is True
    assert view["candidates"][0]["date_of_birth_matches"] is True

    result = await hub.handlers.resolve_match(item.item_id, decision="link", child_id=child,
                                 actor="coordinator:casey")  # fmt: skip
    assert result.child_id == child
    assert statuses(result.released) == ["withheld", "withheld"]  # no consent yet: withheld
    assert {o.child_id for o in result.released} == {child}
    held_ids = {o.event_id for o in outcomes}
    assert not held_ids & {o.event_id for o in result.released}  # new events, new key
    # the provisional copies are crypto-shredded and the item is decided
    assert await hub.keys.get(data_key_id(item.provisional_child_id, "education")) is None
    decided = await hub.matches.get(item.item_id)
    assert (
        decided is not None and decided.status == "resolved" and decided.resolved_child_id == child
    )
    types = await event_types(hub)
    assert types["identity.match_resolved"] == 1 and types["identity.child_erased"] == 1
    # the message again: each fact once
    again = await hub.handlers.submit_facts(
        [fact(held, "m2", "a"), fact(held, "m2", "b")], actor="test"
    )
    assert statuses(again) == ["duplicate", "duplicate"]
    assert {o.child_id for o in again} == {child}
    # the decision is audited
    trail = await records(hub, LogName.AUDIT)
    details = [orjson.loads(r.value)["details"] for r in trail]
    assert any(
        d.get("outcome") == "match_resolved" and d.get("item_id") == item.item_id for d in details
    )
    assert any(d.get("outcome") == "shown" and d.get("item_id") == item.item_id for d in details)


async def test_identifiers_of_two_children_are_queued_not_merged(hub: Hub) -> None:
    a = await known_child(hub, Subject(nhs_number=nhs_number(1)), "a")
    b = await known_child(hub, Subject(upn=upn(2)), "b")
    both = Subject(nhs_number=nhs_number(1), upn=upn(2))
    [out] = await hub.handlers.submit_facts([fact(both, "c")], actor="test")
    assert out.status == "queued" and out.rule == "match_queue.identity_conflict"
    [item] = await hub.matches.items()
    assert set(item.candidates) == {a, b}
    result = await hub.handlers.resolve_match(item.item_id, decision="keep_separate", child_id=None,
                                 actor="admin:ops")  # fmt: skip
    assert result.child_id not in (a, b) and await hub.persons.exists(result.child_id)
    assert result.identifiers_linked == ()  # both identifiers stay with their own children
    assert await hub.persons.lookup(check_upn(upn(2))) == b
    assert statuses(result.released) == ["withheld"]


async def test_a_contradicting_date_of_birth_is_queued_and_links_nothing(hub: Hub) -> None:
    child = await known_child(hub, Subject(upn=upn(3), date_of_birth=DOB), "a")
    other = Subject(upn=upn(3), former_upn=upn(4), date_of_birth=date(2014, 1, 1))
    [out] = await hub.handlers.submit_facts([fact(other, "b")], actor="test")
    assert out.status == "queued" and out.rule == "match_queue.dob_mismatch"
    assert await hub.persons.lookup(check_upn(upn(4))) is None  # nothing linked before a decision
    [item] = await hub.matches.items()
    assert item.candidates == (child,)
    result = await hub.handlers.resolve_match(
        item.item_id, decision="link", child_id=child, actor="admin:ops"
    )
    assert result.identifiers_linked == ("upn",)
    assert await hub.persons.lookup(check_upn(upn(4))) == child
    assert await hub.persons.date_of_birth(child) == DOB  # the recorded one stands
    types = await event_types(hub)
    assert types["identity.identifier_linked"] == 2  # first sight of upn(3), then upn(4)


async def test_decisions_that_cannot_be_made_are_refused(hub: Hub) -> None:
    await hub.handlers.submit_facts([fact(Subject(**NAMES, date_of_birth=DOB), "m")], actor="test")
    [item] = await hub.matches.items()
    with pytest.raises(MatchError) as missing:
        await hub.handlers.resolve_match(
            "mq-nope", decision="keep_separate", child_id=None, actor="a"
        )
    assert missing.value.problem == "no_such_item"
    with pytest.raises(MatchError) as no_child:
        await hub.handlers.resolve_match(
            item.item_id, decision="link", child_id="hc-nope", actor="a"
        )
    assert no_child.value.problem == "no_such_child"
    with pytest.raises(MatchError) as provisional:
        await hub.handlers.resolve_match(
            item.item_id, decision="link", child_id=item.provisional_child_id, actor="a"
        )
    assert provisional.value.problem == "no_such_child"
    await hub.handlers.resolve_match(
        item.item_id, decision="keep_separate", child_id=None, actor="a"
    )
    with pytest.raises(MatchError) as twice:
        await hub.handlers.resolve_match(
            item.item_id, decision="keep_separate", child_id=None, actor="a"
        )
    assert twice.value.problem == "decided_already"


async def test_a_record_with_a_valid_identifier_links_as_before(hub: Hub) -> None:
    subject = Subject(upn=upn(5), nhs_number=bad_nhs_number(5), **NAMES, date_of_birth=DOB)
    [out] = await hub.handlers.submit_facts([fact(subject, "m")], actor="test")
    assert out.status == "withheld" and out.child_id is not None
    assert await hub.matches.items() == []


async def test_two_takers_queueing_one_record_at_once_make_one_item(hub: Hub) -> None:
    """Two processes given the same unlinked record at the same moment: the facts' keys
    are locked while each decides, so the second finds the first one's item."""
    subject = Subject(**NAMES, date_of_birth=DOB)
    unlinked = Unlinked("no_identifier", ())
    keys = ["city-health|m-race|f1", "city-health|m-race|f2"]
    now = datetime.now(UTC)
    results = await asyncio.gather(
        *(
            hub.matches.enqueue(
                subject,
                unlinked,
                agency="city-health",
                message_id="m-race",
                dedupe_keys=keys,
                held_types={"health.condition_recorded": 2},
                now=now,
            )
            for _ in range(4)
        )
    )
    assert sorted(created for _, created in results) == [False, False, False, True]
    assert len({item.item_id for item, _ in results}) == 1
    assert len(await hub.matches.items()) == 1
