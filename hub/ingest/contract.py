"""The contract form of `POST /ingest/events`: a domain event naming its child by a
strong identifier. Its JSON Schema is `contracts/inbound/events.schema.json`
(`python -m hub.contracts` regenerates it; a test fails on drift)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.ingest.model import Subject


class InboundSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agency: str = Field(min_length=1, max_length=64)
    organisation_code: str | None = Field(default=None, max_length=32)
    system: str | None = Field(default=None, max_length=128)
    message_id: str | None = Field(
        default=None,
        max_length=256,
        description="The sender's id for this event: a repeat with the same id is taken "
        "once; for event types with a natural key (hub/ingest/natural_keys.py) the same fact "
        "with the same content under any id is taken once, and other content is a new version",
    )


class InboundEvent(BaseModel):
    """A domain event in the contract form of `contracts/events/`, naming its child by a
    strong identifier instead of a hub child id."""

    model_config = ConfigDict(extra="forbid")

    event_type: str = Field(examples=["education.sen_status_recorded"])
    schema_version: int = Field(ge=1)
    subject: Subject
    source: InboundSource
    occurred_at: datetime
    plan_id: str | None = Field(default=None, max_length=64)
    category: str | None = Field(
        default=None, max_length=64, description="Override of the type's category"
    )
    purposes: list[Literal["ehc_assessment", "plan_delivery", "review", "direct_care"]] = Field(
        default_factory=list, description="Why it is shared (default: the EHC process)"
    )
    statutory_basis: str | None = Field(
        default=None, description="A statutory basis the sender relies on, e.g. reg6_ehc_advice"
    )
    correlation_id: str | None = None
    payload: dict[str, Any]
