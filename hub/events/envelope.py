"""The event envelope every fact on the hub's logs travels in.

An envelope carries the identity, provenance, consent reference and timing of one
domain event; the typed payload says what happened. Envelopes are immutable.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SerializeAsAny

from hub.events.trusted import trusted


class Agency(StrEnum):
    """The worlds a fact can come from."""

    EDUCATION = "education"
    HEALTH = "health"
    SOCIAL_CARE = "social_care"
    FAMILY = "family"
    LOCAL_AUTHORITY = "local_authority"
    HUB = "hub"


def new_event_id() -> uuid.UUID:
    """A time-ordered UUID (version 7 layout: 48-bit ms timestamp, then randomness).

    Time-ordered ids keep B-tree inserts at the right-hand edge, which roughly doubles
    SQLite append throughput against random uuid4 keys.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)  # rand_b
    return uuid.UUID(int=value)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Source(BaseModel):
    """Where a fact came from: agency, organisation, system and that system's message id."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    agency: str = Field(min_length=1, max_length=64, description="Publishing agency name")
    organisation_code: str | None = Field(
        default=None, max_length=32, description="ODS code, URN, UKPRN or LA code"
    )
    system: str | None = Field(default=None, max_length=128, description="Sending system")
    message_id: str | None = Field(
        default=None, max_length=256, description="The source system's own message id"
    )
    record_id: str | None = Field(
        default=None,
        max_length=160,
        description="The source's own name for the record this fact reads, where its "
        "format has one: a FHIR resource `Condition/c1` (`Condition/c1#...` when one "
        "resource gives several facts)",
    )
    record_version: str | None = Field(
        default=None,
        max_length=64,
        description="The source's version of that record (FHIR `meta.versionId`)",
    )
    record_updated: AwareDatetime | None = Field(
        default=None,
        description="When the source last changed that record (FHIR `meta.lastUpdated`)",
    )


class ConsentRef(BaseModel):
    """The consent decision that let this fact through the gate, and its lawful basis."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    decision_id: uuid.UUID
    lawful_basis: str = Field(min_length=1, max_length=256)


class EventPayload(BaseModel):
    """Base class of every typed payload.

    Subclasses are frozen, named in the past tense, and declare their `event_type`,
    `schema_version` and the data `category` the consent policy uses. Unknown fields
    sent by newer writers are ignored by readers.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    category: ClassVar[str]


class Envelope(BaseModel):
    """One domain event: envelope fields plus a typed payload."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: uuid.UUID = Field(default_factory=new_event_id)
    event_type: str
    schema_version: int = Field(ge=1)
    child_id: str = Field(min_length=1, max_length=64, description="Hub child id")
    plan_id: str | None = Field(default=None, max_length=64)
    source: Source
    category: str = Field(min_length=1, max_length=64)
    occurred_at: AwareDatetime
    recorded_at: AwareDatetime = Field(default_factory=utcnow)
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    consent: ConsentRef | None = None
    payload: SerializeAsAny[EventPayload]

    @classmethod
    def wrap(
        cls,
        payload: EventPayload,
        *,
        child_id: str,
        source: Source,
        occurred_at: datetime,
        **fields: Any,
    ) -> Envelope:
        """Build an envelope whose type, version and category come from the payload class.

        Parts that plainly meet every rule of the envelope (validated models, exact types,
        lengths in range: what the gate hands it) are taken as they are; anything else
        is validated, with pydantic's errors."""
        kind = type(payload)
        category = fields.pop("category", kind.category)
        plan_id = fields.get("plan_id")
        if (
            cls is Envelope
            and fields.keys() <= {"plan_id"}
            and (plan_id is None or (type(plan_id) is str and len(plan_id) <= 64))
            and type(child_id) is str
            and 1 <= len(child_id) <= 64
            and type(category) is str
            and 1 <= len(category) <= 64
            and type(source) is Source
            and isinstance(payload, EventPayload)
            and type(occurred_at) is datetime
            and occurred_at.utcoffset() is not None
        ):
            return trusted(
                cls,
                {
                    "event_id": new_event_id(),
                    "event_type": kind.event_type,
                    "schema_version": kind.schema_version,
                    "child_id": child_id,
                    "plan_id": plan_id,
                    "source": source,
                    "category": category,
                    "occurred_at": occurred_at,
                    "recorded_at": utcnow(),
                    "correlation_id": None,
                    "causation_id": None,
                    "consent": None,
                    "payload": payload,
                },
            )
        return cls(
            event_type=kind.event_type,
            schema_version=kind.schema_version,
            category=category,
            child_id=child_id,
            source=source,
            occurred_at=occurred_at,
            payload=payload,
            **fields,
        )
