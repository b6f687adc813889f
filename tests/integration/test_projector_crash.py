"""SIGKILL the projector mid-stream, restart it, and find exactly the state a clean
rebuild gives: nothing lost, nothing applied twice (real broker, real database)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from hub.log import EventLog, LogName, Position
from hub.projections import EventCountsProjection, ProjectionRunner
from hub.store import ReadStore
from tests.support.factories import mixed_events, record_of
from tests.support.processes import hub_env, kill_hard, start_hub, stop

CHILDREN, PER_CHILD = 200, 40  # 8,000 events


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def counts(store: ReadStore) -> dict[tuple[str, str], int]:
    rows = await store.fetchall("SELECT child_id, event_type, n FROM event_counts")
    return {(c, t): int(n) for c, t, n in rows}


async def applied_offsets(store: ReadStore) -> dict[int, int]:
    try:
        return await store.offsets("event_counts", LogName.EVENTS.value)
    except Exception:
        return {}


async def crash_and_recover(
    tmp_path: Path,
    env: dict[str, str],
    log: EventLog,
    store: ReadStore,
    rebuild_store: ReadStore,
) -> None:
    envs = mixed_events(CHILDREN, PER_CHILD)
    positions: list[Position] = []
    for i in range(0, len(envs), 1000):
        positions += await log.append(LogName.EVENTS, [record_of(e) for e in envs[i : i + 1000]])
    last: dict[int, int] = {}
    for p in positions:
        last[p.partition] = max(last.get(p.partition, -1), p.offset)

    logfile = tmp_path / "projector.log"
    proc = start_hub(["projector", "--data-dir", str(tmp_path)], env, logfile)
    try:

        async def started_applying() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"projector exited: {logfile.read_text()[-2000:]}")
            return sum(o + 1 for o in (await applied_offsets(store)).values()) > 0

        await wait_for(started_applying, 60, "the projector to start applying")
    finally:
        kill_hard(proc)
    at_kill = sum(o + 1 for o in (await applied_offsets(store)).values())
    assert 0 < at_kill < len(envs), f"kill was not mid-stream ({at_kill} of {len(envs)} applied)"

    proc = start_hub(["projector", "--data-dir", str(tmp_path)], env, logfile)
    try:

        async def caught_up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"projector exited: {logfile.read_text()[-2000:]}")
            offs = await applied_offsets(store)
            return all(offs.get(p, -1) >= o for p, o in last.items())

        await wait_for(caught_up, 120, "the restarted projector to catch up")
    finally:
        assert stop(proc) in (0, -15), logfile.read_text()[-2000:]

    live = await counts(store)
    assert sum(live.values()) == len(envs)
    rebuilt_runner = ProjectionRunner(EventCountsProjection(), log, rebuild_store)
    assert await rebuilt_runner.rebuild() == len(envs)
    assert await counts(rebuild_store) == live
    assert await log.read(LogName.DEADLETTER, 0, 0, 1) == []


@pytest.mark.kafka
@pytest.mark.postgres
async def test_projector_killed_mid_stream_on_kafka_and_postgres(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    postgres_dsn: str,
    request: pytest.FixtureRequest,
) -> None:
    from hub.log.kafka import KafkaEventLog
    from hub.store.postgres import PostgresReadStore

    schema = request.getfixturevalue("postgres_schema")
    env = hub_env(
        log_backend="kafka",
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_prefix=topic_prefix,
        kafka_enable_idempotence="false",
        log_partitions="3",
        store_backend="postgres",
        postgres_dsn=postgres_dsn,
        postgres_schema=schema,
        projector_batch="50",
    )
    log = KafkaEventLog(
        kafka_bootstrap, topic_prefix=topic_prefix, partitions=3, enable_idempotence=False
    )
    store = PostgresReadStore(postgres_dsn, schema=schema)
    rebuild_store = PostgresReadStore(postgres_dsn, schema=schema + "_rebuild")
    await log.start()
    await store.start()
    await rebuild_store.start()
    try:
        await crash_and_recover(tmp_path, env, log, store, rebuild_store)
    finally:
        await rebuild_store.close()
        await store.close()
        await log.close()
        import asyncpg

        conn = await asyncpg.connect(postgres_dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}_rebuild" CASCADE')
        await conn.close()


async def test_projector_killed_mid_stream_on_the_embedded_default(tmp_path: Path) -> None:
    from hub.log.sqlite import SqliteEventLog
    from hub.store.sqlite import SqliteReadStore

    env = hub_env(log_partitions="3", projector_batch="50")
    log = SqliteEventLog(tmp_path / "log.db", partitions=3)
    store = SqliteReadStore(tmp_path / "store.db")
    rebuild_store = SqliteReadStore(tmp_path / "rebuild.db")
    await log.start()
    await store.start()
    await rebuild_store.start()
    try:
        await crash_and_recover(tmp_path, env, log, store, rebuild_store)
    finally:
        await rebuild_store.close()
        await store.close()
        await log.close()
