"""Kafka inbound against a real Kafka-protocol broker (Tansu where no Docker engine runs):
a CTF file published to `hub.inbound.<agency>` ends up as events on the hub's Kafka log,
taken as that agency; a message that cannot be read before it is dead-lettered on
`hub.deadletter` with its reason and source position, and the stream goes on; the same
message delivered twice yields its facts once. Who publishes on a topic is configured
(`HUB_INBOUND_SENDERS`), never read from the message: the same FHIR advice is taken from
the health trust's topic, refused from a school's (another organisation's code) and from
the family portal's (a statutory basis it may not claim), each refusal audited and
dead-lettered with its rule; a topic with no configured sender is dead-lettered unread."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hub.adapters.fhir import ADVICE_REQUEST_SYSTEM
from hub.adapters.inbound_kafka import create_inbound_app
from hub.bootstrap import Hub, open_hub
from hub.deadletter import DeadLetterEntry
from hub.log import LogName, StoredRecord
from hub.settings import InboundSender, Settings
from tests.unit.test_adapter_fhir import ODS_SYSTEM, PAT, PRACTITIONER, bundle, patient

pytestmark = pytest.mark.kafka

# Tansu holds a group's first JoinGroup for about half the session timeout: keep it short.
FAST_GROUP = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 500}


GRYPHON_URN = "136294"  # the source school of ctf/gryphon-y12.xml
TRUST_ODS = "RXX"
SENDERS = {
    "oak-school": InboundSender(sender="education", organisations=(GRYPHON_URN,)),
    "city-health": InboundSender(sender="health", organisations=(TRUST_ODS,)),
    "family-portal": InboundSender(sender="family"),
}


@pytest.fixture
async def hub(tmp_path: Path, kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[Hub]:
    settings = Settings(
        inbound_senders=SENDERS,
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


async def consume(hub: Hub, messages: int) -> Any:
    """Run the hub's inbound consumer until it has taken `messages` messages; its
    handler (with its counts)."""
    app, handler = create_inbound_app(hub.settings, hub=hub, group_options=FAST_GROUP)
    broker = app.brokers[0]
    await broker.start()
    try:

        async def taken() -> bool:
            return handler.stats.messages >= messages

        await wait_for(taken, 60, f"{messages} inbound messages")
    finally:
        await broker.stop()
    return handler


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

    handler = await consume(hub, 3)

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


def advice_bundle() -> bytes:
    """A FHIR document answering an EHC advice request from the trust `TRUST_ODS`: plan
    advice claiming the statutory basis `reg6_ehc_advice`."""
    request = {
        "resourceType": "ServiceRequest",
        "id": "sr",
        "fullUrl": "urn:uuid:sr",
        "status": "active",
        "intent": "order",
        "subject": {"reference": PAT},
        "identifier": [{"system": ADVICE_REQUEST_SYSTEM, "value": "AR-42"}],
    }
    document = {
        "resourceType": "DocumentReference",
        "id": "d1",
        "status": "current",
        "subject": {"reference": PAT},
        "date": "2024-04-02T10:00:00+01:00",
        "author": [{"reference": "urn:uuid:pr"}],
        "custodian": {"identifier": {"system": ODS_SYSTEM, "value": TRUST_ODS}},
        "context": {"related": [{"reference": "urn:uuid:sr"}]},
        "content": [{"attachment": {"contentType": "application/pdf",
                                    "url": "https://docs.example.nhs.uk/d1.pdf"}}],
    }  # fmt: skip
    return bundle(patient(), PRACTITIONER, request, document)


async def test_what_a_message_may_claim_comes_from_its_topics_configured_sender(
    hub: Hub, kafka_bootstrap: str, topic_prefix: str, samples_dir: Path
) -> None:
    names = ("city-health", "oak-school", "family-portal", "stranger")
    topics = {name: f"{topic_prefix}hub.inbound.{name}" for name in names}
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(t, num_partitions=1, replication_factor=1) for t in topics.values()]
        )
    finally:
        await admin.close()
    fhir = [("content-type", b"application/fhir+json")]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for name in ("city-health", "oak-school", "family-portal"):  # the very same message
            await producer.send_and_wait(topics[name], advice_bundle(), headers=fhir)
        ctf = (samples_dir / "ctf" / "gryphon-y12.xml").read_bytes()
        await producer.send_and_wait(
            topics["stranger"], ctf, headers=[("content-type", b"application/xml")]
        )
    finally:
        await producer.stop()

    await consume(hub, 4)

    dead = {
        e.consumer: e
        for e in (
            DeadLetterEntry.from_record(r) for r in await all_records(hub, LogName.DEADLETTER)
        )
    }
    assert set(dead) == {"inbound:oak-school", "inbound:family-portal", "inbound:stranger"}
    # the stranger's topic names no configured sender: not read at all
    stranger = dead["inbound:stranger"]
    assert stranger.exception_type == "UnknownSender"
    assert "[sender.unknown]" in stranger.reason and "HUB_INBOUND_SENDERS" in stranger.reason
    assert stranger.source_topic == topics["stranger"] and stranger.record.value == ctf
    # a school may not publish as the NHS trust; the family portal may claim no basis
    school, portal = dead["inbound:oak-school"], dead["inbound:family-portal"]
    assert "1 of 2 facts rejected" in school.reason, school.reason
    assert "[sender.organisation_not_allowed]" in school.reason
    assert "1 of 2 facts rejected" in portal.reason, portal.reason
    assert "[sender.basis_not_claimable]" in portal.reason and "family sender" in portal.reason
    # the advice is on the log once, from the trust: nothing of it from the other two
    facts = [orjson.loads(r.value) for log in (LogName.EVENTS, LogName.WITHHELD)
             for r in await all_records(hub, log)]  # fmt: skip
    advice = [f for f in facts if f["event_type"] == "plan.advice_submitted"]
    assert [f["source"]["agency"] for f in advice] == ["city-health"]
    # each refusal is in the audit trail, naming the rule and who sent it, not the fact
    audit = [orjson.loads(r.value) for r in await all_records(hub, LogName.AUDIT)]
    refused = sorted(
        (a["actor"], a["details"]["rule"], a["details"]["event_type"])
        for a in audit
        if a["details"].get("outcome") == "refused"
    )
    assert refused == [
        ("inbound:family-portal", "sender.basis_not_claimable", "plan.advice_submitted"),
        ("inbound:oak-school", "sender.organisation_not_allowed", "plan.advice_submitted"),
    ]
    assert "docs.example.nhs.uk" not in orjson.dumps(audit).decode()
