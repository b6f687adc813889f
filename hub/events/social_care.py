"""Social care events: who a child is to children's social care, their recorded
disabilities, children-in-need episodes, CIN plans, assessments with their factors, and
looked-after episodes, in the DfE census (CIN) and SSDA903 code sets. That a child is known
to social care is itself sensitive, so every type here has the `social_care` category,
and every field is sealed with the child's key by the consent gate (`open_fields` is
empty) but the LA's code of a child identified, which names the local authority.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from hub.events.envelope import EventPayload
from hub.events.registry import registry

DisabilityCode = Literal[
    "NONE", "MOB", "HAND", "PC", "INC", "COMM", "LD", "HEAR", "VIS", "BEH", "CON", "AUT", "DDA"
]
"""DfE disability codes (CIN census, school CTF): NONE, mobility, hand function, personal
care, incontinence, communication, learning, hearing, vision, behaviour, consciousness,
autism, other (DDA)."""

ReferralSource = Literal[
    "1A", "1B", "1C", "1D", "2A", "2B", "3A", "3B", "3C", "3D", "3E", "3F",
    "4", "5A", "5B", "5C", "5D", "6", "7", "8", "9", "10",
]  # fmt: skip
"""CIN census source of referral (individual, schools, health, housing, LA services,
police, other legal agency, other, anonymous, unknown)."""

PrimaryNeed = Literal["N0", "N1", "N2", "N3", "N4", "N5", "N6", "N7", "N8", "N9"]
"""CIN primary need: N1 abuse or neglect, N2 child's disability, N3 parental disability or
illness, N4 family in acute stress, N5 family dysfunction, N6 socially unacceptable
behaviour, N7 low income, N8 absent parenting, N9 cases other than children in need,
N0 not stated."""

ClosureReason = Literal["RC1", "RC2", "RC3", "RC4", "RC5", "RC6", "RC7", "RC8", "RC9"]

AssessmentFactor = Literal[
    "1A", "1B", "1C", "2A", "2B", "2C", "3A", "3B", "3C", "4A", "4B", "4C", "5A", "5B", "5C",
    "6A", "6B", "6C", "7A", "8B", "8C", "8D", "8E", "8F", "9A", "10A", "11A", "12A", "13A",
    "14A", "15A", "16A", "17A", "18B", "18C", "19B", "19C", "20", "21", "22A", "23A", "24A",
]  # fmt: skip
"""CIN census factors identified at the end of assessment (2024 code set)."""

UpnUnknownReason = Literal["UN1", "UN2", "UN3", "UN4", "UN5", "UN6", "UN7", "UN8", "UN9", "UN10"]
"""Why a UPN is missing: UN1 child not yet of school age or never at school ... UN7
referral with no further action (CIN); SSDA903 uses UN1-UN10."""

ReasonNewEpisode = Literal["S", "L", "P", "T", "B", "U"]
LegalStatus = Literal[
    "C1", "C2", "D1", "E1", "V2", "V3", "V4", "L1", "L2", "L3", "J1", "J2", "J3"
]  # fmt: skip
LookedAfterNeed = Literal["N1", "N2", "N3", "N4", "N5", "N6", "N7", "N8"]
PlacementType = Literal[
    "A3", "A4", "A5", "A6", "H5", "K1", "K2", "P1", "P2", "P3", "R1", "R2", "R3", "R5", "S1",
    "T0", "T1", "T2", "T3", "T4", "U1", "U2", "U3", "U4", "U5", "U6", "Z1",
]  # fmt: skip
PlacementProvider = Literal["PR0", "PR1", "PR2", "PR3", "PR4", "PR5"]
ReasonEpisodeCeased = Literal[
    "X1", "E11", "E12", "E2", "E3", "E4A", "E4B", "E13", "E41", "E45", "E46", "E47", "E48",
    "E5", "E6", "E7", "E9", "E14", "E15", "E16", "E17", "E8",
]  # fmt: skip
ReasonPlaceChange = Literal[
    "CARPL", "CLOSE", "ALLEG", "STAND", "APPRR", "CREQB", "CREQO", "CHILD", "LAREQ", "PLACE",
    "CUSTOD", "OTHER",
]  # fmt: skip
"""SSDA903 (looked-after children) code sets, 2024-25."""


@registry.register
class ChildIdentified(EventPayload):
    """Children's social care recorded who the child is: LA child id (with the LA's code),
    UPN or why it is unknown, dates of birth (or expected birth) and death, gender or sex
    as returned. Every field but the LA code is personal data."""

    event_type = "social_care.child_identified"
    category = "social_care"
    open_fields: ClassVar[tuple[str, ...]] = ("la_code",)

    la_code: str | None = Field(default=None, pattern=r"^[0-9]{3}$")
    la_child_id: str = Field(min_length=1, max_length=64)
    upn: str | None = Field(
        default=None, max_length=32, description="As sent; validated by the identity layer"
    )
    former_upn: str | None = Field(default=None, max_length=32)
    upn_unknown_reason: UpnUnknownReason | None = None
    date_of_birth: date | None = None
    expected_date_of_birth: date | None = None
    date_of_death: date | None = None
    gender_current: Literal["0", "1", "2", "9"] | None = Field(
        default=None,
        description="CIN to 2023/24: 1 male, 2 female, 0 not recorded or unborn, 9 indeterminate",
    )
    sex: Literal["M", "F", "U"] | None = Field(
        default=None, description="CIN from 2024/25, SSDA903 (1/2 mapped)"
    )

    @model_validator(mode="after")
    def _death_after_birth(self) -> ChildIdentified:
        if self.date_of_death and self.date_of_birth and self.date_of_death < self.date_of_birth:
            raise ValueError("date_of_death is before date_of_birth")
        return self


@registry.register
class DisabilityRecorded(EventPayload):
    """The child's disabilities as recorded (all codes at once; NONE stands alone)."""

    event_type = "social_care.disability_recorded"
    category = "social_care"
    open_fields: ClassVar[tuple[str, ...]] = ()

    disabilities: tuple[DisabilityCode, ...] = Field(min_length=1, max_length=13)

    @model_validator(mode="after")
    def _none_stands_alone(self) -> DisabilityRecorded:
        if "NONE" in self.disabilities and len(self.disabilities) > 1:
            raise ValueError("NONE is recorded together with other disability codes")
        if len(set(self.disabilities)) != len(self.disabilities):
            raise ValueError("a disability code is repeated")
        return self


@registry.register
class CinEpisodeRecorded(EventPayload):
    """A children-in-need episode: referral (date, source, primary need), whether it led to
    no further action, the CIN-level initial child protection conference, and closure.
    The referral date identifies the episode for the child."""

    event_type = "social_care.cin_episode_recorded"
    category = "social_care"
    open_fields: ClassVar[tuple[str, ...]] = ()

    referral_date: date
    referral_source: ReferralSource | None = None
    primary_need: PrimaryNeed | None = None
    referral_nfa: bool | None = Field(default=None, description="Referral with no further action")
    initial_cpc_date: date | None = None
    closure_date: date | None = None
    closure_reason: ClosureReason | None = None

    @model_validator(mode="after")
    def _closure_consistent(self) -> CinEpisodeRecorded:
        if self.closure_date is not None and self.closure_date < self.referral_date:
            raise ValueError("closure_date is before referral_date")
        if (self.closure_date is None) != (self.closure_reason is None):
            raise ValueError("closure_date and closure_reason are given together or not at all")
        return self


@registry.register
class CinPlanRecorded(EventPayload):
    """A child-in-need plan within the episode referred on `referral_date`."""

    event_type = "social_care.cin_plan_recorded"
    category = "social_care"
    open_fields: ClassVar[tuple[str, ...]] = ()

    referral_date: date
    start_date: date
    end_date: date | None = None

    @model_validator(mode="after")
    def _end_after_start(self) -> CinPlanRecorded:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


@registry.register
class AssessmentRecorded(EventPayload):
    """A social care (child and family) assessment within the episode referred on
    `referral_date`: started, reviewed, authorised, and the factors it identified."""

    event_type = "social_care.assessment_recorded"
    category = "social_care"
    open_fields: ClassVar[tuple[str, ...]] = ()

    referral_date: date
    start_date: date
    internal_review_date: date | None = None
    authorisation_date: date | None = None
    factors: tuple[AssessmentFactor, ...] = Field(default=(), max_length=42)

    @model_validator(mode="after")
    def _consistent(self) -> AssessmentRecorded:
        if self.authorisation_date is not None and self.authorisation_date < self.start_date:
            raise ValueError("authorisation_date is before start_date")
        if "21" in self.factors and len(self.factors) > 1:
            raise ValueError("factor 21 (no factors identified) is combined with other factors")
        if len(set(self.factors)) != len(self.factors):
            raise ValueError("a factor code is repeated")
        return self


@registry.register
class LookedAfterEpisodeRecorded(EventPayload):
    """An episode of being looked after (SSDA903): from `start_date` under a legal status
    and in a placement, until `end_date` for `reason_ceased`. The placement's Ofsted URN
    locates a looked-after child, so it is personal data."""

    event_type = "social_care.looked_after_episode_recorded"
    category = "social_care"
    open_fields: ClassVar[tuple[str, ...]] = ()

    start_date: date = Field(description="DECOM")
    reason_new_episode: ReasonNewEpisode = Field(description="RNE")
    legal_status: LegalStatus = Field(description="LS")
    category_of_need: LookedAfterNeed = Field(description="CIN")
    placement_type: PlacementType = Field(description="PLACE (PL in the XML form)")
    placement_provider: PlacementProvider | None = Field(default=None, description="PLACE_PROVIDER")
    end_date: date | None = Field(default=None, description="DEC")
    reason_ceased: ReasonEpisodeCeased | None = Field(default=None, description="REC")
    reason_place_change: ReasonPlaceChange | None = Field(
        default=None, description="REASON_PLACE_CHANGE"
    )
    placement_urn: str | None = Field(
        default=None, pattern=r"^(SC)?[0-9]{6,7}$", description="Ofsted URN"
    )

    @model_validator(mode="after")
    def _end_after_start(self) -> LookedAfterEpisodeRecorded:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        if self.reason_ceased is not None and self.end_date is None:
            raise ValueError("reason_ceased is given for an episode with no end_date")
        return self
