"""Which plan event may follow a plan's history: the rules a write route checks before it
appends (a final plan before a decision to assess, a date before the request...).

Pure: `check_transition(history, payload)` folds the plan's events as the statutory clock
does and returns the first `Violation` (a stable rule code, the payload field concerned,
a plain message, and whether it is a conflict with the plan's state — HTTP 409 — or a
date or reference that contradicts the plan — HTTP 422), or None when the event may be
appended. It judges one plan; an event of another kind (team, family) is always allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict

from hub.events.envelope import Envelope, EventPayload
from hub.events.plan import (
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
from hub.plans.clock import _Cycle, _Facts, _fold, _payloads


class Violation(BaseModel):
    """Why an event may not be appended to a plan."""

    model_config = ConfigDict(frozen=True)

    rule: str
    field: str | None
    message: str
    conflict: bool
    """True: the plan's state forbids the event (409); False: its content contradicts the
    plan's facts (422)."""


def _state(rule: str, message: str, field: str | None = None) -> Violation:
    return Violation(rule=rule, field=field, message=message, conflict=True)


def _invalid(rule: str, field: str, message: str) -> Violation:
    return Violation(rule=rule, field=field, message=message, conflict=False)


def _not_before(day: date, floor: date | None, field: str, what: str) -> Violation | None:
    if floor is not None and day < floor:
        return _invalid(
            f"{field}_before_{what.replace(' ', '_')}",
            field,
            f"{field} {day.isoformat()} is before the {what} ({floor.isoformat()})",
        )
    return None


def _assessing(c: _Cycle | None) -> _Cycle | None:
    """The open (re-)assessment whose LA decided to assess, if any."""
    if c is None or c.concluded_on is not None:
        return None
    d = c.decision
    return c if d is not None and d.decision == "assess" else None


def check_transition(
    history: Iterable[EventPayload | Envelope], payload: EventPayload
) -> Violation | None:
    """The first rule `payload` breaks given the plan's `history` (log order), or None."""
    if not isinstance(payload, PlanEvent):
        return None
    events = list(history)
    f = _fold(events)
    if f.ceased is not None:
        return _state("plan_ceased", f"the plan ceased on {f.ceased.ceased_on.isoformat()}")
    if isinstance(payload, _REVIEW_AND_LEARN):
        return _check_review_and_learn(f, _Learning.of(events), payload)
    return _check(f, payload)


_REVIEW_AND_LEARN = (
    OutcomeProgressRecorded,
    OutcomeRevised,
    InformalSupportRecorded,
    PersonalBudgetRequested,
    PersonalBudgetIndicated,
    PersonalBudgetAudited,
    ReviewConcluded,
)


class _Learning:
    """What the review-and-learn rules need beyond the clock's fold: each budget's stages
    and the reviews already concluded."""

    def __init__(self) -> None:
        self.budgets: dict[str, set[str]] = {}
        self.concluded: set[str] = set()

    @classmethod
    def of(cls, history: Iterable[EventPayload | Envelope]) -> _Learning:
        out = cls()
        for p in _payloads(history):
            if isinstance(p, PersonalBudgetRequested):
                out.budgets.setdefault(p.budget_id, set()).add("requested")
            elif isinstance(p, PersonalBudgetIndicated):
                out.budgets.setdefault(p.budget_id, set()).add("indicated")
            elif isinstance(p, PersonalBudgetAgreed):
                out.budgets.setdefault(p.budget_id, set()).add("agreed")
            elif isinstance(p, ReviewConcluded):
                out.concluded.add(p.review_id)
        return out


def _known_review(f: _Facts, review_id: str | None) -> Violation | None:
    if review_id is not None and all(r.review_id != review_id for r in f.reviews):
        return _invalid("unknown_review", "review_id", f"no review {review_id} on this plan")
    return None


def _check_review_and_learn(f: _Facts, learning: _Learning, p: PlanEvent) -> Violation | None:
    """Progress, revised outcomes, informal support, the personal budget's life and a
    review's conclusions: each refers to what the plan already holds."""
    if isinstance(p, OutcomeProgressRecorded | OutcomeRevised):
        if p.outcome_id not in f.outcome_ids:
            return _invalid(
                "unknown_outcome", "outcome_id", f"no outcome {p.outcome_id} is agreed on this plan"
            )
        return _known_review(f, p.review_id)
    if isinstance(p, InformalSupportRecorded | PersonalBudgetRequested):
        if _assessing(f.current) is None and not f.finals:
            return _state(
                "contents_need_assessment",
                "support and budgets belong to a plan being written or issued",
            )
        for i, oid in enumerate(getattr(p, "outcome_ids", ())):
            if oid not in f.outcome_ids:
                return _invalid(
                    "unknown_outcome",
                    f"outcome_ids[{i}]",
                    f"no outcome {oid} is agreed on this plan",
                )
        return None
    if isinstance(p, PersonalBudgetIndicated):
        if "requested" not in learning.budgets.get(p.budget_id, set()):
            return _state(
                "budget_not_requested",
                f"no request for personal budget {p.budget_id} is recorded",
                "budget_id",
            )
        return None
    if isinstance(p, PersonalBudgetAudited):
        if "agreed" not in learning.budgets.get(p.budget_id, set()):
            return _state(
                "budget_not_agreed", f"personal budget {p.budget_id} was never agreed", "budget_id"
            )
        return _known_review(f, p.review_id)
    if isinstance(p, ReviewConcluded):
        meeting = next((r for r in f.reviews if r.review_id == p.review_id), None)
        if meeting is None:
            return _invalid("unknown_review", "review_id", f"no review {p.review_id} on this plan")
        if p.review_id in learning.concluded:
            return _state(
                "review_concluded", f"review {p.review_id} is already concluded", "review_id"
            )
        return _not_before(p.concluded_on, meeting.held_on, "concluded_on", "review meeting")
    return None


def _check(f: _Facts, p: PlanEvent) -> Violation | None:
    c = f.current
    received = c.request.received_on if c is not None else None
    first_final = min((x.finalised_on for x in f.finals), default=None)
    assessing = _assessing(c)
    decided_on = assessing.decisions[0].decided_on if assessing and assessing.decisions else None

    if isinstance(p, AssessmentRequested):
        if not p.reassessment:
            if c is not None or f.finals:
                return _state(
                    "request_already_recorded",
                    "this plan already has a request; a new request is a new plan, "
                    "or a re-assessment of this one",
                    "reassessment",
                )
            return None
        if not f.finals:
            return _state(
                "reassessment_needs_final_plan",
                "only a plan that has been issued can be re-assessed",
                "reassessment",
            )
        if f.open_cycle is not None:
            return _state("assessment_already_open", "an assessment of this plan is under way")
        return _not_before(p.received_on, first_final, "received_on", "final plan")

    if isinstance(p, AssessmentDecided):
        if c is None:
            return _state("decision_needs_request", "no request for an assessment is recorded")
        if c.final is not None or c.no_plan is not None:
            return _state("assessment_concluded", "this assessment has concluded")
        if c.decision is not None and c.decision.decision == "assess":
            return _state("already_decided_to_assess", "the LA has already decided to assess")
        return _not_before(p.decided_on, received, "decided_on", "request")

    if isinstance(p, AdviceRequested):
        if assessing is None:
            return _state(
                "advice_needs_decision_to_assess",
                "advice is sought once the LA has decided to assess",
            )
        if any(a.advice_request_id == p.advice_request_id for x in f.cycles for a in x.advice):
            return _state(
                "advice_request_exists",
                f"advice request {p.advice_request_id} is already recorded",
                "advice_request_id",
            )
        return _not_before(p.requested_on, decided_on, "requested_on", "decision to assess")

    if isinstance(p, AdviceSubmitted):
        requests = {a.advice_request_id: a for x in f.cycles for a in x.advice}
        if p.advice_request_id is not None:
            asked = requests.get(p.advice_request_id)
            if asked is None:
                return _invalid(
                    "unknown_advice_request",
                    "advice_request_id",
                    f"no advice request {p.advice_request_id} on this plan",
                )
            return _not_before(
                p.submitted_on, asked.requested_on, "submitted_on", "request for advice"
            )
        return _not_before(p.submitted_on, received, "submitted_on", "request")

    if isinstance(p, ExceptionRecorded):
        if c is None:
            return _state("exception_needs_request", "no clock is running on this plan")
        known = {a.advice_request_id for x in f.cycles for a in x.advice}
        for i, rid in enumerate(p.advice_request_ids):
            if rid not in known:
                return _invalid(
                    "unknown_advice_request",
                    f"advice_request_ids[{i}]",
                    f"no advice request {rid} on this plan",
                )
        return None

    if isinstance(p, DraftIssued):
        if assessing is None:
            return _state(
                "draft_needs_decision_to_assess", "a draft plan follows a decision to assess"
            )
        return _not_before(p.issued_on, decided_on, "issued_on", "decision to assess")

    if isinstance(p, CommentsReceived):
        if p.amendment_id is not None:
            proposal = next((x for x in f.proposals if x.amendment_id == p.amendment_id), None)
            if proposal is None:
                return _invalid(
                    "unknown_amendment",
                    "amendment_id",
                    f"no proposed amendment {p.amendment_id} on this plan",
                )
            return _not_before(
                p.received_on, proposal.proposed_on, "received_on", "proposed amendments"
            )
        if assessing is not None and assessing.drafts:
            return _not_before(
                p.received_on, assessing.drafts[-1].issued_on, "received_on", "draft plan"
            )
        if f.proposals:
            return _not_before(
                p.received_on, f.proposals[-1].proposed_on, "received_on", "proposed amendments"
            )
        return _state(
            "comments_need_draft", "there is no draft plan or proposed amendment to comment on"
        )

    if isinstance(p, Finalised):
        if assessing is None:
            return _state(
                "final_needs_decision_to_assess", "a final plan follows a decision to assess"
            )
        if not assessing.drafts:
            return _state(
                "final_needs_draft",
                "the family must see a draft before the plan is finalised (reg 13)",
            )
        draft = assessing.drafts[-1]
        v = _not_before(p.finalised_on, draft.issued_on, "finalised_on", "draft plan")
        if v is not None:
            return v
        period_end = max(
            draft.issued_on + timedelta(days=COMMENT_DAYS), draft.comments_by or draft.issued_on
        )
        commented = any(x.received_on >= draft.issued_on for x in assessing.comments)
        if p.finalised_on < period_end and not commented:
            return _invalid(
                "final_before_family_comment_period",
                "finalised_on",
                "the family has until "
                f"{period_end.isoformat()} to comment on the draft (reg 13(1))",
            )
        return None

    if isinstance(p, NoPlanDecided):
        if assessing is None:
            return _state(
                "no_plan_needs_assessment", "a decision not to issue a plan follows an assessment"
            )
        return _not_before(p.decided_on, decided_on, "decided_on", "decision to assess")

    if isinstance(p, OutcomeAgreed | ProvisionAgreed | PersonalBudgetAgreed):
        if assessing is None and not f.finals:
            return _state(
                "contents_need_assessment",
                "outcomes, provision and budgets belong to a plan being written or issued",
            )
        if isinstance(p, ProvisionAgreed):
            return _check_outcomes(f, p)
        return None

    if isinstance(p, ReviewMeetingHeld):
        if first_final is None:
            return _state("review_needs_final_plan", "only an issued plan is reviewed")
        if any(r.review_id == p.review_id for r in f.reviews):
            return _state("review_exists", f"review {p.review_id} is already recorded", "review_id")
        return _not_before(p.held_on, first_final, "held_on", "final plan")

    if isinstance(p, ReviewReportSent | ReviewDecided):
        if not f.reviews:
            return _state("review_outcome_needs_meeting", "no review meeting is recorded")
        meeting = f.reviews[-1]
        if p.review_id is not None:
            found = next((r for r in f.reviews if r.review_id == p.review_id), None)
            if found is None:
                return _invalid(
                    "unknown_review", "review_id", f"no review {p.review_id} on this plan"
                )
            meeting = found
        day = p.sent_on if isinstance(p, ReviewReportSent) else p.decided_on
        name = "sent_on" if isinstance(p, ReviewReportSent) else "decided_on"
        return _not_before(day, meeting.held_on, name, "review meeting")

    if isinstance(p, AmendmentProposed):
        if first_final is None:
            return _state("amendment_needs_final_plan", "only an issued plan is amended")
        if any(x.amendment_id == p.amendment_id for x in f.proposals):
            return _state(
                "amendment_exists",
                f"amendment {p.amendment_id} is already recorded",
                "amendment_id",
            )
        return _not_before(p.proposed_on, first_final, "proposed_on", "final plan")

    if isinstance(p, Amended):
        if not f.proposals:
            return _state(
                "amended_needs_proposal", "the family must see proposed amendments first (reg 22)"
            )
        proposal = f.proposals[-1]
        if p.amendment_id is not None:
            found_p = next((x for x in f.proposals if x.amendment_id == p.amendment_id), None)
            if found_p is None:
                return _invalid(
                    "unknown_amendment",
                    "amendment_id",
                    f"no proposed amendment {p.amendment_id} on this plan",
                )
            proposal = found_p
        return _not_before(p.amended_on, proposal.proposed_on, "amended_on", "proposed amendments")

    if isinstance(p, Ceased):
        if first_final is None:
            return _state("cease_needs_final_plan", "only an issued plan can cease")
        return _not_before(p.ceased_on, first_final, "ceased_on", "final plan")

    return None


def _check_outcomes(f: _Facts, p: ProvisionAgreed) -> Violation | None:
    for i, oid in enumerate(p.outcome_ids):
        if oid not in f.outcome_ids:
            return _invalid(
                "unknown_outcome", f"outcome_ids[{i}]", f"no outcome {oid} is agreed on this plan"
            )
    return None
