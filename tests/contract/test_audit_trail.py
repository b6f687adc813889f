"""The `AuditTrail` contract, run against memory and against real logs and stores: one
append spanning many chains, concurrent appends, and — where the trail is a log with its
heads in a store — a crash between the log append and the head update: every chain
stays whole and `verify()` passes. On the log trail, concurrent appenders are
group-committed: many callers share one store transaction and one log append, each gets
exactly its own records back, and an error reaches every caller it concerns."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.consent.audit_chain import AuditRecord
from hub.consent.audit_heads import HeadSigner
from hub.consent.audit_trail import AuditEntry, AuditTrail, MemoryAuditTrail
from hub.log import EventLog, LogName, NewRecord, Position
from hub.store import ReadStore, Tx
from hub.store.audit_trail import LogAuditTrail
from tests.contract.test_event_log import make_log, read_all
from tests.support.stores import make_store

SIGNER = HeadSigner(bytes(range(32)))
COMBOS = [("sqlite", "sqlite"), ("kafka", "postgres")]
COMBO_IDS = [f"{a}-log+{b}-store" for a, b in COMBOS]


@contextlib.asynccontextmanager
async def logged(
    combo: tuple[str, str], request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[LogAuditTrail]:
    log_kind, store_kind = combo
    log = await make_log(log_kind, request, tmp_path)
    store = await make_store(store_kind, request, tmp_path)
    await log.start()
    await store.start()
    try:
        yield LogAuditTrail(log, store, signer=SIGNER)
    finally:
        await store.close()
        await log.close()


@pytest.fixture(params=[None, *COMBOS], ids=["memory", *COMBO_IDS])
async def trail(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AuditTrail]:
    if request.param is None:
        yield MemoryAuditTrail()
        return
    async with logged(request.param, request, tmp_path) as t:
        yield t


@pytest.fixture(params=COMBOS, ids=COMBO_IDS)
async def log_trail(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LogAuditTrail]:
    async with logged(request.param, request, tmp_path) as t:
        yield t


def read(child: str, n: int = 0) -> AuditEntry:
    return AuditEntry(
        kind="read",
        actor="coordinator:casey",
        child_id=child,
        details={"route": "GET /caseload", "event_ids": [f"e-{child}-{n}"]},
    )


def assert_whole(records: Iterable[AuditRecord]) -> dict[str, list[AuditRecord]]:
    """Every chain among `records` runs from seq 1 without a gap, each record linked to
    the one before; returns the chains."""
    by_chain: dict[str, list[AuditRecord]] = {}
    for rec in records:
        by_chain.setdefault(rec.chain, []).append(rec)
    for chain, recs in by_chain.items():
        recs.sort(key=lambda r: r.seq)
        assert [r.seq for r in recs] == list(range(1, len(recs) + 1)), chain
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(recs)), chain
    return by_chain


async def chains(log: EventLog) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in await read_all(log, LogName.AUDIT):
        line = orjson.loads(rec.value)
        out.setdefault(line["chain"], []).append(line)
    return out


def log_of(trail: LogAuditTrail) -> EventLog:
    return trail._log


async def test_an_empty_trail_verifies(trail: AuditTrail) -> None:
    result = await trail.verify()
    assert result.ok and result.checked == 0 and result.first_broken is None


async def test_an_entry_is_sealed_as_given(trail: AuditTrail) -> None:
    at = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    [rec, hub_wide] = await trail.append(
        [
            AuditEntry(
                kind="decision", actor="system:gate", child_id="hc-1", details={"x": 1}, at=at
            ),
            AuditEntry(kind="key_created", actor="system:keys"),
        ]
    )
    assert (rec.kind, rec.actor, rec.child_id, rec.details, rec.at) == (
        "decision",
        "system:gate",
        "hc-1",
        {"x": 1},
        at,
    )
    assert rec.hash == rec.expected_hash()
    assert hub_wide.child_id is None and hub_wide.at.tzinfo is not None
    assert (await trail.verify()).checked == 2


async def test_one_append_over_many_chains_keeps_each_whole(trail: AuditTrail) -> None:
    children = [f"child-{i:03d}" for i in range(60)]
    first = await trail.append([read(c) for c in children])
    again = await trail.append([read(c, 1) for c in reversed(children)])
    assert [r.child_id for r in first] == children  # in input order
    assert [r.child_id for r in again] == list(reversed(children))
    by_chain = assert_whole([*first, *again])
    assert len(by_chain) > 1  # the append spans chains
    result = await trail.verify()
    assert result.ok and result.checked == 120, result


async def test_concurrent_appends_never_fork_a_chain(trail: AuditTrail) -> None:
    children = [f"child-{i:03d}" for i in range(24)]
    appended = await asyncio.gather(
        *(trail.append([read(c, k) for c in children[k % 3 :: 2]]) for k in range(12))
    )
    records = [r for batch in appended for r in batch]
    assert len(records) == sum(len(children[k % 3 :: 2]) for k in range(12))
    assert_whole(records)
    result = await trail.verify()
    assert result.ok and result.checked == len(records), result


async def test_the_log_holds_each_chain_whole(log_trail: LogAuditTrail) -> None:
    children = [f"child-{i:03d}" for i in range(30)]
    await asyncio.gather(*(log_trail.append([read(c, k) for c in children]) for k in range(3)))
    stored = await chains(log_of(log_trail))
    assert sum(len(lines) for lines in stored.values()) == 90
    for chain, lines in stored.items():
        assert [x["seq"] for x in lines] == list(range(1, len(lines) + 1)), chain
        assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(lines))


async def test_records_left_by_a_crash_before_the_head_update_are_adopted(
    log_trail: LogAuditTrail, monkeypatch: pytest.MonkeyPatch
) -> None:
    trail = log_trail
    children = [f"child-{i:03d}" for i in range(20)]
    await trail.append([read(c) for c in children])
    store: ReadStore = trail._store
    real = store.transaction

    class Crash(Exception):
        pass

    def crashing() -> Any:
        """A transaction that dies at the head update, after the log append."""
        cm = real()

        class Tx:
            async def __aenter__(self) -> Any:
                tx = await cm.__aenter__()
                execute, executemany = tx.execute, tx.executemany

                async def dying(sql: str, *args: Any) -> Any:
                    if sql.startswith("UPDATE audit_head"):
                        raise Crash
                    return await execute(sql, *args)

                async def dying_many(sql: str, *args: Any) -> Any:
                    if sql.startswith("UPDATE audit_head"):
                        raise Crash
                    return await executemany(sql, *args)

                tx.execute, tx.executemany = dying, dying_many
                return tx

            async def __aexit__(self, *exc: Any) -> Any:
                return await cm.__aexit__(*exc)

        return Tx()

    monkeypatch.setattr(store, "transaction", crashing)
    with pytest.raises(Crash):
        await trail.append([read(c, 1) for c in children])
    monkeypatch.setattr(store, "transaction", real)
    orphans = await read_all(log_of(trail), LogName.AUDIT)
    assert len(orphans) > len(children)  # the crashed append reached the log

    later = await trail.append([read(c, 2) for c in children])
    result = await trail.verify()
    assert result.ok, result
    by_chain = await chains(log_of(trail))
    for rec in later:  # each continues after what the crash left, not from the old head
        assert rec.seq == len([x for x in by_chain[rec.chain] if x["seq"] <= rec.seq])
    assert sum(len(x) for x in by_chain.values()) == 3 * len(children)


class CountedLog:
    """An `EventLog` that counts its appends to hub.audit (and can be made to fail them)."""

    def __init__(self, inner: EventLog) -> None:
        self._inner = inner
        self.audit_appends = 0
        self.failing: Exception | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def append(self, log: LogName, records: Sequence[NewRecord]) -> list[Position]:
        if log == LogName.AUDIT:
            self.audit_appends += 1
            if self.failing is not None:
                raise self.failing
        return await self._inner.append(log, records)


class CountedStore:
    """A `ReadStore` that counts the transactions it commits."""

    def __init__(self, inner: ReadStore) -> None:
        self._inner = inner
        self.commits = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        @asynccontextmanager
        async def counted() -> AsyncIterator[Tx]:
            async with self._inner.transaction() as tx:
                yield tx
            self.commits += 1

        return counted()


def counted_trail(trail: LogAuditTrail) -> tuple[LogAuditTrail, CountedLog, CountedStore]:
    log, store = CountedLog(log_of(trail)), CountedStore(trail._store)
    return LogAuditTrail(log, store, signer=SIGNER), log, store  # type: ignore[arg-type]


async def test_concurrent_appenders_share_commits_and_each_get_their_own_records(
    log_trail: LogAuditTrail,
) -> None:
    grouped, log, store = counted_trail(log_trail)
    rng = random.Random(5)
    callers = 50

    async def reader(k: int) -> tuple[int, list[Any]]:
        await asyncio.sleep(rng.random() * 0.05)  # arriving over 50 ms, not all at once
        children = [f"child-{(k * 7 + j) % 40:03d}" for j in range(1 + k % 3)]
        return k, await grouped.append([read(c, k) for c in children])

    answers = await asyncio.gather(*(reader(k) for k in range(callers)))
    for k, records in answers:
        expected = [f"child-{(k * 7 + j) % 40:03d}" for j in range(1 + k % 3)]
        assert [r.child_id for r in records] == expected  # its own, in its order
        assert all(r.details["event_ids"] == [f"e-{r.child_id}-{k}"] for r in records)
    ids = [r.record_id for _, records in answers for r in records]
    assert len(set(ids)) == len(ids) == sum(1 + k % 3 for k in range(callers))
    result = await log_trail.verify()
    assert result.ok and result.checked == len(ids), result
    lines = {x["record_id"] for chain in (await chains(log_of(log_trail))).values() for x in chain}
    assert lines == {str(i) for i in ids}
    assert 1 <= log.audit_appends < callers, log.audit_appends
    assert 1 <= store.commits < callers, store.commits


async def test_a_caller_whose_entries_cannot_be_sealed_fails_alone(
    log_trail: LogAuditTrail,
) -> None:
    grouped, log, _ = counted_trail(log_trail)
    bad = AuditEntry(kind="read", actor="coordinator:casey", child_id="child-007",
                     details={"name": "Sam Example"})  # fmt: skip
    results = await asyncio.gather(
        *(grouped.append([read(f"child-{k:03d}", k)]) for k in range(5)),
        grouped.append([read("child-006"), bad]),
        *(grouped.append([read(f"child-{k:03d}", k)]) for k in range(8, 12)),
        return_exceptions=True,
    )
    assert isinstance(results[5], ValueError) and "personal data" in str(results[5])
    good = [r for i, r in enumerate(results) if i != 5]
    assert all(isinstance(r, list) and len(r) == 1 for r in good), results
    assert log.audit_appends < len(good)  # they were written together nonetheless
    result = await log_trail.verify()
    assert result.ok and result.checked == len(good), result  # nothing of the bad caller


async def test_a_failed_write_reaches_every_caller_of_its_batch(log_trail: LogAuditTrail) -> None:
    grouped, log, _ = counted_trail(log_trail)

    class LogDown(Exception):
        pass

    log.failing = LogDown("the log is unreachable")
    results = await asyncio.gather(
        *(grouped.append([read(f"child-{k:03d}", k)]) for k in range(20)),
        return_exceptions=True,
    )
    assert all(isinstance(r, LogDown) for r in results), results
    assert log.audit_appends < len(results)
    log.failing = None
    again = await asyncio.gather(*(grouped.append([read(f"child-{k:03d}", 1)]) for k in range(20)))
    assert [r.child_id for [r] in again] == [f"child-{k:03d}" for k in range(20)]
    result = await log_trail.verify()
    assert result.ok and result.checked == 20, result


async def test_a_caller_cancelled_mid_write_does_not_cancel_the_others(
    log_trail: LogAuditTrail,
) -> None:
    grouped, _, _ = counted_trail(log_trail)
    tasks = [asyncio.create_task(grouped.append([read(f"child-{k:03d}", k)])) for k in range(10)]
    await asyncio.sleep(0)  # every caller queued, the writer started
    tasks[0].cancel()  # the caller that started the writer gives up
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(r, list) and len(r) == 1 for r in results[1:]), results
    result = await log_trail.verify()
    assert result.ok and result.checked in (9, 10), result  # its write may have been taken


async def test_two_group_committing_writers_on_one_store_never_fork_a_chain(
    log_trail: LogAuditTrail,
) -> None:
    """Two trails over the same log and store (as two API processes are): each batches
    its own callers, and the head rows keep their batches from interleaving a chain."""
    other = LogAuditTrail(log_of(log_trail), log_trail._store, signer=SIGNER)
    children = [f"child-{i:03d}" for i in range(30)]
    calls = [
        (log_trail if k % 2 else other).append([read(c, k) for c in children[k % 5 :: 3]])
        for k in range(40)
    ]
    answers = await asyncio.gather(*calls)
    assert [len(a) for a in answers] == [len(children[k % 5 :: 3]) for k in range(40)]
    result = await log_trail.verify()
    assert result.ok and result.checked == sum(len(a) for a in answers), result
