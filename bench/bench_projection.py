"""Projection catch-up (a rebuild from offset 0) beside the raw rates underneath it.

Ours: `ProjectionRunner.rebuild()` of the event-counts projection — read the log, decode
and validate every event, apply, and record offsets in the same transaction.
Raw: the store's own insert rate for the same number of rows (sqlite3 / asyncpg
`executemany` in batches), and the raw read rate of the log.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from statistics import median

from bench.common import Result, Timer, batches, event_records
from hub.events import decode
from hub.log import EventLog, LogName

RAW_DDL = (
    "CREATE TABLE {t} (event_id TEXT PRIMARY KEY, child_id TEXT NOT NULL,"
    " event_type TEXT NOT NULL, occurred_at TEXT NOT NULL, body BYTEA NOT NULL)"
)


def raw_rows(n: int) -> list[tuple[str, str, str, str, bytes]]:
    """One row per event, keyed by its time-ordered event id, carrying the event's bytes:
    the store's raw write rate for event-sized rows (PERFORMANCE.md's baseline)."""
    out = []
    for rec in event_records(n):
        env = decode(rec.value)
        out.append(
            (
                str(env.event_id),
                env.child_id,
                env.event_type,
                env.occurred_at.isoformat(),
                rec.value,
            )
        )
    return out


def raw_sqlite_write(path: Path, n: int, batch: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(RAW_DDL.format(t="raw"))
    rows = raw_rows(n)
    timer = Timer()
    with timer.run():
        for i in range(0, n, batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO raw VALUES (?, ?, ?, ?, ?)", rows[i : i + batch])
            conn.execute("COMMIT")
    conn.close()
    return n / timer.elapsed


async def raw_postgres_write(dsn: str, schema: str, n: int, batch: int) -> float:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    await conn.execute(RAW_DDL.format(t=f'"{schema}".raw'))
    rows = raw_rows(n)
    timer = Timer()
    with timer.run():
        for i in range(0, n, batch):
            async with conn.transaction():
                await conn.executemany(
                    f'INSERT INTO "{schema}".raw VALUES ($1, $2, $3, $4, $5)',  # noqa: S608 - our own schema name
                    rows[i : i + batch],
                )
    await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    await conn.close()
    return n / timer.elapsed


async def raw_log_read(log: EventLog) -> float:
    t0 = time.perf_counter()
    total = 0
    for p in range(log.partitions(LogName.EVENTS)):
        off = 0
        while batch := await log.read(LogName.EVENTS, p, off, 500):
            total += len(batch)
            off = batch[-1].offset + 1
    return total / (time.perf_counter() - t0)


async def catch_up(log: EventLog, store_kind: str, tmp: Path, dsn: str | None, batch: int) -> float:
    from hub.projections import EventCountsProjection, ProjectionRunner

    if store_kind == "sqlite":
        from hub.store.sqlite import SqliteReadStore

        store = SqliteReadStore(tmp / f"store-{uuid.uuid4().hex[:6]}.db")
        schema = None
    else:
        from hub.store.postgres import PostgresReadStore

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        assert dsn
        store = PostgresReadStore(dsn, schema=schema)
    await store.start()
    runner = ProjectionRunner(EventCountsProjection(), log, store, batch_size=batch)
    timer = Timer()
    with timer.run():
        n = await runner.rebuild()
    await store.close()
    if schema and dsn:
        import asyncpg

        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()
    return n / timer.elapsed


async def fill(log: EventLog, n: int) -> None:
    for chunk in batches(event_records(n), 1000):
        await log.append(LogName.EVENTS, chunk)


def run(
    n: int, batch: int, kafka_bootstrap: str | None, pg_dsn: str | None, rounds: int = 3
) -> list[Result]:
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)

        async def sqlite_part() -> tuple[
            list[float], list[float], list[float], list[float], list[float]
        ]:
            from hub.log.sqlite import SqliteEventLog

            log = SqliteEventLog(tmp / "log.db", partitions=4, synchronous="NORMAL")
            await log.start()
            await fill(log, n)
            ours_s, ours_p, raw_s, raw_p, reads = [], [], [], [], []
            for i in range(rounds):
                raw_s.append(raw_sqlite_write(tmp / f"raw{i}.db", n, batch))
                ours_s.append(await catch_up(log, "sqlite", tmp, None, batch))
                reads.append(await raw_log_read(log))
                if pg_dsn:
                    raw_p.append(
                        await raw_postgres_write(
                            pg_dsn, f"bench_raw_{uuid.uuid4().hex[:8]}", n, batch
                        )
                    )
                    ours_p.append(await catch_up(log, "postgres", tmp, pg_dsn, batch))
            await log.close()
            return ours_s, ours_p, raw_s, raw_p, reads

        ours_s, ours_p, raw_s, raw_p, reads = asyncio.run(sqlite_part())
        results.append(
            Result(
                "catch-up, SQLite log -> SQLite store",
                median(ours_s),
                median(raw_s),
                "sqlite3 executemany",
                goal=0.5,
                notes=[f"raw SQLite log read: {median(reads):,.0f} records/s"],
            )
        )
        if pg_dsn:
            results.append(
                Result(
                    "catch-up, SQLite log -> PostgreSQL store",
                    median(ours_p),
                    median(raw_p),
                    "asyncpg executemany",
                    goal=0.5,
                )
            )

        if kafka_bootstrap and pg_dsn:

            async def kafka_part() -> tuple[list[float], list[float], list[float]]:
                from hub.log.kafka import KafkaEventLog

                log = KafkaEventLog(
                    kafka_bootstrap,
                    topic_prefix=f"bench.cu.{uuid.uuid4().hex[:6]}.",
                    partitions=4,
                    enable_idempotence=False,
                )
                await log.start()
                await fill(log, n)
                ours, raw, reads = [], [], []
                for _ in range(rounds):
                    raw.append(
                        await raw_postgres_write(
                            pg_dsn, f"bench_raw_{uuid.uuid4().hex[:8]}", n, batch
                        )
                    )
                    ours.append(await catch_up(log, "postgres", tmp, pg_dsn, batch))
                    reads.append(await raw_log_read(log))
                await log.close()
                return ours, raw, reads

            ours, raw, reads = asyncio.run(kafka_part())
            results.append(
                Result(
                    "catch-up, Kafka log -> PostgreSQL store",
                    median(ours),
                    median(raw),
                    "asyncpg executemany",
                    goal=0.5,
                    notes=[f"KafkaEventLog.read: {median(reads):,.0f} records/s"],
                )
            )
    return results
