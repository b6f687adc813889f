"""What every inbound adapter produces and what the ingest path answers.

An adapter turns one inbound message (a CTF file, a FHIR Bundle, a CIN census, a JSON
message) into `InboundFact`s — a typed payload about a child named by the sender's own
identifiers — plus a `NotTaken` line for each part it could not or would not take, with
the reason. The ingest service resolves the subject to a hub child, runs each fact
through the consent gate and answers one `FactOutcome` per fact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from hub.events.envelope import EventPayload, Source
from hub.identity.subject import Subject

__all__ = ["AdapterResult", "FactOutcome", "InboundFact", "NotTaken", "Status", "Subject"]


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
    context: list[str] = field(default_factory=list)
    """Refs of the parts read only as context for the facts (a FHIR Organization whose ODS
    code and name go into a fact's source): taken, though no fact is theirs alone."""


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
