"""Team events: practitioners joining and leaving the team around a child."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from hub.events.envelope import EventPayload
from hub.events.registry import registry


@registry.register
class PractitionerJoined(EventPayload):
    """A practitioner joined the team around the child in a role from the vocabulary."""

    event_type = "team.practitioner_joined"
    category = "education"

    practitioner_id: str = Field(min_length=1, max_length=128)
    role: str = Field(min_length=1, max_length=64, description="Controlled vocabulary role code")
    agency: str = Field(min_length=1, max_length=64)
    organisation_code: str | None = Field(default=None, max_length=32)
    since: date


@registry.register
class PractitionerLeft(EventPayload):
    """A practitioner left the team around the child."""

    event_type = "team.practitioner_left"
    category = "education"

    practitioner_id: str = Field(min_length=1, max_length=128)
    until: date
