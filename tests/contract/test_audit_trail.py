"""The audit trail against real logs and stores: one append spanning many chains (one
per partition of hub.audit), concurrent appends, and a crash between the log append and
the head update — every chain stays whole and `verify()` passes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from hub.consent.trail import AuditEntry, AuditTrail
from hub.log import EventLog, LogName, partition_for
from hub.store import ReadStore
from tests.contract.test_event_log import make_log, read_all
from tests.support.stores import make_store

COMBOS = [("sqlite", "sqlite"), ("kafka", "postgres")]


@pytest.fixture(params=COMBOS, ids=[f"{a}-log+{b}-store" for a, b in COMBOS])
async def trail(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AuditTrail]:
    log_kind, store_kind = request.param
    log = await make_log(log_kind, request, tmp_path)
    store = await make_store(store_kind, request, tmp_path)
    await log.start()
    await store.start()
    t = AuditTrail(log, store)
    try:
        yield t
    finally:
        await store.close()
        await log.close()


def read(child: str, n: int = 0) -> AuditEntry:
    return AuditEntry(
        kind="read",
        actor="coordinator:casey",
        child_id=child,
        details={"route": "GET /caseload", "event_ids": [f"e-{child}-{n}"]},
    )


async def chains(log: EventLog) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in await read_all(log, LogName.AUDIT):
        line = orjson.loads(rec.value)
        out.setdefault(line["chain"], []).append(line)
    return out


def log_of(trail: AuditTrail) -> EventLog:
    return trail._log


async def test_one_append_over_many_chains_keeps_each_whole(trail: AuditTrail) -> None:
    children = [f"child-{i:03d}" for i in range(60)]
    n = log_of(trail).partitions(LogName.AUDIT)
    assert len({partition_for(c, n) for c in children}) > 1  # the append spans chains
    first = await trail.append([read(c) for c in children])
    again = await trail.append([read(c, 1) for c in reversed(children)])
    assert [r.child_id for r in first] == children  # in input order
    assert [r.child_id for r in again] == list(reversed(children))
    for chain, lines in (await chains(log_of(trail))).items():
        assert [x["seq"] for x in lines] == list(range(1, len(lines) + 1)), chain
        assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(lines))
    result = await trail.verify()
    assert result.ok and result.checked == 120, result


async def test_concurrent_appends_never_fork_a_chain(trail: AuditTrail) -> None:
    children = [f"child-{i:03d}" for i in range(24)]
    await asyncio.gather(
        *(trail.append([read(c, k) for c in children[k % 3 :: 2]]) for k in range(12))
    )
    result = await trail.verify()
    assert result.ok, result
    lines = [x for chain in (await chains(log_of(trail))).values() for x in chain]
    assert len(lines) == sum(len(children[k % 3 :: 2]) for k in range(12))


async def test_records_left_by_a_crash_before_the_head_update_are_adopted(
    trail: AuditTrail, monkeypatch: pytest.MonkeyPatch
) -> None:
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
                execute = tx.execute

                async def dying(sql: str, *args: Any) -> Any:
                    if sql.startswith("UPDATE audit_head"):
                        raise Crash
                    return await execute(sql, *args)

                tx.execute = dying
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
