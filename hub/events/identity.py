"""Identity events: identifiers linked to a hub child, the match queue (records held until
a person links them), and erasure tombstones.

A tombstone says a child's (or one category of a child's) personal data was
crypto-shredded: projections drop every row they derived from it. Every field is open
(`open_fields`): the hub writes these itself, they hold ids, identifier systems, codes
and the erasure's own request reference, and a tombstone must be readable once the
child's keys are gone.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from hub.events.envelope import EventPayload
from hub.events.registry import registry


@registry.register
class IdentifierLinked(EventPayload):
    """A strong identifier (by system; the value itself is held only in the person index,
    as a keyed hash) was linked to the hub child."""

    event_type = "identity.identifier_linked"
    category = "identity"
    open_fields: ClassVar[tuple[str, ...]] = ("system", "reason")

    system: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=1, max_length=200)


@registry.register
class ChildErased(EventPayload):
    """Erasure tombstone: the child's data keys were deleted; drop everything derived."""

    event_type = "identity.child_erased"
    category = "identity"
    open_fields: ClassVar[tuple[str, ...]] = ("reason", "requested_by")

    reason: str = Field(min_length=1, max_length=200)
    requested_by: str = Field(min_length=1, max_length=128)


@registry.register
class CategoryErased(EventPayload):
    """Retention tombstone: one data category of the child was crypto-shredded."""

    event_type = "identity.category_erased"
    category = "identity"
    open_fields: ClassVar[tuple[str, ...]] = ("erased_category", "rule")

    erased_category: str = Field(min_length=1, max_length=64)
    rule: str = Field(min_length=1, max_length=200)


MatchReason = Literal["no_identifier", "invalid_identifier", "identity_conflict", "dob_mismatch"]
"""Why a record could not be linked without a person's judgement: it carries no valid
strong identifier (only demographics, or identifiers that break their rules), its
identifiers belong to two different children, or its date of birth contradicts the one
recorded for the child its identifiers name."""


@registry.register
class MatchQueued(EventPayload):
    """A record could not be linked to a hub child without a person's judgement: its facts
    are held under a provisional child id (the envelope's) until a coordinator links it to
    a child or keeps it separate. Ids only: the demographics a person compares are held
    sealed in the match queue, never on the log in the clear."""

    event_type = "identity.match_queued"
    category = "identity"
    open_fields: ClassVar[tuple[str, ...]] = (
        "item_id",
        "reason",
        "rule",
        "candidate_child_ids",
        "facts_held",
    )

    item_id: str = Field(min_length=1, max_length=64)
    reason: MatchReason
    rule: str | None = Field(
        default=None, max_length=64, description="The rule an identifier broke"
    )
    candidate_child_ids: tuple[Annotated[str, StringConstraints(max_length=64)], ...] = Field(
        default=(), max_length=50, description="Hub children the record may be about"
    )
    facts_held: int = Field(ge=0)


@registry.register
class MatchResolved(EventPayload):
    """A person decided a queued record: linked to an existing child, or kept separate as a
    new child (the envelope's child id is the chosen child). The held facts were released
    through the consent gate for that child and the provisional child's keys deleted."""

    event_type = "identity.match_resolved"
    category = "identity"
    open_fields: ClassVar[tuple[str, ...]] = (
        "item_id",
        "decision",
        "provisional_child_id",
        "resolved_by",
        "identifiers_linked",
        "facts_released",
    )

    item_id: str = Field(min_length=1, max_length=64)
    decision: Literal["link", "keep_separate"]
    provisional_child_id: str = Field(min_length=1, max_length=64)
    resolved_by: str = Field(min_length=1, max_length=256, description="Principal id")
    identifiers_linked: tuple[Annotated[str, StringConstraints(max_length=32)], ...] = Field(
        default=(), description="Systems of the identifiers linked (values stay in the index)"
    )
    facts_released: int = Field(ge=0)
