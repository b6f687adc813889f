"""Family events: the people around the child as the family's and agencies' records name
them, and (from the family portal) the family's own contributions.

Filed under the `identity` category: who the child's relatives and carers are, and how to
reach them. Everything is sealed with the child's key on the log but what each class's
`open_fields` names: opaque references to people and principals, never names.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hub.events.envelope import EventPayload
from hub.events.health import Coding
from hub.events.registry import registry


class ContactPoint(BaseModel):
    """A phone number, email address or other way to reach a person."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    system: str | None = Field(default=None, max_length=16, description="phone, email, ...")
    value: str = Field(min_length=1, max_length=256)
    use: str | None = Field(default=None, max_length=16, description="home, work, mobile, ...")


class PostalAddress(BaseModel):
    """A postal address as sent."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    lines: tuple[Annotated[str, StringConstraints(max_length=256)], ...] = ()
    city: str | None = Field(default=None, max_length=128)
    postcode: str | None = Field(default=None, max_length=16)


@registry.register
class RelatedPersonRecorded(EventPayload):
    """A record named a person related to the child (a parent, carer, relative or other
    contact): how they are related, their name and how to contact them."""

    event_type = "family.related_person_recorded"
    category = "identity"
    open_fields: ClassVar[tuple[str, ...]] = ("related_person_ref",)

    related_person_ref: str = Field(
        min_length=1, max_length=256, description="The sender's reference to the person"
    )
    recorded_as: Literal["related_person", "patient_contact"] = Field(
        description="A FHIR RelatedPerson, or a contact on the Patient resource"
    )
    relationships: tuple[Coding, ...] = Field(
        default=(), description="e.g. v3-RoleCode MTH, FTH, GUARD"
    )
    given_names: tuple[Annotated[str, StringConstraints(max_length=128)], ...] = ()
    family_name: str | None = Field(default=None, max_length=128)
    name_text: str | None = Field(default=None, max_length=256)
    contacts: tuple[ContactPoint, ...] = ()
    address: PostalAddress | None = None
    active: bool | None = None


@registry.register
class ContactRecorded(EventPayload):
    """A school or council recorded a contact for the child who holds parental
    responsibility: name, relationship (DfE code, e.g. PAM mother, PAF father, CAF/CAM
    carer), priority order, address and how to reach them. Only contacts with parental
    responsibility are taken; other emergency contacts are not the hub's to hold."""

    event_type = "family.contact_recorded"
    category = "identity"
    open_fields: ClassVar[tuple[str, ...]] = ()

    contact_order: int | None = Field(
        default=None, ge=1, le=99, description="Priority among contacts"
    )
    relationship: str | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="DfE relationship code"
    )
    parental_responsibility: bool
    court_order: bool | None = None
    lives_with_child: bool | None = Field(
        default=None, description="Address is the child's address"
    )
    title: str | None = Field(default=None, max_length=32)
    surname: str | None = Field(default=None, max_length=128)
    forename: str | None = Field(default=None, max_length=128)
    middle_names: str | None = Field(default=None, max_length=128)
    address: PostalAddress | None = None
    contact_points: tuple[ContactPoint, ...] = Field(default=(), max_length=20)


ViewsOf = Literal["child", "young_person", "parent", "carer"]
"""Whose views: the child's, the young person's (over compulsory school age), a
parent's, or a carer's."""

ViewsText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]
ListItem = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


@registry.register
class ViewsRecorded(EventPayload):
    """The child's, young person's or parents' own views, interests and aspirations were
    recorded for section A of the plan ("all about me"), in their own words: a
    contribution like any practitioner's advice. Filed under `family_views`."""

    event_type = "family.views_recorded"
    category = "family_views"
    open_fields: ClassVar[tuple[str, ...]] = ("contributor_ref", "recorded_by")

    whose: ViewsOf
    contributor_ref: str | None = Field(
        default=None, max_length=256, description="Which parent or carer (a reference, not a name)"
    )
    recorded_on: date
    recorded_by: str | None = Field(
        default=None, max_length=128, description="Practitioner or principal id, if not the family"
    )
    views: ViewsText
    interests: tuple[ListItem, ...] = Field(default=(), max_length=50)
    aspirations: tuple[ListItem, ...] = Field(default=(), max_length=50)
