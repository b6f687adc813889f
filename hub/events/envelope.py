"""The event envelope every fact on the hub's logs travels in.

An envelope carries the identity, provenance, sharing context, consent reference and
timing of one domain event; the typed payload says what happened. Envelopes are
immutable. The envelope has its own version (`envelope_version`, beside each payload's
`schema_version`): version 1 records carried the sharing context (purposes, claimed
statutory basis) in record headers, version 2 carries it in the envelope's `sharing`;
`upcast_envelope` (for a decoded envelope) and `upcast_envelope_data` (for a stored
record's JSON, sealed fields left sealed) bring a version 1 record up with its headers.
Records on the logs are never rewritten.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SerializeAsAny

from hub.events.trusted import trusted, trusted_uuid

ENVELOPE_VERSION = 2
"""The envelope version this hub writes (1: sharing context in record headers)."""

Purpose = Literal["ehc_assessment", "plan_delivery", "review", "direct_care"]
"""Why a fact is shared."""

DEFAULT_PURPOSES: tuple[Purpose, ...] = ("ehc_assessment", "plan_delivery", "review")
"""The purposes of a fact whose sender named none."""

LEGACY_PURPOSES_HEADER = "x-purposes"
LEGACY_BASIS_HEADER = "x-basis-claimed"
"""Where a version 1 record carried its sharing context: comma-separated purposes, and
the claimed statutory basis (each absent when the sender gave none)."""


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
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits: 74 kept (rand_a, rand_b)
    return trusted_uuid(((ms & _MS_MASK) << 80) | (rand & _RAND_MASK) | _V7_BITS)


_MS_MASK = (1 << 48) - 1
_RAND_MASK = ((1 << 80) - 1) & ~(0xF << 76) & ~(0b11 << 62)
"""The random bits of a version 7 id: all but the version (76-79) and variant (62-63)."""
_V7_BITS = (0x7 << 76) | (0b10 << 62)
"""Version 7, RFC 4122 variant."""


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


class Sharing(BaseModel):
    """What the sender said a fact is shared for: its purposes, and a statutory basis it
    claims (e.g. `reg6_ehc_advice`). The consent decision is made on these; they are
    not personal data."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    purposes: tuple[Purpose, ...] = Field(default=DEFAULT_PURPOSES, min_length=1)
    basis_claimed: str | None = Field(
        default=None, min_length=1, max_length=128, description="A claimed statutory basis"
    )

    @classmethod
    def of(cls, purposes: Iterable[str] = (), basis_claimed: str | None = None) -> Sharing:
        """The sharing context of a fact sent with `purposes` (none: the defaults) and
        `basis_claimed` (an empty one is none). Raises pydantic's `ValidationError` for
        an unknown purpose."""
        purposes = tuple(purposes) or DEFAULT_PURPOSES
        key = (purposes, basis_claimed or None)
        known = _SHARINGS.get(key)
        if known is None:
            known = cls(purposes=purposes, basis_claimed=basis_claimed or None)
            if len(_SHARINGS) < 1024:
                _SHARINGS[key] = known
        return known

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes]]) -> Sharing:
        """The sharing context of a version 1 record, from its headers (absent: the
        defaults). A purpose the policy does not know is kept as it was written, for
        the consent decision to refuse (fail closed), never dropped."""
        purposes: bytes | None = None
        basis: bytes | None = None
        for name, value in headers:
            if name == LEGACY_PURPOSES_HEADER:
                purposes = value
            elif name == LEGACY_BASIS_HEADER:
                basis = value
        names = tuple(purposes.decode("utf-8", "replace").split(",")) if purposes else ()
        text = basis.decode("utf-8", "replace") if basis else None
        try:
            return cls.of(names, text)
        except ValueError:  # written by a v1 writer unchecked: keep it, for decide to refuse
            return cls.model_construct(purposes=names or DEFAULT_PURPOSES, basis_claimed=text)  # type: ignore[arg-type]


_SHARINGS: dict[tuple[tuple[str, ...], str | None], Sharing] = {}
"""The few sharing contexts senders use, each built once."""


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

    envelope_version: int = Field(
        default=1, ge=1, description="1: sharing context in record headers; 2: in `sharing`"
    )
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
    sharing: Sharing | None = Field(
        default=None,
        description="Purposes and claimed basis the fact was sent with (version 2 on)",
    )
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
        sharing = fields.get("sharing")
        if (
            cls is Envelope
            and fields.keys() <= {"plan_id", "sharing"}
            and (plan_id is None or (type(plan_id) is str and len(plan_id) <= 64))
            and (sharing is None or type(sharing) is Sharing)
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
                    "envelope_version": ENVELOPE_VERSION,
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
                    "sharing": sharing,
                    "consent": None,
                    "payload": payload,
                },
            )
        return cls(
            envelope_version=ENVELOPE_VERSION,
            event_type=kind.event_type,
            schema_version=kind.schema_version,
            category=category,
            child_id=child_id,
            source=source,
            occurred_at=occurred_at,
            payload=payload,
            **fields,
        )


def upcast_envelope(envelope: Envelope, headers: Iterable[tuple[str, bytes]]) -> Envelope:
    """`envelope` as version 2: a version 1 record's sharing context taken from the
    record's `headers` (the same purposes and basis its readers used to take from them)."""
    if envelope.envelope_version >= ENVELOPE_VERSION:
        return envelope
    values = dict(envelope.__dict__)
    values["envelope_version"] = ENVELOPE_VERSION
    values["sharing"] = envelope.sharing or Sharing.from_headers(headers)
    return trusted(type(envelope), values)


def upcast_envelope_data(
    data: Mapping[str, Any], headers: Iterable[tuple[str, bytes]]
) -> dict[str, Any]:
    """A stored record's JSON (sealed fields left sealed) as version 2, as `upcast_envelope`
    does for a decoded envelope."""
    out = dict(data)
    version = out.get("envelope_version", 1)
    if isinstance(version, int) and version >= ENVELOPE_VERSION:
        return out
    out["envelope_version"] = ENVELOPE_VERSION
    if not isinstance(out.get("sharing"), Mapping):
        out["sharing"] = Sharing.from_headers(headers).model_dump(mode="json")
    return out
