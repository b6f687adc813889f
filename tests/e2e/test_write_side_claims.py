"""The write side decides "have I taken this?" from its claims, never from a read model:
a fact is claimed under its idempotency key before it is appended; a claim left by a
taker that died before appending is taken over after the lease (unless the log shows the
fact landed); consent ids belong to one child; a withheld fact is released once however
many reconsiderations run at the same moment. On the embedded default, through the
service layer's handlers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from hub.bootstrap import Hub, open_hub
from hub.events import Source
from hub.events.consent import ConsentRecorded
from hub.events.education import SenStatusRecorded
from hub.events.team import PractitionerJoined
from hub.ingest.claims import LEASE, Claim
from hub.ingest.model import InboundFact, Subject
from hub.log import LogName
from hub.projections.gate_views import DEDUPE_HEADER, RELEASED_HEADER
from hub.service_layer.submit_facts import SubmitFacts
from hub.settings import Settings

NHS = "9434765919"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    the_hub = await open_hub(Settings(data_dir=tmp_path, _env_file=None))  # type: ignore[call-arg]
    try:
        yield the_hub
    finally:
        await the_hub.close()


def sen_status(message_id: str, subject: Subject | None = None) -> InboundFact:
    return InboundFact(
        subject=subject or Subject(nhs_number=NHS),
        payload=SenStatusRecorded(sen_provision="K", start_date=date(2024, 9, 1)),
        occurred_at=datetime(2024, 9, 2, tzinfo=UTC),
        source=Source(agency="oak-school", message_id=message_id),
        ref="sen",
    )


def consent(consent_id: str, child_id: str, categories: tuple[str, ...]) -> InboundFact:
    payload = ConsentRecorded.model_validate(
        {
            "consent_id": consent_id,
            "decision": "permit",
            "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
            "given_on": "2024-09-02",
            "scope": {
                "categories": list(categories),
                "purposes": ["ehc_assessment"],
                "roles": ["coordinator"],
            },
            "period": {"start": "2024-09-02", "end": None},
            "capture_method": "form",
            "recorded_by": "casey",
        }
    )
    return InboundFact(
        subject=Subject(hub_child_id=child_id),
        payload=payload,
        occurred_at=datetime(2024, 9, 2, tzinfo=UTC),
        source=Source(agency="local_authority"),
        ref=f"consent:{consent_id}:{child_id}",
    )


async def records(hub: Hub, log_name: LogName) -> list[tuple[dict[str, object], dict[str, bytes]]]:
    out = []
    for part in range(hub.log.partitions(log_name)):
        offset = 0
        while batch := await hub.log.read(log_name, part, offset, 500):
            out += [(orjson.loads(r.value), dict(r.headers)) for r in batch]
            offset = batch[-1].offset + 1
    return out


async def test_one_message_taken_twice_at_once_is_appended_once(hub: Hub) -> None:
    first, second = await asyncio.gather(
        hub.handlers.submit_facts([sen_status("m-1")], actor="a"),
        hub.handlers.submit_facts([sen_status("m-1")], actor="b"),
    )
    statuses = sorted(o.status for o in (*first, *second))
    assert statuses == ["duplicate", "withheld"]  # no consent covers a school's SEN status yet
    assert first[0].event_id == second[0].event_id
    keys = [h.get(DEDUPE_HEADER) for log in LogName for _, h in await records(hub, log)]
    assert keys.count(hub.handlers.submit_facts.key_of(sen_status("m-1")).encode()) == 1


async def test_a_claim_whose_taker_died_before_appending_is_taken_over_after_the_lease(
    hub: Hub,
) -> None:
    fact = sen_status("m-2")
    long_ago = datetime.now(UTC) - LEASE - timedelta(seconds=5)
    await hub.claims.claim(
        [Claim(hub.handlers.submit_facts.key_of(fact), "e-of-a-dead-taker", "hc-x", long_ago)]
    )
    [out] = await hub.handlers.submit_facts([fact], actor="a")
    assert out.status == "withheld"
    assert out.event_id != "e-of-a-dead-taker"
    held = (await hub.claims.holders([hub.handlers.submit_facts.key_of(fact)]))[
        hub.handlers.submit_facts.key_of(fact)
    ]
    assert (held.event_id, held.appended) == (out.event_id, True)


async def test_a_fresh_claim_of_another_taker_makes_a_duplicate_not_a_second_fact(
    hub: Hub,
) -> None:
    fact = sen_status("m-3")
    now = datetime.now(UTC)
    await hub.claims.claim(
        [Claim(hub.handlers.submit_facts.key_of(fact), "e-in-flight", "hc-x", now)]
    )
    [out] = await hub.handlers.submit_facts([fact], actor="a")
    assert (out.status, out.event_id) == ("duplicate", "e-in-flight")
    on_logs = [h.get(DEDUPE_HEADER) for log in LogName for _, h in await records(hub, log)]
    assert hub.handlers.submit_facts.key_of(fact).encode() not in on_logs


async def test_a_stale_claim_whose_fact_did_land_stays_a_duplicate(hub: Hub) -> None:
    fact = sen_status("m-4")
    [taken] = await hub.handlers.submit_facts([fact], actor="a")
    assert taken.status == "withheld" and taken.event_id
    # the taker appended, then died before marking its claim: the log is the truth
    async with hub.store.transaction() as tx:
        await tx.execute(
            "UPDATE ingest_claim SET appended_at = NULL, claimed_at = ? WHERE dedupe_key = ?",
            ((datetime.now(UTC) - LEASE * 2).isoformat(), hub.handlers.submit_facts.key_of(fact)),
        )
    [again] = await hub.handlers.submit_facts([fact], actor="a")
    assert (again.status, again.event_id) == ("duplicate", taken.event_id)
    assert (await hub.claims.holders([hub.handlers.submit_facts.key_of(fact)]))[
        hub.handlers.submit_facts.key_of(fact)
    ].appended


async def test_a_consent_id_of_one_child_is_its_own_not_another_childs(hub: Hub) -> None:
    [a] = await hub.handlers.submit_facts(
        [sen_status("m-5", Subject(nhs_number=NHS, date_of_birth=date(2015, 3, 2)))], actor="a"
    )
    [b] = await hub.handlers.submit_facts(
        [sen_status("m-6", Subject(nhs_number="9000000009", date_of_birth=date(2016, 1, 5)))],
        actor="a",
    )
    assert a.child_id and b.child_id and a.child_id != b.child_id
    [first] = await hub.handlers.submit_facts([consent("c-1", a.child_id, ("health",))], actor="t")
    [second] = await hub.handlers.submit_facts([consent("c-1", b.child_id, ("health",))], actor="t")
    # consent ids are per child: the second child's "c-1" is its own consent
    assert first.status == "appended"
    assert second.status == "appended", second


async def test_concurrent_reconsiderations_release_a_withheld_fact_once(hub: Hub) -> None:
    joined = InboundFact(
        subject=Subject(nhs_number=NHS, date_of_birth=date(2015, 3, 2)),
        payload=PractitionerJoined(
            practitioner_id="salt-1",
            role="speech_and_language_therapist",
            agency="health",
            since=date(2024, 9, 1),
        ),
        occurred_at=datetime(2024, 9, 1, tzinfo=UTC),
        source=Source(agency="city-health", message_id="m-7"),
        ref="joined",
        category="health",
    )
    [held] = await hub.handlers.submit_facts([joined], actor="t")
    assert held.status == "withheld" and held.child_id
    # the consent is recorded by a submit that leaves the release to others (a handler
    # takes its ports explicitly), then three takers reconsider the child at once
    submit = hub.handlers.submit_facts
    without_release = SubmitFacts(
        log=hub.log, store=hub.store, keys=hub.keys, policy=hub.policy, persons=hub.persons,
        matches=hub.matches, trail=hub.trail, claims=hub.claims, views=hub.views,
        reconsider=_no_reconsideration,  # type: ignore[arg-type]
    )  # fmt: skip
    [c] = await without_release([consent("c-2", held.child_id, ("health",))], actor="t")
    assert c.status == "appended"
    assert submit is hub.handlers.submit_facts
    await asyncio.gather(*(hub.handlers.reconsider_withheld(held.child_id, "t") for _ in range(3)))
    released = [
        body
        for body, headers in await records(hub, LogName.EVENTS)
        if RELEASED_HEADER in headers and body["event_id"] == held.event_id
    ]
    assert len(released) == 1


async def _no_reconsideration(child_id: str, actor: str, now: datetime | None = None) -> None:
    return None


async def test_one_childs_facts_with_one_decision_share_one_decision_record(hub: Hub) -> None:
    other = Subject(nhs_number="9434765870")
    facts = [
        sen_status("m-1"),
        InboundFact(
            subject=Subject(nhs_number=NHS),
            payload=SenStatusRecorded(sen_provision="E", start_date=date(2023, 9, 1)),
            occurred_at=datetime(2023, 9, 2, tzinfo=UTC),
            source=Source(agency="oak-school", message_id="m-1"),
            ref="sen-2",
        ),
        sen_status("m-1", subject=other),
    ]
    outcomes = await hub.handlers.submit_facts(facts, actor="a")
    assert [o.status for o in outcomes] == ["withheld"] * 3
    decisions = [r for r, _ in await records(hub, LogName.AUDIT) if r["kind"] == "decision"]
    by_child = {r["child_id"]: r["details"] for r in decisions}
    assert len(decisions) == 2 and set(by_child) == {outcomes[0].child_id, outcomes[2].child_id}
    mine = by_child[outcomes[0].child_id]
    assert isinstance(mine, dict)
    assert mine["event_ids"] == [outcomes[0].event_id, outcomes[1].event_id]
    assert mine["event_types"] == ["education.sen_status_recorded"] * 2
    assert len(set(mine["decision_ids"])) == 2 and mine["outcome"] == "withhold"
    assert by_child[outcomes[2].child_id]["event_ids"] == [outcomes[2].event_id]  # type: ignore[index]
    assert (await hub.trail.verify()).ok
