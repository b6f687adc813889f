"""The projection runner against real logs and stores: exactly-once effects, rebuild equals
live, dead-letters that let the stream go on, and resets seen by a live runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from hub.deadletter import DeadLetterEntry
from hub.errors import PermanentError, TransientError
from hub.log import EventLog, LogName, NewRecord
from hub.projections import EventCountsProjection, ProjectionRunner
from hub.projections.base import Applied
from hub.store import ReadStore, Tx
from tests.contract.test_event_log import make_log, read_all
from tests.support.factories import mixed_events, record_of, sen_status
from tests.support.stores import make_store

COMBOS = [("sqlite", "sqlite"), ("sqlite", "postgres"), ("kafka", "postgres"), ("kafka", "sqlite")]


@pytest.fixture(params=COMBOS, ids=[f"{a}-log+{b}-store" for a, b in COMBOS])
async def backends(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[EventLog, ReadStore]]:
    log_kind, store_kind = request.param
    log = await make_log(log_kind, request, tmp_path)
    store = await make_store(store_kind, request, tmp_path)
    await log.start()
    await store.start()
    try:
        yield log, store
    finally:
        await store.close()
        await log.close()


async def counts(store: ReadStore) -> dict[tuple[str, str], int]:
    rows = await store.fetchall("SELECT child_id, event_type, n FROM event_counts")
    return {(c, t): int(n) for c, t, n in rows}


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:  # noqa: ASYNC109 - a deadline for polling state
    """Poll a condition until it holds (synchronisation on state, not a fixed sleep)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def expected_counts(envs: Sequence[object]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for e in envs:
        key = (e.child_id, e.event_type)  # type: ignore[attr-defined]
        out[key] = out.get(key, 0) + 1
    return out


async def test_live_run_then_rebuild_give_the_same_state(
    backends: tuple[EventLog, ReadStore],
) -> None:
    log, store = backends
    envs = mixed_events(children=12, per_child=10)
    await log.append(LogName.EVENTS, [record_of(e) for e in envs[:60]])
    runner = ProjectionRunner(EventCountsProjection(), log, store, batch_size=7)
    await runner.setup()
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    await log.append(LogName.EVENTS, [record_of(e) for e in envs[60:]])  # while live

    async def caught_up() -> bool:
        return sum((await counts(store)).values()) >= len(envs)

    await eventually(caught_up)
    stop.set()
    await task
    live = await counts(store)
    assert live == expected_counts(envs)

    total = await ProjectionRunner(EventCountsProjection(), log, store).rebuild()
    assert total == len(envs)
    assert await counts(store) == live


async def test_reprocessing_a_batch_has_no_second_effect(
    backends: tuple[EventLog, ReadStore],
) -> None:
    log, store = backends
    envs = [sen_status("child-a") for _ in range(5)]
    positions = await log.append(LogName.EVENTS, [record_of(e) for e in envs])
    runner = ProjectionRunner(EventCountsProjection(), log, store)
    await runner.setup()
    batch = await log.read(LogName.EVENTS, positions[0].partition, positions[0].offset, 10)
    await runner.process(batch)
    await runner.process(batch)  # redelivery after a crash before acknowledge
    await runner.process(batch[2:])
    assert await counts(store) == {("child-a", "education.sen_status_recorded"): 5}
    assert runner.stats.skipped == 8
    assert await store.offsets("event_counts", "hub.events") == {
        positions[0].partition: positions[-1].offset
    }


async def test_undecodable_records_are_dead_lettered_and_the_stream_goes_on(
    backends: tuple[EventLog, ReadStore],
) -> None:
    log, store = backends
    good = [sen_status("child-b") for _ in range(3)]
    bad = [
        NewRecord(key="child-b", value=b"{not json"),
        NewRecord(
            key="child-b",
            value=b'{"event_type": "no.such_event", "schema_version": 1, "payload": {}}',
        ),
        NewRecord(
            key="child-b", value=record_of(sen_status("child-b")).value.replace(b'"K"', b'"Z"')
        ),
    ]
    await log.append(
        LogName.EVENTS, [record_of(good[0]), *bad, record_of(good[1]), record_of(good[2])]
    )
    runner = ProjectionRunner(EventCountsProjection(), log, store)
    await runner.rebuild()
    assert await counts(store) == {("child-b", "education.sen_status_recorded"): 3}
    dead = [DeadLetterEntry.from_record(r) for r in await read_all(log, LogName.DEADLETTER)]
    assert len(dead) == 3
    reasons = [d.reason for d in dead]
    assert "not valid JSON" in reasons[0]
    assert "event_type: unknown event type 'no.such_event'" == reasons[1]
    assert reasons[2].startswith("payload.sen_provision:")
    assert all(
        d.source_topic == "hub.events" and d.exception_type == "PermanentError" for d in dead
    )
    assert all(d.consumer == "projection:event_counts" for d in dead)
    assert [d.record.value for d in dead] == [b.value for b in bad]
    assert sorted(d.source_offset for d in dead) == sorted(  # type: ignore[type-var]
        {d.source_offset for d in dead}
    )


class FlakyCounts(EventCountsProjection):
    """Fails transiently a number of times, and permanently for one child."""

    def __init__(self, transient_failures: int, poison_child: str | None = None) -> None:
        self.transient_left = transient_failures
        self.poison_child = poison_child

    async def apply(self, tx: Tx, events: Sequence[Applied]) -> None:
        if any(a.envelope.child_id == self.poison_child for a in events):
            raise PermanentError("poison child", field="child_id")
        if self.transient_left > 0:
            self.transient_left -= 1
            raise TransientError("store hiccup")
        await super().apply(tx, events)


async def test_transient_failures_are_retried_before_anything_is_dead_lettered(
    backends: tuple[EventLog, ReadStore],
) -> None:
    log, store = backends
    await log.append(LogName.EVENTS, [record_of(sen_status("child-c")) for _ in range(4)])
    runner = ProjectionRunner(FlakyCounts(transient_failures=2), log, store, backoff=0.001)
    await runner.rebuild()
    assert await counts(store) == {("child-c", "education.sen_status_recorded"): 4}
    assert await read_all(log, LogName.DEADLETTER) == []


async def test_a_poison_event_is_isolated_and_the_rest_of_its_batch_applied(
    backends: tuple[EventLog, ReadStore],
) -> None:
    log, store = backends
    envs = [sen_status("child-d"), sen_status("poison"), sen_status("child-d")]
    await log.append(LogName.EVENTS, [record_of(e) for e in envs])
    runner = ProjectionRunner(
        FlakyCounts(transient_failures=0, poison_child="poison"), log, store, backoff=0.001
    )
    await runner.rebuild()
    assert await counts(store) == {("child-d", "education.sen_status_recorded"): 2}
    dead = [DeadLetterEntry.from_record(r) for r in await read_all(log, LogName.DEADLETTER)]
    assert [d.reason for d in dead] == ["child_id: poison child"]
    assert (
        dead[0].record.value == record_of(envs[1]).value
        or dead[0].record.key == "projection:event_counts"
    )

    # after the fix, replaying the dead-letter applies it once, and only once
    fixed = ProjectionRunner(EventCountsProjection(), log, store)
    assert await fixed.apply_dead_letter(dead[0]) == "applied"
    assert await fixed.apply_dead_letter(dead[0]) == "already replayed"
    assert (await counts(store))[("poison", "education.sen_status_recorded")] == 1

    # a rebuild supersedes the old dead-letter: replaying it must not double-apply
    await fixed.rebuild()
    assert await fixed.apply_dead_letter(dead[0]) == "superseded"
    assert (await counts(store))[("poison", "education.sen_status_recorded")] == 1


async def test_a_live_runner_follows_a_rebuild_without_losing_or_doubling(
    backends: tuple[EventLog, ReadStore],
) -> None:
    log, store = backends
    envs = mixed_events(children=5, per_child=8)
    await log.append(LogName.EVENTS, [record_of(e) for e in envs[:20]])
    live = ProjectionRunner(EventCountsProjection(), log, store, batch_size=5)
    await live.setup()
    stop = asyncio.Event()
    task = asyncio.create_task(live.run(stop))

    async def at_least(n: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return sum((await counts(store)).values()) >= n

        return check

    await eventually(await at_least(20))
    await ProjectionRunner(EventCountsProjection(), log, store, batch_size=3).rebuild()
    await log.append(LogName.EVENTS, [record_of(e) for e in envs[20:]])
    await eventually(await at_least(len(envs)))
    stop.set()
    await task
    assert await counts(store) == expected_counts(envs)
