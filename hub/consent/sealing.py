"""Sealing envelopes for the logs: each payload's personal fields encrypted with the
child's data key, and opened again on read.

A payload class declares what is NOT about the child in `open_fields` (top-level field
names: references, organisation codes), and every other field is sealed; an older class
names its personal fields in `personal_fields` instead (top-level names or dotted paths).
`seal_envelope` encrypts them inside the encoded envelope; `open_envelope` decrypts and
validates. When a field cannot be decrypted (the child was erased) the payload is not
validated but replaced by an `ErasedPayload` carrying only the event type: nothing of
the child's personal data can be read, and no exception escapes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar

from hub.consent.crypto import PLACEHOLDER, decrypt_fields, encrypt_fields, encrypted_paths
from hub.events.codec import decode_dict
from hub.events.envelope import Envelope, EventPayload
from hub.events.registry import EventRegistry
from hub.events.registry import registry as default_registry


class ErasedPayload(EventPayload):
    """What is left of a payload whose personal fields can no longer be read."""

    event_type: ClassVar[str] = "hub.erased"
    category: ClassVar[str] = "identity"

    original_event_type: str


WHOLE = "sealed"
"""A payload class that names no `personal_fields` is sealed whole, as one encrypted
field `{"sealed": {...}}`: a fact about a child is personal data unless its class says
which parts are."""


@functools.cache
def personal_fields(payload_cls: type[EventPayload]) -> tuple[str, ...] | None:
    """The payload's personal fields, or None when the class does not say (seal it whole):
    every field but its `open_fields` when it declares those, else its `personal_fields`
    (looked up once per class: an absent attribute is slow to find on a model class)."""
    open_fields: tuple[str, ...] | None = payload_cls.__dict__.get("open_fields")
    if open_fields is not None:
        return tuple(n for n in payload_cls.model_fields if n not in open_fields)
    fields: tuple[str, ...] | None = getattr(payload_cls, "personal_fields", None)
    return fields


def seal_envelope(
    data: Mapping[str, Any], key: bytes, registry: EventRegistry = default_registry
) -> dict[str, Any]:
    """A copy of an encoded envelope (as a dict) with its payload's personal fields — or
    the whole payload — encrypted under `key`, bound to the child id."""
    cls = registry.payload_class(str(data["event_type"]))
    fields = personal_fields(cls)
    out = dict(data)
    aad = str(data["child_id"])
    if fields is None:
        out["payload"] = encrypt_fields({WHOLE: data["payload"]}, (WHOLE,), key, aad=aad)
    elif fields:
        out["payload"] = encrypt_fields(data["payload"], fields, key, aad=aad)
    return out


def is_sealed(data: Mapping[str, Any]) -> bool:
    payload = data.get("payload")
    return isinstance(payload, Mapping) and bool(encrypted_paths(payload))


def open_envelope(
    data: Mapping[str, Any],
    key: bytes | None,
    registry: EventRegistry = default_registry,
    *,
    paths: tuple[str, ...] | None = None,
) -> Envelope:
    """Decrypt and validate an encoded envelope. With the key gone, the payload becomes an
    `ErasedPayload`; validation errors raise `PermanentError` as `decode_dict` does.
    `paths`: the payload's encrypted paths, when the caller has found them already."""
    payload = data.get("payload")
    if not isinstance(payload, Mapping):
        return decode_dict(dict(data), registry)
    if paths is None:
        paths = encrypted_paths(payload)
    if not paths:
        return decode_dict(dict(data), registry)
    opened = decrypt_fields(payload, paths, key, aad=str(data.get("child_id", "")))
    if paths == (WHOLE,) and len(payload) == 1 and isinstance(opened[WHOLE], Mapping):
        opened = dict(opened[WHOLE])
    elif any(opened_value(opened, p) == PLACEHOLDER for p in paths):
        erased = dict(data)
        erased["payload"] = ErasedPayload(original_event_type=str(data.get("event_type", "")))
        # validate the envelope itself without its payload's type
        return Envelope.model_validate({**erased, "schema_version": data.get("schema_version", 1)})
    return decode_dict({**data, "payload": opened}, registry)


def opened_value(payload: Mapping[str, Any], path: str) -> Any:
    node: Any = payload
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node
