"""Kafka inbound against a real Kafka-protocol broker (Tansu where no Docker engine runs):
a CTF file published to `hub.inbound.<agency>` ends up as events on the hub's Kafka log,
taken as that agency; a message that cannot be read before it is dead-lettered on
`hub.deadletter` with its reason and source position, and the stream goes on; the same
message delivered twice yields its facts once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hub.adapters.inbound_kafka import create_inbound_app
from hub.bootstrap import Hub, open_hub
from hub.deadletter import DeadLetterEntry
from hub.log import LogName, StoredRecord
from hub.settings import Settings

pytestmark = pytest.mark.kafka

# Tansu holds a group's first JoinGroup for about half the session timeout: keep it short.
FAST_GROUP = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 500}


@pytest.fixture
async def hub(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[Hub]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        log_backend="kafka",
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_prefix=topic_prefix,
        kafka_enable_idempotence=False,  # Tansu has no idempotent producer
        log_partitions=2,
    )
    the_hub = await open_hub(settings)
    try:
        yield the_hub
    finally:
        await the_hub.close()


async def all_records(hub: Hub, log: LogName) -> list[StoredRecord]:
    out: list[StoredRecord] = []
    for part in range(hub.log.partitions(log)):
        offset = 0
        while batch := await hub.log.read(log, part, offset, 500):
            out += batch
            offset = batch[-1].offset + 1
    return out


async def wait_for(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_message_on_an_agency_topic_ends_up_as_events_and_bad_input_is_dead_lettered(
    hub: Hub, kafka_bootstrap: str, topic_prefix: str, samples_dir: Path
) -> None:
    topic = f"{topic_prefix}hub.inbound.oak-school"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    ctf = (samples_dir / "ctf" / "gryphon-y12.xml").read_bytes()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        xml = [("content-type", b"application/xml")]
        await producer.send_and_wait(topic, b"<CTfile><Header>", key=b"m0", headers=xml)
        await producer.send_and_wait(topic, ctf, key=b"m1", headers=xml)
        await producer.send_and_wait(topic, ctf, key=b"m1", headers=xml)  # delivered twice
    finally:
        await producer.stop()

    app, handler = create_inbound_app(hub.settings, hub=hub, group_options=FAST_GROUP)
    broker = app.brokers[0]
    await broker.start()
    try:

        async def three_taken() -> bool:
            return handler.stats.messages >= 3

        await wait_for(three_taken, 60, "the three inbound messages")
    finally:
        await broker.stop()

    # the CTF's facts: withheld for want of consent, each once, from the topic's agency
    withheld = await all_records(hub, LogName.WITHHELD)
    bodies = [orjson.loads(r.value) for r in withheld]
    assert bodies and {b["source"]["agency"] for b in bodies} == {"oak-school"}
    keys = Counter(r.header("x-dedupe-key") for r in withheld)
    assert set(keys.values()) == {1}
    assert handler.stats.outcomes["withheld"] == len(withheld)
    assert handler.stats.outcomes["duplicate"] == len(withheld)  # the second delivery
    # the shared truth holds the child's identity link
    events = [orjson.loads(r.value) for r in await all_records(hub, LogName.EVENTS)]
    linked = [e for e in events if e["event_type"] == "identity.identifier_linked"]
    assert linked and {e["child_id"] for e in linked} == {bodies[0]["child_id"]}

    [dead] = [DeadLetterEntry.from_record(r) for r in await all_records(hub, LogName.DEADLETTER)]
    assert "not well-formed XML" in dead.reason and "line 1" in dead.reason
    assert dead.consumer == "inbound:oak-school"
    assert (dead.source_topic, dead.source_partition, dead.source_offset) == (topic, 0, 0)
    assert dead.record.value == b"<CTfile><Header>"
