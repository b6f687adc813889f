"""The statutory clock: one test per time limit and per exception, dated examples across
month ends and leap years, the states a milestone passes through, the plan's status and
SE7 stage, and the property that recording an exception never brings a date forward.

Every expected date below was counted by hand: day 0 is the day the clock starts (the LA
received the request, advice was asked for, the meeting was held), N weeks later is day
0 + 7N days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.events import Envelope, Source
from hub.events.plan import (
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
    ExceptionKind,
    ExceptionRecorded,
    Finalised,
    NoPlanDecided,
    OutcomeAgreed,
    PlanEvent,
    ReviewDecided,
    ReviewMeetingHeld,
    ReviewReportSent,
)
from hub.events.team import KeyWorkerAssigned
from hub.plans import (
    Milestone,
    PhaseTransfer,
    PlanClock,
    compute_clock,
    due_date,
    end_of_months_period,
    phase_transfer_deadline,
    standard_phase_transfers,
)
from hub.plans.clock import Pause, age_on, reception_year

D = date


def request(received: date, *, reassessment: bool = False) -> AssessmentRequested:
    return AssessmentRequested(
        requested_on=received - timedelta(days=2),
        received_on=received,
        requested_by="parent",
        reassessment=reassessment,
    )


def decide(on: date, decision: str = "assess") -> AssessmentDecided:
    return AssessmentDecided(decision=decision, decided_on=on)


def ask(
    rid: str, on: date, category: str = "educational_psychologist", practitioner: str | None = None
) -> AdviceRequested:
    return AdviceRequested(
        advice_request_id=rid,
        reg6_category=category,
        practitioner_id=practitioner or f"p-{rid}",
        requested_on=on,
    )


def advise(rid: str | None, on: date, practitioner: str | None = None) -> AdviceSubmitted:
    return AdviceSubmitted(
        advice_request_id=rid,
        practitioner_id=practitioner or f"p-{rid}",
        submitted_on=on,
        document=DocumentRef(document_id=f"doc-{rid}"),
        advice_category="education",
    )


def exception(
    xid: str, kind: ExceptionKind, start: date, end: date | None, *advice_ids: str
) -> ExceptionRecorded:
    return ExceptionRecorded(
        exception_id=xid, kind=kind, starts_on=start, ends_on=end, advice_request_ids=advice_ids
    )


def clock(events: list[PlanEvent], today: date, **kw: object) -> PlanClock:
    return compute_clock(events, today=today, **kw)  # type: ignore[arg-type]


def one(c: PlanClock, rule: str, subject: str | None = None) -> Milestone:
    found = [
        m for m in c.milestones if m.rule == rule and (subject is None or m.subject_id == subject)
    ]
    assert len(found) == 1, [m.key for m in c.milestones]
    return found[0]


def by_rule(c: PlanClock, rule: str) -> list[Milestone]:
    return [m for m in c.milestones if m.rule == rule]


JAN18 = D(2024, 1, 18)  # a leap year: six weeks later is 29 February


# --------------------------------------------------------------------------- date arithmetic


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        (D(2024, 1, 18), 42, D(2024, 2, 29)),  # into a leap day
        (D(2023, 1, 18), 42, D(2023, 3, 1)),  # the same request a common year earlier
        (D(2024, 1, 18), 112, D(2024, 5, 9)),  # 16 weeks
        (D(2024, 1, 18), 140, D(2024, 6, 6)),  # 20 weeks
        (D(2023, 12, 28), 42, D(2024, 2, 8)),  # across the new year
        (D(2023, 12, 28), 140, D(2024, 5, 16)),
        (D(2024, 2, 29), 42, D(2024, 4, 11)),  # from a leap day
        (D(2024, 10, 31), 15, D(2024, 11, 15)),  # from a month end
    ],
)
def test_weeks_are_counted_from_day_zero(start: date, days: int, due: date) -> None:
    assert due_date(start, days) == (due, 0, ())


@pytest.mark.parametrize(
    ("start", "months", "last_day"),
    [
        (D(2024, 3, 15), 12, D(2025, 3, 14)),
        (D(2024, 2, 29), 12, D(2025, 2, 28)),  # no 29 February in 2025: end of that month
        (D(2023, 3, 1), 12, D(2024, 2, 29)),  # the period's last day is a leap day
        (D(2024, 3, 1), 12, D(2025, 2, 28)),
        (D(2024, 1, 1), 12, D(2024, 12, 31)),
        (D(2024, 8, 31), 6, D(2025, 2, 28)),  # no 31 February
        (D(2023, 8, 31), 6, D(2024, 2, 29)),
        (D(2024, 1, 10), 6, D(2024, 7, 9)),
        (D(2024, 12, 31), 2, D(2025, 2, 28)),
    ],
)
def test_a_period_of_months_starting_with_a_date(start: date, months: int, last_day: date) -> None:
    assert end_of_months_period(start, months) == last_day


def test_age_and_school_year() -> None:
    assert age_on(D(2020, 2, 29), D(2025, 2, 28)) == 4
    assert age_on(D(2020, 2, 29), D(2025, 3, 1)) == 5
    assert reception_year(D(2019, 8, 31)) == 2023  # youngest in the year
    assert reception_year(D(2019, 9, 1)) == 2024  # oldest in the next year


# --------------------------------------------------------------------------- assessment rules


def test_decision_whether_to_assess_is_due_six_weeks_after_receipt() -> None:
    m = one(clock([request(JAN18)], today=D(2024, 1, 20)), "assessment_decision")
    assert (m.starts_on, m.due_on, m.state, m.kind) == (JAN18, D(2024, 2, 29), "due", "statutory")
    assert m.source.endswith("reg 5(1)")


def test_decision_across_the_new_year() -> None:
    m = one(clock([request(D(2023, 12, 28))], today=D(2024, 1, 2)), "assessment_decision")
    assert m.due_on == D(2024, 2, 8)


def test_decision_met_on_time_and_late() -> None:
    on_time = one(
        clock([request(JAN18), decide(D(2024, 2, 29))], today=D(2024, 3, 1)), "assessment_decision"
    )
    assert (on_time.state, on_time.met_on, on_time.days_late) == ("met", D(2024, 2, 29), 0)
    late = one(
        clock([request(JAN18), decide(D(2024, 3, 4))], today=D(2024, 3, 5)), "assessment_decision"
    )
    assert (late.state, late.days_late) == ("met", 4)


def test_each_advice_is_due_six_weeks_after_its_own_request() -> None:
    events = [
        request(JAN18),
        decide(D(2024, 2, 1)),
        ask("ep", D(2024, 2, 2)),
        ask("paed", D(2024, 2, 19), "medical"),
        advise("ep", D(2024, 3, 10)),
    ]
    c = clock(events, today=D(2024, 3, 20))
    ep, paed = one(c, "advice", "ep"), one(c, "advice", "paed")
    assert (ep.due_on, ep.state, ep.days_late) == (D(2024, 3, 15), "met", 0)
    # 19 February + 42 days: 1 April 2024
    assert (paed.due_on, paed.state, paed.days_remaining) == (D(2024, 4, 1), "due", 12)
    assert paed.title == "Advice from p-paed (medical advice)"


def test_late_advice_is_overdue_then_met_late() -> None:
    events: list[PlanEvent] = [request(JAN18), decide(D(2024, 2, 1)), ask("ep", D(2024, 2, 2))]
    overdue = one(clock(events, today=D(2024, 3, 20)), "advice")
    assert (overdue.state, overdue.days_late) == ("overdue", 5)
    late = one(clock([*events, advise("ep", D(2024, 3, 22))], today=D(2024, 3, 25)), "advice")
    assert (late.state, late.met_on, late.days_late) == ("met", D(2024, 3, 22), 7)


def test_advice_without_a_request_id_answers_that_practitioners_open_request() -> None:
    events = [
        request(JAN18),
        decide(D(2024, 2, 1)),
        ask("ep", D(2024, 2, 2), practitioner="ep-9"),
        advise(None, D(2024, 3, 1), practitioner="ep-9"),
    ]
    assert one(clock(events, today=D(2024, 3, 2)), "advice").met_on == D(2024, 3, 1)


def test_the_familys_own_advice_has_no_statutory_limit() -> None:
    events = [
        request(JAN18),
        decide(D(2024, 2, 1)),
        ask("fam", D(2024, 2, 2), "parent_or_young_person"),
    ]
    m = one(clock(events, today=D(2024, 4, 1)), "advice")
    assert (m.kind, m.state) == ("practice", "past_expected")
    assert "reg 6(1)(b)-(h)" in (m.note or "")


def test_outstanding_advice_lapses_when_the_assessment_concludes() -> None:
    events = [
        request(JAN18),
        decide(D(2024, 2, 1)),
        ask("ep", D(2024, 2, 2)),
        NoPlanDecided(decided_on=D(2024, 5, 1)),
    ]
    m = one(clock(events, today=D(2024, 6, 1)), "advice")
    assert m.state == "not_applicable"
    assert "2024-05-01" in (m.note or "")


def test_notice_that_no_plan_will_be_issued_is_due_at_sixteen_weeks() -> None:
    events = [request(JAN18), decide(D(2024, 2, 1))]
    m = one(clock(events, today=D(2024, 5, 2)), "no_plan_notice")
    assert (m.due_on, m.state, m.days_remaining) == (D(2024, 5, 9), "due_soon", 7)
    met = one(
        clock([*events, NoPlanDecided(decided_on=D(2024, 5, 8))], today=D(2024, 5, 9)),
        "no_plan_notice",
    )
    assert (met.state, met.days_late) == ("met", 0)


def test_no_plan_notice_stops_applying_once_a_draft_is_issued() -> None:
    events = [request(JAN18), decide(D(2024, 2, 1)), DraftIssued(issued_on=D(2024, 4, 30))]
    m = one(clock(events, today=D(2024, 5, 20)), "no_plan_notice")
    assert m.state == "not_applicable"


def test_the_draft_at_week_sixteen_is_expected_not_due() -> None:
    events: list[PlanEvent] = [request(JAN18), decide(D(2024, 2, 1))]
    m = one(clock(events, today=D(2024, 5, 1)), "draft_plan")
    assert (m.kind, m.due_on, m.state) == ("practice", D(2024, 5, 9), "expected")
    later = one(clock(events, today=D(2024, 5, 20)), "draft_plan")
    assert later.state == "past_expected"  # never "overdue": it is not a legal deadline
    c = clock(events, today=D(2024, 5, 20))
    assert all(m.rule != "draft_plan" for m in c.milestones if m.state == "overdue")


def test_family_has_fifteen_days_to_comment_on_the_draft() -> None:
    events: list[PlanEvent] = [
        request(JAN18),
        decide(D(2024, 2, 1)),
        DraftIssued(issued_on=D(2024, 2, 20)),
    ]
    m = one(clock(events, today=D(2024, 3, 1)), "draft_comments")
    # 20 February + 15 days, across 29 February: 6 March
    assert (m.kind, m.due_on, m.state) == ("family_period", D(2024, 3, 6), "period_open")
    assert one(clock(events, today=D(2024, 3, 7)), "draft_comments").state == "period_ended"
    commented = [*events, CommentsReceived(received_on=D(2024, 3, 4), by="parent")]
    assert one(clock(commented, today=D(2024, 3, 7)), "draft_comments").met_on == D(2024, 3, 4)


def test_a_longer_comment_date_given_to_the_family_is_honoured() -> None:
    events = [
        request(JAN18),
        decide(D(2024, 2, 1)),
        DraftIssued(issued_on=D(2024, 2, 20), comments_by=D(2024, 3, 20)),
    ]
    assert one(clock(events, today=D(2024, 3, 1)), "draft_comments").due_on == D(2024, 3, 20)


def test_finalising_inside_the_familys_fifteen_days_is_flagged() -> None:
    events = [
        request(JAN18),
        decide(D(2024, 2, 1)),
        DraftIssued(issued_on=D(2024, 4, 1)),
        Finalised(finalised_on=D(2024, 4, 10)),
    ]
    m = one(clock(events, today=D(2024, 4, 20)), "draft_comments")
    assert "before the family's time to comment ended" in (m.note or "")


def test_final_plan_is_due_twenty_weeks_after_receipt() -> None:
    events: list[PlanEvent] = [request(JAN18), decide(D(2024, 2, 1))]
    m = one(clock(events, today=D(2024, 3, 1)), "final_plan")
    assert (m.due_on, m.source) == (D(2024, 6, 6), "SEND Regulations 2014 reg 13(2)")
    met = one(
        clock(
            [*events, DraftIssued(issued_on=D(2024, 5, 1)), Finalised(finalised_on=D(2024, 6, 6))],
            today=D(2024, 6, 7),
        ),
        "final_plan",
    )
    assert (met.state, met.days_late) == ("met", 0)


def test_final_plan_across_the_new_year() -> None:
    m = one(clock([request(D(2023, 12, 28))], today=D(2024, 1, 2)), "final_plan")
    assert m.due_on == D(2024, 5, 16)


def test_a_refusal_to_assess_ends_the_assessment_clocks() -> None:
    c = clock([request(JAN18), decide(D(2024, 2, 20), "refuse")], today=D(2024, 7, 1))
    assert c.status == "refused"
    assert c.stage == "enter"
    for rule in ("no_plan_notice", "draft_plan", "final_plan"):
        assert one(c, rule).state == "not_applicable"
    assert c.overdue_count == 0 and c.next_due is None


# --------------------------------------------------------------------------- state transitions


@pytest.mark.parametrize(
    ("today", "state", "remaining", "late"),
    [
        (D(2024, 5, 29), "due", 8, None),
        (D(2024, 5, 30), "due_soon", 7, None),
        (D(2024, 6, 6), "due_soon", 0, None),
        (D(2024, 6, 7), "overdue", -1, 1),
        (D(2024, 7, 6), "overdue", -30, 30),
    ],
)
def test_final_plan_moves_from_due_to_due_soon_to_overdue(
    today: date, state: str, remaining: int, late: int | None
) -> None:
    m = one(clock([request(JAN18), decide(D(2024, 2, 1))], today=today), "final_plan")
    assert (m.state, m.days_remaining, m.days_late) == (state, remaining, late)


def test_an_overdue_plan_is_met_late_once_finalised() -> None:
    events = [
        request(JAN18),
        decide(D(2024, 2, 1)),
        DraftIssued(issued_on=D(2024, 5, 20)),
        Finalised(finalised_on=D(2024, 6, 10)),
    ]
    m = one(clock(events, today=D(2024, 6, 11)), "final_plan")
    assert (m.state, m.met_on, m.days_late, m.days_remaining) == ("met", D(2024, 6, 10), 4, None)


def test_next_due_and_overdue_count() -> None:
    events = [
        request(JAN18),
        decide(D(2024, 2, 1)),
        ask("ep", D(2024, 2, 2)),
        ask("sc", D(2024, 3, 1), "social_care"),
    ]
    c = clock(events, today=D(2024, 3, 20))
    assert c.overdue_count == 1  # the EP's advice, due 15 March
    assert c.next_due is not None and c.next_due.key == "advice:ep"
    assert (c.days_since_request, c.weeks_since_request) == (62, 8)


# --------------------------------------------------------------------------- exceptions


def test_family_away_four_weeks_extends_the_final_plan_by_its_length() -> None:
    events = [
        request(JAN18),
        decide(D(2024, 2, 1)),
        exception("x1", "family_absent", D(2024, 3, 1), D(2024, 3, 28)),
    ]
    c = clock(events, today=D(2024, 4, 1))
    final = one(c, "final_plan")
    assert (final.due_without_exceptions, final.due_on) == (D(2024, 6, 6), D(2024, 7, 4))
    assert (final.paused_days, final.exception_ids) == (28, ("x1",))
    assert "extended by 28 days" in (final.note or "")
    # the decision was due (29 February) before the absence began: unchanged
    assert one(c, "assessment_decision").due_on == D(2024, 2, 29)


def test_an_exception_from_before_the_request_counts_only_after_day_zero() -> None:
    events = [request(JAN18), exception("x1", "family_absent", D(2024, 1, 10), D(2024, 2, 15))]
    m = one(clock(events, today=D(2024, 2, 20)), "assessment_decision")
    # 19 January to 15 February are 28 uncounted days: 29 February + 28 = 28 March
    assert (m.due_on, m.paused_days) == (D(2024, 3, 28), 28)


def test_a_running_exception_pauses_the_clock() -> None:
    events = [
        request(JAN18),
        decide(D(2024, 2, 1)),
        exception("x1", "exceptional_personal_circumstances", D(2024, 5, 20), None),
    ]
    m = one(clock(events, today=D(2024, 6, 1)), "final_plan")
    # paused from 20 May to today (13 days so far)
    assert (m.state, m.due_on, m.paused_days) == ("paused", D(2024, 6, 19), 13)
    assert "paused by a recorded exception (x1)" in (m.note or "")
    c = clock(events, today=D(2024, 6, 1))
    assert c.paused and c.next_due is not None


def test_once_a_running_exception_ends_the_clock_runs_again() -> None:
    events = [
        request(JAN18),
        decide(D(2024, 2, 1)),
        exception("x1", "exceptional_personal_circumstances", D(2024, 5, 20), None),
        exception("x1", "exceptional_personal_circumstances", D(2024, 5, 20), D(2024, 6, 2)),
    ]
    m = one(clock(events, today=D(2024, 6, 10)), "final_plan")
    assert (m.state, m.due_on, m.paused_days) == ("due", D(2024, 6, 20), 14)


@pytest.mark.parametrize(
    ("kind", "pauses_decision", "pauses_advice", "pauses_final"),
    [
        ("school_closed", True, False, True),  # reg 5(4)(a), 10(4)(a); not in reg 8(2)
        ("early_years_setting_closed", True, False, True),  # reg 5(4)(b), 10(4)(b)
        ("exceptional_personal_circumstances", True, True, True),  # 5(4), 8(2)(a), 10(4)(c)
        ("family_absent", True, True, True),  # 5(4), 8(2)(b), 10(4)(d)
        ("missed_appointment", False, True, True),  # 8(2)(c), 10(4)(e); not in reg 5(4)
    ],
)
def test_each_exception_pauses_the_clocks_its_regulations_name(
    kind: ExceptionKind, pauses_decision: bool, pauses_advice: bool, pauses_final: bool
) -> None:
    events = [
        request(JAN18),
        ask("ep", D(2024, 1, 20)),
        exception("x1", kind, D(2024, 2, 1), D(2024, 2, 28)),
    ]  # 28 days
    c = clock(events, today=D(2024, 2, 10))
    assert (one(c, "assessment_decision").paused_days == 28) is pauses_decision
    assert (one(c, "advice").paused_days == 28) is pauses_advice
    assert (one(c, "final_plan").paused_days == 28) is pauses_final
    assert one(c, "no_plan_notice").paused_days == 28  # reg 10(4): every ground
    assert one(c, "draft_plan").paused_days == 28  # moves with the 20 weeks


def test_a_missed_appointment_excuses_only_that_advisers_six_weeks() -> None:
    events = [
        request(JAN18),
        decide(D(2024, 2, 1)),
        ask("ep", D(2024, 2, 2)),
        ask("ot", D(2024, 2, 2), "medical"),
        exception("x1", "missed_appointment", D(2024, 2, 20), D(2024, 2, 26), "ep"),
    ]
    c = clock(events, today=D(2024, 3, 1))
    assert one(c, "advice", "ep").due_on == D(2024, 3, 22)  # 15 March + 7 days
    assert one(c, "advice", "ot").due_on == D(2024, 3, 15)
    assert one(c, "final_plan").due_on == D(2024, 6, 13)  # reg 13(3): the plan clock too


def test_overlapping_exceptions_are_not_counted_twice() -> None:
    events = [
        request(JAN18),
        exception("a", "family_absent", D(2024, 3, 1), D(2024, 3, 28)),
        exception("b", "exceptional_personal_circumstances", D(2024, 3, 15), D(2024, 4, 11)),
    ]
    m = one(clock(events, today=D(2024, 3, 2)), "final_plan")
    # the union, 1 March to 11 April, is 42 days
    assert (m.paused_days, m.due_on, m.exception_ids) == (42, D(2024, 7, 18), ("a", "b"))


def test_an_exception_after_the_deadline_does_not_revive_it() -> None:
    events = [
        request(JAN18),
        decide(D(2024, 2, 1)),
        ask("ep", D(2024, 2, 2)),
        exception("x1", "family_absent", D(2024, 4, 1), D(2024, 4, 30)),
    ]
    m = one(clock(events, today=D(2024, 5, 1)), "advice")
    assert (m.state, m.due_on, m.paused_days) == ("overdue", D(2024, 3, 15), 0)


def test_an_exception_after_a_milestone_was_met_changes_nothing() -> None:
    events = [
        request(JAN18),
        decide(D(2024, 2, 1)),
        ask("ep", D(2024, 2, 2)),
        advise("ep", D(2024, 3, 1)),
        exception("x1", "family_absent", D(2024, 3, 5), D(2024, 4, 5)),
    ]
    m = one(clock(events, today=D(2024, 5, 1)), "advice")
    assert (m.due_on, m.paused_days) == (D(2024, 3, 15), 0)


def test_exceptions_do_not_touch_reviews_or_amendments() -> None:
    events = [
        *_final_plan(),
        ReviewMeetingHeld(review_id="r1", held_on=D(2025, 3, 1)),
        exception("x1", "family_absent", D(2025, 3, 2), D(2025, 4, 30)),
    ]
    c = clock(events, today=D(2025, 3, 5))
    assert one(c, "review_report").paused_days == 0
    assert one(c, "review_decision").paused_days == 0


# --------------------------------------------------------------------------- re-assessment


JUN6 = D(2024, 6, 6)


def _final_plan(final_on: date = JUN6) -> list[PlanEvent]:
    return [
        request(JAN18),
        decide(D(2024, 2, 1)),
        DraftIssued(issued_on=D(2024, 5, 1)),
        Finalised(finalised_on=final_on),
    ]


def test_decision_whether_to_reassess_is_due_in_fifteen_days() -> None:
    events = [*_final_plan(), request(D(2025, 2, 14), reassessment=True)]
    c = clock(events, today=D(2025, 2, 22))
    m = one(c, "reassessment_decision")
    assert (m.due_on, m.state) == (D(2025, 3, 1), "due_soon")
    assert (c.status, c.reassessment, c.received_on) == ("reassessing", True, D(2025, 2, 14))


def test_final_plan_after_reassessment_is_due_fourteen_weeks_after_the_decision() -> None:
    events = [*_final_plan(), request(D(2025, 2, 14), reassessment=True), decide(D(2025, 2, 20))]
    m = one(clock(events, today=D(2025, 3, 1)), "reassessment_final")
    # 20 February 2025 + 98 days = 29 May 2025
    assert (m.starts_on, m.due_on, m.source) == (
        D(2025, 2, 20),
        D(2025, 5, 29),
        "SEND Regulations 2014 reg 27(2)",
    )


def test_reassessment_final_is_paused_by_reg_27_3_exceptions() -> None:
    events = [
        *_final_plan(),
        request(D(2025, 2, 14), reassessment=True),
        decide(D(2025, 2, 20)),
        exception("x1", "school_closed", D(2025, 4, 1), D(2025, 4, 28)),
    ]
    m = one(clock(events, today=D(2025, 3, 1)), "reassessment_final")
    assert (m.due_on, m.paused_days) == (D(2025, 6, 26), 28)


def test_a_refused_reassessment_leaves_the_plan_final() -> None:
    events = [
        *_final_plan(),
        request(D(2025, 2, 14), reassessment=True),
        decide(D(2025, 2, 20), "refuse"),
    ]
    c = clock(events, today=D(2025, 3, 1))
    assert c.status == "final"
    assert by_rule(c, "reassessment_final") == []
    assert one(c, "reassessment_decision").state == "met"


# --------------------------------------------------------------------------- reviews


def test_first_annual_review_is_due_within_twelve_months_of_the_final_plan() -> None:
    m = one(clock(_final_plan(D(2024, 3, 15)), today=D(2025, 1, 1)), "annual_review")
    assert (m.starts_on, m.due_on, m.state) == (D(2024, 3, 15), D(2025, 3, 14), "due")
    assert m.source == "Children and Families Act 2014 s.44(1)"


def test_annual_review_of_a_plan_made_on_a_leap_day() -> None:
    events = [
        request(D(2023, 10, 12)),
        decide(D(2023, 11, 1)),
        DraftIssued(issued_on=D(2024, 2, 1)),
        Finalised(finalised_on=D(2024, 2, 29)),
    ]
    m = one(clock(events, today=D(2025, 2, 22)), "annual_review")
    assert (m.due_on, m.state) == (D(2025, 2, 28), "due_soon")


def test_each_review_starts_the_next_twelve_months() -> None:
    events = [
        *_final_plan(D(2024, 3, 15)),
        ReviewMeetingHeld(review_id="r1", held_on=D(2025, 3, 1)),
        ReviewDecided(review_id="r1", decision="maintain", decided_on=D(2025, 3, 20)),
    ]
    c = clock(events, today=D(2025, 4, 1))
    first, second = by_rule(c, "annual_review")
    assert (first.state, first.met_on, first.days_late) == ("met", D(2025, 3, 1), 0)
    assert (second.starts_on, second.due_on, second.state) == (D(2025, 3, 1), D(2026, 2, 28), "due")
    assert c.status == "final" and c.stage == "review_and_learn"


def test_a_missed_annual_review_is_overdue() -> None:
    m = one(clock(_final_plan(D(2024, 3, 15)), today=D(2025, 3, 15)), "annual_review")
    assert (m.state, m.days_late) == ("overdue", 1)


def test_reviews_are_advised_every_six_months_under_five() -> None:
    dob = D(2020, 9, 10)  # 3 on the day the plan is made
    c = clock(_final_plan(D(2024, 1, 10)), today=D(2024, 7, 1), date_of_birth=dob)
    m = one(c, "early_years_review")
    assert (m.kind, m.due_on, m.state) == ("advised", D(2024, 7, 9), "expected")
    assert (
        one(
            clock(_final_plan(D(2024, 1, 10)), today=D(2024, 7, 10), date_of_birth=dob),
            "early_years_review",
        ).state
        == "past_expected"
    )


def test_no_six_month_review_is_advised_from_five() -> None:
    c = clock(_final_plan(D(2024, 1, 10)), today=D(2024, 7, 1), date_of_birth=D(2019, 1, 9))
    assert by_rule(c, "early_years_review") == []


def test_review_report_is_due_two_weeks_and_decision_four_weeks_after_the_meeting() -> None:
    events = [*_final_plan(), ReviewMeetingHeld(review_id="r1", held_on=D(2024, 12, 20))]
    c = clock(events, today=D(2024, 12, 27))
    report, decision = one(c, "review_report"), one(c, "review_decision")
    assert (report.due_on, report.state) == (D(2025, 1, 3), "due_soon")
    assert (decision.due_on, decision.state) == (D(2025, 1, 17), "due")
    assert c.status == "reviewing"
    done = [
        *events,
        ReviewReportSent(sent_on=D(2025, 1, 2)),
        ReviewDecided(decision="maintain", decided_on=D(2025, 1, 20)),
    ]
    c2 = clock(done, today=D(2025, 1, 21))
    assert one(c2, "review_report").met_on == D(2025, 1, 2)
    assert (one(c2, "review_decision").state, one(c2, "review_decision").days_late) == ("met", 3)
    assert c2.status == "final"


# --------------------------------------------------------------------------- amendments


def test_amended_plan_is_due_eight_weeks_after_proposed_amendments() -> None:
    events = [
        *_final_plan(D(2023, 6, 1)),
        AmendmentProposed(amendment_id="a1", proposed_on=D(2024, 2, 10)),
    ]
    c = clock(events, today=D(2024, 2, 20))
    comments, amended = one(c, "amendment_comments"), one(c, "amended_plan")
    assert (comments.due_on, comments.state) == (D(2024, 2, 25), "period_open")
    # 10 February + 56 days across 29 February: 6 April
    assert (amended.due_on, amended.state) == (D(2024, 4, 6), "due")
    assert c.status == "amending"
    done = [
        *events,
        CommentsReceived(received_on=D(2024, 2, 22), by="parent", amendment_id="a1"),
        Amended(amendment_id="a1", amended_on=D(2024, 4, 8)),
    ]
    c2 = clock(done, today=D(2024, 4, 9))
    assert one(c2, "amendment_comments").met_on == D(2024, 2, 22)
    assert (one(c2, "amended_plan").state, one(c2, "amended_plan").days_late) == ("met", 2)
    assert c2.status == "final"


# --------------------------------------------------------------------------- phase transfers


def test_standard_phase_transfers_follow_the_school_year() -> None:
    assert standard_phase_transfers(D(2013, 5, 10)) == (
        PhaseTransfer(kind="early_years_to_school", year=2017),
        PhaseTransfer(kind="primary_to_secondary", year=2024),
        PhaseTransfer(kind="secondary_to_post16", year=2029),
    )
    assert phase_transfer_deadline("primary_to_secondary", 2024) == D(2024, 2, 14)
    assert phase_transfer_deadline("secondary_to_post16", 2024) == D(2024, 3, 30)


def test_phase_transfer_to_secondary_is_due_before_15_february() -> None:
    dob = D(2013, 5, 10)  # into Year 7 in September 2024
    c = clock([Finalised(finalised_on=D(2021, 6, 1))], today=D(2024, 2, 10), date_of_birth=dob)
    m = one(c, "phase_transfer")
    assert (m.key, m.starts_on, m.due_on, m.state) == (
        "phase_transfer:primary_to_secondary:2024",
        D(2023, 9, 1),
        D(2024, 2, 14),
        "due_soon",
    )
    assert "primary to secondary school" in m.title


def test_phase_transfer_is_met_by_the_amendment_naming_the_school() -> None:
    events: list[PlanEvent] = [
        Finalised(finalised_on=D(2021, 6, 1)),
        Amended(
            amended_on=D(2024, 2, 12), phase_transfer="primary_to_secondary", placement="100001"
        ),
    ]
    m = one(clock(events, today=D(2024, 3, 1), date_of_birth=D(2013, 5, 10)), "phase_transfer")
    assert (m.state, m.met_on, m.days_late) == ("met", D(2024, 2, 12), 0)


def test_transfer_to_post16_is_due_before_31_march() -> None:
    events: list[PlanEvent] = [Finalised(finalised_on=D(2020, 6, 1))]
    c = clock(events, today=D(2024, 3, 31), date_of_birth=D(2008, 6, 1))  # Year 12 in 2024
    m = one(c, "phase_transfer")
    assert (m.due_on, m.state, m.days_late) == (D(2024, 3, 30), "overdue", 1)


def test_a_transfer_more_than_a_year_away_is_not_yet_shown() -> None:
    events: list[PlanEvent] = [Finalised(finalised_on=D(2021, 6, 1))]
    c = clock(events, today=D(2023, 8, 31), date_of_birth=D(2013, 5, 10))
    assert by_rule(c, "phase_transfer") == []


def test_explicit_transfers_replace_the_standard_ones() -> None:
    events: list[PlanEvent] = [Finalised(finalised_on=D(2021, 6, 1))]
    c = clock(
        events,
        today=D(2023, 10, 1),
        date_of_birth=D(2013, 5, 10),
        phase_transfers=[PhaseTransfer(kind="primary_to_middle", year=2024)],
    )
    assert [m.key for m in by_rule(c, "phase_transfer")] == [
        "phase_transfer:primary_to_middle:2024"
    ]


# --------------------------------------------------------------------------- ceasing


def test_a_ceased_plan_has_nothing_open() -> None:
    events = [
        *_final_plan(),
        ReviewMeetingHeld(review_id="r1", held_on=D(2025, 5, 1)),
        Ceased(ceased_on=D(2025, 5, 2), reason="moved_to_another_authority"),
    ]
    c = clock(events, today=D(2026, 1, 1))
    assert c.status == "ceased" and c.ceased_on == D(2025, 5, 2)
    assert c.overdue_count == 0 and c.next_due is None
    assert {m.state for m in c.milestones} <= {"met", "not_applicable", "period_ended"}


def test_a_review_on_the_day_a_plan_is_reissued_counts_once() -> None:
    events = [
        *_final_plan(D(2024, 3, 15)),
        request(D(2024, 11, 1), reassessment=True),
        decide(D(2024, 11, 10)),
        DraftIssued(issued_on=D(2025, 1, 10)),
        Finalised(finalised_on=D(2025, 2, 1)),
        ReviewMeetingHeld(review_id="r1", held_on=D(2025, 2, 1)),
    ]
    c = clock(events, today=D(2025, 2, 2))
    reviews = by_rule(c, "annual_review")
    assert [m.key for m in reviews] == ["annual_review:2024-03-15", "annual_review:2025-02-01"]
    assert reviews[0].met_on == D(2025, 2, 1)
    assert reviews[1].due_on == D(2026, 1, 31)


def test_a_plan_replaced_after_reassessment_starts_a_new_review_year() -> None:
    events = [
        *_final_plan(D(2024, 3, 15)),
        request(D(2024, 11, 1), reassessment=True),
        decide(D(2024, 11, 10)),
        DraftIssued(issued_on=D(2025, 1, 10)),
        Finalised(finalised_on=D(2025, 2, 1)),
    ]
    c = clock(events, today=D(2025, 2, 2))
    first, second = by_rule(c, "annual_review")
    assert first.state == "not_applicable" and "replaced on 2025-02-01" in (first.note or "")
    assert (second.due_on, c.status) == (D(2026, 1, 31), "final")
    assert one(c, "reassessment_final").state == "met"


def test_repeated_records_do_not_duplicate_milestones() -> None:
    events = [
        *_final_plan(),
        ask("ep", D(2024, 2, 2)),
        ask("ep", D(2024, 2, 3)),
        ReviewMeetingHeld(review_id="r1", held_on=D(2025, 5, 1)),
        ReviewMeetingHeld(review_id="r1", held_on=D(2025, 5, 1)),
        AmendmentProposed(amendment_id="a1", proposed_on=D(2025, 6, 1)),
        AmendmentProposed(amendment_id="a1", proposed_on=D(2025, 6, 1)),
    ]
    c = clock(events, today=D(2025, 6, 2))
    keys = [m.key for m in c.milestones]
    assert len(keys) == len(set(keys))
    assert one(c, "advice").starts_on == D(2024, 2, 2)


def test_a_stray_decision_after_the_final_plan_does_not_unmake_it() -> None:
    c = clock([*_final_plan(), decide(D(2024, 7, 1), "refuse")], today=D(2024, 7, 2))
    assert c.status == "final"
    assert one(c, "final_plan").state == "met"


# --------------------------------------------------------------------------- status and stage


def test_status_and_stage_along_the_journey() -> None:
    steps: list[tuple[list[PlanEvent], str, str]] = [
        ([request(JAN18)], "requested", "enter"),
        ([decide(D(2024, 2, 1)), ask("ep", D(2024, 2, 2))], "assessing", "listen_and_understand"),
        ([advise("ep", D(2024, 3, 1))], "assessing", "agree_and_allocate"),
        ([DraftIssued(issued_on=D(2024, 5, 1))], "drafting", "plan"),
        ([Finalised(finalised_on=D(2024, 6, 1))], "final", "review_and_learn"),
    ]
    so_far: list[PlanEvent] = []
    for events, status, stage in steps:
        so_far.extend(events)
        c = clock(so_far, today=D(2024, 6, 2))
        assert (c.status, c.stage) == (status, stage), so_far[-1].event_type


def test_agreeing_outcomes_moves_the_assessment_to_agree_and_allocate() -> None:
    events = [
        request(JAN18),
        decide(D(2024, 2, 1)),
        ask("ep", D(2024, 2, 2)),
        OutcomeAgreed(
            outcome_id="o1",
            need_section="B",
            what="Reads aloud",
            by_when=D(2025, 7, 1),
            how_measured="Reading age",
            agreed_on=D(2024, 3, 1),
        ),
    ]
    assert clock(events, today=D(2024, 3, 2)).stage == "agree_and_allocate"


def test_no_plan_after_assessment() -> None:
    c = clock(
        [request(JAN18), decide(D(2024, 2, 1)), NoPlanDecided(decided_on=D(2024, 5, 1))],
        today=D(2024, 5, 2),
    )
    assert (c.status, c.stage) == ("no_plan", "listen_and_understand")
    assert one(c, "final_plan").state == "not_applicable"


def test_days_to_final_and_weeks_since_request() -> None:
    c = clock(_final_plan(D(2024, 6, 1)), today=D(2024, 6, 2))
    assert c.days_to_final == 135
    assert (c.days_since_request, c.weeks_since_request) == (136, 19)
    assert c.first_final_on == D(2024, 6, 1)


def test_no_request_and_no_final_means_no_status() -> None:
    c = clock([], today=D(2024, 1, 1))
    assert (c.status, c.stage, c.milestones) == (None, "enter", ())


def test_envelopes_and_other_events_are_accepted() -> None:
    src = Source(agency="local_authority")
    envs = [
        Envelope.wrap(
            p,
            child_id="hc-1",
            plan_id="plan-1",
            source=src,
            occurred_at=datetime(2024, 1, 18, tzinfo=UTC),
        )
        for p in (request(JAN18), decide(D(2024, 2, 1)))
    ]
    kw = KeyWorkerAssigned(practitioner_id="kw", model="single_person", assigned_on=JAN18)
    c = compute_clock([*envs, kw], today=D(2024, 2, 2))
    assert c.status == "assessing"


def test_milestones_are_in_due_date_order_with_unique_keys() -> None:
    events = [
        *_final_plan(),
        ask("ep", D(2024, 2, 2)),
        ReviewMeetingHeld(review_id="r1", held_on=D(2025, 5, 1)),
    ]
    c = clock(events, today=D(2025, 5, 2))
    dues = [m.due_on for m in c.milestones]
    assert dues == sorted(dues)
    assert len({m.key for m in c.milestones}) == len(c.milestones)


# --------------------------------------------------------------------------- properties

KINDS: list[ExceptionKind] = [
    "school_closed",
    "early_years_setting_closed",
    "exceptional_personal_circumstances",
    "family_absent",
    "missed_appointment",
]


@st.composite
def exceptions(draw: st.DrawFn, xid: str) -> ExceptionRecorded:
    kind = draw(st.sampled_from(KINDS))
    start = draw(st.dates(min_value=D(2023, 12, 1), max_value=D(2024, 9, 30)))
    ongoing = draw(st.booleans())
    min_len = 28 if kind in ("school_closed", "early_years_setting_closed", "family_absent") else 1
    length = draw(st.integers(min_value=min_len, max_value=90))
    ids = (
        draw(st.lists(st.sampled_from(["a1", "a2"]), max_size=2, unique=True))
        if kind in ("exceptional_personal_circumstances", "family_absent", "missed_appointment")
        else []
    )
    return ExceptionRecorded(
        exception_id=xid,
        kind=kind,
        starts_on=start,
        ends_on=None if ongoing else start + timedelta(days=length - 1),
        advice_request_ids=tuple(ids),
    )


@st.composite
def plans(draw: st.DrawFn) -> list[PlanEvent]:
    received = draw(st.dates(min_value=D(2023, 11, 1), max_value=D(2024, 3, 31)))
    events: list[PlanEvent] = [request(received)]
    if draw(st.booleans()):
        decided = received + timedelta(days=draw(st.integers(0, 60)))
        events.append(decide(decided))
        for rid in ("a1", "a2"):
            if draw(st.booleans()):
                asked = decided + timedelta(days=draw(st.integers(0, 20)))
                events.append(ask(rid, asked))
                if draw(st.booleans()):
                    events.append(advise(rid, asked + timedelta(days=draw(st.integers(0, 70)))))
        if draw(st.booleans()):
            drafted = decided + timedelta(days=draw(st.integers(20, 120)))
            events.append(DraftIssued(issued_on=drafted))
            if draw(st.booleans()):
                events.append(
                    Finalised(finalised_on=drafted + timedelta(days=draw(st.integers(15, 60))))
                )
    return events


@given(
    plans(),
    st.lists(st.integers(0, 10**6), min_size=0, max_size=3),
    st.data(),
    st.dates(min_value=D(2023, 11, 1), max_value=D(2025, 6, 30)),
)
@settings(max_examples=300, deadline=None)
def test_adding_an_exception_never_makes_a_due_date_earlier(
    events: list[PlanEvent], seeds: list[int], data: st.DataObject, today: date
) -> None:
    existing = [data.draw(exceptions(f"x{i}")) for i in range(len(seeds))]
    extra = data.draw(exceptions("new"))
    before = clock([*events, *existing], today=today)
    after = clock([*events, *existing, extra], today=today)
    due_before = {m.key: m.due_on for m in before.milestones}
    due_after = {m.key: m.due_on for m in after.milestones}
    assert due_before.keys() == due_after.keys()
    for key, due in due_before.items():
        assert due_after[key] >= due, key


@given(plans(), st.dates(min_value=D(2023, 11, 1), max_value=D(2025, 6, 30)))
@settings(max_examples=200, deadline=None)
def test_without_exceptions_due_dates_are_the_statutory_ones(
    events: list[PlanEvent], today: date
) -> None:
    for m in clock(events, today=today).milestones:
        assert m.due_on == m.due_without_exceptions
        assert m.paused_days == 0 and m.state != "paused"


@given(
    st.dates(min_value=D(2000, 1, 1), max_value=D(2040, 1, 1)),
    st.integers(min_value=1, max_value=400),
    st.lists(st.tuples(st.integers(-50, 400), st.integers(0, 60)), max_size=5),
)
def test_due_date_counts_exactly_the_unpaused_days(
    start: date, days: int, raw: list[tuple[int, int]]
) -> None:
    pauses = [
        Pause(start + timedelta(days=a), start + timedelta(days=a + n), f"p{i}", "x")
        for i, (a, n) in enumerate(raw)
    ]
    due, added, _ = due_date(start, days, pauses)
    paused = {
        p.starts_on + timedelta(days=k)
        for p in pauses
        for k in range((p.ends_on - p.starts_on).days + 1)
    }
    counted = [
        start + timedelta(days=k)
        for k in range(1, (due - start).days + 1)
        if start + timedelta(days=k) not in paused
    ]
    assert len(counted) == days
    assert counted[-1] == due  # the due day itself is a counted day
    assert (due - start).days == days + added
