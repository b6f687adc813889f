"""JSON codec for envelopes: exact round trip, upcasting on decode.

Encoding is pydantic's Rust serializer straight to bytes; decoding parses with orjson,
upcasts the payload to the current schema version and validates it into its model.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from hub.errors import PermanentError
from hub.events.envelope import Envelope
from hub.events.registry import EventRegistry
from hub.events.registry import registry as default_registry


def encode(envelope: Envelope) -> bytes:
    return envelope.__pydantic_serializer__.to_json(envelope)


def _first_error(exc: ValidationError, prefix: str = "") -> PermanentError:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    return PermanentError(err["msg"], field=f"{prefix}{loc}" if loc else prefix.rstrip("."))


def decode_dict(data: dict[str, Any], registry: EventRegistry = default_registry) -> Envelope:
    """Validate a decoded JSON object as an envelope of a registered, current event type."""
    if not isinstance(data, dict):
        raise PermanentError("an event must be a JSON object")
    event_type = data.get("event_type")
    if not isinstance(event_type, str):
        raise PermanentError("missing or not a string", field="event_type")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise PermanentError("missing or not a positive integer", field="schema_version")
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise PermanentError("missing or not an object", field="payload")
    cls = registry.payload_class(event_type)
    payload = registry.upcast(event_type, version, payload)
    try:
        model = cls.model_validate(payload)
    except ValidationError as exc:
        raise _first_error(exc, "payload.") from None
    fields = dict(data)
    fields["payload"] = model
    fields["schema_version"] = cls.schema_version
    try:
        return Envelope.model_validate(fields)
    except ValidationError as exc:
        raise _first_error(exc) from None


def decode(raw: bytes | str, registry: EventRegistry = default_registry) -> Envelope:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PermanentError(f"not valid JSON: {exc}") from None
    return decode_dict(data, registry)
