"""The coordinator's forms for the local authority's steps, each over the API route's own
request model and step builder (`hub.api.routes_plans`, `hub.api.routes_record`): the
decision whether to assess, an advice request, the draft, the final plan, an exception,
a review and its conclusion, an outcome, provision, progress towards an outcome, a meeting
with its actions (steps on a plan; the plan's contents from `hub.api.routes_plan_content`);
the key worker's assignment, handover, cover and end, and a consent decision (records of
the child).

Each `StepForm` says which model the form fills, with which fields (named by the model's
field paths, see `hub.web.forms`), how its steps are built (the very `*_steps` function
the API route calls; the consent form calls `record_consent_of`, as its route does), and
what the success banner says. No rule lives here: a refused form shows the model's or
the handler's own error on the field it names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import BaseModel

from hub.api import routes_plan_content as contents
from hub.api import routes_plans as plans
from hub.api.routes_record import ConsentIn
from hub.events.consent import PURPOSES, CaptureMethod, GrantorCapacity
from hub.events.plan import (
    AdviceCategory,
    AdviceDataCategory,
    AmountUnit,
    ExceptionKind,
    Frequency,
    NeedSection,
    OutcomeArea,
    OutcomeHorizon,
    PhaseTransferKind,
    Progress,
    ProvisionSection,
    ReviewDecision,
    ReviewKind,
)
from hub.events.team import (
    KEY_WORKING_FUNCTIONS,
    FamilyKeyWorker,
    KeyWorkingLevel,
    KeyWorkingModel,
    MeetingKind,
)
from hub.web.forms import Field, options

Section = tuple[str | None, tuple[Field, ...]]
ACTION_SLOTS = 3
"""Actions a meeting form takes at once (more: record the meeting again, by its id)."""


@dataclass(frozen=True)
class StepForm:
    slug: str
    on: Literal["plan", "child"]
    title: str
    intro: str
    model: type[BaseModel]
    sections: tuple[Section, ...]
    done: str
    """The success banner's words."""
    steps: Callable[[Any], plans.Steps] | None = None
    """The API route's step builder; None: the consent form (its own handler)."""
    button: str = "Save"


def _opts(literal: Any, words: dict[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    return options(get_args(literal), words)


def _date(
    path: str, label: str, hint: str | None = "For example, 27 3 2024", name: str | None = None
) -> Field:
    return Field(path, label, "date", hint=hint, name=name)


DECISION = StepForm(
    "decision",
    "plan",
    "Record the decision",
    "The local authority's decision whether to assess the child's needs (within 6 weeks of "
    "the request), or, after the assessment, not to issue a plan.",
    plans.DecisionIn,
    (
        (
            None,
            (
                Field(
                    "decision",
                    "What did the local authority decide?",
                    "radios",
                    name="The decision",
                    options=(
                        ("assess", "To assess the child's needs"),
                        ("refuse", "Not to assess"),
                        ("no_plan", "After the assessment, not to issue a plan"),
                    ),
                ),
                _date("decided_on", "Date of the decision"),
            ),
        ),
        (
            "Decision letter (optional)",
            (
                Field("letter.document_id", "Document id", hint="The letter's id in your system"),
                Field("letter.system", "System holding it"),
            ),
        ),
    ),
    "The decision was recorded",
    plans.decision_steps,
)

ADVICE = StepForm(
    "advice-request",
    "plan",
    "Request advice",
    "A request for advice under regulation 6: it is due 6 weeks from the day it is asked for.",
    plans.AdviceRequestIn,
    (
        (
            None,
            (
                Field(
                    "reg6_category",
                    "Advice asked for",
                    "select",
                    options=_opts(AdviceCategory),
                ),
                Field(
                    "practitioner_id",
                    "Practitioner id of the adviser",
                    hint="As the team records them, not a name",
                ),
                Field("agency", "Agency", hint="For example, education or health"),
                Field("organisation_code", "Organisation code", hint="ODS code, URN or LA code"),
                _date("requested_on", "Date asked for"),
                Field(
                    "advice_category",
                    "Kind of information (for consent)",
                    "select",
                    hint="Leave it to follow from the advice asked for, or choose, for "
                    "example, mental health for CAMHS",
                    options=_opts(AdviceDataCategory),
                ),
            ),
        ),
    ),
    "The advice request was recorded",
    plans.advice_request_steps,
)

DRAFT = StepForm(
    "draft",
    "plan",
    "Record the draft plan",
    "The draft plan was sent to the family: they have at least 15 days to comment and name "
    "a school or college.",
    plans.DraftIn,
    (
        (
            None,
            (
                _date("issued_on", "Date the draft was issued"),
                _date("comments_by", "Comments due by", hint="At least 15 days on (optional)"),
                Field("document.document_id", "Document id (optional)"),
            ),
        ),
    ),
    "The draft plan was recorded",
    plans.draft_steps,
)

FINAL = StepForm(
    "final",
    "plan",
    "Record the final plan",
    "The final EHC plan was issued (within 20 weeks of the request).",
    plans.FinalIn,
    (
        (
            None,
            (
                _date("finalised_on", "Date the final plan was issued"),
                Field(
                    "placement",
                    "School or college named (section I)",
                    hint="Its URN or UKPRN (optional)",
                    width="govuk-input--width-10",
                ),
                Field("document.document_id", "Document id (optional)"),
            ),
        ),
    ),
    "The final plan was recorded",
    plans.final_steps,
)

EXCEPTION = StepForm(
    "exception",
    "plan",
    "Record an exception to the time limits",
    "When an exception applies, the clocks it pauses wait (SEND Regulations 2014, regs 5(4), "
    "8(2), 10(4) and 13(3)).",
    plans.ExceptionIn,
    (
        (
            None,
            (
                Field(
                    "kind",
                    "Why the time limit need not be met",
                    "radios",
                    options=_opts(ExceptionKind),
                ),
                _date("starts_on", "Starts on", name="The start date"),
                _date(
                    "ends_on",
                    "Ends on",
                    hint="Leave blank if it has not ended yet",
                    name="The end date",
                ),
                Field(
                    "advice_request_ids",
                    "Only these advice requests",
                    "lines",
                    hint="Advice request ids, one a line; leave blank for every clock it pauses",
                ),
                Field("details", "Details (optional)", "textarea"),
            ),
        ),
    ),
    "The exception was recorded",
    plans.exception_steps,
)

REVIEW = StepForm(
    "review",
    "plan",
    "Record a review",
    "A review: the meeting, its report and the local authority's decision. Record any of "
    "them now and the rest later with the review's id.",
    plans.ReviewIn,
    (
        (
            "The meeting",
            (
                Field("review_id", "Review id", hint="Leave blank for a new review"),
                _date("held_on", "Date of the meeting"),
                Field("kind", "Kind of review", "select", options=_opts(ReviewKind)),
                Field("attendee_ids", "Who attended", "lines", hint="Practitioner ids, one a line"),
                Field("family_attended", "The family attended", "checkbox"),
            ),
        ),
        ("The report", (_date("report_sent_on", "Date the report was sent", hint=None),)),
        (
            "The decision",
            (
                Field(
                    "decision.decision",
                    "What did the local authority decide?",
                    "select",
                    name="The review's decision",
                    options=_opts(ReviewDecision),
                ),
                _date("decision.decided_on", "Date of the decision", hint=None),
                Field(
                    "decision.phase_transfer",
                    "Phase transfer (if one)",
                    "select",
                    options=_opts(PhaseTransferKind),
                ),
            ),
        ),
    ),
    "The review was recorded",
    plans.review_steps,
)

_ACTIONS: tuple[Section, ...] = tuple(
    (
        f"Action {i + 1}" + (" (optional)" if i else ""),
        (
            Field(f"actions.{i}.text", "What is to be done", "textarea"),
            Field(f"actions.{i}.owner_id", "Who owns it", hint="Their practitioner id"),
            _date(f"actions.{i}.due_on", "Due by", hint=None, name="The due date"),
        ),
    )
    for i in range(ACTION_SLOTS)
)

MEETING = StepForm(
    "meeting",
    "plan",
    "Record a meeting",
    "A team meeting about this plan: who came, what was decided and the actions agreed, each "
    "with an owner and a due date.",
    plans.MeetingIn,
    (
        (
            None,
            (
                _date("held_on", "Date of the meeting"),
                Field(
                    "kind",
                    "Kind of meeting",
                    "radios",
                    options=_opts(MeetingKind, {"tac": "Team around the child"}),
                ),
                Field("attendee_ids", "Who attended", "lines", hint="Practitioner ids, one a line"),
                Field("family_attended", "The family attended", "checkbox"),
                Field("decisions", "Decisions", "lines", hint="One a line"),
            ),
        ),
        *_ACTIONS,
    ),
    "The meeting was recorded",
    plans.meeting_steps,
)

_FUNCTIONS = Field(
    "functions",
    "Key working functions they hold",
    "checkboxes",
    hint="Leave all unticked for all ten (the single-person model)",
    options=options(KEY_WORKING_FUNCTIONS),
)


def _who(prefix: str = "") -> tuple[Field, ...]:
    return (
        Field(
            f"{prefix}practitioner_id", "Practitioner id", hint="Or leave blank for a family member"
        ),
        Field(
            f"{prefix}family_member",
            "Or a family member as their own key worker",
            "select",
            options=_opts(FamilyKeyWorker),
        ),
        Field(
            f"{prefix}family_member_ref",
            "Which parent or carer",
            hint="The family record's reference for them, not a name",
        ),
        Field(f"{prefix}model", "Key working model", "radios", options=_opts(KeyWorkingModel)),
        Field(
            f"{prefix}functions",
            _FUNCTIONS.label,
            "checkboxes",
            hint=_FUNCTIONS.hint,
            options=_FUNCTIONS.options,
        ),
        Field(f"{prefix}level", "Level of support", "select", options=_opts(KeyWorkingLevel)),
        _date(
            f"{prefix}family_agreed_on",
            "The family agreed on",
            hint="Optional",
            name="The date the family agreed",
        ),
        Field(f"{prefix}choice_reason", "Why this key worker (optional)", "textarea"),
    )


KEY_WORKER = StepForm(
    "key-worker",
    "child",
    "Assign a key worker",
    "Who holds which key working functions for the child, from when.",
    plans.KeyWorkerIn,
    ((None, (*_who(), _date("assigned_on", "Assigned on", name="The date assigned"))),),
    "The key worker was recorded",
    plans.key_worker_steps,
)

HANDOVER = StepForm(
    "key-worker-handover",
    "child",
    "Hand over to a new key worker",
    "The incoming key worker starts on the handover day; both hold key working until the "
    "outgoing one's last day.",
    plans.HandoverIn,
    (
        (
            None,
            (
                Field(
                    "outgoing_id",
                    "Key worker handing over",
                    hint="Their key worker id (practitioner id)",
                ),
                _date("handed_over_on", "Incoming key worker's first day"),
                _date("overlap_until", "Outgoing key worker's last day"),
                Field("reason", "Reason (optional)", "textarea"),
            ),
        ),
        ("The incoming key worker", _who("incoming.")),
    ),
    "The handover was recorded",
    plans.handover_steps,
)

COVER = StepForm(
    "key-worker-cover",
    "child",
    "Arrange cover for a key worker",
    "Who the family contacts while the key worker is away: a practitioner on the team or a "
    "work contact.",
    plans.CoverIn,
    (
        (
            None,
            (
                Field("key_worker_id", "Key worker covered", hint="Their key worker id"),
                Field(
                    "cover_practitioner_id",
                    "Practitioner who covers",
                    hint="Their practitioner id (optional)",
                ),
                Field(
                    "cover_contact",
                    "Work contact for the absence",
                    hint="Optional",
                    width="govuk-input--width-30",
                ),
                _date("arranged_on", "Arranged on", name="The date arranged"),
                _date("until", "Until", hint="Optional", name="The end date"),
            ),
        ),
    ),
    "The cover was recorded",
    plans.cover_steps,
)

END = StepForm(
    "key-working-end",
    "child",
    "End key working",
    "Key working ends for one key worker, or for the child.",
    plans.KeyWorkingEndIn,
    (
        (
            None,
            (
                Field(
                    "key_worker_id",
                    "Key worker",
                    hint="Leave blank to end every key worker's period",
                ),
                _date("ended_on", "Last day of key working"),
                Field("reason", "Reason", "textarea"),
            ),
        ),
    ),
    "The end of key working was recorded",
    plans.key_working_end_steps,
)


class ProgressForm(contents.ProgressIn):
    """The progress form names its outcome (the API route has it in the path)."""

    outcome_id: plans.Ref


class ConclusionForm(contents.ConclusionIn):
    """The conclusion form names its review (the API route has it in the path)."""

    review_id: plans.Ref


OUTCOME = StepForm(
    "outcome",
    "plan",
    "Agree an outcome",
    "A SMART outcome for section E: what the child will achieve, by when and how it will "
    "be measured.",
    contents.OutcomeIn,
    (
        (
            None,
            (
                Field(
                    "need_section",
                    "The need it meets",
                    "radios",
                    options=_opts(
                        NeedSection,
                        {"B": "Special educational (B)", "C": "Health (C)", "D": "Social care (D)"},
                    ),
                ),
                Field(
                    "area", "Area of need", "select", hint="Optional", options=_opts(OutcomeArea)
                ),
                Field("what", "What the child will achieve", "textarea"),
                _date("by_when", "By when"),
                Field("how_measured", "How it will be measured", "textarea"),
                _date("agreed_on", "Agreed on", name="The date agreed"),
                Field(
                    "priority",
                    "Priority",
                    hint="1 is the highest (optional)",
                    width="govuk-input--width-2",
                ),
                Field(
                    "horizon",
                    "Short or long term",
                    "radios",
                    options=_opts(
                        OutcomeHorizon,
                        {"short_term": "A step on the way", "long_term": "A longer-term ambition"},
                    ),
                ),
                Field("outcome_id", "Outcome id (optional)", hint="Made for you when blank"),
            ),
        ),
    ),
    "The outcome was recorded",
    contents.outcome_steps,
)

PROVISION = StepForm(
    "provision",
    "plan",
    "Agree provision",
    "Provision in section F, G, H1 or H2: what is provided, by whom, how much, and the "
    "outcomes it serves.",
    contents.ProvisionIn,
    (
        (
            None,
            (
                Field(
                    "section",
                    "Section",
                    "radios",
                    options=_opts(
                        ProvisionSection,
                        {
                            "F": "Special educational (F)",
                            "G": "Health (G)",
                            "H1": "Social care, CSDPA 1970 s.2 (H1)",
                            "H2": "Other social care (H2)",
                        },
                    ),
                ),
                Field("description", "What is provided", "textarea"),
                Field("outcome_ids", "Outcomes it serves", "lines", hint="Outcome ids, one a line"),
                _date("agreed_on", "Agreed on", name="The date agreed"),
                _date("starts_on", "Starts on", hint="Optional", name="The start date"),
                _date("ends_on", "Ends on", hint="Optional", name="The end date"),
            ),
        ),
        (
            "Who provides it",
            (
                Field("provider.agency", "Agency", hint="Agency code, for example education"),
                Field("provider.organisation_code", "Organisation code", hint="Optional"),
                Field(
                    "provider.role",
                    "Role",
                    hint="Role code, for example speech_therapist (optional)",
                ),
            ),
        ),
        (
            "How much (optional)",
            (
                Field(
                    "amount.quantity",
                    "Quantity",
                    hint="For example 2 or 1.5",
                    width="govuk-input--width-5",
                ),
                Field("amount.unit", "Unit", "select", options=_opts(AmountUnit)),
                Field("amount.frequency", "How often", "select", options=_opts(Frequency)),
            ),
        ),
    ),
    "The provision was recorded",
    contents.provision_steps,
)

PROGRESS = StepForm(
    "outcome-progress",
    "plan",
    "Record progress towards an outcome",
    "What a review found: achieved, partly achieved or not yet, with the evidence.",
    ProgressForm,
    (
        (
            None,
            (
                Field("outcome_id", "Outcome id"),
                Field(
                    "progress",
                    "Progress",
                    "radios",
                    options=_opts(
                        Progress,
                        {
                            "partly_achieved": "Partly achieved",
                            "not_yet_achieved": "Not yet achieved",
                        },
                    ),
                ),
                _date("recorded_on", "Recorded on", name="The date recorded"),
                Field("evidence", "Evidence", "textarea", hint="Optional"),
                Field("review_id", "Review id", hint="The review that found it (optional)"),
            ),
        ),
    ),
    "The progress was recorded",
    lambda body: contents.progress_steps(body.outcome_id, body),
)

CONCLUSION = StepForm(
    "review-conclusion",
    "plan",
    "Record what a review concluded",
    "What worked, what did not, and the next review date agreed with the family.",
    ConclusionForm,
    (
        (
            None,
            (
                Field("review_id", "Review id"),
                _date("concluded_on", "Concluded on", name="The date concluded"),
                Field("what_worked", "What worked", "lines", hint="One a line"),
                Field("what_did_not_work", "What did not work", "lines", hint="One a line"),
                _date(
                    "next_review_on",
                    "Next review",
                    hint="Within 12 months",
                    name="The next review date",
                ),
                Field(
                    "agreed_with_family",
                    "Was the date agreed with the family?",
                    "radios",
                    options=(("true", "Yes"), ("false", "No")),
                ),
            ),
        ),
    ),
    "The review's conclusion was recorded",
    lambda body: contents.conclusion_steps(body.review_id, body),
)


def consent_sections(categories: tuple[str, ...]) -> tuple[Section, ...]:
    """The consent form's fields: the policy's data categories are its choices."""
    return (
        (
            None,
            (
                Field(
                    "consent.consent_id",
                    "Consent id",
                    hint="Your reference for this decision, for example c-2024-017",
                ),
                Field(
                    "consent.decision",
                    "What did the family decide?",
                    "radios",
                    name="The family's decision",
                    options=(("permit", "To share"), ("deny", "Not to share")),
                ),
                Field(
                    "consent.grantor.reference",
                    "Who decided",
                    hint="Their reference in the family record, not a name",
                ),
                Field(
                    "consent.grantor.capacity",
                    "In what capacity",
                    "select",
                    options=_opts(
                        GrantorCapacity, {"parent_with_pr": "Parent with parental responsibility"}
                    ),
                ),
                _date("consent.given_on", "Date they decided"),
            ),
        ),
        (
            "What it covers",
            (
                Field(
                    "consent.scope.categories",
                    "Kinds of information",
                    "checkboxes",
                    options=options(categories),
                ),
                Field(
                    "consent.scope.purposes", "For what", "checkboxes", options=options(PURPOSES)
                ),
                Field(
                    "consent.scope.roles",
                    "Only these roles",
                    "lines",
                    hint="Role codes, one a line, for example senco; blank for the whole team",
                ),
                Field(
                    "consent.scope.agencies",
                    "Only these agencies",
                    "lines",
                    hint="Agency codes, one a line; blank for every agency",
                ),
            ),
        ),
        (
            "When and how",
            (
                _date("consent.period.start", "In force from", name="The start date"),
                _date(
                    "consent.period.end",
                    "Until",
                    hint="Leave blank for no end date",
                    name="The end date",
                ),
                Field(
                    "consent.capture_method",
                    "How it was given",
                    "select",
                    options=_opts(CaptureMethod),
                ),
                Field(
                    "consent.witness",
                    "Witness",
                    hint="For a verbal consent: the witness's reference",
                ),
                _date(
                    "child_date_of_birth",
                    "Child's date of birth",
                    hint="Needed once, to check who may consent",
                ),
            ),
        ),
    )


CONSENT = StepForm(
    "consent",
    "child",
    "Record a consent decision",
    "What the family decided about sharing the child's information, as they gave it to you.",
    ConsentIn,
    consent_sections(()),
    "The consent decision was recorded",
)

STEP_FORMS: dict[str, StepForm] = {
    f.slug: f
    for f in (
        DECISION,
        ADVICE,
        DRAFT,
        FINAL,
        EXCEPTION,
        REVIEW,
        CONCLUSION,
        OUTCOME,
        PROVISION,
        PROGRESS,
        MEETING,
        KEY_WORKER,
        HANDOVER,
        COVER,
        END,
        CONSENT,
    )
}
PLAN_FORMS = tuple(f for f in STEP_FORMS.values() if f.on == "plan")
CHILD_FORMS = tuple(f for f in STEP_FORMS.values() if f.on == "child")


def recorded_words(slug: str | None) -> str | None:
    """The success banner's words after the form `slug` (none for anything else)."""
    form = STEP_FORMS.get(slug or "")
    return form.done if form else None


TEMPLATE_GLOBALS = {
    "plan_forms": PLAN_FORMS,
    "child_forms": CHILD_FORMS,
    "recorded_words": recorded_words,
}
