"""Domain events: the envelope, typed payloads, their registry, upcasters and codec.

Importing this package registers every event type.
"""

import importlib
import pkgutil

from hub.events.codec import decode, decode_dict, encode
from hub.events.envelope import (
    DEFAULT_PURPOSES,
    ENVELOPE_VERSION,
    ConsentRef,
    Envelope,
    EventPayload,
    Purpose,
    Sharing,
    Source,
    new_event_id,
    upcast_envelope,
    upcast_envelope_data,
    utcnow,
)
from hub.events.registry import EventRegistry, registry

_INFRA = {"codec", "envelope", "registry", "schemas"}


def _register_all() -> None:
    """Import every event module in this package: each registers its payloads on import.
    A new module of events needs no edit here."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _INFRA and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_register_all()

__all__ = [
    "DEFAULT_PURPOSES",
    "ENVELOPE_VERSION",
    "ConsentRef",
    "Envelope",
    "EventPayload",
    "EventRegistry",
    "Purpose",
    "Sharing",
    "Source",
    "decode",
    "decode_dict",
    "encode",
    "new_event_id",
    "registry",
    "upcast_envelope",
    "upcast_envelope_data",
    "utcnow",
]
