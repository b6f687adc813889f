"""Safeguarding events: section 47 enquiries and child protection plans as children's
social care records them (DfE CIN census code set). Their category is `safeguarding`,
which the consent policy shares only under a consent naming it or a safeguarding basis,
and then to a narrower audience. Every field is sealed with the child's key.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from hub.events.envelope import EventPayload
from hub.events.registry import registry

CategoryOfAbuse = Literal["NEG", "PHY", "SAB", "EMO", "MUL"]
"""Neglect, physical, sexual, emotional abuse; MUL multiple (no longer recommended)."""


@registry.register
class Section47Recorded(EventPayload):
    """A section 47 (Children Act 1989) enquiry started within the episode referred on
    `referral_date`, with the initial child protection conference's target and actual
    dates, or that none was required."""

    event_type = "safeguarding.section47_recorded"
    category = "safeguarding"
    open_fields: ClassVar[tuple[str, ...]] = ()

    referral_date: date
    start_date: date
    initial_cpc_target: date | None = None
    initial_cpc_date: date | None = None
    icpc_not_required: bool = False

    @model_validator(mode="after")
    def _conference_after_start(self) -> Section47Recorded:
        if self.initial_cpc_date is not None and self.initial_cpc_date < self.start_date:
            raise ValueError("initial_cpc_date is before start_date")
        return self


@registry.register
class ChildProtectionPlanRecorded(EventPayload):
    """A child protection plan within the episode referred on `referral_date`: its dates,
    initial and latest category of abuse, how many plans came before, and its reviews."""

    event_type = "safeguarding.cp_plan_recorded"
    category = "safeguarding"
    open_fields: ClassVar[tuple[str, ...]] = ()

    referral_date: date
    start_date: date
    end_date: date | None = None
    initial_category: CategoryOfAbuse
    latest_category: CategoryOfAbuse
    previous_plans: int | None = Field(default=None, ge=0, le=99)
    review_dates: tuple[date, ...] = Field(default=(), max_length=100)

    @model_validator(mode="after")
    def _dates_in_order(self) -> ChildProtectionPlanRecorded:
        if self.end_date is not None and self.end_date <= self.start_date:
            raise ValueError("end_date is not after start_date")
        if any(d <= self.start_date for d in self.review_dates):
            raise ValueError("a review date is on or before start_date")
        return self
