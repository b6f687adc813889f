"""Casework events: which coordinator holds a child on their caseload. The coordinator's
principal name is open (`open_fields`): it is about the coordinator, and the caseload
projection folds it without keys (`hub.projections.gate_views`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from hub.events.envelope import EventPayload
from hub.events.registry import registry


@registry.register
class CoordinatorAssigned(EventPayload):
    """A coordinator (by their hub principal name) took the child onto their caseload."""

    event_type = "casework.coordinator_assigned"
    category = "identity"
    open_fields: ClassVar[tuple[str, ...]] = ("coordinator",)

    coordinator: str = Field(min_length=1, max_length=128)


@registry.register
class CoordinatorUnassigned(EventPayload):
    """A coordinator no longer holds the child on their caseload."""

    event_type = "casework.coordinator_unassigned"
    category = "identity"
    open_fields: ClassVar[tuple[str, ...]] = ("coordinator",)

    coordinator: str = Field(min_length=1, max_length=128)
