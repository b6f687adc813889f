"""The `ReadStore` contract: one suite, run unchanged against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.store import ReadStore
from tests.support.stores import make_store

DDL = (
    "CREATE TABLE IF NOT EXISTS widget ("
    " id TEXT PRIMARY KEY, n BIGINT NOT NULL, blob BYTEA, note TEXT)"
)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ReadStore]:
    s = await make_store(request.param, request, tmp_path)
    await s.start()
    async with s.transaction() as tx:
        await tx.execute(DDL)
    try:
        yield s
    finally:
        await s.close()


async def test_committed_writes_are_visible_to_queries(store: ReadStore) -> None:
    async with store.transaction() as tx:
        await tx.execute("INSERT INTO widget (id, n, blob) VALUES (?, ?, ?)", ("a", 1, b"\x00\xff"))
    assert await store.fetchall("SELECT id, n, blob FROM widget") == [("a", 1, b"\x00\xff")]


async def test_a_failed_transaction_leaves_nothing_behind(store: ReadStore) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO widget (id, n) VALUES (?, ?)", ("a", 1))
            await tx.set_offset("p", "hub.events", 0, 41)
            raise RuntimeError("boom")
    assert await store.fetchall("SELECT id FROM widget") == []
    assert await store.offsets("p", "hub.events") == {}


async def test_a_failing_statement_fails_its_transaction_whole(store: ReadStore) -> None:
    """Whenever the store runs a statement (at once, or with the next read or the commit),
    its error reaches the caller inside the transaction and nothing of it is kept."""
    async with store.transaction() as tx:
        await tx.execute("INSERT INTO widget (id, n) VALUES (?, ?)", ("a", 1))
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO widget (id, n) VALUES (?, ?)", ("b", 2))
            await tx.execute("INSERT INTO widget (id, n) VALUES (?, ?)", ("a", 3))
    assert await store.fetchall("SELECT id, n FROM widget ORDER BY id") == [("a", 1)]
    async with store.transaction() as tx:  # the store is usable after it
        await tx.execute("INSERT INTO widget (id, n) VALUES (?, ?)", ("c", 4))
    assert await store.fetchall("SELECT id FROM widget ORDER BY id") == [("a",), ("c",)]


async def test_a_transaction_reads_its_own_writes_in_order(store: ReadStore) -> None:
    rows = [("a", 1), ("b", 2)]
    async with store.transaction() as tx:
        await tx.executemany("INSERT INTO widget (id, n) VALUES (?, ?)", rows)
        rows.append(("z", 26))  # the caller's list changing afterwards changes nothing
        await tx.execute("UPDATE widget SET n = n + 10 WHERE id = ?", ("a",))
        assert await tx.fetchall("SELECT id, n FROM widget ORDER BY id") == [("a", 11), ("b", 2)]
        await tx.execute("DELETE FROM widget WHERE id = ?", ("b",))
        assert await tx.fetchone("SELECT count(*) FROM widget") == (1,)
    assert await store.fetchall("SELECT id, n FROM widget") == [("a", 11)]


async def test_offsets_commit_with_the_results(store: ReadStore) -> None:
    async with store.transaction() as tx:
        assert await tx.lock_offsets("p", "hub.events", [0, 1]) == {0: -1, 1: -1}
        await tx.set_offset("p", "hub.events", 1, 7)
        await tx.execute("INSERT INTO widget (id, n) VALUES (?, ?)", ("x", 7))
    assert await store.offsets("p", "hub.events") == {1: 7}
    async with store.transaction() as tx:
        assert await tx.lock_offsets("p", "hub.events", [0, 1]) == {0: -1, 1: 7}
        await tx.set_offset("p", "hub.events", 1, 9)
    assert await store.offsets("p", "hub.events") == {1: 9}
    assert await store.offsets("other", "hub.events") == {}


async def test_upsert_accumulates_in_both_dialects(store: ReadStore) -> None:
    sql = (
        "INSERT INTO widget (id, n) VALUES (?, ?)"
        " ON CONFLICT (id) DO UPDATE SET n = widget.n + excluded.n"
    )
    async with store.transaction() as tx:
        await tx.executemany(sql, [("a", 1), ("b", 2)])
        await tx.executemany(sql, [("a", 10)])
        assert await tx.fetchone("SELECT n FROM widget WHERE id = ?", ("a",)) == (11,)
    assert sorted(await store.fetchall("SELECT id, n FROM widget")) == [("a", 11), ("b", 2)]


async def test_concurrent_transactions_serialise_on_offsets(store: ReadStore) -> None:
    """Two writers racing on one projection's offset: each increment lands exactly once."""

    async def bump() -> None:
        async with store.transaction() as tx:
            cur = (await tx.lock_offsets("race", "hub.events", [0]))[0]
            await asyncio.sleep(0)
            await tx.set_offset("race", "hub.events", 0, cur + 1)

    await asyncio.gather(*(bump() for _ in range(10)))
    assert await store.offsets("race", "hub.events") == {0: 9}


async def test_ping_answers(store: ReadStore) -> None:
    await store.ping()


async def test_a_held_name_excludes_others_and_is_free_again_after_its_block(
    store: ReadStore,
) -> None:
    inside, leave = asyncio.Event(), asyncio.Event()
    order: list[str] = []

    async def first() -> None:
        async with store.held("widget.lock"):
            order.append("first in")
            inside.set()
            await leave.wait()
            order.append("first out")

    task = asyncio.create_task(first())
    await inside.wait()
    second = asyncio.create_task(_hold(store, "widget.lock", order))
    leave.set()
    async with asyncio.timeout(10):
        await asyncio.gather(task, second)
    assert order == ["first in", "first out", "second in"]
    with pytest.raises(RuntimeError, match="boom"):
        async with store.held("widget.lock"):
            raise RuntimeError("boom")
    async with asyncio.timeout(10):  # a block that raised let go too
        await _hold(store, "widget.lock", order)


async def _hold(store: ReadStore, name: str, order: list[str]) -> None:
    async with store.held(name):
        order.append("second in")


@pytest.mark.parametrize("store", ["postgres"], indirect=True)
async def test_a_pooled_connection_that_may_hold_a_session_lock_is_reset_on_release(
    store: ReadStore,
) -> None:
    """Released connections skip asyncpg's reset query, except one `held` marked: a
    session lock whose unlock was not seen is released with the connection."""
    from hub.store.postgres import PostgresReadStore

    assert isinstance(store, PostgresReadStore)
    pool = store._p()
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock(4242)")
        store._dirty.add(conn.get_server_pid())  # as `held` leaves it when unlock fails
    async with pool.acquire() as a, pool.acquire() as b:
        for conn in (a, b):  # whichever connection it was, no session holds the lock now
            assert await conn.fetchval("SELECT pg_try_advisory_lock(4242)")
            await conn.execute("SELECT pg_advisory_unlock(4242)")
    assert not store._dirty
