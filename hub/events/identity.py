"""Identity events: identifiers linked to a hub child, and erasure tombstones.

A tombstone says a child's (or one category of a child's) personal data was
crypto-shredded: projections drop every row they derived from it.
"""

from __future__ import annotations

from pydantic import Field

from hub.events.envelope import EventPayload
from hub.events.registry import registry


@registry.register
class IdentifierLinked(EventPayload):
    """A strong identifier (by system; the value itself is held only in the person index,
    as a keyed hash) was linked to the hub child."""

    event_type = "identity.identifier_linked"
    category = "identity"

    system: str = Field(min_length=1, max_length=32)
    reason: str = Field(min_length=1, max_length=200)


@registry.register
class ChildErased(EventPayload):
    """Erasure tombstone: the child's data keys were deleted; drop everything derived."""

    event_type = "identity.child_erased"
    category = "identity"

    reason: str = Field(min_length=1, max_length=200)
    requested_by: str = Field(min_length=1, max_length=128)


@registry.register
class CategoryErased(EventPayload):
    """Retention tombstone: one data category of the child was crypto-shredded."""

    event_type = "identity.category_erased"
    category = "identity"

    erased_category: str = Field(min_length=1, max_length=64)
    rule: str = Field(min_length=1, max_length=200)
