"""The caseload's stored plan summary, read on any day, says what the statutory clock
computed on that day says: the same next deadline, state, overdue count and days to the
final-plan date — for plans at every stage, with a date of birth (early-years reviews,
phase transfers whose review window opens later) and without."""

from __future__ import annotations

from datetime import date, timedelta

import orjson
import pytest

from hub.events.envelope import EventPayload
from hub.events.plan import (
    AdviceRequested,
    AdviceSubmitted,
    Amended,
    AmendmentProposed,
    AssessmentDecided,
    AssessmentRequested,
    CommentsReceived,
    DocumentRef,
    DraftIssued,
    Finalised,
    OutcomeAgreed,
    ReviewDecided,
    ReviewMeetingHeld,
    ReviewReportSent,
)
from hub.projections.caseload_view import (
    ClockFact,
    standing_from_facts,
    standing_on,
    summarise,
)

D0 = date(2024, 1, 18)


def stored(payloads: list[EventPayload]) -> list[ClockFact]:
    out = []
    for i, p in enumerate(payloads):
        personal = set(getattr(type(p), "personal_fields", ()) or ())
        out.append(
            ClockFact(
                event_id=f"e{i}",
                child_id="c",
                plan_id="p",
                event_type=p.event_type,
                key=("education", "local_authority", None, "ehc_assessment", None),
                facts=orjson.dumps(p.model_dump(mode="json", exclude=personal)).decode(),
            )
        )
    return out


def dob_fact(day: date) -> ClockFact:
    return ClockFact(
        event_id="dob",
        child_id="c",
        plan_id=None,
        event_type="education.pupil_identified",
        key=("education", "school", None, "ehc_assessment", None),
        facts=orjson.dumps({"date_of_birth": day.isoformat()}).decode(),
    )


def d(days: int) -> date:
    return D0 + timedelta(days=days)


REQUEST = [AssessmentRequested(requested_on=D0, received_on=D0, requested_by="parent")]
ASSESSING = [
    *REQUEST,
    AssessmentDecided(decision="assess", decided_on=d(20)),
    AdviceRequested(
        advice_request_id="a1",
        reg6_category="medical",
        practitioner_id="p1",
        agency="health",
        requested_on=d(21),
    ),
    AdviceRequested(
        advice_request_id="a2",
        reg6_category="parent_or_young_person",
        agency="family",
        requested_on=d(21),
    ),
    AdviceSubmitted(
        advice_request_id="a1",
        practitioner_id="p1",
        submitted_on=d(70),
        document=DocumentRef(document_id="x"),
        advice_category="health",
    ),
]
DRAFTING = [
    *ASSESSING,
    OutcomeAgreed(
        outcome_id="o",
        need_section="B",
        what="w",
        by_when=d(500),
        how_measured="m",
        agreed_on=d(95),
    ),
    DraftIssued(issued_on=d(100)),
]
FINAL = [
    *DRAFTING,
    CommentsReceived(received_on=d(110), by="parent"),
    Finalised(finalised_on=d(125)),
]
REVIEWED = [
    *FINAL,
    ReviewMeetingHeld(review_id="r1", held_on=d(470)),
    ReviewReportSent(review_id="r1", sent_on=d(480)),
    ReviewDecided(review_id="r1", decision="amend", decided_on=d(490)),
    AmendmentProposed(amendment_id="am1", proposed_on=d(495)),
]
AMENDED = [*REVIEWED, Amended(amendment_id="am1", amended_on=d(530))]


@pytest.mark.parametrize(
    "plan",
    [REQUEST, ASSESSING, DRAFTING, FINAL, REVIEWED, AMENDED],
    ids=["request", "assessing", "drafting", "final", "reviewed", "amended"],
)
@pytest.mark.parametrize("born", [None, date(2020, 10, 5), date(2015, 3, 2), date(2008, 7, 1)])
def test_the_stored_summary_read_on_any_day_agrees_with_the_clock(
    plan: list[EventPayload], born: date | None
) -> None:
    facts = stored(plan)
    dob = dob_fact(born) if born else None
    summary = summarise(facts, dob)
    assert not summary.has_exceptions
    day = date(2023, 12, 1)
    while day < date(2031, 1, 1):
        fast = standing_on("p", summary, day)
        exact = standing_from_facts("p", facts, dob, day)
        assert fast == exact, day
        day += timedelta(days=11)
