"""Domain events: the envelope, typed payloads, their registry, upcasters and codec.

Importing this package registers every event type.
"""

from hub.events import casework, education, team  # noqa: F401  (registers payloads)
from hub.events.codec import decode, decode_dict, encode
from hub.events.envelope import (
    ConsentRef,
    Envelope,
    EventPayload,
    Source,
    new_event_id,
    utcnow,
)
from hub.events.registry import EventRegistry, registry

__all__ = [
    "ConsentRef",
    "Envelope",
    "EventPayload",
    "EventRegistry",
    "Source",
    "decode",
    "decode_dict",
    "encode",
    "new_event_id",
    "registry",
    "utcnow",
]
