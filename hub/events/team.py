"""Team events: who is in the team around a child, who holds the key working functions,
and the team's meetings with their decisions and actions.

Practitioners join and leave in a role from the controlled vocabulary
(contracts/consent-policy.yaml `roles`); key working is recorded as which of the ten
functions each holder has (single-person or multi-person model); a meeting records its
attendees, decisions and actions (owner and due date), and each action's completion.
Meeting decisions and actions are free text about the child: `personal_fields`.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hub.events.envelope import EventPayload
from hub.events.registry import registry


@registry.register
class PractitionerJoined(EventPayload):
    """A practitioner joined the team around the child in a role from the vocabulary.

    It names no `personal_fields`, so the whole payload is sealed with the child's key
    (`hub.consent.sealing.WHOLE`): the practitioner's name and contact with the rest, and
    all of it unreadable once the child is erased. `name`, `contact` and
    `organisation_name` are optional additions of version 1: older records lack them."""

    event_type = "team.practitioner_joined"
    category = "education"

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


@registry.register
class KeyWorkerAssigned(EventPayload):
    """A practitioner holds key working functions for the child. In the single-person
    model they hold all ten; in the multi-person model each holder's event names the
    functions they hold. A later assignment of the same practitioner replaces theirs."""

    event_type = "team.key_worker_assigned"
    category = "education"
    personal_fields: ClassVar[tuple[str, ...]] = ()

    practitioner_id: PractitionerRef
    model: KeyWorkingModel
    functions: tuple[KeyWorkingFunction, ...] = Field(default=KEY_WORKING_FUNCTIONS, min_length=1)
    assigned_on: date

    @model_validator(mode="after")
    def _functions_fit_the_model(self) -> KeyWorkerAssigned:
        if len(set(self.functions)) != len(self.functions):
            raise ValueError("functions: listed twice")
        if self.model == "single_person" and set(self.functions) != set(KEY_WORKING_FUNCTIONS):
            raise ValueError("functions: in the single-person model one key worker holds all ten")
        return self


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
    personal_fields: ClassVar[tuple[str, ...]] = ("decisions", "actions")

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
    personal_fields: ClassVar[tuple[str, ...]] = ()

    action_id: PractitionerRef
    meeting_id: PractitionerRef | None = None
    completed_on: date
    completed_by: PractitionerRef | None = None
