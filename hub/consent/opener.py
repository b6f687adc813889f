"""Reading sealed records back: parse, fetch each child's data key once per batch,
decrypt and validate. Used by every projection runner and by log reads in the API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError

from hub.consent.crypto import (
    PLACEHOLDER,
    KeyStore,
    decrypt_value,
    encrypted_paths,
    is_encrypted,
)
from hub.consent.sealing import WHOLE, ErasedPayload, is_sealed, merge_whole, open_envelope
from hub.errors import PermanentError
from hub.events import Envelope, EventRegistry, decode
from hub.events import registry as default_registry

if TYPE_CHECKING:
    from hub.log import StoredRecord


def data_key_id(child_id: str, category: str) -> str:
    """Each child has one data key per data category, so retention can shred a category."""
    return f"{child_id}/{category}"


def child_of_key(key_id: str) -> str:
    """The child a data key id belongs to (`data_key_id`'s inverse, for the child part)."""
    return key_id.partition("/")[0]


SEALED_MARK = b'"enc":"v1"'
"""Present in every record with an encrypted field (absent: nothing to decrypt)."""


class EnvelopeOpener:
    def __init__(self, keys: KeyStore | None, registry: EventRegistry = default_registry) -> None:
        self._keys = keys
        self._registry = registry

    async def data_key(self, child_id: str, category: str) -> bytes | None:
        """The key the child's facts of the category are opened with (None: none, or erased)."""
        return None if self._keys is None else await self._keys.get(data_key_id(child_id, category))

    async def open_value(self, value: bytes) -> Envelope:
        """One record's envelope; raises `PermanentError` if it cannot be read."""
        opened = (await self.open_values([value]))[0]
        if isinstance(opened, PermanentError):
            raise opened
        return opened

    async def open_values(self, values: Sequence[bytes]) -> list[Envelope | PermanentError]:
        out: list[Envelope | PermanentError] = []
        keys: dict[str, bytes | None] = {}
        for value in values:
            try:
                if SEALED_MARK not in value:
                    out.append(decode(value, self._registry))
                    continue
                try:
                    data = orjson.loads(value)
                except orjson.JSONDecodeError as exc:
                    raise PermanentError(f"not valid JSON: {exc}") from None
                payload = data.get("payload") if isinstance(data, dict) else None
                paths = encrypted_paths(payload) if isinstance(payload, dict) else ()
                if not paths:  # not sealed
                    out.append(decode(value, self._registry))
                    continue
                kid = data_key_id(str(data.get("child_id", "")), str(data.get("category", "")))
                if kid not in keys:
                    keys[kid] = None if self._keys is None else await self._keys.get(kid)
                out.append(open_envelope(data, keys[kid], self._registry, paths=paths))
            except PermanentError as exc:
                out.append(exc)
        return out

    def metadata_values(self, values: Sequence[bytes]) -> list[Envelope | PermanentError]:
        """Envelopes with their metadata validated but sealed payloads left sealed (as an
        `ErasedPayload` naming the type): for views that store the sealed record and read
        only ids, types, categories and times. Unsealed records are decoded in full."""
        out: list[Envelope | PermanentError] = []
        for value in values:
            try:
                if b'"enc":"v1"' not in value:
                    out.append(decode(value, self._registry))
                    continue
                try:
                    data = orjson.loads(value)
                except orjson.JSONDecodeError as exc:
                    raise PermanentError(f"not valid JSON: {exc}") from None
                if not isinstance(data, dict):
                    raise PermanentError("an event must be a JSON object")
                self._registry.payload_class(str(data.get("event_type")))
                data["payload"] = ErasedPayload(original_event_type=str(data.get("event_type")))
                out.append(Envelope.model_validate(data))
            except PermanentError as exc:
                out.append(exc)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                out.append(PermanentError(err["msg"], field=".".join(str(p) for p in err["loc"])))
        return out

    async def open_records(
        self, records: Sequence[StoredRecord]
    ) -> list[Envelope | PermanentError]:
        return await self.open_values([r.value for r in records])

    async def open_fields(
        self, values: Sequence[bytes], fields: Sequence[str]
    ) -> list[dict[str, Any] | None]:
        """Only `fields` (top-level payload fields) of each record, decrypted where sealed:
        for a view that shows a few values of a large payload (a child's name from a
        pupil record), at a fraction of the cost of opening it whole. Nothing is
        validated beyond JSON (the record was validated when it was written), so a record
        whose schema version is not its type's current one, or that cannot be read (its
        key erased, altered), gives None; absent fields are left out."""
        out: list[dict[str, Any] | None] = []
        keys: dict[str, bytes | None] = {}
        for value in values:
            try:
                data = orjson.loads(value)
                cls = self._registry.payload_class(str(data.get("event_type")))
            except (orjson.JSONDecodeError, AttributeError, PermanentError):
                out.append(None)
                continue
            payload = data.get("payload")
            if data.get("schema_version") != cls.schema_version or not isinstance(payload, dict):
                out.append(None)
                continue
            child = str(data.get("child_id", ""))
            kid = data_key_id(child, str(data.get("category", "")))
            if kid not in keys and is_sealed(data):
                keys[kid] = None if self._keys is None else await self._keys.get(kid)
            if is_encrypted(payload.get(WHOLE)):
                whole = decrypt_value(payload[WHOLE], keys.get(kid), aad=child, field=WHOLE)
                read = isinstance(whole, dict)
                payload = merge_whole({**payload, WHOLE: whole}) if read else None
            if payload is None:
                out.append(None)
                continue
            opened: dict[str, Any] = {}
            for name in fields:
                if name not in payload:
                    continue
                raw = payload[name]
                if is_encrypted(raw):
                    raw = decrypt_value(raw, keys.get(kid), aad=child, field=name)
                    if raw == PLACEHOLDER:
                        break
                opened[name] = raw
            else:
                out.append(opened)
                continue
            out.append(None)  # a field could not be read: the key is gone
        return out
