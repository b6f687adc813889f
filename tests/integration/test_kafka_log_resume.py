"""The Kafka log against a real broker: a group subscriber resumes from the read store's
offsets (not Kafka's), and separate processes share the topics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hub.errors import TransientError
from hub.log import LogName, NewRecord, Position, StoredRecord
from hub.log.kafka import KafkaEventLog

pytestmark = pytest.mark.kafka

# A short session timeout: Tansu holds a group's first JoinGroup for about half of it.
FAST_GROUP = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 500}


def kafka_log(bootstrap: str, prefix: str) -> KafkaEventLog:
    return KafkaEventLog(
        bootstrap, topic_prefix=prefix, partitions=3, enable_idempotence=False, **FAST_GROUP
    )


@pytest.fixture
async def event_log(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[KafkaEventLog]:
    log = kafka_log(kafka_bootstrap, topic_prefix)
    await log.start()
    try:
        yield log
    finally:
        await log.close()


def facts(n: int, start: int = 0) -> list[NewRecord]:
    return [
        NewRecord(key=f"child-{i % 11}", value=f"fact-{i}".encode(), headers=(("n", b"%d" % i),))
        for i in range(start, start + n)
    ]


class ReadStore:
    """A stand-in for a projection's store: the applied offsets live here, and every
    delivery is recorded so that a duplicate or a gap shows."""

    def __init__(self) -> None:
        self.next_offset: dict[int, int] = {}
        self.delivered: list[StoredRecord] = []
        self.assignments: list[tuple[frozenset[int], dict[int, int]]] = []

    async def start_offsets(self, parts: frozenset[int]) -> dict[int, int]:
        answer = {p: self.next_offset[p] for p in parts if p in self.next_offset}
        self.assignments.append((parts, answer))
        return answer

    def apply(self, batch: list[StoredRecord]) -> None:
        self.delivered.extend(batch)
        self.next_offset[batch[-1].partition] = batch[-1].offset + 1

    def covers(self, positions: list[Position]) -> bool:
        return all(self.next_offset.get(p.partition, 0) > p.offset for p in positions)


async def test_a_group_subscriber_resumes_exactly_where_its_read_store_says(
    event_log: KafkaEventLog,
) -> None:
    first = await event_log.append(LogName.EVENTS, facts(600))
    store = ReadStore()

    # First run: apply batches, acknowledge them, and "crash" after roughly a third,
    # with the last applied batch committed to the store but never acknowledged to
    # Kafka: the group's committed offset then lags the store.
    sub = event_log.subscribe(
        LogName.EVENTS, group="projector", start_offsets=store.start_offsets, max_batch=40
    )
    async for batch in sub.batches():
        store.apply(batch)
        if len(store.delivered) >= 200:
            break
        await sub.acknowledge({batch[-1].partition: batch[-1].offset})
    await sub.close()
    stopped_at = dict(store.next_offset)
    assert 200 <= len(store.delivered) < 600

    # Written while no projector runs.
    second = await event_log.append(LogName.EVENTS, facts(150, start=600))

    # Second run, same group: it must start at the store's offsets.
    resumed = event_log.subscribe(
        LogName.EVENTS, group="projector", start_offsets=store.start_offsets, max_batch=40
    )
    first_after_resume: dict[int, int] = {}
    done = asyncio.Event()

    async def consume() -> None:
        async for batch in resumed.batches():
            first_after_resume.setdefault(batch[0].partition, batch[0].offset)
            store.apply(batch)
            await resumed.acknowledge({batch[-1].partition: batch[-1].offset})
            if store.covers(first + second):
                done.set()

    task = asyncio.create_task(consume())
    try:
        await asyncio.wait_for(done.wait(), 60)
    finally:
        await resumed.close()
        await asyncio.wait_for(task, 10)

    parts, answer = store.assignments[-1]
    assert parts == frozenset(range(3))
    assert answer == stopped_at
    for part, offset in first_after_resume.items():
        assert offset == stopped_at.get(part, 0)
    delivered = [r.position for r in store.delivered]
    assert len(delivered) == len(set(delivered)), "a record was delivered twice"
    assert sorted(delivered) == sorted(first + second), "a record was lost"
    assert sorted(r.value for r in store.delivered) == sorted(r.value for r in facts(750))


async def test_two_processes_appending_to_the_same_topics_see_each_others_records(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    one = kafka_log(kafka_bootstrap, topic_prefix)
    two = kafka_log(kafka_bootstrap, topic_prefix)
    await one.start()
    await two.start()  # the topics exist already: tolerated
    try:
        written: dict[Position, bytes] = {}
        for round_ in range(4):
            for who, log in (("one", one), ("two", two)):
                batch = [
                    NewRecord(key=f"child-{k}", value=f"{who}/{round_}/{k}".encode())
                    for k in range(5)
                ]
                for pos, rec in zip(await log.append(LogName.AUDIT, batch), batch, strict=True):
                    written[pos] = rec.value
        assert len(written) == 40, "two appends were given the same position"

        for reader in (one, two):
            seen: dict[Position, bytes] = {}
            for part in range(reader.partitions(LogName.AUDIT)):
                off = 0
                while page := await reader.read(LogName.AUDIT, part, off, 7):
                    seen.update((r.position, r.value) for r in page)
                    off = page[-1].offset + 1
            assert seen == written
            for k in range(5):  # each child's facts in the order they were written
                mine = [v.decode() for _, v in sorted(seen.items()) if v.endswith(b"/%d" % k)]
                assert mine == [f"{w}/{r}/{k}" for r in range(4) for w in ("one", "two")]
    finally:
        await one.close()
        await two.close()


async def test_a_subscriber_in_one_process_tails_appends_from_another(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    writer = kafka_log(kafka_bootstrap, topic_prefix)
    reader = kafka_log(kafka_bootstrap, topic_prefix)
    await writer.start()
    await reader.start()
    try:
        store = ReadStore()
        sub = reader.subscribe(LogName.EVENTS, group="tail", start_offsets=store.start_offsets)
        done = asyncio.Event()
        positions: list[Position] = []

        async def consume() -> None:
            async for batch in sub.batches():
                store.apply(batch)
                if len(positions) == 60 and store.covers(positions):
                    done.set()

        task = asyncio.create_task(consume())
        positions.extend(await writer.append(LogName.EVENTS, facts(30)))
        await asyncio.sleep(0.5)
        positions.extend(await writer.append(LogName.EVENTS, facts(30, start=30)))
        try:
            await asyncio.wait_for(done.wait(), 30)
        finally:
            await sub.close()
            await asyncio.wait_for(task, 10)
        assert sorted(r.position for r in store.delivered) == sorted(positions)
    finally:
        await writer.close()
        await reader.close()


async def test_a_topic_with_another_partition_count_is_refused(
    event_log: KafkaEventLog, kafka_bootstrap: str, topic_prefix: str
) -> None:
    other = KafkaEventLog(
        kafka_bootstrap, topic_prefix=topic_prefix, partitions=5, enable_idempotence=False
    )
    with pytest.raises(ValueError, match="has 3 partitions, but 5 were configured"):
        await other.start()
    await other.close()


async def test_an_unreachable_broker_is_a_transient_error(topic_prefix: str) -> None:
    from tests.support.broker import free_port

    log = KafkaEventLog(f"127.0.0.1:{free_port()}", topic_prefix=topic_prefix)
    with pytest.raises(TransientError, match="KafkaConnectionError"):
        await log.start()
    await log.close()


async def test_a_broker_that_dies_gives_transient_errors_not_hangs(topic_prefix: str) -> None:
    import subprocess

    from tests.conftest import backend_missing
    from tests.support.broker import BrokerUnavailable, free_port, tansu_binary

    try:
        binary = tansu_binary()
    except BrokerUnavailable as exc:
        backend_missing("Tansu binary for a broker of our own", exc)  # fails under CI=true
        return
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    broker = await asyncio.create_subprocess_exec(
        str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
        "--storage-engine", "memory://tansu/",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    log = KafkaEventLog(
        f"127.0.0.1:{port}",
        topic_prefix=topic_prefix,
        partitions=3,
        enable_idempotence=False,
        request_timeout_ms=2000,
        ping_timeout=2.0,
    )
    try:
        async with asyncio.timeout(20):
            while True:  # until it listens
                try:
                    await log.start()
                    break
                except TransientError:
                    await asyncio.sleep(0.05)
        position = (await log.append(LogName.EVENTS, facts(1)))[0]
        await log.ping()
    finally:
        broker.kill()  # a crash, not a shutdown
        await broker.wait()
    try:
        async with asyncio.timeout(20):
            with pytest.raises(TransientError):
                await log.ping()
            with pytest.raises(TransientError):
                await log.read(LogName.EVENTS, position.partition, 0)
            with pytest.raises(TransientError):
                await log.append(LogName.EVENTS, facts(1))
    finally:
        await log.close()


async def test_a_read_at_the_end_sees_what_another_process_appended_before_it_asked(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Reads at the end ask for the end with a shared probe: one sent before a caller
    arrived is never its answer, so an append acknowledged before a read is seen by it."""
    reader = kafka_log(kafka_bootstrap, topic_prefix)
    writer = kafka_log(kafka_bootstrap, topic_prefix)
    await reader.start()
    await writer.start()
    try:
        first = (await reader.append(LogName.EVENTS, [NewRecord(key="child-1", value=b"a")]))[0]
        end = first.offset + 1
        assert await reader.read(LogName.EVENTS, first.partition, end, 5) == []
        assert reader.probes_sent == 1  # asked for the end, not fetched at it
        for round_ in range(5):
            # a reader whose probe is (likely) in flight while the other process appends
            early = asyncio.create_task(reader.read(LogName.EVENTS, first.partition, end, 5))
            await asyncio.sleep(0)
            value = b"w%d" % round_
            pos = (await writer.append(LogName.EVENTS, [NewRecord(key="child-1", value=value)]))[0]
            assert pos.partition == first.partition
            late = await asyncio.gather(
                *(reader.read(LogName.EVENTS, first.partition, end, 5) for _ in range(20))
            )
            assert all([r.value for r in got] == [value] for got in late)
            assert [r.value for r in await early] in ([], [value])
            end = pos.offset + 1
        assert reader.probes_sent < 5 * 21, "concurrent reads at the end share probes"
    finally:
        await reader.close()
        await writer.close()


async def test_concurrent_reads_at_the_end_share_probes_and_find_nothing(
    event_log: KafkaEventLog,
) -> None:
    positions = await event_log.append(LogName.EVENTS, facts(40))
    last = {p.partition: p for p in sorted(positions)}  # the last record of each partition
    assert len(last) == 3
    sent = event_log.probes_sent
    got = await asyncio.gather(
        *(
            event_log.read(LogName.EVENTS, p.partition, p.offset + 1, 1)
            for _ in range(20)
            for p in last.values()
        )
    )
    assert got == [[]] * 60
    # one Fetch asks the broker for every waiting partition's end (and one more at most,
    # for callers that came while the first was in flight)
    assert 1 <= event_log.probes_sent - sent <= 2
    for p in last.values():
        tail = await event_log.read(LogName.EVENTS, p.partition, p.offset, 3)
        assert [r.offset for r in tail] == [p.offset]
