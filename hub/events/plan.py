"""Plan events: the statutory life of one EHC plan, from the request for an assessment to
the plan ceasing.

The local authority's SEN case system (or a coordinator through the hub) records each
step: the request and the decision whether to assess, every request for advice (by the
regulation 6 category) and the advice that came back, the draft, the family's comments,
the final plan or the notice that no plan will be issued, reviews and their decisions,
amendments, cessation, recorded exceptions to the time limits, and the contents that
carry meaning — SMART outcomes (section E), provision (F, G, H1, H2) and the personal
budget (J). The plan's id travels in the envelope (`plan_id`), never in the payload.
Every payload dates itself, so the statutory clock (`hub.plans.clock`) needs no other
input; dates that contradict each other are rejected with the field named. The data
category is `education` (the process is the LA's), except where the content is health or
social care: `data_category()` gives the category an envelope of that payload should
carry. Every field is sealed with the child's key but the opaque ids a class names in
`open_fields` (of the outcome, review, budget, practitioner, advice request...) and the
agency and organisation asked for advice: decisions, dates, kinds and placements are
about the child and sealed. `narrative_fields` names the free text and documents, which
the caseload's stored copy of a plan's events leaves out (the clock never reads them).
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hub.events.envelope import EventPayload
from hub.events.registry import registry

# --------------------------------------------------------------------------- vocabulary

Reference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/|-]{0,127}$")]
"""An opaque id (practitioner, advice request, document, outcome...): never a name."""

Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
"""A lower-case code: an agency or a practitioner role from the controlled vocabulary."""

OrganisationCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")]
"""An ODS code, URN, UKPRN or LA code."""

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
"""Free text (listed in `narrative_fields`)."""

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]

RequestedBy = Literal[
    "parent", "young_person", "school", "health", "social_care", "local_authority", "other"
]
"""Who asked for the assessment: the family or the school may request one (CFA s.36(1));
health, social care and others bring a child to the LA's attention (CFA s.24)."""

AssessmentDecision = Literal["assess", "refuse"]

AdviceCategory = Literal[
    "parent_or_young_person",
    "educational",
    "medical",
    "educational_psychologist",
    "social_care",
    "other_appropriate",
    "preparation_for_adulthood",
    "family_requested",
]
"""The advice the LA must seek, SEND Regulations 2014 reg 6(1)(a)-(h) in order: the
parent or young person; educational; medical (a health care professional); psychological
(an educational psychologist); social care; anyone else appropriate; preparation for
adulthood (from Year 9); anyone the family reasonably asks for."""

AdviceDataCategory = Literal[
    "education",
    "health",
    "social_care",
    "mental_health",
    "sexual_health",
    "safeguarding",
    "family_views",
]
"""The consent-policy category of a piece of advice (contracts/consent-policy.yaml)."""

_DEFAULT_ADVICE_CATEGORY: dict[str, AdviceDataCategory] = {
    "parent_or_young_person": "family_views",
    "medical": "health",
    "social_care": "social_care",
}

ExceptionKind = Literal[
    "school_closed",
    "early_years_setting_closed",
    "exceptional_personal_circumstances",
    "family_absent",
    "missed_appointment",
]
"""Why a time limit need not be met (SEND Regulations 2014): the school or post-16
institution (reg 10(4)(a)) or early-years provider (10(4)(b)) asked for advice was closed
for 4 weeks or more; exceptional personal circumstances of the child, parent or young
person (10(4)(c), 8(2)(a)); the family absent from the area for 4 weeks or more (10(4)(d),
8(2)(b)); a missed appointment for an examination or test (10(4)(e), 8(2)(c)). Regs 5(4),
13(3) and 27(3) refer to the same grounds; `hub.plans.clock` says which clock each pauses."""

FOUR_WEEK_KINDS: frozenset[str] = frozenset(
    {"school_closed", "early_years_setting_closed", "family_absent"}
)
"""Exceptions that count only when they last a continuous 4 weeks or more."""

ADVICE_EXCEPTION_KINDS: frozenset[str] = frozenset(
    {"exceptional_personal_circumstances", "family_absent", "missed_appointment"}
)
"""The reg 8(2) grounds: the only ones that can excuse one adviser's 6 weeks."""

PhaseTransferKind = Literal[
    "early_years_to_school",
    "infant_to_junior",
    "primary_to_middle",
    "primary_to_secondary",
    "middle_to_secondary",
    "secondary_to_post16",
]
"""A transfer between phases of education (SEND Regulations 2014 reg 2(1))."""

ReviewDecision = Literal["maintain", "amend", "cease"]

ReviewKind = Literal["annual", "interim", "early_years", "phase_transfer"]

CeaseReason = Literal[
    "no_longer_necessary",
    "moved_to_another_authority",
    "left_education_or_training",
    "higher_education",
    "paid_employment",
    "reached_25",
    "died",
    "other",
]
"""Why the LA stopped maintaining the plan (CFA 2014 s.45; SEND Regulations 2014 reg 29-31)."""

NeedSection = Literal["B", "C", "D"]
"""Where the need an outcome addresses is described: B special educational, C health,
D social care."""

OutcomeArea = Literal[
    "communication_and_interaction",
    "cognition_and_learning",
    "social_emotional_and_mental_health",
    "sensory_and_physical",
    "employment",
    "independent_living",
    "community_participation",
    "health",
]
"""The four broad areas of need (Code of Practice 6.28) and the four preparation for
adulthood outcomes (Code of Practice 8.5)."""

ProvisionSection = Literal["F", "G", "H1", "H2"]
"""F special educational, G health, H1 social care under CSDPA 1970 s.2, H2 other social
care provision."""

_PROVISION_CATEGORY: dict[str, str] = {
    "F": "education",
    "G": "health",
    "H1": "social_care",
    "H2": "social_care",
}

AmountUnit = Literal["minutes", "hours", "sessions", "days", "visits"]
Frequency = Literal[
    "daily", "weekly", "fortnightly", "monthly", "half_termly", "termly", "annually", "once"
]
BudgetPeriod = Literal["weekly", "monthly", "termly", "annual", "one_off"]
OutcomeHorizon = Literal["short_term", "long_term"]
"""A step on the way (a year or a key stage) or an ambition for the end of a phase of
education or adulthood (Code of Practice 9.64-9.66)."""
Progress = Literal["achieved", "partly_achieved", "not_yet_achieved"]
"""Progress towards an outcome, as a review finds it (Code of Practice 9.176)."""
BudgetFinding = Literal["used_as_agreed", "underspent", "overspent", "not_used"]
"""What the audit of a personal budget at a review found."""
SupportKind = Literal["family", "friends", "community", "voluntary_sector"]
"""Informal and community support the plan relies on (Code of Practice 9.62, 9.69)."""
BudgetRequester = Literal["parent", "young_person"]
BudgetArea = Literal["education", "health", "social_care"]
CommentsBy = Literal["parent", "young_person", "representative"]

COMMENT_DAYS = 15
"""The family has at least 15 days to comment on a draft or proposed amendments
(regs 13(1), 22(2))."""


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class DocumentRef(_Part):
    """A document held in an agency's system: the hub keeps the reference, not the file."""

    document_id: Reference
    system: ShortText | None = Field(default=None, description="The system holding it")
    url: Annotated[str, StringConstraints(pattern=r"^https://\S{1,2000}$")] | None = None
    title: ShortText | None = Field(default=None, description="Personal: may name the child")


class Provider(_Part):
    """Who makes a provision: an agency, and where known the organisation and practitioner."""

    agency: Code
    organisation_code: OrganisationCode | None = None
    practitioner_id: Reference | None = None
    role: Code | None = Field(default=None, description="Controlled vocabulary role code")


class Amount(_Part):
    """How much: a quantity of a unit at a frequency (2 hours weekly; 6 sessions termly)."""

    quantity: Decimal = Field(gt=0, max_digits=8, decimal_places=2)
    unit: AmountUnit
    frequency: Frequency


class PlanEvent(EventPayload):
    """Base of the plan events: their data category and free-text fields. Each event
    type declares its own `open_fields` (a base class's do not count)."""

    category: ClassVar[str] = "education"
    narrative_fields: ClassVar[tuple[str, ...]] = ()

    def data_category(self) -> str:
        """The category an envelope of this payload should carry (the class's by default)."""
        return type(self).category


def _not_before(
    later: date | None, earlier: date | None, later_name: str, earlier_name: str
) -> None:
    if later is not None and earlier is not None and later < earlier:
        raise ValueError(f"{later_name}: is before {earlier_name}")


# --------------------------------------------------------------------------- assessment


@registry.register
class AssessmentRequested(PlanEvent):
    """The LA received a request for an EHC needs assessment (or a re-assessment of a plan
    it maintains). The statutory clock runs from `received_on`."""

    event_type = "plan.assessment_requested"
    open_fields: ClassVar[tuple[str, ...]] = ()

    requested_on: date = Field(description="The date on the request")
    received_on: date = Field(description="The day the LA received it: day 0 of the clock")
    requested_by: RequestedBy
    reassessment: bool = Field(default=False, description="A re-assessment of an existing plan")

    @model_validator(mode="after")
    def _received_after_requested(self) -> AssessmentRequested:
        _not_before(self.received_on, self.requested_on, "received_on", "requested_on")
        return self


@registry.register
class AssessmentDecided(PlanEvent):
    """The LA decided whether to carry out the (re-)assessment, and told the family."""

    event_type = "plan.assessment_decided"
    open_fields: ClassVar[tuple[str, ...]] = ()

    decision: AssessmentDecision
    decided_on: date
    letter: DocumentRef | None = None
    narrative_fields = ("letter",)


@registry.register
class AdviceRequested(PlanEvent):
    """The LA asked a practitioner or agency for advice under reg 6; it is due in 6 weeks
    (reg 8), unless it is the family's own (reg 6(1)(a))."""

    event_type = "plan.advice_requested"
    open_fields: ClassVar[tuple[str, ...]] = (
        "advice_request_id",
        "practitioner_id",
        "agency",
        "organisation_code",
    )

    advice_request_id: Reference
    reg6_category: AdviceCategory
    practitioner_id: Reference | None = None
    agency: Code | None = None
    organisation_code: OrganisationCode | None = None
    requested_on: date
    advice_category: AdviceDataCategory | None = Field(
        default=None,
        description="Consent category of the adviser's involvement; defaults from reg6_category",
    )

    @model_validator(mode="after")
    def _names_the_adviser(self) -> AdviceRequested:
        if self.practitioner_id is None and self.agency is None:
            raise ValueError("practitioner_id: name the practitioner or the agency asked")
        return self

    def data_category(self) -> str:
        if self.advice_category is not None:
            return self.advice_category
        return _DEFAULT_ADVICE_CATEGORY.get(self.reg6_category, "education")


@registry.register
class AdviceSubmitted(PlanEvent):
    """A practitioner submitted advice (a document held in their agency's system). It
    answers `advice_request_id` when given; `advice_category` is the adviser's data
    category (health advice is `health`, CAMHS advice `mental_health`)."""

    event_type = "plan.advice_submitted"
    open_fields: ClassVar[tuple[str, ...]] = ("advice_request_id", "practitioner_id", "agency")

    advice_request_id: Reference | None = None
    practitioner_id: Reference
    agency: Code | None = None
    submitted_on: date
    document: DocumentRef
    advice_category: AdviceDataCategory
    reused_existing: bool = Field(
        default=False, description="Existing advice reused with everyone's agreement (reg 6(4))"
    )
    narrative_fields = ("document",)

    def data_category(self) -> str:
        return self.advice_category


@registry.register
class ExceptionRecorded(PlanEvent):
    """An exception to the time limits applies from `starts_on` to `ends_on` (both
    inclusive; no end while it continues). With `advice_request_ids` it also excuses those
    advisers' 6 weeks (reg 8(2)); without, every adviser's. A later record with the same
    `exception_id` replaces an earlier one (e.g. to add the end date)."""

    event_type = "plan.exception_recorded"
    open_fields: ClassVar[tuple[str, ...]] = ("exception_id", "advice_request_ids")

    exception_id: Reference
    kind: ExceptionKind
    starts_on: date
    ends_on: date | None = None
    advice_request_ids: tuple[Reference, ...] = ()
    details: Text | None = Field(default=None, description="Personal: the circumstances")
    narrative_fields = ("details",)

    @model_validator(mode="after")
    def _a_real_exception(self) -> ExceptionRecorded:
        _not_before(self.ends_on, self.starts_on, "ends_on", "starts_on")
        if (
            self.kind in FOUR_WEEK_KINDS
            and self.ends_on is not None
            and (self.ends_on - self.starts_on).days + 1 < 28
        ):
            raise ValueError(f"ends_on: a {self.kind} exception must last at least 4 weeks")
        if self.advice_request_ids and self.kind not in ADVICE_EXCEPTION_KINDS:
            raise ValueError(
                f"advice_request_ids: {self.kind} is not a ground for late advice (reg 8(2))"
            )
        if len(set(self.advice_request_ids)) != len(self.advice_request_ids):
            raise ValueError("advice_request_ids: listed twice")
        return self


# --------------------------------------------------------------------------- the plan


@registry.register
class DraftIssued(PlanEvent):
    """The LA sent the draft plan; the family has at least 15 days to comment and ask for a
    school to be named (reg 13(1))."""

    event_type = "plan.draft_issued"
    open_fields: ClassVar[tuple[str, ...]] = ()

    issued_on: date
    comments_by: date | None = Field(default=None, description="The date given to the family")
    document: DocumentRef | None = None
    narrative_fields = ("document",)

    @model_validator(mode="after")
    def _fifteen_days(self) -> DraftIssued:
        if self.comments_by is not None and self.comments_by < self.issued_on + timedelta(
            days=COMMENT_DAYS
        ):
            raise ValueError("comments_by: the family must have at least 15 days (reg 13(1))")
        return self


@registry.register
class CommentsReceived(PlanEvent):
    """The family commented on the draft plan (or on proposed amendments, when
    `amendment_id` is given), perhaps asking for a particular school or college."""

    event_type = "plan.comments_received"
    open_fields: ClassVar[tuple[str, ...]] = ("amendment_id",)

    received_on: date
    by: CommentsBy
    amendment_id: Reference | None = None
    requested_placement: OrganisationCode | None = Field(
        default=None, description="URN or UKPRN of the institution the family asked for"
    )
    summary: Text | None = None
    narrative_fields = ("summary",)


@registry.register
class Finalised(PlanEvent):
    """The LA issued the final plan (after an assessment or a re-assessment)."""

    event_type = "plan.finalised"
    open_fields: ClassVar[tuple[str, ...]] = ()

    finalised_on: date
    placement: OrganisationCode | None = Field(
        default=None, description="Section I: URN or UKPRN of the named institution"
    )
    document: DocumentRef | None = None
    narrative_fields = ("document",)


@registry.register
class NoPlanDecided(PlanEvent):
    """After the assessment the LA decided not to issue a plan and told the family (reg 10)."""

    event_type = "plan.no_plan_decided"
    open_fields: ClassVar[tuple[str, ...]] = ()

    decided_on: date
    letter: DocumentRef | None = None
    narrative_fields = ("letter",)


@registry.register
class OutcomeAgreed(PlanEvent):
    """A SMART outcome was agreed for section E: what will be achieved, by when, and how
    progress is measured, for a need described in section B, C or D."""

    event_type = "plan.outcome_agreed"
    open_fields: ClassVar[tuple[str, ...]] = ("outcome_id",)

    outcome_id: Reference
    need_section: NeedSection
    area: OutcomeArea | None = None
    what: Text
    by_when: date
    how_measured: Text
    agreed_on: date
    priority: int | None = Field(
        default=None, ge=1, le=20, description="1 is the family's first priority"
    )
    horizon: OutcomeHorizon | None = Field(
        default=None, description="A short-term step or a long-term ambition"
    )
    narrative_fields = ("what", "how_measured")

    @model_validator(mode="after")
    def _time_bound(self) -> OutcomeAgreed:
        if self.by_when <= self.agreed_on:
            raise ValueError("by_when: must be after agreed_on")
        return self


@registry.register
class OutcomeProgressRecorded(PlanEvent):
    """Progress towards an agreed outcome, usually found at a review: achieved, partly or
    not yet, with the evidence."""

    event_type = "plan.outcome_progress_recorded"
    open_fields: ClassVar[tuple[str, ...]] = ("outcome_id", "review_id")

    outcome_id: Reference
    review_id: Reference | None = Field(default=None, description="The review that found it")
    recorded_on: date
    progress: Progress
    evidence: Text | None = None
    narrative_fields = ("evidence",)


@registry.register
class OutcomeRevised(PlanEvent):
    """An outcome was revised (usually at a review): its new wording, date and measure
    replace the old, which stays in its history."""

    event_type = "plan.outcome_revised"
    open_fields: ClassVar[tuple[str, ...]] = ("outcome_id", "review_id")

    outcome_id: Reference
    review_id: Reference | None = None
    revised_on: date
    what: Text
    by_when: date
    how_measured: Text
    priority: int | None = Field(default=None, ge=1, le=20)
    horizon: OutcomeHorizon | None = None
    reason: Text | None = None
    narrative_fields = ("what", "how_measured", "reason")

    @model_validator(mode="after")
    def _time_bound(self) -> OutcomeRevised:
        if self.by_when <= self.revised_on:
            raise ValueError("by_when: must be after revised_on")
        return self


@registry.register
class InformalSupportRecorded(PlanEvent):
    """Support from family, friends, the community or the voluntary sector that the plan
    relies on alongside the statutory provision."""

    event_type = "plan.informal_support_recorded"
    open_fields: ClassVar[tuple[str, ...]] = ("support_id", "outcome_ids")

    support_id: Reference
    kind: SupportKind
    description: Text
    recorded_on: date
    outcome_ids: tuple[Reference, ...] = ()
    narrative_fields = ("description",)


@registry.register
class ProvisionAgreed(PlanEvent):
    """Provision was agreed for section F, G, H1 or H2: what, who provides it, how much,
    and which outcomes it serves."""

    event_type = "plan.provision_agreed"
    open_fields: ClassVar[tuple[str, ...]] = ("provision_id", "outcome_ids")

    provision_id: Reference
    section: ProvisionSection
    description: Text
    provider: Provider
    amount: Amount | None = Field(default=None, description="Normally quantified (CoP 9.69)")
    outcome_ids: tuple[Reference, ...] = Field(min_length=1)
    agreed_on: date
    starts_on: date | None = None
    ends_on: date | None = None
    narrative_fields = ("description",)

    @model_validator(mode="after")
    def _consistent(self) -> ProvisionAgreed:
        _not_before(self.ends_on, self.starts_on, "ends_on", "starts_on")
        if len(set(self.outcome_ids)) != len(self.outcome_ids):
            raise ValueError("outcome_ids: listed twice")
        return self

    def data_category(self) -> str:
        return _PROVISION_CATEGORY[self.section]


@registry.register
class PersonalBudgetAgreed(PlanEvent):
    """A personal budget was agreed for section J: how much per period, what it covers,
    and whether it is taken as a direct payment."""

    event_type = "plan.personal_budget_agreed"
    open_fields: ClassVar[tuple[str, ...]] = ("budget_id",)

    budget_id: Reference
    amount: Decimal = Field(gt=0, max_digits=10, decimal_places=2, description="GBP")
    period: BudgetPeriod
    direct_payment: bool
    covers: tuple[BudgetArea, ...] = Field(min_length=1)
    agreed_on: date
    starts_on: date | None = None
    ends_on: date | None = None
    description: Text | None = None
    narrative_fields = ("description",)

    @model_validator(mode="after")
    def _consistent(self) -> PersonalBudgetAgreed:
        _not_before(self.ends_on, self.starts_on, "ends_on", "starts_on")
        if len(set(self.covers)) != len(self.covers):
            raise ValueError("covers: listed twice")
        return self

    def data_category(self) -> str:
        return self.covers[0] if len(self.covers) == 1 else "education"


@registry.register
class PersonalBudgetRequested(PlanEvent):
    """The family asked for a personal budget (reg 3(1), Personal Budgets Regulations 2014):
    it may be asked for while the draft is being written or at a review."""

    event_type = "plan.personal_budget_requested"
    open_fields: ClassVar[tuple[str, ...]] = ("budget_id",)

    budget_id: Reference
    requested_on: date
    requested_by: BudgetRequester
    covers: tuple[BudgetArea, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _once_each(self) -> PersonalBudgetRequested:
        if len(set(self.covers)) != len(self.covers):
            raise ValueError("covers: listed twice")
        return self

    def data_category(self) -> str:
        return self.covers[0] if len(self.covers) == 1 else "education"


@registry.register
class PersonalBudgetIndicated(PlanEvent):
    """The LA told the family the indicative amount of the budget they asked for."""

    event_type = "plan.personal_budget_indicated"
    open_fields: ClassVar[tuple[str, ...]] = ("budget_id",)

    budget_id: Reference
    indicated_on: date
    amount: Decimal = Field(gt=0, max_digits=10, decimal_places=2, description="GBP")
    period: BudgetPeriod


@registry.register
class PersonalBudgetAudited(PlanEvent):
    """A review audited the personal budget: what was spent against what was agreed."""

    event_type = "plan.personal_budget_audited"
    open_fields: ClassVar[tuple[str, ...]] = ("budget_id", "review_id")

    budget_id: Reference
    review_id: Reference | None = None
    audited_on: date
    spent: Decimal = Field(ge=0, max_digits=10, decimal_places=2, description="GBP")
    finding: BudgetFinding
    notes: Text | None = None
    narrative_fields = ("notes",)


# --------------------------------------------------------------------------- reviews

REVIEW_WITHIN_MONTHS = 12
"""A plan is reviewed at least every 12 months (CFA 2014 s.44(1); reg 18)."""


@registry.register
class ReviewMeetingHeld(PlanEvent):
    """A review meeting of the plan was held (annual, interim, early-years or phase
    transfer). The report is due 2 weeks after it, the LA's decision 4 weeks after it."""

    event_type = "plan.review_meeting_held"
    open_fields: ClassVar[tuple[str, ...]] = ("review_id", "attendee_ids")

    review_id: Reference
    held_on: date
    kind: ReviewKind = "annual"
    attendee_ids: tuple[Reference, ...] = ()
    family_attended: bool = False


@registry.register
class ReviewReportSent(PlanEvent):
    """The report of a review meeting was sent to the LA and everyone invited (reg 20)."""

    event_type = "plan.review_report_sent"
    open_fields: ClassVar[tuple[str, ...]] = ("review_id",)

    review_id: Reference | None = None
    sent_on: date
    document: DocumentRef | None = None
    narrative_fields = ("document",)


@registry.register
class ReviewDecided(PlanEvent):
    """The LA decided, after a review, to maintain, amend or cease the plan (reg 20(10)).
    `phase_transfer` marks the review of a transfer between phases (reg 18)."""

    event_type = "plan.review_decided"
    open_fields: ClassVar[tuple[str, ...]] = ("review_id",)

    review_id: Reference | None = None
    decision: ReviewDecision
    decided_on: date
    phase_transfer: PhaseTransferKind | None = None


@registry.register
class ReviewConcluded(PlanEvent):
    """What a review concluded: what worked and what did not, and the date of the next
    review agreed with the family (within 12 months)."""

    event_type = "plan.review_concluded"
    open_fields: ClassVar[tuple[str, ...]] = ("review_id",)

    review_id: Reference
    concluded_on: date
    what_worked: tuple[Text, ...] = ()
    what_did_not_work: tuple[Text, ...] = ()
    next_review_on: date
    agreed_with_family: bool = False
    narrative_fields = ("what_worked", "what_did_not_work")

    @model_validator(mode="after")
    def _next_review(self) -> ReviewConcluded:
        if self.next_review_on <= self.concluded_on:
            raise ValueError("next_review_on: must be after concluded_on")
        if self.next_review_on > _months_after(self.concluded_on, REVIEW_WITHIN_MONTHS):
            raise ValueError(
                "next_review_on: a plan is reviewed at least every 12 months (CFA 2014 s.44)"
            )
        return self


def _months_after(day: date, months: int) -> date:
    """The same day `months` later (the month's last day where it has no such day)."""
    total = day.month - 1 + months
    year, month = day.year + total // 12, total % 12 + 1
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


@registry.register
class AmendmentProposed(PlanEvent):
    """The LA sent the family proposed amendments: 15 days to comment, the amended plan
    within 8 weeks (reg 22)."""

    event_type = "plan.amendment_proposed"
    open_fields: ClassVar[tuple[str, ...]] = ("amendment_id",)

    amendment_id: Reference
    proposed_on: date
    comments_by: date | None = None
    summary: Text | None = None
    narrative_fields = ("summary",)

    @model_validator(mode="after")
    def _fifteen_days(self) -> AmendmentProposed:
        if self.comments_by is not None and self.comments_by < self.proposed_on + timedelta(
            days=COMMENT_DAYS
        ):
            raise ValueError("comments_by: the family must have at least 15 days (reg 22(2))")
        return self


@registry.register
class Amended(PlanEvent):
    """The LA issued the amended plan. `phase_transfer` marks the amendment that names the
    school or college for a transfer between phases (reg 18)."""

    event_type = "plan.amended"
    open_fields: ClassVar[tuple[str, ...]] = ("amendment_id",)

    amendment_id: Reference | None = None
    amended_on: date
    phase_transfer: PhaseTransferKind | None = None
    placement: OrganisationCode | None = None
    document: DocumentRef | None = None
    narrative_fields = ("document",)


@registry.register
class Ceased(PlanEvent):
    """The LA stopped maintaining the plan."""

    event_type = "plan.ceased"
    open_fields: ClassVar[tuple[str, ...]] = ()

    ceased_on: date
    reason: CeaseReason


PLAN_EVENTS: tuple[type[PlanEvent], ...] = (
    AssessmentRequested,
    AssessmentDecided,
    AdviceRequested,
    AdviceSubmitted,
    ExceptionRecorded,
    DraftIssued,
    CommentsReceived,
    Finalised,
    NoPlanDecided,
    OutcomeAgreed,
    OutcomeProgressRecorded,
    OutcomeRevised,
    ProvisionAgreed,
    InformalSupportRecorded,
    PersonalBudgetRequested,
    PersonalBudgetIndicated,
    PersonalBudgetAgreed,
    PersonalBudgetAudited,
    ReviewMeetingHeld,
    ReviewReportSent,
    ReviewConcluded,
    ReviewDecided,
    AmendmentProposed,
    Amended,
    Ceased,
)
"""Every plan event type, in the order of the journey."""
