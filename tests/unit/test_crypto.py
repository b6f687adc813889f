"""Per-child field encryption: AES-GCM under the child's data key, keys wrapped by the
master key, and erasure by deleting the key — after which fields read as a placeholder,
never as an exception."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.consent.crypto import (
    PLACEHOLDER,
    CryptoError,
    KeyErasedError,
    KeyStore,
    MasterKey,
    MemoryKeyStore,
    decrypt_fields,
    decrypt_value,
    encrypt_fields,
    encrypt_value,
    encrypted_paths,
    is_encrypted,
    new_data_key,
)

MASTER = MasterKey(bytes(range(32)))
PAYLOAD: dict[str, Any] = {
    "sen_provision": "E",
    "summary": "Needs support with reading",
    "needs": [{"type": "SPLD", "rank": 1}],
    "contact": {"postcode": "LS1 4AP", "phone": "0113 000 0000"},
    "score": 7,
}
FIELDS = ("summary", "needs", "contact.postcode", "score", "absent", "contact.absent")


def test_encrypted_fields_round_trip_and_others_stay_clear() -> None:
    key = new_data_key()
    enc = encrypt_fields(PAYLOAD, FIELDS, key, aad="child-1")
    assert enc["sen_provision"] == "E"
    assert enc["contact"]["phone"] == "0113 000 0000"
    for path in ("summary", "needs", "score"):
        assert is_encrypted(enc[path]) and enc[path]["enc"] == "v1"
    assert is_encrypted(enc["contact"]["postcode"])
    assert "absent" not in enc and "absent" not in enc["contact"]
    assert "Needs support" not in repr(enc) and "LS1" not in repr(enc)
    assert decrypt_fields(enc, FIELDS, key, aad="child-1") == PAYLOAD
    assert PAYLOAD["contact"]["postcode"] == "LS1 4AP"  # input not mutated


def test_neither_direction_changes_its_input() -> None:
    """Only the objects along an encrypted path are copied: the input stays as it was."""
    key = new_data_key()
    before = copy.deepcopy(PAYLOAD)
    enc = encrypt_fields(PAYLOAD, FIELDS, key, aad="child-1")
    assert PAYLOAD == before
    sealed = copy.deepcopy(enc)
    dec = decrypt_fields(enc, FIELDS, key, aad="child-1")
    assert enc == sealed and dec == before
    assert decrypt_fields(enc, FIELDS, None, aad="child-1")["contact"]["postcode"] == PLACEHOLDER
    assert is_encrypted(enc["contact"]["postcode"])  # still sealed in the input


def test_encrypting_twice_leaves_encrypted_fields_alone() -> None:
    key = new_data_key()
    once = encrypt_fields(PAYLOAD, FIELDS, key, aad="child-1")
    twice = encrypt_fields(once, FIELDS, key, aad="child-1")
    assert twice == once


def test_each_encryption_uses_a_fresh_nonce() -> None:
    key = new_data_key()
    a = encrypt_value("same", key, aad="child-1", field="f")
    b = encrypt_value("same", key, aad="child-1", field="f")
    assert a["nonce"] != b["nonce"] and a["ct"] != b["ct"]


def test_an_erased_key_reads_as_the_placeholder() -> None:
    enc = encrypt_fields(PAYLOAD, FIELDS, new_data_key(), aad="child-1")
    out = decrypt_fields(enc, FIELDS, None, aad="child-1")
    assert out["summary"] == PLACEHOLDER and out["needs"] == PLACEHOLDER
    assert out["contact"]["postcode"] == PLACEHOLDER
    assert out["sen_provision"] == "E"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda e: {**e, "ct": e["ct"][:-4] + "AAAA"}, id="altered ciphertext"),
        pytest.param(
            lambda e: {**e, "nonce": base64.b64encode(b"x" * 12).decode()}, id="other nonce"
        ),
        pytest.param(lambda e: {**e, "nonce": "%%%"}, id="bad base64"),
        pytest.param(
            lambda e: {**e, "nonce": base64.b64encode(b"short").decode()}, id="short nonce"
        ),
        pytest.param(lambda e: {**e, "ct": ""}, id="empty ciphertext"),
    ],
)
def test_unreadable_fields_never_raise(tamper: Any) -> None:
    key = new_data_key()
    enc = encrypt_value("secret", key, aad="child-1", field="summary")
    assert decrypt_value(tamper(enc), key, aad="child-1", field="summary") == PLACEHOLDER


def test_a_field_cannot_be_moved_to_another_child_or_another_field() -> None:
    key = new_data_key()
    enc = encrypt_value("secret", key, aad="child-1", field="summary")
    assert decrypt_value(enc, key, aad="child-2", field="summary") == PLACEHOLDER
    assert decrypt_value(enc, key, aad="child-1", field="notes") == PLACEHOLDER
    assert decrypt_value(enc, new_data_key(), aad="child-1", field="summary") == PLACEHOLDER
    assert decrypt_value(enc, b"short", aad="child-1", field="summary") == PLACEHOLDER
    assert decrypt_value("not an envelope", key, aad="child-1", field="summary") == PLACEHOLDER


def test_encrypted_paths_finds_every_envelope() -> None:
    enc = encrypt_fields(PAYLOAD, FIELDS, new_data_key(), aad="child-1")
    assert set(encrypted_paths(enc)) == {"summary", "needs", "contact.postcode", "score"}


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=40),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_any_json_value_round_trips(value: Any) -> None:
    key = new_data_key()
    enc = encrypt_value(value, key, aad="child-1", field="f")
    assert decrypt_value(enc, key, aad="child-1", field="f") == value


# --------------------------------------------------------------------------- keys


def test_the_master_key_comes_from_base64_settings() -> None:
    text = MasterKey.generate_base64()
    assert len(base64.b64decode(text)) == 32
    MasterKey.from_base64(text)
    with pytest.raises(CryptoError, match="not valid base64"):
        MasterKey.from_base64("not base64!")
    with pytest.raises(CryptoError, match="must be 32 bytes"):
        MasterKey.from_base64(base64.b64encode(b"short").decode())
    assert "hidden" in repr(MASTER)


def test_a_wrapped_key_unwraps_only_for_its_child_and_master() -> None:
    key = new_data_key()
    wrapped = MASTER.wrap(key, "child-1")
    assert key not in wrapped
    assert MASTER.unwrap(wrapped, "child-1") == key
    with pytest.raises(CryptoError, match="does not unwrap"):
        MASTER.unwrap(wrapped, "child-2")
    with pytest.raises(CryptoError, match="does not unwrap"):
        MasterKey(bytes(32)).unwrap(wrapped, "child-1")
    with pytest.raises(CryptoError, match="not a wrapped data key"):
        MASTER.unwrap(b"garbage", "child-1")
    with pytest.raises(CryptoError, match="32 bytes"):
        MASTER.wrap(b"short", "child-1")


async def test_memory_key_store_is_a_key_store() -> None:
    store = MemoryKeyStore(MASTER)
    assert isinstance(store, KeyStore)
    assert await store.get("child-1") is None
    key = await store.create("child-1")
    assert len(key) == 32
    assert await store.create("child-1") == key  # get-or-create
    assert await store.get("child-1") == key
    wrapped = store.wrapped("child-1")
    assert wrapped is not None and key not in wrapped
    assert await store.create("child-2") != key


async def test_erasure_deletes_the_key_for_good() -> None:
    store = MemoryKeyStore(MASTER)
    key = await store.create("child-1")
    enc = encrypt_fields(PAYLOAD, FIELDS, key, aad="child-1")
    assert await store.delete("child-1") is True
    assert await store.delete("child-1") is False  # idempotent
    assert await store.get("child-1") is None
    with pytest.raises(KeyErasedError):
        await store.create("child-1")
    out = decrypt_fields(enc, FIELDS, await store.get("child-1"), aad="child-1")
    assert out["summary"] == PLACEHOLDER and out["contact"]["postcode"] == PLACEHOLDER
    assert await store.delete("never-had-one") is False
