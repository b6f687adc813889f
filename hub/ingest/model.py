"""What every inbound adapter produces and what the ingest path answers.

An adapter turns one inbound message (a CTF file, a FHIR Bundle, a CIN census, a JSON
message) into `InboundFact`s — a typed payload about a child named by the sender's own
identifiers — plus a `NotTaken` line for each part it could not or would not take, with
the reason. The ingest service resolves the subject to a hub child, runs each fact
through the consent gate and answers one `FactOutcome` per fact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.events.envelope import EventPayload, Source


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


@dataclass(frozen=True)
class InboundFact:
    subject: Subject
    payload: EventPayload
    occurred_at: datetime
    source: Source
    ref: str = ""
    """Where in the message the fact came from (e.g. `Pupil[2]/SENneeds/SENneed[1]`); with
    the source message id it is the fact's idempotency key."""
    plan_id: str | None = None
    category: str | None = None
    purposes: tuple[str, ...] = ()
    statutory_basis: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True)
class NotTaken:
    ref: str
    reason: str
    kind: Literal["unsupported", "invalid", "duplicate"] = "invalid"
    field: str | None = None
    rule: str | None = None


@dataclass
class AdapterResult:
    facts: list[InboundFact] = field(default_factory=list)
    not_taken: list[NotTaken] = field(default_factory=list)
    message_id: str | None = None
    """The source message id (CTF header, Bundle id, message id) or, failing that, a
    content hash — the idempotency key of the message."""
    warnings: list[str] = field(default_factory=list)


Status = Literal["appended", "withheld", "queued", "rejected", "duplicate"]


@dataclass(frozen=True)
class FactOutcome:
    ref: str
    status: Status
    event_type: str | None = None
    event_id: str | None = None
    child_id: str | None = None
    reason: str | None = None
    field: str | None = None
    rule: str | None = None
