"""How a sender names the child a record is about: strong identifiers and demographics.

Adapters fill it in from each inbound format; identity resolution links it to a hub child
by its strong identifiers only. The demographics are only ever used to propose a match
for a person to confirm (the match queue).
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field


class Subject(BaseModel):
    """How a sender names the child. Strong identifiers link; the demographics are only
    ever used to propose a match for a person to confirm (the match queue)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nhs_number: str | None = Field(default=None, max_length=32)
    upn: str | None = Field(default=None, max_length=32)
    former_upn: str | None = Field(default=None, max_length=32)
    la_code: str | None = Field(default=None, max_length=8)
    la_child_id: str | None = Field(default=None, max_length=64)
    hub_child_id: str | None = Field(default=None, max_length=64, description="When already known")
    given_name: str | None = Field(default=None, max_length=128)
    family_name: str | None = Field(default=None, max_length=128)
    date_of_birth: date | None = None
    postcode: str | None = Field(default=None, max_length=16)
