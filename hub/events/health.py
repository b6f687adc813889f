"""Health events: what an NHS system recorded about a child, as its FHIR R4 resources say it.

Each payload is the hub's reading of one FHIR resource (Patient, Condition, Encounter,
Observation, CarePlan, DocumentReference): the codes as sent (SNOMED CT, LOINC, NHS Data
Dictionary — system, code and display, never re-coded), the statuses, the dates, and the
ODS codes of the organisations involved. References to other resources are the sender's
own (`Condition/abc`, `urn:uuid:...`), kept so that later facts can be tied together.
The data category is `health` (`identity` for the patient's demographics); the adapter
raises it to `mental_health` or `sexual_health` on the envelope when the codes say so.
Everything about the child — codes, displays, statuses, dates, values, free text — is
sealed with the child's key on the log; each class's `open_fields` names what is not: the
sender's resource references and the ODS codes of the organisations involved.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from hub.events.envelope import EventPayload
from hub.events.registry import registry

When = AwareDatetime | date
"""A FHIR `dateTime`: a day, or an instant with its offset (partial dates are not kept)."""

Ref = Annotated[str, StringConstraints(min_length=1, max_length=256)]
"""A reference to a FHIR resource as the sender wrote it (`Condition/abc`, `urn:uuid:..`)."""

Text = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
"""Free text (a note, a description): personal."""

OrganisationCode = Annotated[str, StringConstraints(min_length=1, max_length=32)]
"""An ODS organisation code."""


class Coding(BaseModel):
    """One code from a code system, with the sender's display text."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    system: str | None = Field(default=None, max_length=256)
    code: str | None = Field(default=None, max_length=128)
    display: str | None = Field(default=None, max_length=512)


class Concept(BaseModel):
    """A FHIR CodeableConcept: the codings (any number of code systems) and a label."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    codings: tuple[Coding, ...] = ()
    text: str | None = Field(default=None, max_length=512)


class Quantity(BaseModel):
    """A measured amount with its UCUM (or other) unit."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    value: Decimal | None = None
    comparator: Literal["<", "<=", ">=", ">"] | None = None
    unit: str | None = Field(default=None, max_length=128)
    system: str | None = Field(default=None, max_length=256)
    code: str | None = Field(default=None, max_length=128)


ValueKind = Literal[
    "quantity",
    "concept",
    "string",
    "boolean",
    "integer",
    "range",
    "ratio",
    "time",
    "datetime",
    "period",
    "sampled_data",
]


class ObservedValue(BaseModel):
    """An observation's `value[x]`: `kind` says which of the fields holds it. A range and
    a ratio use `low`/`high` (numerator/denominator); a period uses `start`/`end`;
    sampled data is noted by kind only."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: ValueKind
    quantity: Quantity | None = None
    concept: Concept | None = None
    text: str | None = Field(default=None, max_length=4000, description="A string value: personal")
    boolean: bool | None = None
    integer: int | None = None
    low: Quantity | None = None
    high: Quantity | None = None
    start: When | None = None
    end: When | None = None


class ObservationComponent(BaseModel):
    """One component of an observation (e.g. systolic within a blood pressure). String
    values of components are not carried (minimum necessary): their kind is."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    code: Concept
    value: ObservedValue | None = None
    data_absent_reason: str | None = Field(default=None, max_length=64)


class CarePlanActivity(BaseModel):
    """One planned activity: what, of which kind of request, and how far it has got."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    code: Concept | None = None
    kind: str | None = Field(default=None, max_length=64)
    status: str | None = Field(default=None, max_length=32)
    reference: Ref | None = None


class DocumentAttachment(BaseModel):
    """Where a document's content is and what it is (the content itself is not carried)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    content_type: str | None = Field(default=None, max_length=128)
    url: str | None = Field(default=None, max_length=1024)
    title: str | None = Field(default=None, max_length=512)
    size: int | None = Field(default=None, ge=0)
    created: When | None = None


Attendance = Literal["attended", "did_not_attend", "cancelled", "planned", "unknown"]
"""Whether the child came: from `Encounter.status` and, for a cancelled encounter, an NHS
Data Dictionary attended-or-did-not-attend code or SNOMED CT 'did not attend' if sent."""

Gender = Literal["male", "female", "other", "unknown"]


@registry.register
class PatientIdentified(EventPayload):
    """A health system identified the child: NHS number (as sent, with its verification
    status), names, date of birth, gender and postcode, and the registered GP practice."""

    event_type = "health.patient_identified"
    category = "identity"
    open_fields: ClassVar[tuple[str, ...]] = (
        "patient_ref",
        "gp_practice_code",
        "managing_organisation_code",
    )

    patient_ref: Ref
    nhs_number: str | None = Field(default=None, max_length=32, description="As sent, unchecked")
    nhs_number_verification: Coding | None = Field(
        default=None, description="UK Core NHSNumberVerificationStatus (e.g. 01 = verified)"
    )
    given_names: tuple[Annotated[str, StringConstraints(max_length=128)], ...] = ()
    family_name: str | None = Field(default=None, max_length=128)
    date_of_birth: date | None = None
    gender: Gender | None = None
    postcode: str | None = Field(default=None, max_length=16)
    deceased: bool | None = None
    gp_practice_code: OrganisationCode | None = None
    managing_organisation_code: OrganisationCode | None = None


@registry.register
class ConditionRecorded(EventPayload):
    """A diagnosis, problem or health concern was recorded (code as sent, e.g. SNOMED CT),
    with its clinical and verification status and when it began."""

    event_type = "health.condition_recorded"
    category = "health"
    open_fields: ClassVar[tuple[str, ...]] = ("condition_ref", "encounter_ref")

    condition_ref: Ref
    code: Concept
    clinical_status: str | None = Field(default=None, max_length=32)
    verification_status: str | None = Field(default=None, max_length=32)
    categories: tuple[Coding, ...] = ()
    severity: Concept | None = None
    onset: When | None = None
    abatement: When | None = None
    recorded_date: When | None = None
    encounter_ref: Ref | None = None
    notes: tuple[Text, ...] = ()


@registry.register
class EncounterRecorded(EventPayload):
    """An appointment, visit or admission took place (or was missed, or cancelled): its
    class, type, service, period and the ODS code of the provider."""

    event_type = "health.encounter_recorded"
    category = "health"
    open_fields: ClassVar[tuple[str, ...]] = ("encounter_ref", "service_provider_code")

    encounter_ref: Ref
    status: str = Field(min_length=1, max_length=32, description="Encounter.status as sent")
    attendance: Attendance
    encounter_class: Coding | None = None
    types: tuple[Concept, ...] = ()
    service_type: Concept | None = None
    reasons: tuple[Concept, ...] = ()
    start: When | None = None
    end: When | None = None
    service_provider_code: OrganisationCode | None = None


@registry.register
class ObservationRecorded(EventPayload):
    """A measurement, assessment result or finding was recorded, with its value, its
    components (e.g. systolic and diastolic) and the members of a panel summarised."""

    event_type = "health.observation_recorded"
    category = "health"
    open_fields: ClassVar[tuple[str, ...]] = ("observation_ref", "members", "encounter_ref")

    observation_ref: Ref
    status: str = Field(min_length=1, max_length=32)
    categories: tuple[Coding, ...] = ()
    code: Concept
    value: ObservedValue | None = None
    data_absent_reason: str | None = Field(default=None, max_length=64)
    interpretation: tuple[Coding, ...] = ()
    effective: When | None = None
    effective_end: When | None = None
    issued: AwareDatetime | None = None
    components: tuple[ObservationComponent, ...] = ()
    members: tuple[Ref, ...] = Field(default=(), description="hasMember references")
    encounter_ref: Ref | None = None
    notes: tuple[Text, ...] = ()


@registry.register
class CarePlanRecorded(EventPayload):
    """A health care plan was recorded: its status and intent, what it addresses, its
    period and its activities."""

    event_type = "health.care_plan_recorded"
    category = "health"
    open_fields: ClassVar[tuple[str, ...]] = ("care_plan_ref", "addresses")

    care_plan_ref: Ref
    status: str = Field(min_length=1, max_length=32)
    intent: str = Field(min_length=1, max_length=32)
    categories: tuple[Concept, ...] = ()
    title: Text | None = None
    description: Text | None = None
    start: When | None = None
    end: When | None = None
    created: When | None = None
    addresses: tuple[Ref, ...] = Field(default=(), description="The conditions it addresses")
    activities: tuple[CarePlanActivity, ...] = ()
    notes: tuple[Text, ...] = ()


@registry.register
class DocumentRecorded(EventPayload):
    """A health document (a letter, a report, a plan) was made available: its type, date,
    custodian and where its content is. Used for documents that do not answer an EHC
    advice request (those are `plan.advice_submitted`)."""

    event_type = "health.document_recorded"
    category = "health"
    open_fields: ClassVar[tuple[str, ...]] = (
        "document_ref",
        "custodian_code",
        "related",
        "encounter_refs",
    )

    document_ref: Ref
    status: str = Field(min_length=1, max_length=32)
    doc_status: str | None = Field(default=None, max_length=32)
    type: Concept | None = None
    categories: tuple[Concept, ...] = ()
    dated: AwareDatetime | None = Field(default=None, description="DocumentReference.date")
    custodian_code: OrganisationCode | None = None
    description: Text | None = None
    attachments: tuple[DocumentAttachment, ...] = ()
    related: tuple[Ref, ...] = Field(default=(), description="context.related references")
    encounter_refs: tuple[Ref, ...] = ()
