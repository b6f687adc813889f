"""Casework events: which coordinator holds a child on their caseload."""

from __future__ import annotations

from pydantic import Field

from hub.events.envelope import EventPayload
from hub.events.registry import registry


@registry.register
class CoordinatorAssigned(EventPayload):
    """A coordinator (by their hub principal name) took the child onto their caseload."""

    event_type = "casework.coordinator_assigned"
    category = "identity"

    coordinator: str = Field(min_length=1, max_length=128)


@registry.register
class CoordinatorUnassigned(EventPayload):
    """A coordinator no longer holds the child on their caseload."""

    event_type = "casework.coordinator_unassigned"
    category = "identity"

    coordinator: str = Field(min_length=1, max_length=128)
