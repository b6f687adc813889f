"""Education events: SEN status and needs, pupil identity, school placements, attendance
and exclusions, as a school's MIS or the LA records them. Everything about the child is
sealed with the child's key by the consent gate; a class's `open_fields` names what is
not: the school's own codes (LA code, establishment number, URN), which say which school
sent or holds the record, as the envelope's source does, and nothing about the pupil.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hub.events.envelope import EventPayload
from hub.events.registry import registry

SenProvision = Literal["E", "K", "N"]
"""E = EHC plan, K = SEN support, N = no special educational need (DfE codes since 2014)."""

SenNeedType = Literal[
    "SPLD", "MLD", "SLD", "PMLD", "SEMH", "SLCN", "HI", "VI", "MSI", "PD", "ASD", "OTH", "NSA"
]
"""DfE primary/secondary SEN need type codes."""


class SenNeedRanked(BaseModel):
    """One SEN need with its rank (1 = primary)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: SenNeedType
    rank: int = Field(ge=1, le=9)


@registry.register
class SenStatusRecorded(EventPayload):
    """A school or the LA recorded the child's SEN provision status and needs."""

    event_type = "education.sen_status_recorded"
    schema_version = 2
    category = "education"
    open_fields: ClassVar[tuple[str, ...]] = ()

    sen_provision: SenProvision
    start_date: date
    end_date: date | None = None
    needs: tuple[SenNeedRanked, ...] = ()

    @model_validator(mode="after")
    def _end_after_start(self) -> SenStatusRecorded:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


_V1_PROVISION = {"S": "E", "P": "K", "A": "K", "N": "N"}
_V1_NEED = {"BESD": "SEMH"}


@registry.upcaster(SenStatusRecorded.event_type, from_version=1)
def upcast_sen_status_v1_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 used the pre-2014 codes (S statement, P School Action Plus, A School Action) and a
    single `need_type` (with BESD, renamed SEMH in the 2014 Code of Practice); v2 uses the
    E/K/N codes and a ranked list of needs."""
    out = {k: v for k, v in payload.items() if k not in ("sen_provision", "need_type")}
    out["sen_provision"] = _V1_PROVISION.get(
        payload.get("sen_provision", ""), payload.get("sen_provision")
    )
    need = payload.get("need_type")
    out["needs"] = [] if not need else [{"type": _V1_NEED.get(need, need), "rank": 1}]
    return out


# --- Pupil identity, placement, attendance and exclusions (school MIS: CTF and JSON) ---

Text100 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
LaCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{3}$")]
EstabNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
SchoolUrn = Annotated[str, StringConstraints(pattern=r"^[0-9]{6,7}$")]
Phase = Literal["early_years", "primary", "secondary", "post16"]
"""School phase: from the pupil's NC year where known, else from the DfE establishment
number range (1000-1099 nursery, 2000-3999 primary, 4000-4999 secondary)."""
ProvisionType = Literal["mainstream", "special", "alternative_provision", "independent"]
"""From the DfE establishment number range: 7000-7999 special, 1100-1199 pupil referral
units, 6000-6999 independent, other state-funded ranges mainstream."""
NcYear = Literal[
    "N1", "N2", "R", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "X"
]
ExclusionCategory = Literal["FIXD", "SUSP", "PERM", "LNCH"]
"""FIXD fixed-period (called SUSP, suspension, since 2022), PERM permanent, LNCH lunchtime."""


class PostalAddress(BaseModel):
    """A postal address as a school or council holds it (BS7666 lines flattened)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    lines: tuple[Text100, ...] = Field(
        default=(), max_length=8, description="SAON, PAON, street, locality"
    )
    town: Text100 | None = None
    county: Text100 | None = None
    postcode: str | None = Field(default=None, max_length=16)
    uprn: str | None = Field(
        default=None, pattern=r"^[0-9]{1,12}$", description="Unique property reference"
    )


@registry.register
class PupilIdentified(EventPayload):
    """A school recorded who the pupil is: identifiers, names, date of birth, gender and
    home address, as its MIS holds them. Every field is personal data."""

    event_type = "education.pupil_identified"
    category = "education"
    open_fields: ClassVar[tuple[str, ...]] = ()

    upn: str | None = Field(
        default=None, max_length=32, description="As sent; validated by the identity layer"
    )
    former_upns: tuple[Annotated[str, StringConstraints(max_length=32)], ...] = Field(
        default=(), max_length=10
    )
    uln: str | None = Field(default=None, max_length=16, description="Unique learner number")
    surname: Name | None = None
    forename: Name | None = None
    middle_names: Name | None = None
    preferred_surname: Name | None = None
    preferred_forename: Name | None = None
    date_of_birth: date | None = None
    gender: Literal["M", "F", "U"] | None = None
    address: PostalAddress | None = None


@registry.register
class PlacementRecorded(EventPayload):
    """The pupil was (or is) on the roll of a school from `entry_date`, until
    `leaving_date` when they left; an open placement is the current one."""

    event_type = "education.placement_recorded"
    category = "education"
    open_fields: ClassVar[tuple[str, ...]] = ("la_code", "estab", "urn")

    la_code: LaCode | None = None
    estab: EstabNumber | None = None
    urn: SchoolUrn | None = None
    school_name: str | None = Field(default=None, max_length=200)
    phase: Phase | None = None
    provision_type: ProvisionType | None = None
    entry_date: date
    leaving_date: date | None = None
    leaving_reason: str | None = Field(default=None, pattern=r"^[A-Z0-9]{1,4}$")
    nc_year: NcYear | None = Field(
        default=None, description="National curriculum year, current placement only"
    )
    enrolment_status: Literal["C", "M", "S", "G", "O"] | None = Field(
        default=None,
        description="C single, M main dual, S subsidiary dual, G guest, O other providers",
    )

    @model_validator(mode="after")
    def _leaving_after_entry(self) -> PlacementRecorded:
        if self.leaving_date is not None and self.leaving_date < self.entry_date:
            raise ValueError("leaving_date is before entry_date")
        if self.estab is None and self.urn is None:
            raise ValueError("a placement names its school by estab or urn")
        return self


@registry.register
class AttendanceRecorded(EventPayload):
    """The pupil's attendance at one school over one academic year, in sessions
    (half days): possible, attended, authorised and unauthorised absence."""

    event_type = "education.attendance_recorded"
    category = "education"
    open_fields: ClassVar[tuple[str, ...]] = ("la_code", "estab", "urn")

    academic_year: int = Field(
        ge=1990, le=2100, description="Year the academic year starts (2019 = 2019/20)"
    )
    la_code: LaCode | None = None
    estab: EstabNumber | None = None
    urn: SchoolUrn | None = None
    school_name: str | None = Field(default=None, max_length=200)
    sessions_possible: int = Field(ge=0, le=1000)
    sessions_attended: int = Field(ge=0, le=1000)
    sessions_authorised_absence: int = Field(ge=0, le=1000)
    sessions_unauthorised_absence: int = Field(ge=0, le=1000)

    @model_validator(mode="after")
    def _within_possible(self) -> AttendanceRecorded:
        counted = (
            self.sessions_attended
            + self.sessions_authorised_absence
            + self.sessions_unauthorised_absence
        )
        if counted > self.sessions_possible:
            raise ValueError("sessions attended and absent exceed the sessions possible")
        return self


@registry.register
class ExclusionRecorded(EventPayload):
    """The pupil was suspended (fixed period), excluded permanently or excluded at
    lunchtime by a school, with the DfE reason codes."""

    event_type = "education.exclusion_recorded"
    category = "education"
    open_fields: ClassVar[tuple[str, ...]] = ("la_code", "estab", "urn")

    la_code: LaCode | None = None
    estab: EstabNumber | None = None
    urn: SchoolUrn | None = None
    exclusion_category: ExclusionCategory
    start_date: date
    end_date: date | None = None
    sessions: int | None = Field(default=None, ge=0, le=1000)
    reasons: tuple[Annotated[str, StringConstraints(pattern=r"^[A-Z]{2,4}$")], ...] = Field(
        default=(), max_length=3, description="DfE exclusion reason codes (PP, VA, BU, ...)"
    )

    @model_validator(mode="after")
    def _end_after_start(self) -> ExclusionRecorded:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self
