"""Team events: who is in the team around a child, who holds the key working functions,
and the team's meetings with their decisions and actions.

Practitioners join and leave in a role from the controlled vocabulary
(contracts/consent-policy.yaml `roles`); key working is recorded as which of the ten
functions each holder has (single-person or multi-person model); a meeting records its
attendees, decisions and actions (owner and due date), and each action's completion.
Everything is sealed with the child's key but the practitioner, key worker, meeting and
action ids (and a practitioner's agency and organisation code) each class's `open_fields`
names: when, what kind, what was decided, why, and how to reach someone are about the child.
Key working runs in periods, each held by a practitioner or by a parent or the young
person as their own key worker (with the level of support, the family's agreement and
the reason for the choice); a period ends on a handover (with an overlap in which both
key workers hold it), when key working ends, or when its holder leaves the team; a key
worker's cover for absence is a practitioner on the team or a work contact.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hub.events.envelope import EventPayload
from hub.events.registry import registry


@registry.register
class PractitionerJoined(EventPayload):
    """A practitioner joined the team around the child in a role from the vocabulary.

    Only the practitioner's id, agency and organisation code are open: the role (a CAMHS
    clinician, a sexual health nurse) says what care the child has, so it is sealed with
    the child's key with the practitioner's name, contact and organisation name, and all
    of it is unreadable once the child is erased. `name`, `contact` and
    `organisation_name` are optional additions of version 1: older records lack them."""

    event_type = "team.practitioner_joined"
    category = "education"
    open_fields: ClassVar[tuple[str, ...]] = ("practitioner_id", "agency", "organisation_code")

    practitioner_id: str = Field(min_length=1, max_length=128)
    role: str = Field(min_length=1, max_length=64, description="Controlled vocabulary role code")
    agency: str = Field(min_length=1, max_length=64)
    organisation_code: str | None = Field(default=None, max_length=32)
    since: date
    contact: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="How to reach them at work for this child: a work phone, email or team "
        "line (never the child's or the family's details)",
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The practitioner's name as their agency gives it (e.g. 'Dr Priya Shah'): "
        "personal data, sealed with the rest of this payload",
    )
    organisation_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The name of the organisation they work for (a trust, practice, school or "
        "local authority), where the sender gives it",
    )


@registry.register
class PractitionerLeft(EventPayload):
    """A practitioner left the team around the child."""

    event_type = "team.practitioner_left"
    category = "education"
    open_fields: ClassVar[tuple[str, ...]] = ("practitioner_id",)

    practitioner_id: str = Field(min_length=1, max_length=128)
    until: date


# --------------------------------------------------------------------------- key working

KeyWorkingFunction = Literal[
    "emotional_and_practical_support",
    "empowering_decisions",
    "coordinating_practitioners",
    "single_point_of_contact",
    "facilitating_multi_agency_meetings",
    "supporting_joint_assessment_and_planning",
    "identifying_strengths_and_needs",
    "information_and_signposting",
    "advocacy",
    "integrating_clinical_and_social_care",
]
"""The ten key working functions (DOMAIN.md, "Key working"): emotional and practical
support; empowering decisions, personal budgets included; coordinating practitioners;
being the single point of contact; facilitating multi-agency meetings; supporting a
single planning and joint assessment process; identifying strengths and needs;
information and signposting; advocacy; integrating clinical and social care."""

KEY_WORKING_FUNCTIONS: tuple[KeyWorkingFunction, ...] = get_args(KeyWorkingFunction)

KeyWorkingModel = Literal["single_person", "multi_person"]
"""One key worker holds every function, or the functions are shared across a team."""

MeetingKind = Literal["tac", "review", "multi_agency"]
"""A team-around-the-child meeting, a plan review meeting, or another multi-agency meeting."""

PractitionerRef = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/|-]{0,127}$")
]
"""A practitioner's id (as in `team.practitioner_joined`): never a name."""

ActionText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


KeyWorkingLevel = Literal["moderate", "high", "intensive"]
"""The level of key working support the child and family get."""

FamilyKeyWorker = Literal["parent_carer", "young_person"]
"""A family member who is their own key worker: a parent or carer, or the young person."""

FamilyRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/|-]{0,99}$")]
"""An opaque reference to a parent or carer as a family fact records them (the
`related_person_ref` of `family.related_person_recorded`): never a name."""

KeyWorkerId = PractitionerRef
"""Who holds a key working period: the practitioner's id, or for a family member
`family:young_person`, `family:parent_carer` or `family:parent_carer:<family_member_ref>`
(`key_worker_id()`): never a name."""

FAMILY_PREFIX = "family:"


def key_worker_id(
    practitioner_id: str | None, family_member: str | None, family_member_ref: str | None
) -> str:
    """The id of a key working holder (`KeyWorkerId`)."""
    if practitioner_id is not None:
        return practitioner_id
    ref = f":{family_member_ref}" if family_member_ref else ""
    return f"{FAMILY_PREFIX}{family_member}{ref}"


@registry.register
class KeyWorkerAssigned(EventPayload):
    """Someone holds key working functions for the child from `assigned_on`: a
    practitioner, or a parent or the young person as their own key worker. In the
    single-person model they hold all ten; in the multi-person model each holder's event
    names the functions they hold. A later assignment of a holder whose key working
    period is open updates that period (functions, level, agreement); otherwise it starts
    a new period. A period ends when its holder leaves the team, hands over
    (`team.key_worker_handover_started`) or key working ends (`team.key_working_ended`).
    `choice_reason` (why this key worker) is free text about the child: personal."""

    event_type = "team.key_worker_assigned"
    schema_version = 2
    category = "education"
    open_fields: ClassVar[tuple[str, ...]] = ("practitioner_id", "family_member_ref")

    practitioner_id: PractitionerRef | None = Field(
        default=None, description="The practitioner who holds the functions (else family_member)"
    )
    model: KeyWorkingModel
    functions: tuple[KeyWorkingFunction, ...] = Field(default=KEY_WORKING_FUNCTIONS, min_length=1)
    assigned_on: date
    family_member: FamilyKeyWorker | None = Field(
        default=None, description="A parent or the young person as their own key worker"
    )
    family_member_ref: FamilyRef | None = Field(
        default=None, description="Which parent or carer (an opaque reference, never a name)"
    )
    level: KeyWorkingLevel | None = Field(default=None, description="Level of support")
    family_agreed_on: date | None = Field(
        default=None, description="When the family agreed to this key worker (none: not recorded)"
    )
    choice_reason: ActionText | None = Field(
        default=None, description="Why this key worker was chosen (personal: sealed)"
    )

    @property
    def key_worker_id(self) -> str:
        return key_worker_id(self.practitioner_id, self.family_member, self.family_member_ref)

    @model_validator(mode="after")
    def _functions_fit_the_model(self) -> KeyWorkerAssigned:
        if len(set(self.functions)) != len(self.functions):
            raise ValueError("functions: listed twice")
        if self.model == "single_person" and set(self.functions) != set(KEY_WORKING_FUNCTIONS):
            raise ValueError("functions: in the single-person model one key worker holds all ten")
        _check_holder(self.practitioner_id, self.family_member, self.family_member_ref)
        return self


def _check_holder(
    practitioner_id: str | None, family_member: str | None, family_member_ref: str | None
) -> None:
    if (practitioner_id is None) == (family_member is None):
        raise ValueError(
            "practitioner_id: name the practitioner, or (not both) family_member for a parent "
            "or the young person as their own key worker"
        )
    if practitioner_id is not None and practitioner_id.startswith(FAMILY_PREFIX):
        raise ValueError(f"practitioner_id: {FAMILY_PREFIX!r} ids are for family members")
    if family_member_ref is not None and family_member != "parent_carer":
        raise ValueError("family_member_ref: only for a parent or carer")


@registry.upcaster(KeyWorkerAssigned.event_type, from_version=1)
def upcast_key_worker_v1_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 named a practitioner only and had no level, agreement or reason; v2 also allows
    a family member as their own key worker. A v1 assignment is a practitioner's, with
    the level, agreement and reason not recorded."""
    out = dict(payload)
    out.setdefault("family_member", None)
    out.setdefault("family_member_ref", None)
    out.setdefault("level", None)
    out.setdefault("family_agreed_on", None)
    out.setdefault("choice_reason", None)
    return out


class MeetingAction(BaseModel):
    """An action agreed at a meeting: what, who owns it (a practitioner), and by when."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    action_id: PractitionerRef
    text: ActionText
    owner_id: PractitionerRef
    due_on: date


@registry.register
class MeetingHeld(EventPayload):
    """A meeting of the team around the child was held: who attended, what was decided,
    and the actions agreed (each with an owner and a due date)."""

    event_type = "team.meeting_held"
    category = "education"
    open_fields: ClassVar[tuple[str, ...]] = ("meeting_id", "attendee_ids")

    meeting_id: PractitionerRef
    held_on: date
    kind: MeetingKind
    attendee_ids: tuple[PractitionerRef, ...] = ()
    family_attended: bool = False
    decisions: tuple[ActionText, ...] = ()
    actions: tuple[MeetingAction, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> MeetingHeld:
        if len(set(self.attendee_ids)) != len(self.attendee_ids):
            raise ValueError("attendee_ids: listed twice")
        seen: set[str] = set()
        for i, action in enumerate(self.actions):
            if action.action_id in seen:
                raise ValueError(f"actions[{i}].action_id: listed twice")
            seen.add(action.action_id)
            if action.due_on < self.held_on:
                raise ValueError(f"actions[{i}].due_on: is before held_on")
        return self


@registry.register
class MeetingActionCompleted(EventPayload):
    """An action agreed at a team meeting was completed."""

    event_type = "team.meeting_action_completed"
    category = "education"
    open_fields: ClassVar[tuple[str, ...]] = ("action_id", "meeting_id", "completed_by")

    action_id: PractitionerRef
    meeting_id: PractitionerRef | None = None
    completed_on: date
    completed_by: PractitionerRef | None = None


# --------------------------------------------------------------------------- key working periods


@registry.register
class KeyWorkerHandoverStarted(EventPayload):
    """Key working passes from one key worker to the next with an overlap: the incoming
    key worker (their own `team.key_worker_assigned`, from `handed_over_on`) and the
    outgoing one are both key workers until `overlap_until`, the outgoing one's last day;
    `reason` is free text about the child: personal."""

    event_type = "team.key_worker_handover_started"
    category = "education"
    open_fields: ClassVar[tuple[str, ...]] = ("outgoing_id", "incoming_id")

    outgoing_id: KeyWorkerId = Field(description="The key worker handing over (`KeyWorkerId`)")
    incoming_id: KeyWorkerId = Field(description="The key worker taking over (`KeyWorkerId`)")
    handed_over_on: date = Field(description="The incoming key worker's first day")
    overlap_until: date = Field(description="The outgoing key worker's last day")
    reason: ActionText | None = None

    @model_validator(mode="after")
    def _consistent(self) -> KeyWorkerHandoverStarted:
        if self.incoming_id == self.outgoing_id:
            raise ValueError("incoming_id: is the outgoing key worker")
        if self.overlap_until < self.handed_over_on:
            raise ValueError("overlap_until: is before handed_over_on")
        return self


@registry.register
class KeyWorkerCoverArranged(EventPayload):
    """Who to contact when a key worker is absent: a practitioner on the team, or a work
    contact (a duty line or team inbox), from `arranged_on` until `until` (open when
    none). A later arrangement for the same key worker replaces the earlier one. The work
    contact is free text, sealed with the rest."""

    event_type = "team.key_worker_cover_arranged"
    category = "education"
    open_fields: ClassVar[tuple[str, ...]] = ("key_worker_id", "cover_practitioner_id")

    key_worker_id: KeyWorkerId = Field(description="The key worker covered (`KeyWorkerId`)")
    cover_practitioner_id: PractitionerRef | None = Field(
        default=None, description="A practitioner on the team who covers"
    )
    cover_contact: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="A work contact for absence (never the child's or the family's details)",
    )
    arranged_on: date
    until: date | None = None

    @model_validator(mode="after")
    def _consistent(self) -> KeyWorkerCoverArranged:
        if self.cover_practitioner_id is None and self.cover_contact is None:
            raise ValueError("cover_practitioner_id: name a practitioner or a cover_contact")
        if self.cover_practitioner_id == self.key_worker_id:
            raise ValueError("cover_practitioner_id: is the key worker covered")
        if self.until is not None and self.until < self.arranged_on:
            raise ValueError("until: is before arranged_on")
        return self


@registry.register
class KeyWorkingEnded(EventPayload):
    """Key working ended on `ended_on` (the last day): for one key worker, or for every
    key worker of the child when `key_worker_id` is none. `reason` is free text about the
    child: personal."""

    event_type = "team.key_working_ended"
    category = "education"
    open_fields: ClassVar[tuple[str, ...]] = ("key_worker_id",)

    key_worker_id: KeyWorkerId | None = Field(
        default=None, description="The key worker whose period ends (none: all of them)"
    )
    ended_on: date = Field(description="The last day of key working")
    reason: ActionText
