"""Sealing envelopes for the logs: everything in a payload that is about the child
encrypted with the child's data key, and opened again on read.

A payload class declares what is NOT about the child in `open_fields` (top-level field
names: references, ids and organisation codes; for casework and identity events every
field, as the caseload and the erasure tombstones are read without keys); every other
field is sealed, together, as one encrypted field `{"sealed": {...}}` beside the open
ones. A class that declares no `open_fields` is sealed whole (the safe default), and a
field the class does not know (sent by a newer writer) is sealed with the rest.
`seal_envelope` encrypts inside the encoded envelope; `open_envelope` decrypts and
validates, by the encrypted paths it finds (so records of older writers, which sealed
field by field, open too). When a field cannot be decrypted (the child was erased) the
payload is not validated but replaced by an `ErasedPayload` carrying only the event type:
nothing of the child's personal data can be read, and no exception escapes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, ClassVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.consent.crypto import PLACEHOLDER, decrypt_fields, encrypt_fields, encrypted_paths
from hub.events.codec import decode_dict
from hub.events.envelope import Envelope, EventPayload
from hub.events.registry import EventRegistry
from hub.events.registry import registry as default_registry


class ErasedPayload(EventPayload):
    """What is left of a payload whose personal fields can no longer be read."""

    event_type: ClassVar[str] = "hub.erased"
    category: ClassVar[str] = "identity"
    open_fields: ClassVar[tuple[str, ...]] = ("original_event_type",)

    original_event_type: str


WHOLE = "sealed"
"""The payload key the sealed fields travel under, as one encrypted JSON object (no
payload class has a field of this name: `tests/unit/test_sealing_declarations.py`)."""


def declared_open(payload_cls: type[EventPayload]) -> frozenset[str] | None:
    """The class's own `open_fields` (None: it declares none, and is sealed whole). Only
    the class itself counts, not a base class: each event type decides."""
    found: tuple[str, ...] | None = payload_cls.__dict__.get("open_fields")
    return None if found is None else frozenset(found)


@functools.cache
def personal_fields(payload_cls: type[EventPayload]) -> tuple[str, ...] | None:
    """The payload's fields that are about the child (sealed): every field but its
    `open_fields`, or None when the class declares none (sealed whole). `()`: nothing
    to seal, no key needed. Looked up once per class."""
    open_fields = declared_open(payload_cls)
    if open_fields is None:
        return None
    return tuple(n for n in payload_cls.model_fields if n not in open_fields)


@functools.cache
def _open_of(payload_cls: type[EventPayload]) -> frozenset[str]:
    return declared_open(payload_cls) or frozenset()


def seal_envelope(
    data: Mapping[str, Any],
    key: bytes,
    registry: EventRegistry = default_registry,
    *,
    cipher: AESGCM | None = None,
) -> dict[str, Any]:
    """A copy of an encoded envelope (as a dict) with every payload field that is not
    declared open encrypted under `key` as one field `WHOLE`, bound to the child id.
    `cipher`: `data_cipher(key)`, when the caller has it already (one per key)."""
    keep = _open_of(registry.payload_class(str(data["event_type"])))
    payload: Mapping[str, Any] = data["payload"]
    opened: dict[str, Any] = {}
    sealed: dict[str, Any] = {}
    for k, v in payload.items():
        (opened if k in keep else sealed)[k] = v
    out = dict(data)
    if sealed:
        opened[WHOLE] = sealed
        out["payload"] = encrypt_fields(
            opened, (WHOLE,), key, aad=str(data["child_id"]), cipher=cipher
        )
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
    if WHOLE in paths and isinstance(opened[WHOLE], Mapping):
        opened = merge_whole(opened)
    if any(opened_value(opened, p) == PLACEHOLDER for p in paths):
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


def merge_whole(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A payload with its opened `WHOLE` group merged back in beside the open fields."""
    group = payload[WHOLE]
    out = {k: v for k, v in payload.items() if k != WHOLE}
    out.update(group)
    return out
