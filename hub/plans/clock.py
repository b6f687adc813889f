"""The statutory clock of one EHC plan: every milestone's due date and state, computed from
the plan's events and an explicit `today`.

Pure: no I/O, no clock reads. `compute_clock(events, today=...)` folds a plan's events (in
log order) into its statutory status, its SE7 stage, the days and weeks since the current
request, and a `Milestone` per time limit of the SEND Regulations 2014 and the Children
and Families Act 2014: the decision whether to assess (6 weeks), each adviser's advice (6
weeks from its own request), the notice that no plan will be issued (16 weeks), the draft
(expected by week 16: practice, not law), the family's 15 days on a draft, the final plan
(20 weeks), the re-assessment decision (15 days) and final plan (14 weeks from the
decision to re-assess), annual reviews (12 months; every 6 months advised under 5), the
review report (2 weeks) and the LA's decision (4 weeks) after each review meeting, the
family's 15 days and the amended plan (8 weeks) after proposed amendments, and the phase
transfer reviews (before 15 February, or 31 March for the move to post-16). Counting
conventions: a limit of N days or weeks runs from a start day that is day 0 (the day the
LA received the request, the day advice was asked for, the day of the meeting), so 6
weeks from a request received on 18 January 2024 falls due on 29 February 2024 (day 0 +
42 days); a period of 12 months "starting with" a date ends the day before its
anniversary (on the last day of the month where the anniversary does not exist); "before
15 February" means by 14 February. Recorded exceptions (`plan.exception_recorded`) stop
the days counting: a day inside an exception that applies to a clock is not counted, so
the due date moves later by the number of excepted days that fall after day 0 and on or
before the (already moved) due date; an exception still running counts up to `today`; one
that began after a milestone was met changes nothing; `PAUSED_BY` says which grounds
pause which clock (regs 5(4), 8(2), 10(4), 13(3), 27(3)); no other clock has exceptions.
The regulations say the time limit does not apply while an exception does; the hub models
that as the limit extended by the exception's length, and says so on each milestone.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from hub.events.envelope import Envelope, EventPayload
from hub.events.plan import (
    ADVICE_EXCEPTION_KINDS,
    COMMENT_DAYS,
    AdviceRequested,
    AdviceSubmitted,
    Amended,
    AmendmentProposed,
    AssessmentDecided,
    AssessmentRequested,
    Ceased,
    CommentsReceived,
    DraftIssued,
    ExceptionRecorded,
    Finalised,
    NoPlanDecided,
    OutcomeAgreed,
    PersonalBudgetAgreed,
    PhaseTransferKind,
    PlanEvent,
    ProvisionAgreed,
    ReviewDecided,
    ReviewMeetingHeld,
    ReviewReportSent,
)

S = TypeVar("S")
A = TypeVar("A")

# --------------------------------------------------------------------------- vocabulary

Rule = Literal[
    "assessment_decision",
    "advice",
    "no_plan_notice",
    "draft_plan",
    "draft_comments",
    "final_plan",
    "reassessment_decision",
    "reassessment_final",
    "annual_review",
    "early_years_review",
    "review_report",
    "review_decision",
    "amendment_comments",
    "amended_plan",
    "phase_transfer",
]
"""Which time limit a milestone is."""

MilestoneKind = Literal["statutory", "practice", "advised", "family_period"]
"""`statutory`: a legal time limit on the LA or an adviser; `practice`: an expectation
that is not law (the draft by week 16, a family's own advice); `advised`: statutory
guidance (reviews every 3-6 months under 5); `family_period`: the least time the family
must be given (to comment on a draft or on proposed amendments)."""

MilestoneState = Literal[
    "met",
    "due",
    "due_soon",
    "overdue",
    "paused",
    "expected",
    "past_expected",
    "period_open",
    "period_ended",
    "not_applicable",
]
"""`met` (on `met_on`; late if `days_late` > 0); `due`; `due_soon` (within 7 days);
`overdue`; `paused` (an exception applies today; `due_on` is the adjusted date so far);
`expected` / `past_expected` for practice and advised milestones, which are never
"overdue"; `period_open` / `period_ended` for the family's periods; `not_applicable`
(the journey went another way: `note` says why)."""

StatutoryStatus = Literal[
    "requested",
    "assessing",
    "drafting",
    "final",
    "reviewing",
    "amending",
    "reassessing",
    "refused",
    "no_plan",
    "ceased",
]
"""Where the plan stands in law: a request awaiting the decision; assessing (advice being
gathered); drafting (draft issued, final awaited); final (maintained); reviewing (a
review meeting awaits the LA's decision); amending (proposed amendments out); reassessing;
refused (the LA decided not to assess); no_plan (assessed, no plan issued); ceased."""

Se7Stage = Literal[
    "enter", "listen_and_understand", "agree_and_allocate", "plan", "review_and_learn"
]
"""The SE7 pathfinder stages of the journey."""

DUE_SOON_DAYS = 7
"""A milestone due within this many days (today included) is `due_soon`."""

DECISION_DAYS = 6 * 7  # reg 5(1)
ADVICE_DAYS = 6 * 7  # reg 8(1)
NO_PLAN_NOTICE_DAYS = 16 * 7  # reg 10(1)
DRAFT_EXPECTED_DAYS = 16 * 7  # practice
FINAL_PLAN_DAYS = 20 * 7  # reg 13(2)
REASSESSMENT_DECISION_DAYS = 15  # reg 25(1)
REASSESSMENT_FINAL_DAYS = 14 * 7  # reg 27(2)
REVIEW_REPORT_DAYS = 2 * 7  # reg 20
REVIEW_DECISION_DAYS = 4 * 7  # reg 20
AMENDED_PLAN_DAYS = 8 * 7  # reg 22(3)
ANNUAL_REVIEW_MONTHS = 12  # CFA s.44(1)
EARLY_YEARS_REVIEW_MONTHS = 6  # Code of Practice ch. 9: every 3-6 months under 5

_ALL_GROUNDS = frozenset(
    {
        "school_closed",
        "early_years_setting_closed",
        "exceptional_personal_circumstances",
        "family_absent",
        "missed_appointment",
    }
)

PAUSED_BY: dict[Rule, frozenset[str]] = {
    # reg 5(4): closures, exceptional personal circumstances, absence (no missed appointment)
    "assessment_decision": _ALL_GROUNDS - {"missed_appointment"},
    # reg 8(2): personal circumstances, absence, a missed appointment with that adviser
    "advice": ADVICE_EXCEPTION_KINDS,
    "no_plan_notice": _ALL_GROUNDS,  # reg 10(4)(a)-(e)
    "draft_plan": _ALL_GROUNDS,  # the week-16 expectation moves with the 20 weeks
    "final_plan": _ALL_GROUNDS,  # reg 13(3)
    "reassessment_final": _ALL_GROUNDS,  # reg 27(3)
}
"""Which recorded exceptions pause which clock; no other clock has exceptions."""

_RULE_TEXT: dict[Rule, tuple[str, str, MilestoneKind]] = {
    "assessment_decision": (
        "Decision whether to assess",
        "SEND Regulations 2014 reg 5(1)",
        "statutory",
    ),
    "advice": ("Advice", "SEND Regulations 2014 reg 8(1)", "statutory"),
    "no_plan_notice": (
        "Notice if no plan will be issued",
        "SEND Regulations 2014 reg 10(1)",
        "statutory",
    ),
    "draft_plan": (
        "Draft plan (expected by week 16: practice, not law)",
        "practice, not law: leaves the family's 15 days before week 20",
        "practice",
    ),
    "draft_comments": (
        "Family's time to comment on the draft and name a school",
        "SEND Regulations 2014 reg 13(1)",
        "family_period",
    ),
    "final_plan": ("Final plan issued", "SEND Regulations 2014 reg 13(2)", "statutory"),
    "reassessment_decision": (
        "Decision whether to re-assess",
        "SEND Regulations 2014 reg 25(1)",
        "statutory",
    ),
    "reassessment_final": (
        "Final plan after re-assessment",
        "SEND Regulations 2014 reg 27(2)",
        "statutory",
    ),
    "annual_review": ("Annual review", "Children and Families Act 2014 s.44(1)", "statutory"),
    "early_years_review": (
        "Review advised for a child under 5 (every 3 to 6 months)",
        "SEND Code of Practice 2015 ch. 9 (reviews of plans for children under 5)",
        "advised",
    ),
    "review_report": ("Review report sent", "SEND Regulations 2014 regs 20-21", "statutory"),
    "review_decision": (
        "LA decision after the review",
        "SEND Regulations 2014 regs 20-21",
        "statutory",
    ),
    "amendment_comments": (
        "Family's time to comment on proposed amendments",
        "SEND Regulations 2014 reg 22(2)",
        "family_period",
    ),
    "amended_plan": ("Amended plan issued", "SEND Regulations 2014 reg 22(3)", "statutory"),
    "phase_transfer": (
        "Phase transfer review and amendment",
        "SEND Regulations 2014 reg 18(1)",
        "statutory",
    ),
}

_ADVICE_LABEL = {
    "parent_or_young_person": "the family's own advice",
    "educational": "educational advice",
    "medical": "medical advice",
    "educational_psychologist": "psychological advice",
    "social_care": "social care advice",
    "other_appropriate": "other advice",
    "preparation_for_adulthood": "preparation for adulthood advice",
    "family_requested": "advice the family asked for",
}

_TRANSFER_LABEL = {
    "early_years_to_school": "early years to school",
    "infant_to_junior": "infant to junior school",
    "primary_to_middle": "primary to middle school",
    "primary_to_secondary": "primary to secondary school",
    "middle_to_secondary": "middle to secondary school",
    "secondary_to_post16": "secondary school to post-16",
}

# --------------------------------------------------------------------------- results


class Milestone(BaseModel):
    """One time limit: when its clock started, when it falls due (with and without
    exceptions), and where it stands on `today`."""

    model_config = ConfigDict(frozen=True)

    key: str
    """Unique within the plan and stable across recomputation, e.g. `final_plan:2024-01-18`,
    `advice:ar-7`, `annual_review:2025-03-15`, `phase_transfer:primary_to_secondary:2027`."""
    rule: Rule
    title: str
    source: str
    kind: MilestoneKind
    subject_id: str | None = None
    """The advice request, review, amendment or transfer the milestone is about."""
    starts_on: date
    due_on: date
    """The due date after exceptions (the last day on time)."""
    due_without_exceptions: date
    paused_days: int = 0
    exception_ids: tuple[str, ...] = ()
    state: MilestoneState
    met_on: date | None = None
    days_remaining: int | None = None
    """Days from today to `due_on`, for a milestone still open."""
    days_late: int | None = None
    """Days past `due_on`: of an overdue milestone today, or of one met late (0 if on time)."""
    note: str | None = None


class PhaseTransfer(BaseModel):
    """A transfer between phases of education in September of `year`."""

    model_config = ConfigDict(frozen=True)

    kind: PhaseTransferKind
    year: int

    @property
    def deadline(self) -> date:
        return phase_transfer_deadline(self.kind, self.year)

    @property
    def window_opens(self) -> date:
        """The review duty starts 12 months before the transfer (1 September)."""
        return date(self.year - 1, 9, 1)


class PlanClock(BaseModel):
    """Where one plan stands on `today`."""

    model_config = ConfigDict(frozen=True)

    today: date
    status: StatutoryStatus | None
    """None when the events hold neither a request nor a final plan."""
    stage: Se7Stage
    reassessment: bool = False
    received_on: date | None = None
    """The day the LA received the current (latest) request."""
    days_since_request: int | None = None
    weeks_since_request: int | None = None
    days_to_final: int | None = None
    """Days from the latest request to its final plan, once issued."""
    first_final_on: date | None = None
    ceased_on: date | None = None
    paused: bool = False
    milestones: tuple[Milestone, ...] = ()
    next_due: Milestone | None = None
    """The open statutory milestone due first (overdue ones included)."""
    overdue_count: int = 0


# --------------------------------------------------------------------------- date rules


def days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def end_of_months_period(start: date, months: int) -> date:
    """The last day of a period of `months` months *starting with* `start`: the day before
    the corresponding date `months` later, or the last day of that month when it has no
    corresponding date (a period starting with 29 February 2024 ends 28 February 2025;
    one starting with 1 March 2023 ends 29 February 2024)."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    last = days_in_month(year, month)
    if start.day > last:
        return date(year, month, last)
    return date(year, month, start.day) - timedelta(days=1)


def phase_transfer_deadline(kind: PhaseTransferKind, year: int) -> date:
    """The last day for the review and amendment of a transfer in September of `year`:
    *before* 31 March for secondary school to post-16, *before* 15 February otherwise
    (reg 18(1)), i.e. 30 March or 14 February."""
    return date(year, 3, 30) if kind == "secondary_to_post16" else date(year, 2, 14)


def reception_year(date_of_birth: date) -> int:
    """The calendar year a child starts Reception in England: the September after their
    fourth birthday (school years run 1 September to 31 August)."""
    return date_of_birth.year + (4 if date_of_birth.month < 9 else 5)


def standard_phase_transfers(date_of_birth: date) -> tuple[PhaseTransfer, ...]:
    """The transfers every child in their chronological year group makes: early years to
    school (into Reception), primary to secondary (into Year 7) and secondary to post-16
    (into Year 12). Infant/junior and middle-school transfers depend on the schools, and
    children taught out of their year group move at other times: pass those explicitly."""
    r = reception_year(date_of_birth)
    return (
        PhaseTransfer(kind="early_years_to_school", year=r),
        PhaseTransfer(kind="primary_to_secondary", year=r + 7),
        PhaseTransfer(kind="secondary_to_post16", year=r + 12),
    )


def age_on(date_of_birth: date, day: date) -> int:
    """Age in whole years on `day` (a 29 February birthday falls on 1 March in common years)."""
    before_birthday = (day.month, day.day) < (date_of_birth.month, date_of_birth.day)
    return day.year - date_of_birth.year - (1 if before_birthday else 0)


@dataclass(frozen=True)
class Pause:
    """Days (both inclusive) on which an exception stops a clock."""

    starts_on: date
    ends_on: date
    exception_id: str
    kind: str
    advice_request_ids: tuple[str, ...] = ()


def due_date(
    start: date, days: int, pauses: Iterable[Pause] = ()
) -> tuple[date, int, tuple[str, ...]]:
    """The day on which `days` counted days have passed after day 0 (`start`), where a
    day inside any pause is not counted. Returns the due date, the number of days the
    pauses added, and the ids of the exceptions that added them. Without pauses this is
    `start + days`; a pause wholly inside the running clock adds exactly its length."""
    due = start + timedelta(days=days)
    added = 0
    used: list[str] = []
    for first, last, ids in _merged(pauses):
        counted_from = max(first, start + timedelta(days=1))
        if last < counted_from:
            continue
        if counted_from > due:
            break
        length = (last - counted_from).days + 1
        due += timedelta(days=length)
        added += length
        used.extend(ids)
    return due, added, tuple(sorted(set(used)))


def _merged(pauses: Iterable[Pause]) -> list[tuple[date, date, list[str]]]:
    out: list[tuple[date, date, list[str]]] = []
    for p in sorted(pauses, key=lambda p: (p.starts_on, p.ends_on)):
        if out and p.starts_on <= out[-1][1]:
            first, last, ids = out[-1]
            out[-1] = (first, max(last, p.ends_on), [*ids, p.exception_id])
        else:
            out.append((p.starts_on, p.ends_on, [p.exception_id]))
    return out


# --------------------------------------------------------------------------- the fold


@dataclass
class _Cycle:
    request: AssessmentRequested
    decisions: list[AssessmentDecided] = field(default_factory=list)
    advice: list[AdviceRequested] = field(default_factory=list)
    drafts: list[DraftIssued] = field(default_factory=list)
    comments: list[CommentsReceived] = field(default_factory=list)
    final: Finalised | None = None
    no_plan: NoPlanDecided | None = None

    @property
    def decision(self) -> AssessmentDecided | None:
        return self.decisions[-1] if self.decisions else None

    @property
    def refused(self) -> bool:
        return self.decision is not None and self.decision.decision == "refuse"

    @property
    def concluded_on(self) -> date | None:
        if self.final is not None:
            return self.final.finalised_on
        if self.no_plan is not None:
            return self.no_plan.decided_on
        if self.refused and self.decision is not None:
            return self.decision.decided_on
        return None


@dataclass
class _Facts:
    cycles: list[_Cycle] = field(default_factory=list)
    submissions: list[AdviceSubmitted] = field(default_factory=list)
    exceptions: dict[str, ExceptionRecorded] = field(default_factory=dict)
    finals: list[Finalised] = field(default_factory=list)
    reviews: list[ReviewMeetingHeld] = field(default_factory=list)
    reports: list[ReviewReportSent] = field(default_factory=list)
    review_decisions: list[ReviewDecided] = field(default_factory=list)
    proposals: list[AmendmentProposed] = field(default_factory=list)
    amendment_comments: list[CommentsReceived] = field(default_factory=list)
    amendments: list[Amended] = field(default_factory=list)
    ceased: Ceased | None = None
    agreed_contents: int = 0
    outcome_ids: set[str] = field(default_factory=set)
    advice_ids: set[str] = field(default_factory=set)

    @property
    def current(self) -> _Cycle | None:
        return self.cycles[-1] if self.cycles else None

    @property
    def open_cycle(self) -> _Cycle | None:
        c = self.current
        return c if c is not None and c.concluded_on is None else None


def _payloads(events: Iterable[EventPayload | Envelope]) -> Iterable[PlanEvent]:
    for e in events:
        p = e.payload if isinstance(e, Envelope) else e
        if isinstance(p, PlanEvent):
            yield p


def _fold(events: Iterable[EventPayload | Envelope]) -> _Facts:
    f = _Facts()
    for p in _payloads(events):
        c = f.open_cycle
        if isinstance(p, AssessmentRequested):
            f.cycles.append(_Cycle(request=p))
        elif isinstance(p, AssessmentDecided):
            if f.current is not None:
                f.current.decisions.append(p)
        elif isinstance(p, AdviceRequested):
            if f.current is not None and p.advice_request_id not in f.advice_ids:
                f.advice_ids.add(p.advice_request_id)
                f.current.advice.append(p)
        elif isinstance(p, AdviceSubmitted):
            f.submissions.append(p)
        elif isinstance(p, ExceptionRecorded):
            f.exceptions[p.exception_id] = p
        elif isinstance(p, DraftIssued):
            if c is not None:
                c.drafts.append(p)
        elif isinstance(p, CommentsReceived):
            if p.amendment_id is None and c is not None and c.drafts:
                c.comments.append(p)
            else:
                f.amendment_comments.append(p)
        elif isinstance(p, Finalised):
            f.finals.append(p)
            if c is not None:
                c.final = p
        elif isinstance(p, NoPlanDecided):
            if c is not None:
                c.no_plan = p
        elif isinstance(p, ReviewMeetingHeld):
            if all(r.review_id != p.review_id for r in f.reviews):
                f.reviews.append(p)
        elif isinstance(p, ReviewReportSent):
            f.reports.append(p)
        elif isinstance(p, ReviewDecided):
            f.review_decisions.append(p)
        elif isinstance(p, AmendmentProposed):
            if all(x.amendment_id != p.amendment_id for x in f.proposals):
                f.proposals.append(p)
        elif isinstance(p, Amended):
            f.amendments.append(p)
        elif isinstance(p, Ceased):
            if f.ceased is None:
                f.ceased = p
        elif isinstance(p, OutcomeAgreed | ProvisionAgreed | PersonalBudgetAgreed):
            f.agreed_contents += 1
            if isinstance(p, OutcomeAgreed):
                f.outcome_ids.add(p.outcome_id)
    return f


def _advice_met(f: _Facts) -> dict[str, date]:
    """When each advice request was answered: by its id, else by the same practitioner's
    earliest request still open on the day the advice came."""
    requests = [a for c in f.cycles for a in c.advice]
    by_id = {a.advice_request_id: a for a in requests}
    met: dict[str, date] = {}
    unmatched: list[AdviceSubmitted] = []
    for s in f.submissions:
        if s.advice_request_id is not None and s.advice_request_id in by_id:
            if s.advice_request_id not in met:
                met[s.advice_request_id] = s.submitted_on
        else:
            unmatched.append(s)
    for s in unmatched:
        candidates = [
            a
            for a in requests
            if a.practitioner_id == s.practitioner_id
            and a.advice_request_id not in met
            and a.requested_on <= s.submitted_on
        ]
        if candidates:
            first = min(candidates, key=lambda a: a.requested_on)
            met[first.advice_request_id] = s.submitted_on
    return met


def _pauses(f: _Facts, today: date) -> list[Pause]:
    out: list[Pause] = []
    for e in f.exceptions.values():
        end = e.ends_on if e.ends_on is not None else today
        if end < e.starts_on:
            continue
        out.append(Pause(e.starts_on, end, e.exception_id, e.kind, e.advice_request_ids))
    return out


def _applicable(
    pauses: Sequence[Pause], rule: Rule, advice_request_id: str | None = None
) -> list[Pause]:
    kinds = PAUSED_BY.get(rule, frozenset())
    return [
        p
        for p in pauses
        if p.kind in kinds
        and (
            advice_request_id is None
            or not p.advice_request_ids
            or advice_request_id in p.advice_request_ids
        )
    ]


@dataclass
class _Builder:
    today: date
    pauses: list[Pause]
    out: list[Milestone] = field(default_factory=list)

    def add(
        self,
        rule: Rule,
        key: str,
        start: date,
        days: int | None = None,
        *,
        due: date | None = None,
        met_on: date | None = None,
        not_applicable: str | None = None,
        subject_id: str | None = None,
        title: str | None = None,
        kind: MilestoneKind | None = None,
        note: str | None = None,
        advice_request_id: str | None = None,
    ) -> Milestone:
        base_title, source, base_kind = _RULE_TEXT[rule]
        kind = kind or base_kind
        if due is None:
            if days is None:
                raise ValueError("a milestone needs a number of days or a due date")
            unadjusted = start + timedelta(days=days)
            pauses = _applicable(self.pauses, rule, advice_request_id)
            if met_on is not None:  # an exception that began after it was met changed nothing
                pauses = [p for p in pauses if p.starts_on <= met_on]
            adjusted, added, ids = due_date(start, days, pauses)
        else:
            unadjusted = adjusted = due
            added, ids, pauses = 0, (), []
        today = self.today
        paused_now = (
            added > 0
            and today > start
            and any(p.starts_on <= today <= p.ends_on and p.exception_id in ids for p in pauses)
        )
        days_remaining: int | None = None
        days_late: int | None = None
        state: MilestoneState
        if met_on is not None:
            state = "met"
            if kind != "family_period":
                days_late = max(0, (met_on - adjusted).days)
        elif not_applicable is not None:
            state = "not_applicable"
            note = not_applicable
        else:
            days_remaining = (adjusted - today).days
            if paused_now:
                state = "paused"
            elif kind == "family_period":
                state = "period_open" if today <= adjusted else "period_ended"
            elif kind in ("practice", "advised"):
                state = "expected" if today <= adjusted else "past_expected"
            elif today > adjusted:
                state = "overdue"
            elif days_remaining <= DUE_SOON_DAYS:
                state = "due_soon"
            else:
                state = "due"
            if today > adjusted and kind != "family_period":
                days_late = (today - adjusted).days
        if added and state != "not_applicable":
            extended = (
                f"paused by a recorded exception ({', '.join(ids)}): the due date moves on "
                "while it lasts"
                if state == "paused"
                else f"due date extended by {added} day{'s' if added != 1 else ''} of "
                f"recorded exceptions ({', '.join(ids)})"
            )
            note = extended if note is None else f"{note}; {extended}"
        m = Milestone(
            key=key,
            rule=rule,
            title=title or base_title,
            source=source,
            kind=kind,
            subject_id=subject_id,
            starts_on=start,
            due_on=adjusted,
            due_without_exceptions=unadjusted,
            paused_days=added,
            exception_ids=ids,
            state=state,
            met_on=met_on,
            days_remaining=days_remaining,
            days_late=days_late,
            note=note,
        )
        self.out.append(m)
        return m


def _first_on_or_after(dates: Iterable[date], day: date) -> date | None:
    later = [d for d in dates if d >= day]
    return min(later) if later else None


def _cycle_milestones(
    b: _Builder, c: _Cycle, advice_met: dict[str, date], ceased: Ceased | None
) -> None:
    r = c.request.received_on
    first_decision = c.decisions[0].decided_on if c.decisions else None
    concluded = c.concluded_on
    ended_note = None
    if c.refused:
        ended_note = "the LA decided not to assess"
    elif c.no_plan is not None:
        ended_note = f"the LA decided on {c.no_plan.decided_on.isoformat()} not to issue a plan"
    elif ceased is not None and c.final is None:
        ended_note = f"the plan ceased on {ceased.ceased_on.isoformat()}"
    tag = r.isoformat()

    if c.request.reassessment:
        b.add(
            "reassessment_decision",
            f"reassessment_decision:{tag}",
            r,
            REASSESSMENT_DECISION_DAYS,
            met_on=first_decision,
            not_applicable=None if first_decision else _ceased_note(ceased),
        )
    else:
        b.add(
            "assessment_decision",
            f"assessment_decision:{tag}",
            r,
            DECISION_DAYS,
            met_on=first_decision,
            not_applicable=None if first_decision else _ceased_note(ceased),
        )

    for a in c.advice:
        met = advice_met.get(a.advice_request_id)
        who = a.practitioner_id or a.agency or "adviser"
        family_own = a.reg6_category == "parent_or_young_person"
        na = None
        if met is None and concluded is not None:
            na = f"the assessment concluded on {concluded.isoformat()} without this advice"
        elif met is None:
            na = _ceased_note(ceased)
        b.add(
            "advice",
            f"advice:{a.advice_request_id}",
            a.requested_on,
            ADVICE_DAYS,
            met_on=met,
            not_applicable=na,
            subject_id=a.advice_request_id,
            advice_request_id=a.advice_request_id,
            title=f"Advice from {who} ({_ADVICE_LABEL[a.reg6_category]})",
            kind="practice" if family_own else None,
            note="no statutory limit on the family's own advice (reg 8 covers reg 6(1)(b)-(h))"
            if family_own
            else None,
        )

    if c.drafts:
        d = c.drafts[-1]
        end = max(d.issued_on + timedelta(days=COMMENT_DAYS), d.comments_by or d.issued_on)
        commented = _first_on_or_after((x.received_on for x in c.comments), d.issued_on)
        note = None
        if (
            c.final is not None
            and c.final.finalised_on < end
            and (commented is None or commented > c.final.finalised_on)
        ):
            note = (
                f"the final plan was issued on {c.final.finalised_on.isoformat()}, before "
                "the family's time to comment ended and without their comments"
            )
        b.add(
            "draft_comments",
            f"draft_comments:{d.issued_on.isoformat()}",
            d.issued_on,
            due=end,
            met_on=commented,
            note=note,
        )

    if c.request.reassessment:
        decision = c.decision
        if decision is not None and decision.decision == "assess" and first_decision:
            start = min(x.decided_on for x in c.decisions if x.decision == "assess")
            b.add(
                "reassessment_final",
                f"reassessment_final:{tag}",
                start,
                REASSESSMENT_FINAL_DAYS,
                met_on=c.final.finalised_on if c.final else None,
                not_applicable=None if c.final else ended_note,
            )
        return

    if c.no_plan is not None:
        b.add(
            "no_plan_notice",
            f"no_plan_notice:{tag}",
            r,
            NO_PLAN_NOTICE_DAYS,
            met_on=c.no_plan.decided_on,
        )
    else:
        na = ended_note
        issued = c.drafts[0].issued_on if c.drafts else c.final.finalised_on if c.final else None
        if na is None and issued is not None:
            na = f"the LA is issuing a plan (draft or final plan of {issued.isoformat()})"
        b.add("no_plan_notice", f"no_plan_notice:{tag}", r, NO_PLAN_NOTICE_DAYS, not_applicable=na)

    if c.drafts:
        b.add(
            "draft_plan", f"draft_plan:{tag}", r, DRAFT_EXPECTED_DAYS, met_on=c.drafts[0].issued_on
        )
    else:
        na = ended_note
        if na is None and c.final is not None:
            na = "the final plan was issued without a recorded draft"
        b.add("draft_plan", f"draft_plan:{tag}", r, DRAFT_EXPECTED_DAYS, not_applicable=na)

    b.add(
        "final_plan",
        f"final_plan:{tag}",
        r,
        FINAL_PLAN_DAYS,
        met_on=c.final.finalised_on if c.final else None,
        not_applicable=ended_note,
    )


def _ceased_note(ceased: Ceased | None) -> str | None:
    return None if ceased is None else f"the plan ceased on {ceased.ceased_on.isoformat()}"


def _maintenance_milestones(
    b: _Builder,
    f: _Facts,
    date_of_birth: date | None,
    transfers: Sequence[PhaseTransfer],
) -> None:
    if not f.finals:
        return
    ceased_on = f.ceased.ceased_on if f.ceased else None
    ceased_note = _ceased_note(f.ceased)
    first_final = min(x.finalised_on for x in f.finals)

    # Annual reviews: each period starts with the plan's making or its last review.
    # One anchor a day; a review on the day of a (re-)issued plan counts as the review.
    kind_on: dict[date, str] = {x.finalised_on: "final" for x in f.finals}
    kind_on.update({r.held_on: "review" for r in f.reviews if r.held_on >= first_final})
    anchors = sorted(
        (day, kind) for day, kind in kind_on.items() if ceased_on is None or day <= ceased_on
    )
    for i, (base, _kind) in enumerate(anchors):
        nxt = anchors[i + 1] if i + 1 < len(anchors) else None
        met = nxt[0] if nxt is not None and nxt[1] == "review" else None
        na = None
        if nxt is not None and nxt[1] == "final":
            na = f"the plan was replaced on {nxt[0].isoformat()} (final plan after re-assessment)"
        elif nxt is None:
            na = ceased_note
        b.add(
            "annual_review",
            f"annual_review:{base.isoformat()}",
            base,
            due=end_of_months_period(base, ANNUAL_REVIEW_MONTHS),
            met_on=met,
            not_applicable=na,
        )
        if date_of_birth is not None and age_on(date_of_birth, base) < 5:
            b.add(
                "early_years_review",
                f"early_years_review:{base.isoformat()}",
                base,
                due=end_of_months_period(base, EARLY_YEARS_REVIEW_MONTHS),
                met_on=met,
                not_applicable=na,
            )

    # After each review meeting: the report (2 weeks) and the LA's decision (4 weeks).
    reports = _assign(
        f.reviews,
        f.reports,
        lambda r: r.review_id,
        lambda x: x.review_id,
        lambda r: r.held_on,
        lambda x: x.sent_on,
    )
    decisions = _assign(
        f.reviews,
        f.review_decisions,
        lambda r: r.review_id,
        lambda x: x.review_id,
        lambda r: r.held_on,
        lambda x: x.decided_on,
    )
    for r in f.reviews:
        open_na = ceased_note if ceased_on is not None else None
        b.add(
            "review_report",
            f"review_report:{r.review_id}",
            r.held_on,
            REVIEW_REPORT_DAYS,
            met_on=reports.get(r.review_id),
            not_applicable=open_na,
            subject_id=r.review_id,
        )
        b.add(
            "review_decision",
            f"review_decision:{r.review_id}",
            r.held_on,
            REVIEW_DECISION_DAYS,
            met_on=decisions.get(r.review_id),
            not_applicable=open_na,
            subject_id=r.review_id,
        )

    # Proposed amendments: the family's 15 days, the amended plan within 8 weeks.
    comments = _assign(
        f.proposals,
        f.amendment_comments,
        lambda p: p.amendment_id,
        lambda x: x.amendment_id,
        lambda p: p.proposed_on,
        lambda x: x.received_on,
    )
    amended = _assign(
        f.proposals,
        f.amendments,
        lambda p: p.amendment_id,
        lambda x: x.amendment_id,
        lambda p: p.proposed_on,
        lambda x: x.amended_on,
    )
    for p in f.proposals:
        end = max(p.proposed_on + timedelta(days=COMMENT_DAYS), p.comments_by or p.proposed_on)
        issued = amended.get(p.amendment_id)
        commented = comments.get(p.amendment_id)
        note = None
        if issued is not None and issued < end and (commented is None or commented > issued):
            note = (
                f"the amended plan was issued on {issued.isoformat()}, before the family's "
                "time to comment ended and without their comments"
            )
        b.add(
            "amendment_comments",
            f"amendment_comments:{p.amendment_id}",
            p.proposed_on,
            due=end,
            met_on=commented,
            subject_id=p.amendment_id,
            note=note,
        )
        b.add(
            "amended_plan",
            f"amended_plan:{p.amendment_id}",
            p.proposed_on,
            AMENDED_PLAN_DAYS,
            met_on=issued,
            subject_id=p.amendment_id,
            not_applicable=ceased_note if ceased_on is not None else None,
        )

    # Phase transfers whose review duty has started while the plan is maintained.
    for t in transfers:
        deadline = t.deadline
        if first_final > deadline or b.today < t.window_opens:
            continue
        if ceased_on is not None and ceased_on < t.window_opens:
            continue
        done = [
            x.amended_on
            for x in f.amendments
            if x.phase_transfer == t.kind and x.amended_on >= t.window_opens
        ] + [
            x.decided_on
            for x in f.review_decisions
            if x.phase_transfer == t.kind and x.decided_on >= t.window_opens
        ]
        met = min(done) if done else None
        b.add(
            "phase_transfer",
            f"phase_transfer:{t.kind}:{t.year}",
            t.window_opens,
            due=deadline,
            met_on=met,
            subject_id=f"{t.kind}:{t.year}",
            title=f"Phase transfer review and amendment ({_TRANSFER_LABEL[t.kind]}, "
            f"September {t.year})",
            not_applicable=ceased_note if ceased_on is not None else None,
        )


def _assign(
    subjects: Sequence[S],
    answers: Sequence[A],
    subject_id: Callable[[S], str],
    answer_id: Callable[[A], str | None],
    subject_day: Callable[[S], date],
    answer_day: Callable[[A], date],
) -> dict[str, date]:
    """When each subject (a review meeting, a proposed amendment) was first answered: by
    the id the answer names, else by the latest subject on or before the answer's day that
    has no answer yet."""
    ids = {subject_id(s) for s in subjects}
    met: dict[str, date] = {}
    unnamed: list[A] = []
    for a in answers:
        aid = answer_id(a)
        if aid is None:
            unnamed.append(a)
        elif aid in ids:
            day = answer_day(a)
            met[aid] = min(day, met.get(aid, day))
    for a in sorted(unnamed, key=answer_day):
        day = answer_day(a)
        open_subjects = [s for s in subjects if subject_day(s) <= day and subject_id(s) not in met]
        if open_subjects:
            met[subject_id(max(open_subjects, key=subject_day))] = day
    return met


def _status(f: _Facts) -> StatutoryStatus | None:
    if f.ceased is not None:
        return "ceased"
    c = f.current
    if c is not None and not c.request.reassessment and c.final is None:
        if c.no_plan is not None:
            return "no_plan"
        if c.refused:
            return "refused"
        if c.decision is None:
            return "requested"
        return "drafting" if c.drafts else "assessing"
    if not f.finals:
        return None if c is None else "reassessing"
    if c is not None and c.request.reassessment and c.concluded_on is None:
        return "reassessing"
    amended = {a.amendment_id for a in f.amendments if a.amendment_id}
    last_amended = max((a.amended_on for a in f.amendments), default=None)
    for p in f.proposals:
        if p.amendment_id not in amended and (last_amended is None or last_amended < p.proposed_on):
            return "amending"
    decided = {d.review_id for d in f.review_decisions if d.review_id}
    last_decided = max((d.decided_on for d in f.review_decisions), default=None)
    if f.reviews:
        r = f.reviews[-1]
        if r.review_id not in decided and (last_decided is None or last_decided < r.held_on):
            return "reviewing"
    return "final"


def _stage(status: StatutoryStatus | None, f: _Facts, advice_met: dict[str, date]) -> Se7Stage:
    if status in (None, "requested", "refused"):
        return "enter"
    if status in ("assessing", "reassessing", "no_plan"):
        c = f.current
        requests = c.advice if c is not None else []
        all_in = bool(requests) and all(a.advice_request_id in advice_met for a in requests)
        if status != "no_plan" and (all_in or f.agreed_contents):
            return "agree_and_allocate"
        return "listen_and_understand"
    if status == "drafting":
        return "plan"
    return "review_and_learn"


def compute_clock(
    events: Iterable[EventPayload | Envelope],
    *,
    today: date,
    date_of_birth: date | None = None,
    phase_transfers: Sequence[PhaseTransfer] | None = None,
) -> PlanClock:
    """The statutory clock of one plan on `today`, from its events in log order (payloads or
    envelopes; anything that is not a plan event is ignored). `date_of_birth` enables the
    reviews advised under 5 and, unless `phase_transfers` is given, the standard phase
    transfers of a child in their chronological year group."""
    f = _fold(events)
    advice_met = _advice_met(f)
    b = _Builder(today=today, pauses=_pauses(f, today))
    for cycle in f.cycles:
        _cycle_milestones(b, cycle, advice_met, f.ceased)
    if phase_transfers is None:
        phase_transfers = standard_phase_transfers(date_of_birth) if date_of_birth else ()
    _maintenance_milestones(b, f, date_of_birth, phase_transfers)

    milestones = tuple(sorted(b.out, key=lambda m: (m.due_on, m.starts_on, m.key)))
    open_statutory = [
        m
        for m in milestones
        if m.kind == "statutory" and m.state in ("due", "due_soon", "overdue", "paused")
    ]
    status = _status(f)
    c = f.current
    received = c.request.received_on if c is not None else None
    since = max(0, (today - received).days) if received is not None else None
    return PlanClock(
        today=today,
        status=status,
        stage=_stage(status, f, advice_met),
        reassessment=c.request.reassessment if c is not None else False,
        received_on=received,
        days_since_request=since,
        weeks_since_request=None if since is None else since // 7,
        days_to_final=(
            (c.final.finalised_on - c.request.received_on).days
            if c is not None and c.final is not None
            else None
        ),
        first_final_on=min((x.finalised_on for x in f.finals), default=None),
        ceased_on=f.ceased.ceased_on if f.ceased else None,
        paused=any(m.state == "paused" for m in milestones),
        milestones=milestones,
        next_due=min(open_statutory, key=lambda m: (m.due_on, m.key), default=None),
        overdue_count=sum(1 for m in milestones if m.state == "overdue"),
    )
