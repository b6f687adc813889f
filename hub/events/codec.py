"""JSON codec for envelopes: exact round trip, upcasting on decode.

Encoding is pydantic's Rust serializer straight to bytes; decoding parses with orjson,
upcasts the payload to the current schema version and validates it into its model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from hub.errors import PermanentError
from hub.events.envelope import Envelope, EventPayload
from hub.events.registry import EventRegistry
from hub.events.registry import registry as default_registry


def encode(envelope: Envelope) -> bytes:
    return envelope.__pydantic_serializer__.to_json(envelope)


def payload_json(payload: EventPayload) -> dict[str, Any]:
    """`payload.model_dump(mode="json")`: the payload as its envelope's JSON holds it."""
    out: dict[str, Any] = payload.__pydantic_serializer__.to_python(payload, mode="json")
    return out


_FIELDS = (
    "envelope_version",
    "event_id",
    "event_type",
    "schema_version",
    "child_id",
    "plan_id",
    "source",
    "category",
    "occurred_at",
    "recorded_at",
    "correlation_id",
    "causation_id",
    "sharing",
    "consent",
    "payload",
)
"""The envelope's fields in their order, as `envelope_doc` writes them."""
_FAST = tuple(Envelope.model_fields) == _FIELDS
"""False if a field was added to the envelope and not here: pydantic dumps them all."""
_datetime_json = TypeAdapter(datetime).serializer
DOC_OPTIONS = orjson.OPT_UTC_Z
"""The orjson options `envelope_doc` is written with (times at UTC as `...Z`, as
pydantic writes them)."""


def _time(value: datetime) -> datetime | str:
    """An aware datetime for orjson to write as pydantic would: as it is when its offset
    is whole minutes (the only kind the hub's clocks and parsers give), else as the text
    pydantic writes (orjson would write the offset rounded)."""
    if value.tzinfo is UTC:
        return value
    offset = value.utcoffset()
    if offset is not None and not offset.microseconds and not offset.seconds % 60:
        return value
    text: str = _datetime_json.to_python(value, mode="json")
    return text


def envelope_doc(
    envelope: Envelope,
    *,
    payload: dict[str, Any] | None = None,
    parts: dict[int, tuple[BaseModel, Any]] | None = None,
) -> dict[str, Any]:
    """The envelope's JSON form at less cost than `envelope.model_dump(mode="json")`, on
    the gate's hot path: the same object, but for its ids and times, left for orjson to
    write (`orjson.dumps(doc, option=DOC_OPTIONS)` is the same JSON as pydantic's).
    `payload`: the payload's JSON form (`payload_json`), when the caller has it already;
    `parts` keeps the JSON form of each source, sharing context and consent reference
    (immutable models) by identity, for the next envelopes that share them (a batch's
    facts mostly do). An envelope of a subclass is dumped by pydantic."""
    if type(envelope) is not Envelope or not _FAST:
        return envelope.model_dump(mode="json")
    memo: dict[int, tuple[BaseModel, Any]] = {} if parts is None else parts
    d = envelope.__dict__
    return {
        "envelope_version": d["envelope_version"],
        "event_id": d["event_id"],
        "event_type": d["event_type"],
        "schema_version": d["schema_version"],
        "child_id": d["child_id"],
        "plan_id": d["plan_id"],
        "source": _part(d["source"], memo),
        "category": d["category"],
        "occurred_at": _time(d["occurred_at"]),
        "recorded_at": _time(d["recorded_at"]),
        "correlation_id": d["correlation_id"],
        "causation_id": d["causation_id"],
        "sharing": _part(d["sharing"], memo),
        "consent": _part(d["consent"], memo),
        "payload": payload_json(d["payload"]) if payload is None else payload,
    }


def _part(model: BaseModel | None, memo: dict[int, tuple[BaseModel, Any]]) -> Any:
    if model is None:
        return None
    known = memo.get(id(model))
    if known is None:  # the model is kept with its dump: its id is not reused
        known = memo[id(model)] = (model, model.model_dump(mode="json"))
    return known[1]


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
