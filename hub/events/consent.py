"""Consent events: what the family decided about sharing, and who could decide it.

`consent.recorded` is a grant or a refusal with its scope (who may see, which data
categories, for which purposes), its period and how it was captured, with nested
exceptions that carve out of it the way FHIR's nested `Consent.provision` does;
`consent.withdrawn` and `consent.expired` end one from a point in time;
`consent.capacity_assessed` records that a young person lacks (or has regained) capacity
for information-sharing decisions and who acts for them. Consent metadata is filed under
the `identity` category: it says nothing about the child's health or care. Payloads hold
references (ids), never names. What the family decided (grant or refusal, who, its scope
and period, how it was captured), and a young person's capacity, are about the child and
sealed with the child's key like any fact (the consent state is folded from the opened
events); open (`open_fields`) are only the consent's or assessment's id, which the
`consent_state` view indexes without keys (which children have a consent of an id), and
the hub principal who recorded it.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hub.events.envelope import EventPayload, Purpose
from hub.events.registry import registry

ConsentDecision = Literal["permit", "deny"]
"""A grant (`permit`) or a refusal (`deny`)."""

GrantorCapacity = Literal["parent_with_pr", "young_person", "deputy", "representative"]
"""In what capacity the grantor decides: a parent (anyone with parental responsibility),
the young person themself, a Court of Protection deputy, or a representative (CFA s.80)."""

ActingCapacity = Literal["parent_with_pr", "deputy", "representative"]
"""Who may act for a young person who lacks capacity (CFA 2014 s.80)."""

PURPOSES: tuple[Purpose, ...] = ("ehc_assessment", "plan_delivery", "review", "direct_care")

CaptureMethod = Literal["form", "verbal_witnessed", "fhir_import"]

Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
"""A lower-case code: a data category, hub or practitioner role, or agency."""

OrganisationCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")]
"""An ODS code, URN, UKPRN or LA code."""

Reference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/|-]{0,127}$")]
"""An opaque reference to a person or principal (an id, never a name: no spaces)."""

MAX_EXCEPTION_DEPTH = 4


class Grantor(BaseModel):
    """Who gave (or refused) the consent, by reference, and in what capacity."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    reference: Reference
    capacity: GrantorCapacity


class ConsentScope(BaseModel):
    """What a provision covers. An empty axis means "any" (as an absent element does in
    FHIR); a permit still never covers a category the policy marks `named_consent_only`
    unless it names that category."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    agencies: tuple[Code, ...] = Field(default=(), description="Agencies that may see")
    organisations: tuple[OrganisationCode, ...] = Field(
        default=(), description="Organisations that may see"
    )
    roles: tuple[Code, ...] = Field(default=(), description="Hub or practitioner roles")
    categories: tuple[Code, ...] = Field(default=(), description="Data categories")
    purposes: tuple[Purpose, ...] = Field(default=(), description="Purposes of sharing")

    def within(self, parent: ConsentScope) -> str | None:
        """None if every axis of this scope lies inside `parent`'s (an empty axis inherits
        the parent's), else the name of the first axis that does not."""
        for axis in ("agencies", "organisations", "roles", "categories", "purposes"):
            mine: tuple[str, ...] = getattr(self, axis)
            theirs: tuple[str, ...] = getattr(parent, axis)
            if theirs and mine and not set(mine) <= set(theirs):
                return axis
        return None


class ConsentException(BaseModel):
    """A nested provision: the opposite decision for part of its parent's scope."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    decision: ConsentDecision
    scope: ConsentScope = ConsentScope()
    exceptions: tuple[ConsentException, ...] = ()


class ConsentPeriod(BaseModel):
    """The days the consent is in force, both inclusive (UTC); no end = until withdrawn."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    start: date
    end: date | None = None

    @model_validator(mode="after")
    def _end_not_before_start(self) -> ConsentPeriod:
        if self.end is not None and self.end < self.start:
            raise ValueError("end is before start")
        return self


def _check_exceptions(
    decision: ConsentDecision,
    scope: ConsentScope,
    exceptions: tuple[ConsentException, ...],
    path: str,
    depth: int,
) -> None:
    if exceptions and depth >= MAX_EXCEPTION_DEPTH:
        raise ValueError(f"{path}: exceptions nest deeper than {MAX_EXCEPTION_DEPTH}")
    for i, exc in enumerate(exceptions):
        where = f"{path}[{i}]"
        if exc.decision == decision:
            raise ValueError(
                f"{where}.decision: an exception must be the opposite of its parent ({decision})"
            )
        axis = exc.scope.within(scope)
        if axis is not None:
            raise ValueError(f"{where}.scope.{axis}: must lie within the parent's {axis}")
        _check_exceptions(exc.decision, exc.scope, exc.exceptions, f"{where}.exceptions", depth + 1)


@registry.register
class ConsentRecorded(EventPayload):
    """The family granted (`permit`) or refused (`deny`) sharing, within a scope and period."""

    event_type = "consent.recorded"
    category = "identity"
    open_fields: ClassVar[tuple[str, ...]] = ("consent_id", "recorded_by")

    consent_id: str = Field(min_length=1, max_length=128)
    decision: ConsentDecision
    grantor: Grantor
    given_on: date = Field(description="The date the grantor decided (authority is checked on it)")
    scope: ConsentScope
    period: ConsentPeriod
    capture_method: CaptureMethod
    witness: Reference | None = Field(
        default=None, description="Who witnessed a verbal consent (reference)"
    )
    recorded_by: Reference = Field(description="The hub principal who recorded it")
    exceptions: tuple[ConsentException, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> ConsentRecorded:
        if self.capture_method == "verbal_witnessed" and self.witness is None:
            raise ValueError("witness: a verbal consent needs a witness")
        if self.capture_method != "verbal_witnessed" and self.witness is not None:
            raise ValueError("witness: only a verbal consent has a witness")
        _check_exceptions(self.decision, self.scope, self.exceptions, "exceptions", 0)
        return self


WithdrawalReason = Literal["family_request", "grantor_authority_ended", "recorded_in_error"]


@registry.register
class ConsentWithdrawn(EventPayload):
    """A consent (grant or refusal) stops applying from the event's `occurred_at`."""

    event_type = "consent.withdrawn"
    category = "identity"
    open_fields: ClassVar[tuple[str, ...]] = ("consent_id", "recorded_by")

    consent_id: str = Field(min_length=1, max_length=128)
    withdrawn_by: Grantor | None = Field(
        default=None, description="Who asked for the withdrawal, when a person did"
    )
    reason: WithdrawalReason = "family_request"
    recorded_by: Reference


ExpiryReason = Literal["period_ended", "grantor_authority_ended", "review_due"]


@registry.register
class ConsentExpired(EventPayload):
    """A consent lapsed (its period ended, or the grantor's authority did — e.g. a parent's
    consent once the young person is over compulsory school age)."""

    event_type = "consent.expired"
    category = "identity"
    open_fields: ClassVar[tuple[str, ...]] = ("consent_id", "recorded_by")

    consent_id: str = Field(min_length=1, max_length=128)
    reason: ExpiryReason = "period_ended"
    recorded_by: Reference = "hub"


@registry.register
class CapacityAssessed(EventPayload):
    """A young person's capacity for information-sharing decisions was assessed (Mental
    Capacity Act 2005); if they lack it, the record names who acts for them (CFA s.80)."""

    event_type = "consent.capacity_assessed"
    category = "identity"
    open_fields: ClassVar[tuple[str, ...]] = ("assessment_id", "assessed_by")

    assessment_id: str = Field(min_length=1, max_length=128)
    lacks_capacity: bool
    decision: Literal["information_sharing"] = "information_sharing"
    acting_capacity: ActingCapacity | None = None
    acting_reference: Reference | None = None
    assessed_on: date
    review_by: date | None = None
    assessed_by: Reference

    @model_validator(mode="after")
    def _names_who_acts(self) -> CapacityAssessed:
        if self.lacks_capacity and self.acting_capacity is None:
            raise ValueError("acting_capacity: a lack of capacity must name who acts")
        if not self.lacks_capacity and (
            self.acting_capacity is not None or self.acting_reference is not None
        ):
            raise ValueError("acting_capacity: only a lack of capacity names who acts")
        if self.review_by is not None and self.review_by < self.assessed_on:
            raise ValueError("review_by is before assessed_on")
        return self


ConsentEvent = ConsentRecorded | ConsentWithdrawn | ConsentExpired | CapacityAssessed
"""The payloads a consent state folds."""
