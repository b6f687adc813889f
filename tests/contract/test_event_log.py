"""The `EventLog` contract: one suite, run unchanged against SQLite and Kafka."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.log import EventLog, LogName, NewRecord, Position, StoredRecord, partition_for

BACKENDS = ["sqlite", "kafka"]


async def make_log(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> EventLog:
    if kind == "sqlite":
        from hub.log.sqlite import SqliteEventLog

        return SqliteEventLog(tmp_path / "log.db", partitions=3)
    from hub.log.kafka import KafkaEventLog

    bootstrap = request.getfixturevalue("kafka_bootstrap")
    prefix = request.getfixturevalue("topic_prefix")
    return KafkaEventLog(
        bootstrap, topic_prefix=prefix, partitions=3, enable_idempotence=False
    )


@pytest.fixture(params=BACKENDS)
async def event_log(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[EventLog]:
    log = await make_log(request.param, request, tmp_path)
    await log.start()
    try:
        yield log
    finally:
        await log.close()


def records(n: int, key: str = "child-1", start: int = 0) -> list[NewRecord]:
    return [
        NewRecord(key=key, value=f"v{start + i}".encode(), headers=(("h", str(i).encode()),))
        for i in range(n)
    ]


async def read_all(log: EventLog, name: LogName) -> list[StoredRecord]:
    out: list[StoredRecord] = []
    for p in range(log.partitions(name)):
        off = 0
        while True:
            batch = await log.read(name, p, off, 100)
            if not batch:
                break
            out.extend(batch)
            off = batch[-1].offset + 1
    return out


async def test_append_returns_positions_in_order_per_partition(event_log: EventLog) -> None:
    positions = await event_log.append(LogName.EVENTS, records(5))
    part = partition_for("child-1", event_log.partitions(LogName.EVENTS))
    assert [p.partition for p in positions] == [part] * 5
    offsets = [p.offset for p in positions]
    assert offsets == sorted(offsets) and len(set(offsets)) == 5


async def test_read_returns_what_was_appended_with_headers(event_log: EventLog) -> None:
    positions = await event_log.append(LogName.EVENTS, records(3))
    first = positions[0]
    got = await event_log.read(LogName.EVENTS, first.partition, first.offset, 10)
    assert [r.value for r in got] == [b"v0", b"v1", b"v2"]
    assert [r.header("h") for r in got] == [b"0", b"1", b"2"]
    assert all(r.key == "child-1" and r.log is LogName.EVENTS for r in got)
    assert [r.position for r in got] == positions


async def test_read_from_a_later_position_skips_earlier_records(event_log: EventLog) -> None:
    positions = await event_log.append(LogName.EVENTS, records(4))
    third = positions[2]
    got = await event_log.read(LogName.EVENTS, third.partition, third.offset, 10)
    assert [r.value for r in got] == [b"v2", b"v3"]


async def test_read_honours_the_limit(event_log: EventLog) -> None:
    positions = await event_log.append(LogName.EVENTS, records(6))
    got = await event_log.read(LogName.EVENTS, positions[0].partition, positions[0].offset, 4)
    assert [r.value for r in got] == [b"v0", b"v1", b"v2", b"v3"]


async def test_logs_are_separate(event_log: EventLog) -> None:
    await event_log.append(LogName.EVENTS, records(2))
    await event_log.append(LogName.AUDIT, records(1, start=10))
    assert [r.value for r in await read_all(event_log, LogName.AUDIT)] == [b"v10"]
    assert len(await read_all(event_log, LogName.EVENTS)) == 2
    assert await read_all(event_log, LogName.WITHHELD) == []
    assert await read_all(event_log, LogName.DEADLETTER) == []


async def test_each_child_keeps_its_order_across_interleaved_appends(event_log: EventLog) -> None:
    keys = [f"child-{i}" for i in range(7)]
    for round_ in range(5):
        await event_log.append(
            LogName.EVENTS,
            [NewRecord(key=k, value=f"{k}/{round_}".encode()) for k in keys],
        )
    everything = await read_all(event_log, LogName.EVENTS)
    assert len(everything) == 35
    for k in keys:
        mine = [r for r in everything if r.key == k]
        assert [r.value.decode() for r in mine] == [f"{k}/{i}" for i in range(5)]
        assert {r.partition for r in mine} == {partition_for(k, event_log.partitions(LogName.EVENTS))}


async def test_subscribe_starts_at_stored_offsets_and_tails_live(event_log: EventLog) -> None:
    n = event_log.partitions(LogName.EVENTS)
    before = await event_log.append(LogName.EVENTS, records(3))
    part = before[0].partition
    assigned: list[frozenset[int]] = []

    async def start(parts: frozenset[int]) -> dict[int, int]:
        assigned.append(parts)
        return {part: before[1].offset}  # resume after the first record

    sub = event_log.subscribe(LogName.EVENTS, group="contract-test", start_offsets=start)
    seen: list[bytes] = []

    async def consume() -> None:
        async for batch in sub.batches():
            for rec in batch:
                seen.append(rec.value)
            await sub.acknowledge({b[-1].partition: b[-1].offset for b in [batch]})
            if len(seen) >= 4:
                return

    task = asyncio.create_task(consume())
    # appended while the subscriber is live: it must arrive without a restart
    await event_log.append(LogName.EVENTS, records(2, start=3))
    await asyncio.wait_for(task, 30)
    await sub.close()
    assert seen == [b"v1", b"v2", b"v3", b"v4"]
    assert assigned and assigned[0] == frozenset(range(n))


async def test_end_offsets_cover_each_partition(event_log: EventLog) -> None:
    ends = await event_log.end_offsets(LogName.EVENTS)
    assert set(ends) == set(range(event_log.partitions(LogName.EVENTS)))
    await event_log.append(LogName.EVENTS, records(1))
    after = await event_log.end_offsets(LogName.EVENTS)
    assert sum(after.values()) >= 1


async def test_ping_answers_when_reachable(event_log: EventLog) -> None:
    await event_log.ping()


async def test_position_text_round_trips() -> None:
    assert Position.parse(str(Position(2, 17))) == Position(2, 17)
    with pytest.raises(ValueError, match="PARTITION:OFFSET"):
        Position.parse("x")
