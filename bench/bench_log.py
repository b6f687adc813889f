"""Append throughput of each `EventLog` backend beside its raw client.

SQLite: `SqliteEventLog.append` in batches vs raw `sqlite3.executemany` of the same rows
into the same table shape with the same pragmas (WAL, synchronous=FULL), one transaction
per batch. Kafka: `KafkaEventLog.append` vs a raw aiokafka producer sending the same
values with the same linger/batch settings and acks=all, awaited per batch.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Result, Timer, batches, event_records
from hub.log import LogName, NewRecord, partition_for


def raw_sqlite_append(path: Path, records: list[NewRecord], batch: int, partitions: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE raw (partition INTEGER NOT NULL, offset INTEGER NOT NULL, key TEXT NOT NULL,"
        " value BLOB NOT NULL, headers BLOB, ts TEXT NOT NULL, PRIMARY KEY (partition, offset))"
        " WITHOUT ROWID"
    )
    next_off = dict.fromkeys(range(partitions), 0)
    timer = Timer()
    with timer.run():
        for chunk in batches(records, batch):
            now = datetime.now(UTC).isoformat()
            rows = []
            for r in chunk:
                p = partition_for(r.key, partitions)
                rows.append((p, next_off[p], r.key, r.value, None, now))
                next_off[p] += 1
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO raw VALUES (?, ?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
    conn.close()
    return len(records) / timer.elapsed


async def ours_sqlite_append(
    path: Path, records: list[NewRecord], batch: int, partitions: int
) -> float:
    from hub.log.sqlite import SqliteEventLog

    log = SqliteEventLog(path, partitions=partitions)
    await log.start()
    timer = Timer()
    with timer.run():
        for chunk in batches(records, batch):
            await log.append(LogName.EVENTS, chunk)
    await log.close()
    return len(records) / timer.elapsed


async def raw_kafka_append(
    bootstrap: str, topic: str, records: list[NewRecord], batch: int, partitions: int
) -> float:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    timer = Timer()
    with timer.run():
        for chunk in batches(records, batch):
            futures = [
                await producer.send(
                    topic, r.value, key=r.key.encode(), partition=partition_for(r.key, partitions)
                )
                for r in chunk
            ]
            await asyncio.gather(*futures)
    await producer.stop()
    return len(records) / timer.elapsed


async def ours_kafka_append(
    bootstrap: str, prefix: str, records: list[NewRecord], batch: int, partitions: int
) -> float:
    from hub.log.kafka import KafkaEventLog

    log = KafkaEventLog(
        bootstrap, topic_prefix=prefix, partitions=partitions, enable_idempotence=False
    )
    await log.start()
    timer = Timer()
    with timer.run():
        for chunk in batches(records, batch):
            await log.append(LogName.EVENTS, chunk)
    await log.close()
    return len(records) / timer.elapsed


async def one_record_appends(bootstrap: str, prefix: str, n: int = 300) -> tuple[float, float]:
    """Appends of one record at a time (an audited read, a single fact): ours
    (`KafkaEventLog.append`) and a raw aiokafka producer's send-and-wait with linger_ms=0,
    interleaved; each as appends/s from the median latency."""
    from aiokafka import AIOKafkaProducer

    from hub.log.kafka import KafkaEventLog

    log = KafkaEventLog(bootstrap, topic_prefix=prefix, partitions=4, enable_idempotence=False)
    await log.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=0
    )
    await producer.start()
    topic = log.topic(LogName.EVENTS)
    ours: list[float] = []
    raw: list[float] = []
    try:
        for i in range(n + 20):  # the first 20 of each warm up
            record = NewRecord(key=f"child-{i % 50}", value=b"x" * 400)
            t0 = time.perf_counter()
            await log.append(LogName.EVENTS, [record])
            t1 = time.perf_counter()
            await (
                await producer.send(
                    topic,
                    record.value,
                    key=record.key.encode(),
                    partition=partition_for(record.key, 4),
                )
            )
            t2 = time.perf_counter()
            if i >= 20:
                ours.append(t1 - t0)
                raw.append(t2 - t1)
    finally:
        await producer.stop()
        await log.close()
    return 1 / statistics.median(ours), 1 / statistics.median(raw)


def run(n: int, batch: int, kafka_bootstrap: str | None, rounds: int = 3) -> list[Result]:
    records = event_records(n)
    partitions = 4
    results: list[Result] = []
    raw_rates, our_rates = [], []
    for i in range(rounds):  # interleaved so drift hits both alike
        with tempfile.TemporaryDirectory() as d:
            raw_rates.append(raw_sqlite_append(Path(d) / "raw.db", records, batch, partitions))
            our_rates.append(
                asyncio.run(ours_sqlite_append(Path(d) / "ours.db", records, batch, partitions))
            )
        _ = i
    from statistics import median

    results.append(
        Result(
            f"append, SQLite log, batches of {batch}",
            median(our_rates),
            median(raw_rates),
            "sqlite3 executemany",
            goal=0.5,
        )
    )
    if kafka_bootstrap:
        raw_rates, our_rates = [], []
        for i in range(rounds):
            raw_rates.append(
                asyncio.run(
                    raw_kafka_append(kafka_bootstrap, f"bench.raw.{i}", records, batch, partitions)
                )
            )
            our_rates.append(
                asyncio.run(
                    ours_kafka_append(
                        kafka_bootstrap, f"bench.ours.{i}.", records, batch, partitions
                    )
                )
            )
        results.append(
            Result(
                f"append, Kafka log, batches of {batch}",
                median(our_rates),
                median(raw_rates),
                "aiokafka producer",
                goal=0.5,
            )
        )
        ours_one, raw_one = asyncio.run(one_record_appends(kafka_bootstrap, "bench.one."))
        results.append(
            Result(
                "append, Kafka log, one record at a time",
                ours_one,
                raw_one,
                "aiokafka send+wait",
                unit="appends/s",
                goal=0.5,
                notes=[f"median latency {1000 / ours_one:.2f} ms (raw {1000 / raw_one:.2f} ms)"],
            )
        )
    return results
