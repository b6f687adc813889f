"""The `EventLog` contract: one suite, run unchanged against SQLite and Kafka."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.log import EventLog, LogName, NewRecord, Position, StoredRecord, partition_for

BACKENDS = ["sqlite", "sqlite-before-pos", "kafka"]
"""`sqlite-before-pos`: a log file made before rows were keyed by their packed position,
its tables as that version created them (WITHOUT ROWID, keyed by partition and offset)."""


def _tables_before_pos(path: Path) -> None:
    with sqlite3.connect(path) as db:
        for name in LogName:
            table = "log_" + name.value.replace(".", "_")
            db.execute(
                f"CREATE TABLE {table} ("
                " partition INTEGER NOT NULL, offset INTEGER NOT NULL,"
                " key TEXT NOT NULL, value BLOB NOT NULL, headers BLOB,"
                " ts TEXT NOT NULL, PRIMARY KEY (partition, offset)) WITHOUT ROWID"
            )


async def make_log(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> EventLog:
    if kind.startswith("sqlite"):
        from hub.log.sqlite import SqliteEventLog

        if kind == "sqlite-before-pos":
            _tables_before_pos(tmp_path / "log.db")
        return SqliteEventLog(tmp_path / "log.db", partitions=3)
    from hub.log.kafka import KafkaEventLog

    bootstrap = request.getfixturevalue("kafka_bootstrap")
    prefix = request.getfixturevalue("topic_prefix")
    return KafkaEventLog(bootstrap, topic_prefix=prefix, partitions=3, enable_idempotence=False)


@pytest.fixture(params=BACKENDS)
async def event_log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventLog]:
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


async def test_concurrent_appends_each_get_their_own_records(event_log: EventLog) -> None:
    """Appends made at once (to one log or several; the embedded log writes them in one
    transaction) each land whole, in the order they were made, and answer their own
    positions."""
    first, second, withheld = await asyncio.gather(
        event_log.append(LogName.EVENTS, records(3)),
        event_log.append(LogName.EVENTS, records(2, start=3)),
        event_log.append(LogName.WITHHELD, records(2, start=10)),
    )
    assert len(first) == 3 and len(second) == 2 and len(withheld) == 2
    assert max(p.offset for p in first) < min(p.offset for p in second)
    stored = await read_all(event_log, LogName.EVENTS)
    values = [r.value for r in stored]
    assert values[-5:] == [b"v0", b"v1", b"v2", b"v3", b"v4"]
    assert {r.position for r in stored if r.value in values[-5:]} == {*first, *second}
    assert [r.value for r in await read_all(event_log, LogName.WITHHELD)] == [b"v10", b"v11"]


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
        assert {r.partition for r in mine} == {
            partition_for(k, event_log.partitions(LogName.EVENTS))
        }


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


async def test_appending_nothing_returns_no_positions(event_log: EventLog) -> None:
    assert await event_log.append(LogName.EVENTS, []) == []


async def test_read_at_or_past_the_end_returns_nothing_promptly(event_log: EventLog) -> None:
    # one append of several records: Kafka brokers store it as one multi-record batch
    positions = await event_log.append(LogName.EVENTS, records(5))
    last = positions[-1]
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await event_log.read(LogName.EVENTS, last.partition, last.offset + 1, 10) == []
    assert await event_log.read(LogName.EVENTS, last.partition, last.offset + 1000, 10) == []
    assert loop.time() - started < 2.0
    tail = await event_log.read(LogName.EVENTS, last.partition, last.offset, 10)
    assert [r.value for r in tail] == [b"v4"]


async def test_read_pages_through_a_large_append_without_gaps(event_log: EventLog) -> None:
    positions = await event_log.append(LogName.EVENTS, records(1200))
    part = positions[0].partition
    values: list[bytes] = []
    offsets: list[int] = []
    off = positions[0].offset
    while True:
        page = await event_log.read(LogName.EVENTS, part, off, 500)
        if not page:
            break
        assert len(page) <= 500
        values.extend(r.value for r in page)
        offsets.extend(r.offset for r in page)
        off = page[-1].offset + 1
    assert values == [f"v{i}".encode() for i in range(1200)]
    assert offsets == [p.offset for p in positions]


async def test_subscription_batches_are_single_partition_in_order_and_close_ends_them(
    event_log: EventLog,
) -> None:
    keys = [f"child-{i}" for i in range(9)]
    positions = await event_log.append(
        LogName.AUDIT,
        [NewRecord(key=k, value=f"{k}/{r}".encode()) for r in range(20) for k in keys],
    )
    expected: dict[int, list[int]] = {}
    for pos in positions:
        expected.setdefault(pos.partition, []).append(pos.offset)

    async def from_the_start(parts: frozenset[int]) -> dict[int, int]:
        return {}  # partitions missing from the answer start at 0

    sub = event_log.subscribe(
        LogName.AUDIT, group="contract-batches", start_offsets=from_the_start, max_batch=7
    )
    seen: dict[int, list[int]] = {}
    caught_up = asyncio.Event()

    async def consume() -> None:
        async for batch in sub.batches():
            assert 0 < len(batch) <= 7
            assert len({r.partition for r in batch}) == 1
            assert [r.offset for r in batch] == sorted(r.offset for r in batch)
            seen.setdefault(batch[0].partition, []).extend(r.offset for r in batch)
            await sub.acknowledge({batch[-1].partition: batch[-1].offset})
            if sum(map(len, seen.values())) >= len(positions):
                caught_up.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(caught_up.wait(), 30)
    await sub.close()
    await asyncio.wait_for(task, 10)  # close() ends the iteration
    assert seen == expected


async def test_a_failing_start_offsets_surfaces_from_batches(event_log: EventLog) -> None:
    await event_log.append(LogName.EVENTS, records(2))

    async def store_down(parts: frozenset[int]) -> dict[int, int]:
        raise RuntimeError("read store unreachable")

    sub = event_log.subscribe(LogName.EVENTS, group="contract-broken", start_offsets=store_down)
    with pytest.raises(RuntimeError, match="read store unreachable"):
        async with asyncio.timeout(30):
            async for _ in sub.batches():
                pytest.fail("a batch was delivered without stored offsets")
    await sub.close()


@pytest.mark.parametrize("kind", ["sqlite", "sqlite-before-pos"])
async def test_a_sqlite_log_keeps_the_row_layout_its_file_was_made_with(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    log = await make_log(kind, request, tmp_path)
    await log.start()
    try:
        await log.append(LogName.EVENTS, records(5))
        assert [r.value for r in await read_all(log, LogName.EVENTS)] == [
            f"v{i}".encode() for i in range(5)
        ]
    finally:
        await log.close()
    with sqlite3.connect(tmp_path / "log.db") as db:
        (ddl,) = db.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'log_hub_events'"
        ).fetchone()
        rows = db.execute("SELECT partition, offset FROM log_hub_events").fetchall()
        if kind == "sqlite":
            assert "WITHOUT ROWID" not in ddl
            packed = db.execute("SELECT pos, partition, offset FROM log_hub_events").fetchall()
            assert all(pos == part << 40 | off for pos, part, off in packed)
        else:
            assert "WITHOUT ROWID" in ddl
    assert len(rows) == 5


async def test_a_row_not_at_its_packed_position_is_refused(tmp_path: Path) -> None:
    from hub.log.sqlite import SqliteEventLog

    log = SqliteEventLog(tmp_path / "log.db", partitions=3)
    await log.start()
    await log.close()
    with sqlite3.connect(tmp_path / "log.db") as db, pytest.raises(sqlite3.IntegrityError):
        # as a writer that does not know the packed position would insert (rowid picked)
        db.execute(
            "INSERT INTO log_hub_events (partition, offset, key, value, headers, ts)"
            " VALUES (1, 0, 'k', x'00', NULL, '2024-01-01')"
        )
