"""Rebuilding the joined-view projections from offset 0 gives exactly the live state.

A hub is opened on each runtime — the embedded default (SQLite log and store) and the
scale-out one (Kafka log, PostgreSQL store) — and fed through its consent gate while its
projector runs: children with identities, consents (one withdrawn, one naming mental
health for others only), team members, key working, meetings, plans at several stages
with advice, exceptions, a final plan and a review, a withheld fact released later, one
child erased and one category erased. Once every projection has caught up with the log
(by stored offsets against the records actually read, never by sleeping), the tables of
`team_around_child`, `plan_timeline` and `caseload_view` are compared row for row with
what a rebuild from offset 0 writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.bootstrap import Hub, open_hub
from hub.events import Envelope, Source, encode
from hub.events.consent import ConsentRecorded, ConsentWithdrawn
from hub.events.education import PupilIdentified, SenStatusRecorded
from hub.events.envelope import EventPayload
from hub.events.family import ViewsRecorded
from hub.events.identity import CategoryErased
from hub.events.plan import (
    AdviceRequested,
    AdviceSubmitted,
    AssessmentDecided,
    AssessmentRequested,
    DocumentRef,
    DraftIssued,
    ExceptionRecorded,
    Finalised,
    OutcomeAgreed,
    ReviewMeetingHeld,
)
from hub.events.team import KeyWorkerAssigned, MeetingAction, MeetingHeld, PractitionerJoined
from hub.ingest.model import InboundFact, Subject
from hub.log import LogName, NewRecord
from hub.projections import ProjectionRunner
from hub.projections.runner import rebuild_together
from hub.settings import Settings
from tests.contract.test_event_log import read_all
from tests.support.stores import backend_options

COMBOS = [("sqlite", "sqlite"), ("kafka", "postgres")]
JOINED = ("team_around_child", "plan_timeline", "caseload_view")
UPNS = ["H801200001001", "X801200001002", "M801200001003", "T801200001004", "Y801200001005"]


@pytest.fixture(params=COMBOS, ids=[f"{a}-log+{b}-store" for a, b in COMBOS])
async def hub(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Hub]:
    options = backend_options(request, *request.param)
    settings = Settings(
        data_dir=tmp_path / "data",
        log_partitions=3,
        projector_batch=7,
        projector_backoff_seconds=0.05,
        _env_file=None,
        **options,
    )
    the_hub = await open_hub(settings)
    try:
        yield the_hub
    finally:
        await the_hub.close()


def _valid_upn(base: str) -> str:
    from stdnum.gb import upn

    letters = "ABCDEFGHJKLMNPQRTUVWXYZ"
    body = base[1:]
    for letter in letters:
        if upn.is_valid(letter + body):
            return letter + body
    raise AssertionError(base)


def fact(
    child: Subject,
    payload: EventPayload,
    ref: str,
    *,
    agency: str = "local_authority",
    plan_id: str | None = None,
    category: str | None = None,
    basis: str | None = "ehc_statutory_record",
    purposes: tuple[str, ...] = ("ehc_assessment", "plan_delivery", "review"),
) -> InboundFact:
    return InboundFact(
        subject=child,
        payload=payload,
        occurred_at=datetime(2024, 1, 10, tzinfo=UTC),
        source=Source(agency=agency, message_id=f"m-{child.upn or child.hub_child_id}-{ref}"),
        ref=ref,
        plan_id=plan_id,
        category=category or getattr(payload, "data_category", lambda: None)(),
        purposes=purposes,
        statutory_basis=basis,
    )


def consent(consent_id: str, categories: list[str], roles: list[str]) -> ConsentRecorded:
    return ConsentRecorded.model_validate(
        {
            "consent_id": consent_id,
            "decision": "permit",
            "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
            "given_on": "2024-01-10",
            "scope": {
                "categories": categories,
                "roles": roles,
                "purposes": ["ehc_assessment", "plan_delivery", "review"],
            },
            "period": {"start": "2024-01-10"},
            "capture_method": "form",
            "recorded_by": "casey",
        }
    )


def child_facts(i: int, upn: str) -> tuple[list[InboundFact], list[InboundFact]]:
    """Two waves of facts about one child: before and while the projector runs."""
    subject = Subject(upn=upn, date_of_birth=date(2014 + i, 3, 2))
    plan = f"plan-{i}"
    d = date(2024, 1, 18) + timedelta(days=9 * i)
    first = [
        fact(
            subject,
            SenStatusRecorded(sen_provision="K", start_date=date(2023, 9, 1)),
            "sen",
            agency="oak-school",
            basis=None,
        ),  # withheld until consent comes
        fact(
            subject,
            consent(
                f"c-main-{i}", ["education", "identity", "family_views", "health"], ["coordinator"]
            ),
            "consent",
            basis=None,
        ),
        fact(
            subject,
            consent(f"c-mh-{i}", ["mental_health"], ["camhs_clinician"]),
            "consent-mh",
            basis=None,
        ),
        fact(
            subject,
            PupilIdentified(
                upn=upn, forename=f"Child{i}", surname="Example", date_of_birth=date(2014 + i, 3, 2)
            ),
            "pupil",
            agency="oak-school",
            basis=None,
        ),
        fact(
            subject,
            PractitionerJoined(
                practitioner_id=f"senco-{i}",
                role="senco",
                agency="education",
                since=date(2023, 9, 1),
            ),
            "j-senco",
            agency="oak-school",
            basis=None,
        ),
        fact(
            subject,
            PractitionerJoined(
                practitioner_id=f"paed-{i}",
                role="paediatrician",
                agency="health",
                since=date(2023, 10, 1),
            ),
            "j-paed",
            agency="city-health",
            category="health",
            basis=None,
        ),
        fact(
            subject,
            PractitionerJoined(
                practitioner_id=f"camhs-{i}",
                role="camhs_clinician",
                agency="health",
                since=date(2023, 10, 1),
            ),
            "j-camhs",
            agency="camhs",
            category="mental_health",
            basis=None,
        ),
        fact(
            subject,
            AssessmentRequested(requested_on=d, received_on=d, requested_by="parent"),
            "request",
            plan_id=plan,
        ),
        fact(
            subject,
            AssessmentDecided(decision="assess", decided_on=d + timedelta(days=20)),
            "decision",
            plan_id=plan,
        ),
        fact(
            subject,
            AdviceRequested(
                advice_request_id=f"adv-{i}",
                reg6_category="medical",
                practitioner_id=f"paed-{i}",
                agency="health",
                requested_on=d + timedelta(days=21),
            ),
            "advice-req",
            plan_id=plan,
            basis="reg6_ehc_advice",
            purposes=("ehc_assessment",),
        ),
    ]
    second = [
        fact(
            subject,
            KeyWorkerAssigned(practitioner_id=f"senco-{i}", model="single_person", assigned_on=d),
            "kw",
        ),
        fact(
            subject,
            MeetingHeld(
                meeting_id=f"m-{i}",
                held_on=d + timedelta(days=30),
                kind="tac",
                attendee_ids=(f"senco-{i}", f"paed-{i}"),
                decisions=("Refer on",),
                actions=(
                    MeetingAction(
                        action_id=f"a-{i}",
                        text="Write to the GP",
                        owner_id=f"paed-{i}",
                        due_on=d + timedelta(days=40),
                    ),
                ),
            ),
            "meeting",
            plan_id=plan,
        ),
        fact(
            subject,
            ViewsRecorded(
                whose="child", recorded_on=d + timedelta(days=31), views="I like the bus."
            ),
            "views",
            basis=None,
        ),
        fact(
            subject,
            AdviceSubmitted(
                advice_request_id=f"adv-{i}",
                practitioner_id=f"paed-{i}",
                submitted_on=d + timedelta(days=70 - 5 * i),
                document=DocumentRef(document_id=f"doc-{i}", title="Advice"),
                advice_category="health",
            ),
            "advice",
            agency="city-health",
            plan_id=plan,
            basis="reg6_ehc_advice",
            purposes=("ehc_assessment",),
        ),
    ]
    if i % 2:
        second.append(
            fact(
                subject,
                ExceptionRecorded(
                    exception_id=f"x-{i}",
                    kind="family_absent",
                    starts_on=d + timedelta(days=25),
                    ends_on=None if i == 3 else d + timedelta(days=60),
                ),
                "exception",
                plan_id=plan,
            )
        )
    if i in (0, 2):
        second += [
            fact(
                subject,
                OutcomeAgreed(
                    outcome_id=f"o-{i}",
                    need_section="B",
                    what="Talk",
                    by_when=date(2025, 7, 1),
                    how_measured="Observed",
                    agreed_on=d + timedelta(days=80),
                ),
                "outcome",
                plan_id=plan,
            ),
            fact(subject, DraftIssued(issued_on=d + timedelta(days=90)), "draft", plan_id=plan),
            fact(subject, Finalised(finalised_on=d + timedelta(days=120)), "final", plan_id=plan),
        ]
    if i == 0:
        second.append(
            fact(
                subject,
                ReviewMeetingHeld(review_id="r-0", held_on=d + timedelta(days=400)),
                "review",
                plan_id=plan,
            )
        )
    return first, second


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the projections did not catch up in time")
        await asyncio.sleep(0.02)


async def snapshot(hub: Hub, name: str) -> dict[str, list[tuple[Any, ...]]]:
    tables = hub.runner(name).projection.tables
    out = {}
    for table in tables:
        rows = await hub.store.fetchall(f"SELECT * FROM {table}")  # noqa: S608 - test's own names
        out[table] = sorted(
            (tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows), key=repr
        )
    return out


async def test_rebuilding_the_joined_views_gives_exactly_the_live_state(hub: Hub) -> None:

    upns = [_valid_upn(u) for u in UPNS]
    waves = [child_facts(i, upn) for i, upn in enumerate(upns)]
    for first, _ in waves:
        outcomes = await hub.handlers.submit_facts(first, actor="test")
        assert not [o for o in outcomes if o.status == "rejected"], outcomes
    await hub.start_projector()  # live from here; the second wave arrives while it runs
    for i, (_, second) in enumerate(waves):
        outcomes = await hub.handlers.submit_facts(second, actor="test")
        assert not [o for o in outcomes if o.status == "rejected"], outcomes
        if i == 1:  # the family withdraws the consent covering health
            child = outcomes[0].child_id
            assert child is not None
            await hub.handlers.submit_facts(
                [
                    fact(
                        Subject(hub_child_id=child),
                        ConsentWithdrawn.model_validate(
                            {
                                "consent_id": "c-main-1",
                                "withdrawn_by": {
                                    "reference": "parent-1",
                                    "capacity": "parent_with_pr",
                                },
                                "recorded_by": "casey",
                            }
                        ),
                        "withdraw",
                        basis=None,
                    )
                ],
                actor="test",
            )
    children = [
        o.child_id
        for o in await hub.handlers.submit_facts(
            [
                fact(
                    Subject(upn=u),
                    SenStatusRecorded(sen_provision="E", start_date=date(2024, 9, 1)),
                    "sen-2",
                    agency="oak-school",
                    basis=None,
                )
                for u in upns
            ],
            actor="test",
        )
    ]
    await hub.handlers.erase_child(str(children[4]), actor="test", reason="erasure request")
    await hub.log.append(
        LogName.EVENTS,
        [
            NewRecord(
                key=str(children[2]),
                value=encode(
                    Envelope.wrap(
                        CategoryErased(erased_category="health", rule="test"),
                        child_id=str(children[2]),
                        source=Source(agency="hub"),
                        occurred_at=datetime.now(UTC),
                    )
                ),
            )
        ],
    )

    records = await read_all(hub.log, LogName.EVENTS)
    last: dict[int, int] = {}
    for r in records:
        last[r.partition] = max(last.get(r.partition, -1), r.offset)

    async def caught_up() -> bool:
        for name in JOINED:
            if await hub.store.offsets(name, LogName.EVENTS.value) != last:
                return False
        return True

    await eventually(caught_up)
    await hub.stop_projector()
    live = {name: await snapshot(hub, name) for name in JOINED}
    assert live["team_around_child"]["tac_fact"], "nothing projected"
    assert len(live["caseload_view"]["caseload_plan"]) == 4  # the erased child's plan is gone
    assert not any(r[1] == children[4] for r in live["plan_timeline"]["plan_fact"])
    assert not any(
        r[5] == "health" and r[1] == children[2] for r in live["team_around_child"]["tac_fact"]
    )

    for name in JOINED:
        runner = hub.runner(name)
        fresh = ProjectionRunner(
            runner.projection, hub.log, hub.store, batch_size=11, opener=hub.opener
        )
        assert await fresh.rebuild() == len(records)
        assert await snapshot(hub, name) == live[name], name

    # every projection at once, each batch read and decoded once for all of them (what
    # `hub replay --all` does), gives the same state as each one applied live
    for runner in hub.runners:
        for log_name in runner.projection.logs:
            for part in range(hub.log.partitions(log_name)):
                await runner.catch_up(log_name, part)
    everything = {r.name: await snapshot(hub, r.name) for r in hub.runners}
    together = [
        ProjectionRunner(r.projection, hub.log, hub.store, batch_size=13, opener=hub.opener)
        for r in hub.runners
    ]
    read = await rebuild_together(together)
    assert read >= len(records)  # hub.events, plus hub.withheld and hub.audit for some
    for name, before in everything.items():
        after = await snapshot(hub, name)
        for table, rows in before.items():
            gone = [r[:4] + r[6:] for r in rows if r not in after[table]]
            new = [r[:4] + r[6:] for r in after[table] if r not in rows]
            assert not gone and not new, (name, table, gone, new)
