"""Field encryption with each child's own data key, so erasure can be crypto-shredding.

A child's 256-bit data key encrypts their personal fields with AES-GCM; the key is
stored only wrapped (AES-GCM under the hub's master key, bound to the child id), behind
the `KeyStore` port. Deleting the key makes every copy of those fields unreadable —
in the logs, projections and backups alike. An encrypted field is the envelope
`{"enc": "v1", "nonce": <b64>, "ct": <b64>}` over the field's JSON value, authenticated
with the child id and the field's path; a field that cannot be decrypted (key deleted,
wrong child, altered) reads as the placeholder `"[erased]"`, never as an exception.
`MemoryKeyStore` is the in-memory implementation for tests; SQL ones live with the
stores.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.errors import HubError

ENVELOPE_VERSION = "v1"
PLACEHOLDER = "[erased]"
KEY_BYTES = 32
NONCE_BYTES = 12
_WRAP_PREFIX = b"hubkw1"


class CryptoError(HubError):
    """A key or master key is malformed, or a wrapped key does not unwrap."""


class KeyErasedError(HubError):
    """The child's data key was deleted (erased); no new key is made for them."""

    def __init__(self, child_id: str) -> None:
        super().__init__(f"the data key of child {child_id} was erased")
        self.child_id = child_id


# --------------------------------------------------------------------------- master key


class MasterKey:
    """The hub's key-encryption key (32 bytes, from settings as base64). Its repr never
    shows the key."""

    __slots__ = ("_aead", "_raw")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise CryptoError(f"the master key must be {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self._raw = key

    @classmethod
    def from_base64(cls, text: str) -> MasterKey:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError("the master key is not valid base64") from None
        return cls(raw)

    @staticmethod
    def generate_base64() -> str:
        """A fresh random master key, base64-encoded (for settings)."""
        return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")

    def wrap(self, data_key: bytes, child_id: str) -> bytes:
        """`data_key` encrypted under the master key, bound to `child_id`."""
        if len(data_key) != KEY_BYTES:
            raise CryptoError(f"a data key must be {KEY_BYTES} bytes")
        nonce = os.urandom(NONCE_BYTES)
        return _WRAP_PREFIX + nonce + self._aead.encrypt(nonce, data_key, _wrap_aad(child_id))

    def unwrap(self, wrapped: bytes, child_id: str) -> bytes:
        """The data key inside `wrapped`; `CryptoError` if it is not this child's key or
        not wrapped by this master key."""
        if not wrapped.startswith(_WRAP_PREFIX):
            raise CryptoError("not a wrapped data key")
        body = wrapped[len(_WRAP_PREFIX) :]
        nonce, ct = body[:NONCE_BYTES], body[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, ct, _wrap_aad(child_id))
        except InvalidTag:
            raise CryptoError(
                f"the wrapped data key of child {child_id} does not unwrap with this master key"
            ) from None

    def derive(self, purpose: bytes) -> bytes:
        """A 32-byte secret for another purpose (HKDF-SHA256 over the master key), so
        one configured key serves wrapping and keyed hashing without reuse."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        return HKDF(
            algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=b"tac-hub|" + purpose
        ).derive(self._raw)

    def __repr__(self) -> str:
        return "MasterKey(<hidden>)"


def _wrap_aad(child_id: str) -> bytes:
    return b"hub-data-key|" + child_id.encode("utf-8")


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


# --------------------------------------------------------------------------- key store port


@runtime_checkable
class KeyStore(Protocol):
    """Where children's data keys live (wrapped by the master key).

    `get` returns the key, or None if the child has none or it was deleted. `create`
    returns the existing key or makes one, and raises `KeyErasedError` once the child's
    key has been deleted (an erased child gets no new key). `delete` destroys the key
    for good; it returns True if a key was deleted and is idempotent. `create_many`
    makes sure each of many keys exists (in one transaction where the store has them),
    skipping erased ones. Memory, SQLite and PostgreSQL; one contract suite."""

    async def get(self, child_id: str) -> bytes | None: ...

    async def create(self, child_id: str) -> bytes: ...

    async def create_many(self, key_ids: Sequence[str]) -> None: ...

    async def delete(self, child_id: str) -> bool: ...


class MemoryKeyStore:
    """`KeyStore` in memory, holding only wrapped keys, for tests and the demo."""

    def __init__(self, master: MasterKey) -> None:
        self._master = master
        self._wrapped: dict[str, bytes] = {}
        self._erased: set[str] = set()

    async def get(self, child_id: str) -> bytes | None:
        wrapped = self._wrapped.get(child_id)
        return None if wrapped is None else self._master.unwrap(wrapped, child_id)

    async def create(self, child_id: str) -> bytes:
        if child_id in self._erased:
            raise KeyErasedError(child_id)
        existing = await self.get(child_id)
        if existing is not None:
            return existing
        key = new_data_key()
        self._wrapped[child_id] = self._master.wrap(key, child_id)
        return key

    async def create_many(self, key_ids: Sequence[str]) -> None:
        for key_id in key_ids:
            if key_id not in self._erased:
                await self.create(key_id)

    async def delete(self, child_id: str) -> bool:
        self._erased.add(child_id)
        return self._wrapped.pop(child_id, None) is not None

    def wrapped(self, child_id: str) -> bytes | None:
        """The stored (wrapped) form, as a SQL store would hold it."""
        return self._wrapped.get(child_id)


# --------------------------------------------------------------------------- fields


def is_encrypted(value: Any) -> bool:
    """Whether `value` is an encrypted-field envelope."""
    return (
        isinstance(value, dict)
        and value.get("enc") == ENVELOPE_VERSION
        and isinstance(value.get("nonce"), str)
        and isinstance(value.get("ct"), str)
    )


def _field_aad(aad: str, field: str) -> bytes:
    return aad.encode("utf-8") + b"|" + field.encode("utf-8")


def _b64(data: bytes) -> str:
    """Standard base64 with padding (what `base64.b64encode` gives), in one C call."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def data_cipher(key: bytes) -> AESGCM:
    """The AES-GCM cipher of a data key (building one costs about as much as sealing a
    field with it: a caller sealing many values under one key builds it once)."""
    if len(key) != KEY_BYTES:
        raise CryptoError(f"a data key must be {KEY_BYTES} bytes")
    return AESGCM(key)


def encrypt_value(value: Any, key: bytes, *, aad: str, field: str) -> dict[str, str]:
    """One JSON value as an encrypted envelope, authenticated with `aad` and `field`."""
    if len(key) != KEY_BYTES:
        raise CryptoError(f"a data key must be {KEY_BYTES} bytes")
    return _seal_value(AESGCM(key), value, aad=aad, field=field)


def _seal_value(aead: AESGCM, value: Any, *, aad: str, field: str) -> dict[str, str]:
    """`encrypt_value` with the cipher built once per key by the caller."""
    nonce = os.urandom(NONCE_BYTES)
    plaintext = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    ct = aead.encrypt(nonce, plaintext, _field_aad(aad, field))
    return {"enc": ENVELOPE_VERSION, "nonce": _b64(nonce), "ct": _b64(ct)}


def decrypt_value(envelope: Any, key: bytes | None, *, aad: str, field: str) -> Any:
    """The JSON value inside `envelope`, or `PLACEHOLDER` if it cannot be read (no key,
    wrong key or child, altered, malformed). Never raises."""
    if key is None or not is_encrypted(envelope) or len(key) != KEY_BYTES:
        return PLACEHOLDER
    return _open_value(AESGCM(key), envelope, aad=aad, field=field)


def _open_value(aead: AESGCM, envelope: Mapping[str, Any], *, aad: str, field: str) -> Any:
    """`decrypt_value` once `envelope` is known to be one and the key to be whole (the
    cipher is built once per key by the caller: building it costs more than a decrypt)."""
    try:
        nonce = binascii.a2b_base64(envelope["nonce"], strict_mode=True)
        ct = binascii.a2b_base64(envelope["ct"], strict_mode=True)
        if len(nonce) != NONCE_BYTES:
            return PLACEHOLDER
        return orjson.loads(aead.decrypt(nonce, ct, _field_aad(aad, field)))
    except (InvalidTag, binascii.Error, ValueError, orjson.JSONDecodeError):
        return PLACEHOLDER


_MISSING = object()


def _get(data: Mapping[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _replaced(data: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `data` with `path` (dotted, present) set to `value`: the objects along
    the path are copied, everything else is shared (the input is never changed, and
    this is far cheaper than a deep copy of the whole payload)."""
    head, _, rest = path.partition(".")
    out = dict(data)
    out[head] = _replaced(data[head], rest, value) if rest else value
    return out


def encrypt_fields(
    payload: Mapping[str, Any],
    fields: Iterable[str],
    key: bytes,
    *,
    aad: str,
    cipher: AESGCM | None = None,
) -> dict[str, Any]:
    """A copy of `payload` with each of `fields` (dotted paths into nested objects)
    encrypted; absent fields are skipped, already encrypted ones left as they are.
    `aad` is the child id: a field cannot be moved to another child's record. `cipher`:
    `data_cipher(key)`, when the caller has it already."""
    out = dict(payload)
    aead: AESGCM | None = cipher  # else built once, for the first field to seal
    for field in fields:
        top = "." not in field  # a top-level field is set in `out`, already a copy
        value = out.get(field, _MISSING) if top else _get(out, field)
        if value is _MISSING or is_encrypted(value):
            continue
        if aead is None:
            aead = data_cipher(key)
        sealed = _seal_value(aead, value, aad=aad, field=field)
        if top:
            out[field] = sealed
        else:
            out = _replaced(out, field, sealed)
    return out


def decrypt_fields(
    payload: Mapping[str, Any],
    fields: Iterable[str],
    key: bytes | None,
    *,
    aad: str,
) -> dict[str, Any]:
    """A copy of `payload` with each encrypted one of `fields` decrypted, or replaced by
    `PLACEHOLDER` when it cannot be read (e.g. `key` is None: the child was erased)."""
    out = dict(payload)
    aead = AESGCM(key) if key is not None and len(key) == KEY_BYTES else None
    for field in fields:
        value = _get(out, field)
        if value is _MISSING or not is_encrypted(value):
            continue
        opened = PLACEHOLDER if aead is None else _open_value(aead, value, aad=aad, field=field)
        out = _replaced(out, field, opened)
    return out


def encrypted_paths(payload: Mapping[str, Any], prefix: str = "") -> tuple[str, ...]:
    """Dotted paths of every encrypted envelope in `payload` (to decrypt without knowing
    in advance which fields a writer encrypted)."""
    found: list[str] = []
    for name, value in payload.items():
        path = f"{prefix}{name}"
        if is_encrypted(value):
            found.append(path)
        elif isinstance(value, Mapping):
            found.extend(encrypted_paths(value, f"{path}."))
    return tuple(found)
