"""Plan, team and family events: impossible combinations are rejected with the field
named, SMART outcomes are complete, codes come from their vocabularies, every event
round-trips through the codec, and a plan's history decides which event may follow."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from hub.consent.sealing import personal_fields
from hub.errors import PermanentError
from hub.events import Envelope, EventPayload, Source, decode, encode, registry
from hub.events.family import ViewsRecorded
from hub.events.plan import (
    PLAN_EVENTS,
    AdviceRequested,
    AdviceSubmitted,
    Amended,
    AmendmentProposed,
    AssessmentDecided,
    AssessmentRequested,
    Ceased,
    CommentsReceived,
    DocumentRef,
    DraftIssued,
    ExceptionRecorded,
    Finalised,
    InformalSupportRecorded,
    NoPlanDecided,
    OutcomeAgreed,
    OutcomeProgressRecorded,
    OutcomeRevised,
    PersonalBudgetAgreed,
    PersonalBudgetAudited,
    PersonalBudgetIndicated,
    PersonalBudgetRequested,
    PlanEvent,
    ProvisionAgreed,
    ReviewConcluded,
    ReviewDecided,
    ReviewMeetingHeld,
    ReviewReportSent,
)
from hub.events.team import (
    KEY_WORKING_FUNCTIONS,
    KeyWorkerAssigned,
    MeetingActionCompleted,
    MeetingHeld,
)
from hub.plans import check_transition

D = date


def _errors(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str, str]]:
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.value.errors()]


def _raises(factory: Callable[[], object], field: str, fragment: str) -> None:
    """Building the event fails, naming `field` (in the location or the message)."""
    with pytest.raises(ValidationError) as info:
        factory()
    errors = _errors(info)
    assert any(
        (loc == field or loc.startswith(f"{field}.") or msg.startswith(f"Value error, {field}:"))
        and fragment in msg
        for loc, msg in errors
    ), errors


def _doc() -> DocumentRef:
    return DocumentRef(document_id="doc-1", system="EPS", title="Educational psychology advice")


# --------------------------------------------------------------------------- the catalogue


def test_every_plan_event_is_registered_with_its_category_and_personal_fields() -> None:
    types = {cls.event_type for cls in registry}
    for cls in PLAN_EVENTS:
        assert cls.event_type in types
        assert cls.event_type.startswith("plan.")
        assert cls.category == "education"
        for name in (*cls.narrative_fields, *cls.open_fields):  # type: ignore[attr-defined]
            assert name in cls.model_fields, (cls.event_type, name)
    others: tuple[type[EventPayload], ...] = (
        KeyWorkerAssigned,
        MeetingHeld,
        MeetingActionCompleted,
        ViewsRecorded,
    )
    for other in others:
        assert other.event_type in types
        for name in other.open_fields:  # type: ignore[attr-defined]
            assert name in other.model_fields, (other.event_type, name)
    assert ViewsRecorded.category == "family_views"


def test_plan_events_do_not_carry_the_plan_id_in_the_payload() -> None:
    for cls in PLAN_EVENTS:
        assert "plan_id" not in cls.model_fields, cls.event_type


def test_free_text_is_sealed_and_left_out_of_the_caseload() -> None:
    assert set(OutcomeAgreed.narrative_fields) == {"what", "how_measured"}
    assert ProvisionAgreed.narrative_fields == ("description",)
    assert AdviceSubmitted.narrative_fields == ("document",)
    assert ExceptionRecorded.narrative_fields == ("details",)
    for cls, text in (
        (OutcomeAgreed, {"what", "how_measured"}),
        (MeetingHeld, {"decisions", "actions"}),
        (ViewsRecorded, {"views", "interests", "aspirations"}),
    ):
        assert text <= set(personal_fields(cls) or ()), cls.event_type


SAMPLES: list[PlanEvent] = [
    AssessmentRequested(
        requested_on=D(2024, 1, 15), received_on=D(2024, 1, 18), requested_by="school"
    ),
    AssessmentDecided(decision="assess", decided_on=D(2024, 2, 20)),
    AdviceRequested(
        advice_request_id="ar-1",
        reg6_category="medical",
        practitioner_id="paed-1",
        agency="health",
        requested_on=D(2024, 2, 21),
    ),
    AdviceSubmitted(
        advice_request_id="ar-1",
        practitioner_id="paed-1",
        submitted_on=D(2024, 3, 1),
        document=_doc(),
        advice_category="health",
    ),
    ExceptionRecorded(
        exception_id="x-1",
        kind="missed_appointment",
        starts_on=D(2024, 3, 4),
        ends_on=D(2024, 3, 10),
        advice_request_ids=("ar-1",),
        details="unwell",
    ),
    DraftIssued(issued_on=D(2024, 5, 1), comments_by=D(2024, 5, 16), document=_doc()),
    CommentsReceived(received_on=D(2024, 5, 10), by="parent", requested_placement="100001"),
    Finalised(finalised_on=D(2024, 6, 1), placement="100001"),
    NoPlanDecided(decided_on=D(2024, 5, 1)),
    OutcomeAgreed(
        outcome_id="o-1",
        need_section="B",
        area="communication_and_interaction",
        what="Asks for help using two-word phrases",
        by_when=D(2025, 7, 20),
        how_measured="SaLT termly observation",
        agreed_on=D(2024, 4, 20),
    ),
    ProvisionAgreed(
        provision_id="p-1",
        section="G",
        description="Speech and language therapy",
        provider={
            "agency": "health",
            "organisation_code": "RX1",
            "role": "speech_and_language_therapist",
        },
        amount={"quantity": "1.5", "unit": "hours", "frequency": "weekly"},
        outcome_ids=("o-1",),
        agreed_on=D(2024, 4, 20),
    ),
    PersonalBudgetAgreed(
        budget_id="b-1",
        amount=Decimal("1200.00"),
        period="annual",
        direct_payment=True,
        covers=("social_care",),
        agreed_on=D(2024, 4, 20),
    ),
    ReviewMeetingHeld(review_id="r-1", held_on=D(2025, 5, 1), attendee_ids=("senco-1",)),
    ReviewReportSent(review_id="r-1", sent_on=D(2025, 5, 10)),
    ReviewDecided(review_id="r-1", decision="amend", decided_on=D(2025, 5, 20)),
    AmendmentProposed(amendment_id="a-1", proposed_on=D(2025, 5, 21)),
    Amended(amendment_id="a-1", amended_on=D(2025, 7, 1), phase_transfer="primary_to_secondary"),
    Ceased(ceased_on=D(2030, 7, 31), reason="left_education_or_training"),
    # review and learn (appended: the indexes above are used by the tests below)
    OutcomeProgressRecorded(
        outcome_id="o-1",
        review_id="r-1",
        recorded_on=D(2025, 5, 1),
        progress="partly_achieved",
        evidence="Reads 40 words a minute",
    ),
    OutcomeRevised(
        outcome_id="o-1",
        review_id="r-1",
        revised_on=D(2025, 5, 1),
        what="Reads a short book aloud",
        by_when=D(2026, 4, 30),
        how_measured="Teacher assessment",
        horizon="short_term",
        priority=1,
    ),
    InformalSupportRecorded(
        support_id="s-1",
        kind="community",
        description="Saturday football club",
        recorded_on=D(2024, 4, 20),
        outcome_ids=("o-1",),
    ),
    PersonalBudgetRequested(
        budget_id="b-1", requested_on=D(2024, 3, 1), requested_by="parent", covers=("social_care",)
    ),
    PersonalBudgetIndicated(
        budget_id="b-1", indicated_on=D(2024, 3, 20), amount=Decimal("1000"), period="annual"
    ),
    PersonalBudgetAudited(
        budget_id="b-1",
        review_id="r-1",
        audited_on=D(2025, 5, 1),
        spent=Decimal("1150.50"),
        finding="used_as_agreed",
    ),
    ReviewConcluded(
        review_id="r-1",
        concluded_on=D(2025, 5, 1),
        what_worked=("Small-group phonics",),
        what_did_not_work=("Homework diary",),
        next_review_on=D(2026, 4, 30),
        agreed_with_family=True,
    ),
]


@pytest.mark.parametrize("payload", SAMPLES, ids=lambda p: p.event_type)
def test_every_plan_event_round_trips_through_the_codec(payload: PlanEvent) -> None:
    env = Envelope.wrap(
        payload,
        child_id="hc-1",
        plan_id="plan-1",
        source=Source(agency="local_authority", system="SEN case system"),
        occurred_at=datetime(2024, 6, 1, 9, tzinfo=UTC),
        category=payload.data_category(),
    )
    back = decode(encode(env))
    assert back == env
    assert back.plan_id == "plan-1"


def test_every_sample_type_is_covered() -> None:
    assert {type(p) for p in SAMPLES} == set(PLAN_EVENTS)


# --------------------------------------------------------------------------- categories


def test_advice_category_follows_the_adviser() -> None:
    asked = AdviceRequested(
        advice_request_id="a", reg6_category="medical", agency="health", requested_on=D(2024, 1, 1)
    )
    assert asked.data_category() == "health"
    camhs = asked.model_copy(update={"advice_category": "mental_health"})
    assert camhs.data_category() == "mental_health"
    family = AdviceRequested(
        advice_request_id="b",
        reg6_category="parent_or_young_person",
        agency="family",
        requested_on=D(2024, 1, 1),
    )
    assert family.data_category() == "family_views"
    ep = AdviceRequested(
        advice_request_id="c",
        reg6_category="educational_psychologist",
        agency="education",
        requested_on=D(2024, 1, 1),
    )
    assert ep.data_category() == "education"
    assert SAMPLES[3].data_category() == "health"


@pytest.mark.parametrize(
    ("section", "category"),
    [("F", "education"), ("G", "health"), ("H1", "social_care"), ("H2", "social_care")],
)
def test_provision_category_follows_its_section(section: str, category: str) -> None:
    p = SAMPLES[10].model_copy(update={"section": section})
    assert isinstance(p, ProvisionAgreed)
    assert p.data_category() == category


def test_advice_submitted_must_say_its_category() -> None:
    _raises(
        lambda: AdviceSubmitted(practitioner_id="p", submitted_on=D(2024, 1, 1), document=_doc()),  # type: ignore[call-arg]
        "advice_category",
        "required",
    )


# --------------------------------------------------------------------------- date order


def test_request_cannot_be_received_before_it_was_made() -> None:
    _raises(
        lambda: AssessmentRequested(
            requested_on=D(2024, 1, 18), received_on=D(2024, 1, 17), requested_by="parent"
        ),
        "received_on",
        "is before requested_on",
    )


def test_draft_must_give_the_family_fifteen_days() -> None:
    _raises(
        lambda: DraftIssued(issued_on=D(2024, 2, 20), comments_by=D(2024, 3, 5)),
        "comments_by",
        "at least 15 days",
    )
    # 20 February + 15 days = 6 March (2024 is a leap year)
    assert DraftIssued(issued_on=D(2024, 2, 20), comments_by=D(2024, 3, 6)).comments_by


def test_proposed_amendments_must_give_the_family_fifteen_days() -> None:
    _raises(
        lambda: AmendmentProposed(
            amendment_id="a", proposed_on=D(2023, 2, 20), comments_by=D(2023, 3, 6)
        ),
        "comments_by",
        "at least 15 days",
    )
    assert AmendmentProposed(
        amendment_id="a", proposed_on=D(2023, 2, 20), comments_by=D(2023, 3, 7)
    )


def test_exception_cannot_end_before_it_starts() -> None:
    _raises(
        lambda: ExceptionRecorded(
            exception_id="x",
            kind="exceptional_personal_circumstances",
            starts_on=D(2024, 3, 1),
            ends_on=D(2024, 2, 29),
        ),
        "ends_on",
        "is before starts_on",
    )


@pytest.mark.parametrize("kind", ["school_closed", "early_years_setting_closed", "family_absent"])
def test_closures_and_absence_count_only_from_four_weeks(kind: str) -> None:
    _raises(
        lambda: ExceptionRecorded(
            exception_id="x", kind=kind, starts_on=D(2024, 2, 1), ends_on=D(2024, 2, 27)
        ),
        "ends_on",
        "at least 4 weeks",
    )
    # 1 to 28 February inclusive is 28 days
    assert ExceptionRecorded(
        exception_id="x", kind=kind, starts_on=D(2024, 2, 1), ends_on=D(2024, 2, 28)
    )
    # still running: its length is not known yet
    assert ExceptionRecorded(exception_id="x", kind=kind, starts_on=D(2024, 2, 1))


def test_a_closure_does_not_excuse_late_advice() -> None:
    _raises(
        lambda: ExceptionRecorded(
            exception_id="x",
            kind="school_closed",
            starts_on=D(2024, 7, 20),
            ends_on=D(2024, 9, 3),
            advice_request_ids=("ar-1",),
        ),
        "advice_request_ids",
        "not a ground for late advice",
    )


def test_outcome_must_be_due_after_it_was_agreed() -> None:
    _raises(
        lambda: SAMPLES[9].model_validate({**SAMPLES[9].model_dump(), "by_when": "2024-04-20"}),
        "by_when",
        "after agreed_on",
    )


def test_the_next_review_is_after_the_review_and_within_twelve_months() -> None:
    concluded = SAMPLES[-1].model_dump()
    _raises(
        lambda: ReviewConcluded.model_validate({**concluded, "next_review_on": "2025-05-01"}),
        "next_review_on",
        "after concluded_on",
    )
    _raises(
        lambda: ReviewConcluded.model_validate({**concluded, "next_review_on": "2026-05-02"}),
        "next_review_on",
        "at least every 12 months",
    )
    leap = {**concluded, "concluded_on": "2024-02-29", "next_review_on": "2025-02-28"}
    assert ReviewConcluded.model_validate(leap).next_review_on == D(2025, 2, 28)


def test_a_revised_outcome_is_due_after_its_revision() -> None:
    _raises(
        lambda: OutcomeRevised.model_validate(
            {**SAMPLES[19].model_dump(), "by_when": "2025-04-01"}
        ),
        "by_when",
        "after revised_on",
    )


def test_provision_and_budget_periods_are_in_order() -> None:
    _raises(
        lambda: ProvisionAgreed.model_validate(
            {**SAMPLES[10].model_dump(), "starts_on": "2024-09-01", "ends_on": "2024-08-31"}
        ),
        "ends_on",
        "is before starts_on",
    )
    _raises(
        lambda: PersonalBudgetAgreed.model_validate(
            {**SAMPLES[11].model_dump(), "starts_on": "2024-09-01", "ends_on": "2024-08-31"}
        ),
        "ends_on",
        "is before starts_on",
    )


def test_meeting_actions_cannot_be_due_before_the_meeting() -> None:
    _raises(
        lambda: MeetingHeld(
            meeting_id="m-1",
            held_on=D(2024, 3, 1),
            kind="tac",
            actions=(
                {
                    "action_id": "act-1",
                    "text": "Book OT visit",
                    "owner_id": "ot-1",
                    "due_on": "2024-02-29",
                },
            ),
        ),
        "actions[0].due_on",
        "is before held_on",
    )


# --------------------------------------------------------------------------- SMART fields


@pytest.mark.parametrize(
    "missing", ["what", "by_when", "how_measured", "outcome_id", "need_section", "agreed_on"]
)
def test_smart_outcome_fields_are_required(missing: str) -> None:
    data = SAMPLES[9].model_dump()
    del data[missing]
    _raises(lambda: OutcomeAgreed.model_validate(data), missing, "required")


@pytest.mark.parametrize("blank", ["what", "how_measured"])
def test_smart_outcome_text_cannot_be_blank(blank: str) -> None:
    data = {**SAMPLES[9].model_dump(), blank: "   "}
    _raises(lambda: OutcomeAgreed.model_validate(data), blank, "at least 1 character")


def test_provision_serves_at_least_one_outcome_once() -> None:
    base = SAMPLES[10].model_dump()
    _raises(
        lambda: ProvisionAgreed.model_validate({**base, "outcome_ids": []}),
        "outcome_ids",
        "at least 1 item",
    )
    _raises(
        lambda: ProvisionAgreed.model_validate({**base, "outcome_ids": ["o-1", "o-1"]}),
        "outcome_ids",
        "listed twice",
    )


def test_provision_amount_is_positive() -> None:
    base = SAMPLES[10].model_dump()
    _raises(
        lambda: ProvisionAgreed.model_validate(
            {**base, "amount": {"quantity": "0", "unit": "hours", "frequency": "weekly"}}
        ),
        "amount.quantity",
        "greater than 0",
    )


def test_budget_amount_is_positive_money() -> None:
    base = SAMPLES[11].model_dump()
    _raises(
        lambda: PersonalBudgetAgreed.model_validate({**base, "amount": "-5"}),
        "amount",
        "greater than 0",
    )
    _raises(
        lambda: PersonalBudgetAgreed.model_validate({**base, "amount": "10.005"}),
        "amount",
        "decimal places",
    )


def test_advice_request_names_who_was_asked() -> None:
    _raises(
        lambda: AdviceRequested(
            advice_request_id="a", reg6_category="medical", requested_on=D(2024, 1, 1)
        ),
        "practitioner_id",
        "name the practitioner or the agency",
    )


# --------------------------------------------------------------------------- codes


@pytest.mark.parametrize(
    ("cls", "data", "field"),
    [
        (
            AssessmentRequested,
            {
                "requested_on": "2024-01-01",
                "received_on": "2024-01-02",
                "requested_by": "grandparent",
            },
            "requested_by",
        ),
        (AssessmentDecided, {"decision": "maybe", "decided_on": "2024-01-01"}, "decision"),
        (
            AdviceRequested,
            {
                "advice_request_id": "a",
                "reg6_category": "astrology",
                "agency": "health",
                "requested_on": "2024-01-01",
            },
            "reg6_category",
        ),
        (
            AdviceRequested,
            {
                "advice_request_id": "a",
                "reg6_category": "medical",
                "agency": "Health Trust",
                "requested_on": "2024-01-01",
            },
            "agency",
        ),
        (
            AdviceRequested,
            {
                "advice_request_id": "has space",
                "reg6_category": "medical",
                "agency": "health",
                "requested_on": "2024-01-01",
            },
            "advice_request_id",
        ),
        (
            AdviceSubmitted,
            {
                "practitioner_id": "p",
                "submitted_on": "2024-01-01",
                "document": {"document_id": "d"},
                "advice_category": "gossip",
            },
            "advice_category",
        ),
        (
            AdviceSubmitted,
            {
                "practitioner_id": "p",
                "submitted_on": "2024-01-01",
                "document": {"document_id": "d", "url": "http://x.example/a"},
                "advice_category": "health",
            },
            "document.url",
        ),
        (
            ExceptionRecorded,
            {"exception_id": "x", "kind": "snow_day", "starts_on": "2024-01-01"},
            "kind",
        ),
        (ReviewDecided, {"decision": "shred", "decided_on": "2024-01-01"}, "decision"),
        (
            Amended,
            {"amended_on": "2024-01-01", "phase_transfer": "nursery_to_uni"},
            "phase_transfer",
        ),
        (Ceased, {"ceased_on": "2024-01-01", "reason": "bored"}, "reason"),
        (OutcomeAgreed, {**SAMPLES[9].model_dump(), "need_section": "E"}, "need_section"),
        (ProvisionAgreed, {**SAMPLES[10].model_dump(), "section": "I"}, "section"),
        (
            ProvisionAgreed,
            {
                **SAMPLES[10].model_dump(),
                "amount": {"quantity": "1", "unit": "fortnights", "frequency": "weekly"},
            },
            "amount.unit",
        ),
        (PersonalBudgetAgreed, {**SAMPLES[11].model_dump(), "covers": ["holidays"]}, "covers"),
        (CommentsReceived, {"received_on": "2024-01-01", "by": "neighbour"}, "by"),
        (
            KeyWorkerAssigned,
            {"practitioner_id": "kw-1", "model": "committee", "assigned_on": "2024-01-01"},
            "model",
        ),
        (
            KeyWorkerAssigned,
            {
                "practitioner_id": "kw-1",
                "model": "multi_person",
                "functions": ["tea_making"],
                "assigned_on": "2024-01-01",
            },
            "functions",
        ),
        (MeetingHeld, {"meeting_id": "m", "held_on": "2024-01-01", "kind": "party"}, "kind"),
        (ViewsRecorded, {"whose": "teacher", "recorded_on": "2024-01-01", "views": "x"}, "whose"),
    ],
)
def test_bad_codes_are_rejected_naming_the_field(
    cls: type[PlanEvent], data: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        cls.model_validate(data)
    locs = [loc for loc, _ in _errors(info)]
    assert any(loc == field or loc.startswith(f"{field}.") for loc in locs), locs


def test_a_bad_payload_on_the_wire_names_its_field() -> None:
    env = Envelope.wrap(
        SAMPLES[1],
        child_id="hc-1",
        plan_id="plan-1",
        source=Source(agency="local_authority"),
        occurred_at=datetime(2024, 2, 20, tzinfo=UTC),
    )
    raw = json.loads(encode(env))
    raw["payload"]["decision"] = "perhaps"
    with pytest.raises(PermanentError) as info:
        decode(json.dumps(raw))
    assert info.value.field == "payload.decision"


def test_unknown_payload_fields_are_ignored() -> None:
    got = AssessmentDecided.model_validate(
        {"decision": "assess", "decided_on": "2024-02-20", "colour": "blue"}
    )
    assert got == SAMPLES[1]


# --------------------------------------------------------------------------- team, family


def test_single_person_key_worker_holds_all_ten_functions() -> None:
    kw = KeyWorkerAssigned(practitioner_id="kw-1", model="single_person", assigned_on=D(2024, 1, 1))
    assert set(kw.functions) == set(KEY_WORKING_FUNCTIONS)
    assert len(KEY_WORKING_FUNCTIONS) == 10
    _raises(
        lambda: KeyWorkerAssigned(
            practitioner_id="kw-1",
            model="single_person",
            functions=("advocacy",),
            assigned_on=D(2024, 1, 1),
        ),
        "functions",
        "holds all ten",
    )


def test_multi_person_key_working_shares_functions() -> None:
    kw = KeyWorkerAssigned(
        practitioner_id="sw-1",
        model="multi_person",
        functions=("advocacy", "single_point_of_contact"),
        assigned_on=D(2024, 1, 1),
    )
    assert kw.functions == ("advocacy", "single_point_of_contact")
    _raises(
        lambda: KeyWorkerAssigned(
            practitioner_id="sw-1",
            model="multi_person",
            functions=("advocacy", "advocacy"),
            assigned_on=D(2024, 1, 1),
        ),
        "functions",
        "listed twice",
    )
    _raises(
        lambda: KeyWorkerAssigned(
            practitioner_id="sw-1", model="multi_person", functions=(), assigned_on=D(2024, 1, 1)
        ),
        "functions",
        "at least 1 item",
    )


def test_meeting_records_attendees_decisions_and_owned_actions() -> None:
    m = MeetingHeld(
        meeting_id="m-1",
        held_on=D(2024, 2, 29),
        kind="multi_agency",
        attendee_ids=("senco-1", "sw-1"),
        family_attended=True,
        decisions=("Refer to OT",),
        actions=(
            {
                "action_id": "act-1",
                "text": "Refer to OT",
                "owner_id": "senco-1",
                "due_on": "2024-03-14",
            },
        ),
    )
    assert m.actions[0].owner_id == "senco-1"
    _raises(
        lambda: MeetingHeld(
            meeting_id="m-1", held_on=D(2024, 2, 29), kind="tac", attendee_ids=("a", "a")
        ),
        "attendee_ids",
        "listed twice",
    )
    _raises(
        lambda: MeetingHeld.model_validate(
            {
                "meeting_id": "m-1",
                "held_on": "2024-02-29",
                "kind": "tac",
                "actions": [
                    {"action_id": "x", "text": "a", "owner_id": "o", "due_on": "2024-03-01"},
                    {"action_id": "x", "text": "b", "owner_id": "o", "due_on": "2024-03-01"},
                ],
            }
        ),
        "actions[1].action_id",
        "listed twice",
    )
    done = MeetingActionCompleted(action_id="act-1", completed_on=D(2024, 3, 10))
    assert done.completed_on == D(2024, 3, 10)


def test_family_views_are_their_own_words() -> None:
    v = ViewsRecorded(
        whose="child",
        recorded_on=D(2024, 2, 1),
        views="I like trains.",
        interests=("trains", "swimming"),
        aspirations=("drive a train",),
    )
    assert v.interests == ("trains", "swimming")
    _raises(
        lambda: ViewsRecorded(whose="parent", recorded_on=D(2024, 2, 1), views=" "),
        "views",
        "at least 1 character",
    )


# --------------------------------------------------------------------------- transitions

REQUEST = AssessmentRequested(
    requested_on=D(2024, 1, 15), received_on=D(2024, 1, 18), requested_by="parent"
)
ASSESS = AssessmentDecided(decision="assess", decided_on=D(2024, 2, 20))
DRAFT = DraftIssued(issued_on=D(2024, 5, 1))
FINAL = Finalised(finalised_on=D(2024, 6, 1))


@pytest.mark.parametrize(
    ("history", "payload", "rule", "conflict"),
    [
        ([REQUEST], FINAL, "final_needs_decision_to_assess", True),
        ([REQUEST], DRAFT, "draft_needs_decision_to_assess", True),
        ([REQUEST, ASSESS], FINAL, "final_needs_draft", True),
        (
            [REQUEST, ASSESS, DRAFT],
            Finalised(finalised_on=D(2024, 5, 10)),
            "final_before_family_comment_period",
            False,
        ),
        (
            [REQUEST],
            AssessmentDecided(decision="assess", decided_on=D(2024, 1, 17)),
            "decided_on_before_request",
            False,
        ),
        ([], ASSESS, "decision_needs_request", True),
        ([REQUEST, ASSESS], ASSESS, "already_decided_to_assess", True),
        ([REQUEST], REQUEST, "request_already_recorded", True),
        ([REQUEST], SAMPLES[2], "advice_needs_decision_to_assess", True),
        ([REQUEST, ASSESS, SAMPLES[2]], SAMPLES[2], "advice_request_exists", True),
        ([REQUEST, ASSESS], SAMPLES[3], "unknown_advice_request", False),
        (
            [REQUEST, ASSESS, SAMPLES[2]],
            SAMPLES[3].model_copy(update={"submitted_on": D(2024, 2, 1)}),
            "submitted_on_before_request_for_advice",
            False,
        ),
        (
            [REQUEST, ASSESS, DRAFT, FINAL],
            ReviewMeetingHeld(review_id="r", held_on=D(2024, 5, 1)),
            "held_on_before_final_plan",
            False,
        ),
        (
            [REQUEST, ASSESS],
            ReviewMeetingHeld(review_id="r", held_on=D(2025, 5, 1)),
            "review_needs_final_plan",
            True,
        ),
        (
            [REQUEST, ASSESS, DRAFT, FINAL],
            ReviewDecided(decision="maintain", decided_on=D(2025, 5, 1)),
            "review_outcome_needs_meeting",
            True,
        ),
        (
            [REQUEST, ASSESS, DRAFT, FINAL],
            Amended(amended_on=D(2025, 1, 1)),
            "amended_needs_proposal",
            True,
        ),
        (
            [REQUEST, ASSESS],
            Ceased(ceased_on=D(2024, 6, 1), reason="other"),
            "cease_needs_final_plan",
            True,
        ),
        (
            [REQUEST, ASSESS, DRAFT, FINAL, Ceased(ceased_on=D(2025, 1, 1), reason="other")],
            ReviewMeetingHeld(review_id="r", held_on=D(2025, 5, 1)),
            "plan_ceased",
            True,
        ),
        (
            [REQUEST],
            AssessmentRequested(
                requested_on=D(2024, 3, 1),
                received_on=D(2024, 3, 1),
                requested_by="parent",
                reassessment=True,
            ),
            "reassessment_needs_final_plan",
            True,
        ),
        (
            [REQUEST, ASSESS, SAMPLES[9]],
            SAMPLES[10].model_copy(update={"outcome_ids": ("o-9",)}),
            "unknown_outcome",
            False,
        ),
        (
            [REQUEST, ASSESS],
            ExceptionRecorded(
                exception_id="x",
                kind="missed_appointment",
                starts_on=D(2024, 3, 1),
                advice_request_ids=("ar-9",),
            ),
            "unknown_advice_request",
            False,
        ),
    ],
)
def test_invalid_transitions_name_the_rule(
    history: list[PlanEvent], payload: PlanEvent, rule: str, conflict: bool
) -> None:
    v = check_transition(history, payload)
    assert v is not None
    assert v.rule == rule, v
    assert v.conflict is conflict
    assert v.message


def test_the_whole_journey_is_a_valid_sequence() -> None:
    journey: list[PlanEvent] = [
        REQUEST,
        ASSESS,
        SAMPLES[2],
        SAMPLES[3],
        ExceptionRecorded(
            exception_id="x-1",
            kind="missed_appointment",
            starts_on=D(2024, 3, 4),
            ends_on=D(2024, 3, 10),
            advice_request_ids=("ar-1",),
        ),
        SAMPLES[9],
        SAMPLES[10],
        SAMPLES[11],
        DRAFT,
        CommentsReceived(received_on=D(2024, 5, 10), by="parent"),
        FINAL,
        ReviewMeetingHeld(review_id="r-1", held_on=D(2025, 5, 1)),
        ReviewReportSent(review_id="r-1", sent_on=D(2025, 5, 10)),
        ReviewDecided(review_id="r-1", decision="amend", decided_on=D(2025, 5, 20)),
        AmendmentProposed(amendment_id="a-1", proposed_on=D(2025, 5, 21)),
        CommentsReceived(received_on=D(2025, 6, 1), by="parent", amendment_id="a-1"),
        Amended(amendment_id="a-1", amended_on=D(2025, 7, 1)),
        AssessmentRequested(
            requested_on=D(2025, 9, 1),
            received_on=D(2025, 9, 2),
            requested_by="parent",
            reassessment=True,
        ),
        AssessmentDecided(decision="assess", decided_on=D(2025, 9, 10)),
        DraftIssued(issued_on=D(2025, 11, 1)),
        Finalised(finalised_on=D(2025, 11, 20)),
        Ceased(ceased_on=D(2030, 7, 31), reason="left_education_or_training"),
    ]
    for i, event in enumerate(journey):
        assert check_transition(journey[:i], event) is None, (i, event.event_type)


def test_events_of_other_kinds_are_not_judged() -> None:
    assert (
        check_transition(
            [],
            KeyWorkerAssigned(
                practitioner_id="kw-1", model="single_person", assigned_on=D(2024, 1, 1)
            ),
        )
        is None
    )
