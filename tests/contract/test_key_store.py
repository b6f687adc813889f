"""The `KeyStore` contract: one suite, run unchanged against memory, SQLite and
PostgreSQL. A child's data key is made once and read back the same; deleting it is for
good — an erased child never gets a new key, not even through `create_many`; two
writers creating one key at once agree on it (on PostgreSQL, two separate stores)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.consent.crypto import KEY_BYTES, KeyErasedError, KeyStore, MasterKey, MemoryKeyStore
from tests.support.stores import started_store

MASTER = MasterKey(bytes(range(32)))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[KeyStore, KeyStore]]:
    """Two views of one key store: on PostgreSQL two separate stores (as two processes
    have); on SQLite two key stores (two caches) over one read store; on memory one."""
    if request.param == "memory":
        keys = MemoryKeyStore(MASTER)
        yield keys, keys
        return
    from hub.store.keystore import SqlKeyStore

    async with started_store(request.param, request, tmp_path) as store:
        if request.param != "postgres":
            yield SqlKeyStore(store, MASTER), SqlKeyStore(store, MASTER)
            return
        async with started_store(request.param, request, tmp_path) as other:
            yield SqlKeyStore(store, MASTER), SqlKeyStore(other, MASTER)


@pytest.fixture
def keys(stores: tuple[KeyStore, KeyStore]) -> KeyStore:
    return stores[0]


async def test_a_key_is_made_once_and_read_back_the_same(
    stores: tuple[KeyStore, KeyStore],
) -> None:
    keys, other = stores
    assert await keys.get("hc-1/education") is None
    key = await keys.create("hc-1/education")
    assert isinstance(key, bytes) and len(key) == KEY_BYTES
    assert await keys.create("hc-1/education") == key
    assert await keys.get("hc-1/education") == key
    assert await other.get("hc-1/education") == key
    assert await keys.create("hc-1/health") != key
    assert await keys.create("hc-2/education") != key


async def test_a_deleted_key_is_gone_for_good(keys: KeyStore) -> None:
    await keys.create("hc-1/health")
    assert await keys.delete("hc-1/health") is True
    assert await keys.get("hc-1/health") is None
    assert await keys.delete("hc-1/health") is False  # idempotent
    with pytest.raises(KeyErasedError):
        await keys.create("hc-1/health")
    assert await keys.get("hc-1/health") is None


async def test_an_id_erased_before_it_had_a_key_never_gets_one(keys: KeyStore) -> None:
    assert await keys.delete("hp-1/identity") is False
    with pytest.raises(KeyErasedError):
        await keys.create("hp-1/identity")


async def test_create_many_makes_the_missing_keys_and_skips_erased_ones(keys: KeyStore) -> None:
    known = await keys.create("hc-1/education")
    await keys.delete("hc-9/education")
    await keys.create_many(["hc-1/education", "hc-2/education", "hc-9/education", "hc-2/education"])
    await keys.create_many([])
    assert await keys.get("hc-1/education") == known
    made = await keys.get("hc-2/education")
    assert made is not None and len(made) == KEY_BYTES
    assert await keys.create("hc-2/education") == made
    assert await keys.get("hc-9/education") is None
    with pytest.raises(KeyErasedError):
        await keys.create("hc-9/education")


async def test_many_keys_in_one_call(keys: KeyStore) -> None:
    ids = [f"hc-{i}/education" for i in range(1200)]  # more than one batch
    await keys.create_many(ids)
    got = [await keys.get(i) for i in ids]
    assert all(k is not None for k in got)
    assert len(set(got)) == len(ids)


async def test_two_writers_creating_one_key_at_once_agree_on_it(
    stores: tuple[KeyStore, KeyStore],
) -> None:
    keys, other = stores
    for n in range(10):
        a, b = await asyncio.gather(keys.create(f"hc-{n}/social"), other.create(f"hc-{n}/social"))
        assert a == b, n
        assert await keys.get(f"hc-{n}/social") == await other.get(f"hc-{n}/social") == a
