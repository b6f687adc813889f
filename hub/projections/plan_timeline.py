"""The plan timeline: one EHC plan's statutory clock and every contribution to it.

The projection (`plan_timeline`, table `plan_fact`) keeps every permitted plan event
(by its envelope's `plan_id`), the child-level contributions a plan draws on (family
views, team meetings and their actions) and the facts that carry the child's date of
birth, sealed as logged with the metadata a view-time consent decision needs. The query
layer re-decides each fact for the caller, opens the visible ones and `build_timeline`
computes the clock with `hub.plans.clock.compute_clock` as of the day asked for: stage
and statutory status, each milestone with its (exception-adjusted) due date and state,
weeks elapsed, and the contributions in order — advice requested and due, submitted on
time or late or still outstanding, family views, documents, outcomes with the provision
that serves them, and meeting actions. Rows are dropped on erasure tombstones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.events.envelope import Envelope
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
from hub.log import LogName
from hub.plans.adulthood import adulthood_prompts
from hub.plans.clock import Milestone, MilestoneState, Se7Stage, StatutoryStatus, compute_clock
from hub.projections.base import Applied
from hub.projections.team_around_child import (
    DOB_EVENT_TYPES,
    FACT_SELECT,
    PractitionerNaming,
    RoleVocabulary,
    SealedFact,
    drop_on_tombstone,
    fact_columns,
)
from hub.store import Tx

CHILD_LEVEL_TYPES = frozenset(
    {"family.views_recorded", "team.meeting_held", "team.meeting_action_completed"}
)
"""Contributions recorded for the child that a plan's timeline shows (with or without a
`plan_id`; without one, those dated within the plan's life)."""


def _plan_related(env: Envelope) -> bool:
    t = env.event_type
    if t.startswith("plan."):
        return env.plan_id is not None
    return t in CHILD_LEVEL_TYPES or t in DOB_EVENT_TYPES


class PlanTimelineProjection:
    name = "plan_timeline"
    logs: tuple[LogName, ...] = (LogName.EVENTS,)
    tables: tuple[str, ...] = ("plan_fact",)

    async def apply(self, tx: Tx, events: Sequence[Applied]) -> None:
        rows: list[tuple[Any, ...]] = []
        for a in events:
            if a.envelope.event_type.startswith("identity."):
                if rows:
                    await self._insert(tx, rows)
                    rows = []
                await drop_on_tombstone(tx, "plan_fact", a)
            elif _plan_related(a.envelope):
                rows.append((*fact_columns(a), a.envelope.plan_id, a.raw))
        await self._insert(tx, rows)

    @staticmethod
    async def _insert(tx: Tx, rows: Sequence[tuple[Any, ...]]) -> None:
        await tx.executemany(
            "INSERT INTO plan_fact (event_id, child_id, part, log_offset, event_type, category,"
            " agency, organisation, occurred_at, purposes, basis_claimed, plan_id, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            rows,
        )


async def load_plan_facts(store: Any, child_id: str, plan_id: str) -> list[SealedFact]:
    """One plan's facts and the child's plan-less ones, in log order (`store`: a ReadStore)."""
    rows = await store.fetchall(
        f"SELECT {FACT_SELECT}, body, plan_id FROM plan_fact"  # noqa: S608 - constant columns
        " WHERE child_id = ? AND (plan_id = ? OR plan_id IS NULL) ORDER BY part, log_offset",
        (child_id, plan_id),
    )
    return [SealedFact.from_row(r, plan_id=None if r[10] is None else str(r[10])) for r in rows]


# --------------------------------------------------------------------------- the view


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class StepOut(_Out):
    """One step of the statutory journey, as recorded."""

    on: date
    event_type: str
    text: str
    event_id: str


class ExceptionOut(_Out):
    exception_id: str
    kind: str
    starts_on: date
    ends_on: date | None = None
    advice_request_ids: list[str] = []
    details: str | None = None
    event_id: str


AdviceState = Literal[
    "submitted_on_time", "submitted_late", "outstanding", "overdue", "paused", "not_submitted"
]


class AdviceOut(_Out):
    kind: Literal["advice"] = "advice"
    on: date = Field(description="When it was asked for (or, unasked, submitted)")
    advice_request_id: str | None = None
    reg6_category: str | None = None
    practitioner_id: str | None = None
    practitioner_name: str | None = Field(
        default=None, description="Who the adviser is, where a visible joining fact names them"
    )
    agency: str | None = None
    requested_on: date | None = None
    due_on: date | None = Field(
        default=None, description="6 weeks after the request, moved by recorded exceptions"
    )
    submitted_on: date | None = None
    state: AdviceState
    milestone_state: MilestoneState | None = None
    days_late: int | None = None
    document: DocumentRef | None = None
    reused_existing: bool = False
    event_ids: list[str]


class FamilyViewsOut(_Out):
    kind: Literal["family_views"] = "family_views"
    on: date
    whose: str
    views: str
    interests: list[str] = []
    aspirations: list[str] = []
    event_ids: list[str]


class DocumentOut(_Out):
    kind: Literal["document"] = "document"
    on: date
    what: str
    document: DocumentRef
    event_ids: list[str]


class ProvisionOut(_Out):
    provision_id: str
    section: str
    description: str
    provider: dict[str, Any]
    amount: dict[str, Any] | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    event_id: str


class ProgressOut(_Out):
    on: date
    progress: str = Field(description="achieved, partly_achieved or not_yet_achieved")
    evidence: str | None = None
    review_id: str | None = None
    event_id: str


class OutcomeVersionOut(_Out):
    """An earlier wording of a revised outcome."""

    on: date
    what: str | None = None
    by_when: date
    how_measured: str | None = None
    reason: str | None = Field(default=None, description="Why the next version replaced it")
    event_id: str


class OutcomeOut(_Out):
    kind: Literal["outcome"] = "outcome"
    on: date
    outcome_id: str
    need_section: str
    area: str | None = None
    what: str
    by_when: date
    how_measured: str
    priority: int | None = None
    horizon: str | None = Field(default=None, description="short_term or long_term")
    revised_on: date | None = Field(default=None, description="When this wording was agreed")
    history: list[OutcomeVersionOut] = Field(
        default=[], description="The outcome's earlier wordings, oldest first"
    )
    progress: list[ProgressOut] = Field(default=[], description="Oldest first")
    latest_progress: str | None = None
    provision: list[ProvisionOut] = []
    event_ids: list[str]


class SupportOut(_Out):
    kind: Literal["informal_support"] = "informal_support"
    on: date
    support_id: str
    support_kind: str
    description: str
    outcome_ids: list[str] = []
    event_ids: list[str]


class ReviewOut(_Out):
    """What a review concluded, and the next review agreed with the family."""

    kind: Literal["review"] = "review"
    on: date
    review_id: str
    what_worked: list[str] = []
    what_did_not_work: list[str] = []
    next_review_on: date
    agreed_with_family: bool = False
    event_ids: list[str]


class BudgetAuditOut(_Out):
    on: date
    spent: str
    finding: str
    notes: str | None = None
    review_id: str | None = None
    event_id: str


class BudgetOut(_Out):
    """A personal budget from the family's request to its audits; `amount`, `period`,
    `direct_payment` are the agreed budget's (absent until it is agreed)."""

    kind: Literal["personal_budget"] = "personal_budget"
    on: date
    budget_id: str
    stage: Literal["requested", "indicated", "agreed"] = "agreed"
    requested_on: date | None = None
    requested_by: str | None = None
    indicative_amount: str | None = None
    indicated_on: date | None = None
    agreed_on: date | None = None
    amount: str | None = None
    period: str | None = None
    direct_payment: bool | None = None
    covers: list[str]
    audits: list[BudgetAuditOut] = []
    event_ids: list[str]


class ActionState(_Out):
    action_id: str
    text: str
    owner_id: str
    owner_name: str | None = Field(
        default=None, description="Who owns the action, where a visible joining fact names them"
    )
    due_on: date
    completed_on: date | None = None
    state: Literal["done", "open", "overdue"]


class MeetingOut(_Out):
    kind: Literal["meeting"] = "meeting"
    on: date
    meeting_id: str
    meeting_kind: str
    attendee_ids: list[str] = []
    attendees: list[str] = Field(
        default=[],
        description="The attendees in words ('Dr Priya Shah, educational psychologist'), in "
        "`attendee_ids` order; an attendee no visible joining fact names is left out",
    )
    family_attended: bool = False
    decisions: list[str] = []
    actions: list[ActionState] = []
    event_ids: list[str]


Contribution = Annotated[
    AdviceOut
    | FamilyViewsOut
    | DocumentOut
    | OutcomeOut
    | BudgetOut
    | MeetingOut
    | SupportOut
    | ReviewOut,
    Field(discriminator="kind"),
]


class PromptOut(_Out):
    rule: str
    text: str


class TimelineView(_Out):
    plan_id: str
    child_id: str
    as_of: date
    status: StatutoryStatus | None
    stage: Se7Stage
    reassessment: bool = False
    received_on: date | None = None
    days_elapsed: int | None = None
    weeks_elapsed: int | None = None
    days_to_final: int | None = None
    first_final_on: date | None = None
    ceased_on: date | None = None
    paused: bool = False
    next_due: Milestone | None = None
    overdue_count: int = 0
    milestones: list[Milestone]
    steps: list[StepOut]
    exceptions: list[ExceptionOut]
    contributions: list[Contribution]
    unlinked_provision: list[ProvisionOut] = Field(
        default=[], description="Provision whose outcomes the caller cannot see"
    )
    next_review_on: date | None = Field(
        default=None, description="The next review as the latest review's conclusion agreed it"
    )
    prompts: list[PromptOut] = Field(
        default=[], description="What the plan should turn to now (preparation for adulthood)"
    )
    facts_shown: list[str]


_REQUESTED_BY = {
    "parent": "a parent",
    "young_person": "the young person",
    "school": "the school",
    "health": "a health service",
    "social_care": "social care",
    "local_authority": "the local authority",
    "other": "someone else",
}


def _step(p: PlanEvent) -> tuple[date, str] | None:
    """When a plan event happened and what it says, in plain words."""
    if isinstance(p, AssessmentRequested):
        what = "re-assessment" if p.reassessment else "EHC needs assessment"
        return p.received_on, (
            f"Request for an {what} received from "
            f"{_REQUESTED_BY.get(p.requested_by, p.requested_by)}"
        )
    if isinstance(p, AssessmentDecided):
        return p.decided_on, (
            "The LA decided to assess" if p.decision == "assess" else "The LA decided not to assess"
        )
    if isinstance(p, AdviceRequested):
        return p.requested_on, f"Advice requested ({p.reg6_category.replace('_', ' ')})"
    if isinstance(p, AdviceSubmitted):
        return p.submitted_on, f"Advice submitted by {p.practitioner_id}"
    if isinstance(p, ExceptionRecorded):
        return p.starts_on, f"Exception to the time limits recorded ({p.kind.replace('_', ' ')})"
    if isinstance(p, DraftIssued):
        return p.issued_on, "Draft plan issued to the family"
    if isinstance(p, CommentsReceived):
        return p.received_on, "The family's comments received"
    if isinstance(p, Finalised):
        return p.finalised_on, "Final plan issued"
    if isinstance(p, NoPlanDecided):
        return p.decided_on, "The LA decided not to issue a plan"
    if isinstance(p, ReviewMeetingHeld):
        return p.held_on, f"Review meeting held ({p.kind.replace('_', ' ')})"
    if isinstance(p, ReviewReportSent):
        return p.sent_on, "Review report sent"
    if isinstance(p, ReviewDecided):
        return p.decided_on, f"LA decision after the review: {p.decision}"
    if isinstance(p, AmendmentProposed):
        return p.proposed_on, "Amendments proposed to the family"
    if isinstance(p, Amended):
        return p.amended_on, "Amended plan issued"
    if isinstance(p, Ceased):
        return p.ceased_on, f"The plan ceased ({p.reason.replace('_', ' ')})"
    return _review_and_learn_step(p)


def _review_and_learn_step(p: PlanEvent) -> tuple[date, str] | None:
    if isinstance(p, OutcomeProgressRecorded):
        return p.recorded_on, f"Progress towards an outcome: {p.progress.replace('_', ' ')}"
    if isinstance(p, OutcomeRevised):
        return p.revised_on, "An outcome was revised"
    if isinstance(p, ReviewConcluded):
        return p.concluded_on, (
            f"Review concluded; next review by {p.next_review_on.strftime('%-d %B %Y')}"
        )
    if isinstance(p, PersonalBudgetRequested):
        return p.requested_on, (
            f"Personal budget requested by {_REQUESTED_BY.get(p.requested_by, p.requested_by)}"
        )
    if isinstance(p, PersonalBudgetIndicated):
        return p.indicated_on, f"Indicative personal budget: £{p.amount:,.2f} ({p.period})"
    if isinstance(p, PersonalBudgetAgreed):
        return p.agreed_on, f"Personal budget agreed: £{p.amount:,.2f} ({p.period})"
    if isinstance(p, PersonalBudgetAudited):
        return p.audited_on, f"Personal budget audited: {p.finding.replace('_', ' ')}"
    if isinstance(p, InformalSupportRecorded):
        return p.recorded_on, f"Informal support recorded ({p.kind.replace('_', ' ')})"
    return None


_DOCUMENTS: dict[type[PlanEvent], tuple[str, str]] = {
    AssessmentDecided: ("letter", "Decision letter"),
    NoPlanDecided: ("letter", "Notice that no plan will be issued"),
    DraftIssued: ("document", "Draft plan"),
    Finalised: ("document", "Final plan"),
    ReviewReportSent: ("document", "Review report"),
    Amended: ("document", "Amended plan"),
}


@dataclass
class _Acc:
    plan_events: list[tuple[SealedFact, PlanEvent]] = field(default_factory=list)
    child_level: list[tuple[SealedFact, Envelope]] = field(default_factory=list)
    dob: date | None = None


def date_of_birth_of(envs: Iterable[Envelope]) -> date | None:
    """The child's date of birth from the latest fact that carries one (log order)."""
    dob: date | None = None
    for env in envs:
        if env.event_type in DOB_EVENT_TYPES:
            value = getattr(env.payload, "date_of_birth", None)
            if isinstance(value, date):
                dob = value
    return dob


def _named_step(
    p: PlanEvent, step: tuple[date, str] | None, named: PractitionerNaming, roles: RoleVocabulary
) -> tuple[date, str] | None:
    """A step's words with the practitioner named: "Advice from Dr Priya Shah,
    educational psychologist" (else the step as `_step` words it)."""
    if isinstance(p, AdviceSubmitted):
        return p.submitted_on, f"Advice from {named.words(roles)}"
    if isinstance(p, AdviceRequested):
        return p.requested_on, (
            f"Advice requested from {named.words(roles)} ({p.reg6_category.replace('_', ' ')})"
        )
    return step


def build_timeline(
    plan_id: str,
    child_id: str,
    facts: Sequence[tuple[SealedFact, Envelope]],
    *,
    today: date,
    hidden: frozenset[str] = frozenset(),
    people: Mapping[str, PractitionerNaming] | None = None,
    roles: RoleVocabulary | None = None,
) -> TimelineView:
    """The plan's timeline from the facts the caller may see (log order, opened).
    `people`: the practitioners the caller may see named (`practitioner_names`), whose
    steps and advice then name them; `roles` words their roles."""
    people = people or {}
    roles = roles or {}
    acc = _Acc(dob=date_of_birth_of(env for _, env in facts))
    for row, env in facts:
        if env.event_type.startswith("plan.") and isinstance(env.payload, PlanEvent):
            if env.plan_id == plan_id:
                acc.plan_events.append((row, env.payload))
        elif env.event_type in CHILD_LEVEL_TYPES:
            acc.child_level.append((row, env))
    clock = compute_clock([p for _, p in acc.plan_events], today=today, date_of_birth=acc.dob)
    milestones = {m.key: m for m in clock.milestones}
    shown: list[str] = []
    steps: list[StepOut] = []
    exceptions: dict[str, ExceptionOut] = {}
    contributions: list[tuple[date, int, Any]] = []
    requests: list[tuple[SealedFact, AdviceRequested]] = []
    submissions: list[tuple[SealedFact, AdviceSubmitted]] = []
    outcomes: dict[str, tuple[SealedFact, OutcomeAgreed]] = {}
    provisions: list[tuple[SealedFact, ProvisionAgreed]] = []
    learning: dict[str, list[tuple[SealedFact, OutcomeProgressRecorded | OutcomeRevised]]] = {}
    budgets: dict[str, list[tuple[SealedFact, PlanEvent]]] = {}
    next_review_on: date | None = None
    order = 0

    def add(on: date, item: Any) -> None:
        nonlocal order
        contributions.append((on, order, item))
        order += 1

    for row, p in acc.plan_events:
        shown.append(row.event_id)
        step = _step(p)
        adviser = getattr(p, "practitioner_id", None)
        named = people.get(adviser) if isinstance(adviser, str) else None
        if named is not None and adviser not in hidden:
            step = _named_step(p, step, named, roles)
            shown.extend(i for i in named.event_ids if i not in shown)
        if step is not None:
            steps.append(
                StepOut(on=step[0], event_type=p.event_type, text=step[1], event_id=row.event_id)
            )
        doc_field = _DOCUMENTS.get(type(p))
        if doc_field is not None:
            doc = getattr(p, doc_field[0], None)
            if isinstance(doc, DocumentRef) and step is not None:
                add(
                    step[0],
                    DocumentOut(
                        on=step[0], what=doc_field[1], document=doc, event_ids=[row.event_id]
                    ),
                )
        if isinstance(p, AdviceRequested):
            requests.append((row, p))
        elif isinstance(p, AdviceSubmitted):
            submissions.append((row, p))
        elif isinstance(p, ExceptionRecorded):
            exceptions[p.exception_id] = ExceptionOut(
                exception_id=p.exception_id,
                kind=p.kind,
                starts_on=p.starts_on,
                ends_on=p.ends_on,
                advice_request_ids=list(p.advice_request_ids),
                details=p.details,
                event_id=row.event_id,
            )
        elif isinstance(p, OutcomeAgreed):
            outcomes[p.outcome_id] = (row, p)
        elif isinstance(p, OutcomeProgressRecorded | OutcomeRevised):
            learning.setdefault(p.outcome_id, []).append((row, p))
        elif isinstance(p, ProvisionAgreed):
            provisions.append((row, p))
        elif isinstance(p, _BUDGET_EVENTS):
            budgets.setdefault(p.budget_id, []).append((row, p))
        elif isinstance(p, InformalSupportRecorded):
            add(
                p.recorded_on,
                SupportOut(
                    on=p.recorded_on,
                    support_id=p.support_id,
                    support_kind=p.kind,
                    description=p.description,
                    outcome_ids=list(p.outcome_ids),
                    event_ids=[row.event_id],
                ),
            )
        elif isinstance(p, ReviewConcluded):
            concluded = ReviewOut(
                on=p.concluded_on,
                review_id=p.review_id,
                what_worked=list(p.what_worked),
                what_did_not_work=list(p.what_did_not_work),
                next_review_on=p.next_review_on,
                agreed_with_family=p.agreed_with_family,
                event_ids=[row.event_id],
            )
            next_review_on = p.next_review_on
            add(concluded.on, concluded)

    for advice in _advice(requests, submissions, milestones):
        named = people.get(advice.practitioner_id or "")
        if named is not None and advice.practitioner_id not in hidden:
            advice = advice.model_copy(update={"practitioner_name": named.name})
            shown.extend(i for i in named.event_ids if i not in shown)
        add(advice.on, advice)
    linked, unlinked = _outcomes(outcomes, provisions)
    for outcome in linked:
        outcome = _learnt(outcome, learning.get(outcome.outcome_id, []))
        add(outcome.on, outcome)
    for stages in budgets.values():
        budget = _budget(stages)
        add(budget.on, budget)
    first_request = min(
        (p.received_on for _, p in acc.plan_events if isinstance(p, AssessmentRequested)),
        default=None,
    )
    for item, ids in _child_level(
        acc.child_level, plan_id, first_request, clock.ceased_on, hidden, today
    ):
        if isinstance(item, MeetingOut):
            item, named_ids = _named_meeting(item, people, roles)
            ids = [*ids, *named_ids]
        add(item.on, item)
        shown.extend(i for i in ids if i not in shown)
    shown.extend(
        row.event_id
        for row, env in facts
        if env.event_type in DOB_EVENT_TYPES
        and getattr(env.payload, "date_of_birth", None) == acc.dob
        and acc.dob
    )

    return TimelineView(
        plan_id=plan_id,
        child_id=child_id,
        as_of=today,
        status=clock.status,
        stage=clock.stage,
        reassessment=clock.reassessment,
        received_on=clock.received_on,
        days_elapsed=clock.days_since_request,
        weeks_elapsed=clock.weeks_since_request,
        days_to_final=clock.days_to_final,
        first_final_on=clock.first_final_on,
        ceased_on=clock.ceased_on,
        paused=clock.paused,
        next_due=clock.next_due,
        overdue_count=clock.overdue_count,
        milestones=list(clock.milestones),
        steps=sorted(steps, key=lambda s: s.on),
        exceptions=sorted(exceptions.values(), key=lambda e: (e.starts_on, e.exception_id)),
        contributions=[c for _, _, c in sorted(contributions, key=lambda c: (c[0], c[1]))],
        unlinked_provision=unlinked,
        next_review_on=next_review_on,
        prompts=[
            PromptOut(rule=rule, text=text)
            for rule, text in adulthood_prompts(
                acc.dob, today, [o for _, o in outcomes.values()], [p for _, p in acc.plan_events]
            )
        ],
        facts_shown=shown,
    )


def _named_meeting(
    meeting: MeetingOut, people: Mapping[str, PractitionerNaming], roles: RoleVocabulary
) -> tuple[MeetingOut, list[str]]:
    """The meeting with its attendees and action owners named, where the caller may see
    them named, and the joining facts that naming rests on."""
    rests_on: list[str] = []

    def named(practitioner_id: str) -> PractitionerNaming | None:
        who = people.get(practitioner_id)
        if who is not None:
            rests_on.extend(who.event_ids)
        return who

    attendees = [w.words(roles) for a in meeting.attendee_ids if (w := named(a)) is not None]
    actions = [
        a.model_copy(update={"owner_name": w.name}) if (w := named(a.owner_id)) else a
        for a in meeting.actions
    ]
    return meeting.model_copy(update={"attendees": attendees, "actions": actions}), rests_on


_BUDGET_EVENTS = (
    PersonalBudgetRequested,
    PersonalBudgetIndicated,
    PersonalBudgetAgreed,
    PersonalBudgetAudited,
)


def _learnt(
    outcome: OutcomeOut,
    later: list[tuple[SealedFact, OutcomeProgressRecorded | OutcomeRevised]],
) -> OutcomeOut:
    """The outcome at its latest wording, with its earlier ones and its progress."""
    history: list[OutcomeVersionOut] = []
    progress: list[ProgressOut] = []
    current = outcome.model_copy()
    ids = list(outcome.event_ids)
    wording_from = outcome.event_ids[0]
    for row, p in later:
        ids.append(row.event_id)
        if isinstance(p, OutcomeProgressRecorded):
            progress.append(
                ProgressOut(
                    on=p.recorded_on,
                    progress=p.progress,
                    evidence=p.evidence,
                    review_id=p.review_id,
                    event_id=row.event_id,
                )
            )
            continue
        history.append(
            OutcomeVersionOut(
                on=current.revised_on or current.on,
                what=current.what,
                by_when=current.by_when,
                how_measured=current.how_measured,
                reason=p.reason,
                event_id=wording_from,
            )
        )
        wording_from = row.event_id
        current = current.model_copy(
            update={
                "what": p.what,
                "by_when": p.by_when,
                "how_measured": p.how_measured,
                "priority": p.priority if p.priority is not None else current.priority,
                "horizon": p.horizon or current.horizon,
                "revised_on": p.revised_on,
            }
        )
    progress.sort(key=lambda x: x.on)
    return current.model_copy(
        update={
            "history": history,
            "progress": progress,
            "latest_progress": progress[-1].progress if progress else None,
            "event_ids": ids,
        }
    )


def _budget(stages: list[tuple[SealedFact, PlanEvent]]) -> BudgetOut:
    """One personal budget from its stages (log order)."""
    out: dict[str, Any] = {"covers": [], "audits": [], "event_ids": [], "stage": "requested"}
    for row, p in stages:
        out["event_ids"].append(row.event_id)
        out.setdefault("budget_id", getattr(p, "budget_id", ""))
        if isinstance(p, PersonalBudgetRequested):
            out |= {"requested_on": p.requested_on, "requested_by": p.requested_by}
            out["covers"] = out["covers"] or list(p.covers)
        elif isinstance(p, PersonalBudgetIndicated):
            out |= {"indicative_amount": str(p.amount), "indicated_on": p.indicated_on}
            out["stage"] = "indicated" if out["stage"] == "requested" else out["stage"]
        elif isinstance(p, PersonalBudgetAgreed):
            out |= {
                "agreed_on": p.agreed_on,
                "amount": str(p.amount),
                "period": p.period,
                "direct_payment": p.direct_payment,
                "covers": list(p.covers),
                "stage": "agreed",
            }
        elif isinstance(p, PersonalBudgetAudited):
            out["audits"].append(
                BudgetAuditOut(
                    on=p.audited_on,
                    spent=str(p.spent),
                    finding=p.finding,
                    notes=p.notes,
                    review_id=p.review_id,
                    event_id=row.event_id,
                )
            )
    out["on"] = out.get("requested_on") or out.get("indicated_on") or out.get("agreed_on")
    if out["on"] is None:  # only audits visible: date it by the first
        out["on"] = out["audits"][0].on
    return BudgetOut(**out)


def _advice(
    requests: list[tuple[SealedFact, AdviceRequested]],
    submissions: list[tuple[SealedFact, AdviceSubmitted]],
    milestones: dict[str, Milestone],
) -> list[AdviceOut]:
    out: list[AdviceOut] = []
    used: set[str] = set()
    by_request: dict[str, tuple[SealedFact, AdviceSubmitted]] = {}
    for row, s in submissions:
        if s.advice_request_id is not None and s.advice_request_id not in by_request:
            by_request[s.advice_request_id] = (row, s)
            used.add(row.event_id)
    known = {r.advice_request_id for _, r in requests}
    for row, r in sorted(requests, key=lambda x: x[1].requested_on):
        answer = by_request.get(r.advice_request_id)
        if answer is None:  # the same adviser's first advice on or after the request
            answer = next(
                (
                    (srow, s)
                    for srow, s in submissions
                    if srow.event_id not in used
                    and s.practitioner_id == r.practitioner_id
                    and (s.advice_request_id is None or s.advice_request_id not in known)
                    and s.submitted_on >= r.requested_on
                ),
                None,
            )
            if answer is not None:
                used.add(answer[0].event_id)
        m = milestones.get(f"advice:{r.advice_request_id}")
        state: AdviceState
        if m is not None and m.state == "met":
            state = "submitted_late" if (m.days_late or 0) > 0 else "submitted_on_time"
        elif m is not None and m.state == "not_applicable":
            state = "not_submitted"
        elif m is not None and m.state in ("overdue", "paused"):
            state = m.state
        elif answer is not None:
            state = "submitted_on_time"
        else:
            state = "outstanding"
        got = answer[1] if answer is not None else None
        out.append(
            AdviceOut(
                on=r.requested_on,
                advice_request_id=r.advice_request_id,
                reg6_category=r.reg6_category,
                practitioner_id=r.practitioner_id,
                agency=r.agency,
                requested_on=r.requested_on,
                due_on=m.due_on if m else None,
                submitted_on=got.submitted_on if got else None,
                state=state,
                milestone_state=m.state if m else None,
                days_late=m.days_late if m else None,
                document=got.document if got else None,
                reused_existing=got.reused_existing if got else False,
                event_ids=[row.event_id, *([answer[0].event_id] if answer else [])],
            )
        )
    for row, s in submissions:
        if row.event_id in used:
            continue
        out.append(
            AdviceOut(
                on=s.submitted_on,
                advice_request_id=s.advice_request_id,
                practitioner_id=s.practitioner_id,
                agency=s.agency,
                submitted_on=s.submitted_on,
                state="submitted_on_time",
                document=s.document,
                reused_existing=s.reused_existing,
                event_ids=[row.event_id],
            )
        )
    return out


def _outcomes(
    outcomes: dict[str, tuple[SealedFact, OutcomeAgreed]],
    provisions: list[tuple[SealedFact, ProvisionAgreed]],
) -> tuple[list[OutcomeOut], list[ProvisionOut]]:
    serving: dict[str, list[ProvisionOut]] = {}
    unlinked: list[ProvisionOut] = []
    latest: dict[str, tuple[SealedFact, ProvisionAgreed]] = {}
    for row, p in provisions:  # a later agreement of the same provision replaces it
        latest[p.provision_id] = (row, p)
    for row, p in latest.values():
        out = ProvisionOut(
            provision_id=p.provision_id,
            section=p.section,
            description=p.description,
            provider=p.provider.model_dump(mode="json", exclude_none=True),
            amount=p.amount.model_dump(mode="json") if p.amount else None,
            starts_on=p.starts_on,
            ends_on=p.ends_on,
            event_id=row.event_id,
        )
        targets = [o for o in p.outcome_ids if o in outcomes]
        if not targets:
            unlinked.append(out)
        for o in targets:
            serving.setdefault(o, []).append(out)
    linked = [
        OutcomeOut(
            on=o.agreed_on,
            outcome_id=o.outcome_id,
            need_section=o.need_section,
            area=o.area,
            what=o.what,
            by_when=o.by_when,
            how_measured=o.how_measured,
            priority=o.priority,
            horizon=o.horizon,
            provision=serving.get(oid, []),
            event_ids=[row.event_id, *(x.event_id for x in serving.get(oid, []))],
        )
        for oid, (row, o) in outcomes.items()
    ]
    return linked, unlinked


def _child_level(
    facts: list[tuple[SealedFact, Envelope]],
    plan_id: str,
    starts: date | None,
    ends: date | None,
    hidden: frozenset[str],
    today: date,
) -> Iterable[tuple[FamilyViewsOut | MeetingOut, list[str]]]:
    def within(env: Envelope, on: date) -> bool:
        if env.plan_id is not None:
            return env.plan_id == plan_id
        return starts is not None and on >= starts and (ends is None or on <= ends)

    completed: dict[str, tuple[date, str]] = {}
    for row, env in facts:
        p: Any = env.payload
        if env.event_type == "team.meeting_action_completed":
            completed.setdefault(p.action_id, (p.completed_on, row.event_id))
    for row, env in facts:
        p = env.payload
        if env.event_type == "family.views_recorded" and within(env, p.recorded_on):
            yield (
                FamilyViewsOut(
                    on=p.recorded_on,
                    whose=p.whose,
                    views=p.views,
                    interests=list(p.interests),
                    aspirations=list(p.aspirations),
                    event_ids=[row.event_id],
                ),
                [row.event_id],
            )
        elif env.event_type == "team.meeting_held" and within(env, p.held_on):
            actions: list[ActionState] = []
            ids = [row.event_id]
            for a in p.actions:
                if a.owner_id in hidden:
                    continue
                done = completed.get(a.action_id)
                if done is not None:
                    ids.append(done[1])
                actions.append(
                    ActionState(
                        action_id=a.action_id,
                        text=a.text,
                        owner_id=a.owner_id,
                        due_on=a.due_on,
                        completed_on=done[0] if done else None,
                        state="done" if done else ("overdue" if a.due_on < today else "open"),
                    )
                )
            yield (
                MeetingOut(
                    on=p.held_on,
                    meeting_id=p.meeting_id,
                    meeting_kind=p.kind,
                    attendee_ids=[x for x in p.attendee_ids if x not in hidden],
                    family_attended=p.family_attended,
                    decisions=list(p.decisions),
                    actions=actions,
                    event_ids=ids,
                ),
                ids,
            )
