"""The Kafka inbound app: its AsyncAPI document (faststream's generator) matches the
checked-in contract, and — with faststream's TestKafkaBroker, for routing and
serialisation only — a message on `hub.inbound.<agency>` reaches the adapter its content
type names and the consent gate as that agency, while what cannot be taken is
dead-lettered with its reason and the stream goes on. Offsets, group rebalances and the
real broker are the integration suite's (tests/integration/test_inbound_kafka.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import yaml
from aiokafka import ConsumerRecord
from faststream.kafka import TestKafkaBroker

from hub.adapters import family
from hub.adapters.inbound_kafka import (
    InboundHandler,
    _parse_safely,
    asyncapi_yaml,
    create_inbound_app,
)
from hub.bootstrap import Hub, open_hub
from hub.deadletter import DeadLetterEntry
from hub.log import LogName
from hub.settings import InboundSender, Settings

SENDERS = {
    "oak-school": InboundSender(sender="education"),
    "city-health": InboundSender(sender="health"),
    "family-portal": InboundSender(sender="family"),
    "county": InboundSender(sender="social_care"),
}
CONTRACT = Path(__file__).resolve().parents[2] / "contracts" / "asyncapi.yaml"


def test_the_asyncapi_document_has_not_drifted() -> None:
    assert CONTRACT.read_text(encoding="utf-8") == asyncapi_yaml(), (
        "run `python -m hub.adapters.inbound_kafka`"
    )


def test_the_asyncapi_document_describes_the_inbound_topics() -> None:
    doc = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))
    assert doc["asyncapi"].startswith("3.")
    [channel] = [c for c in doc["channels"].values() if c["address"] == "hub.inbound.{agency}"]
    assert "content-type" in channel["description"] and "hub.deadletter" in channel["description"]
    [operation] = [o for o in doc["operations"].values() if o["action"] == "receive"]
    assert operation["channel"]["$ref"].endswith("hub.inbound.%7Bagency%7D:take")


def test_the_asyncapi_document_describes_every_topic_the_hub_writes() -> None:
    doc = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))
    sent = {
        o["channel"]["$ref"].removeprefix("#/channels/")
        for o in doc["operations"].values()
        if o["action"] == "send"
    }
    assert sent == {name.value for name in LogName}
    events = sorted(p.name for p in (CONTRACT.parent / "events").glob("*.schema.json"))
    for topic in ("hub.events", "hub.withheld"):
        message = doc["components"]["messages"][f"{topic}:record"]
        refs = [r["$ref"] for r in message["payload"]["oneOf"]]
        assert refs == [f"./events/{name}" for name in events]  # every event schema, and only
        assert all((CONTRACT.parent / r).is_file() for r in refs)
    audit = doc["components"]["messages"]["hub.audit:record"]["payload"]["$ref"]
    assert set(doc["components"]["schemas"]["AuditRecord"]["required"]) >= {"hash", "prev_hash"}
    assert audit == "#/components/schemas/AuditRecord"
    dead = doc["components"]["messages"]["hub.deadletter:record"]["headers"]["properties"]
    from hub import deadletter

    assert {deadletter.REASON, deadletter.SRC_TOPIC, deadletter.ATTEMPTS} <= set(dead)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    settings = Settings(
        data_dir=tmp_path / "data",
        kafka_topic_prefix="t1.",
        inbound_senders=SENDERS,
        _env_file=None,  # type: ignore[call-arg]
    )
    the_hub = await open_hub(settings)
    try:
        yield the_hub
    finally:
        await the_hub.close()


async def dead_letters(hub: Hub) -> list[DeadLetterEntry]:
    out = []
    for part in range(hub.log.partitions(LogName.DEADLETTER)):
        out += [
            DeadLetterEntry.from_record(r)
            for r in await hub.log.read(LogName.DEADLETTER, part, 0, 100)
        ]
    return out


async def sources(hub: Hub) -> set[str]:
    agencies = set()
    for log in (LogName.EVENTS, LogName.WITHHELD):
        for part in range(hub.log.partitions(log)):
            for r in await hub.log.read(log, part, 0, 1000):
                agencies.add(orjson.loads(r.value)["source"]["agency"])
    return agencies


def family_message(**child: str) -> bytes:
    m = json.loads(json.dumps(family.EXAMPLE))
    if child:
        m["child"] = child
    return json.dumps(m).encode()


async def test_each_content_type_reaches_its_adapter_and_the_gate_as_the_topics_agency(
    hub: Hub, samples_dir: Path
) -> None:
    app, handler = create_inbound_app(hub.settings, hub=hub)
    async with TestKafkaBroker(app.brokers[0]) as broker:
        await broker.publish(
            (samples_dir / "ctf" / "gryphon-y12.xml").read_bytes(),
            topic="t1.hub.inbound.oak-school",
            headers={"content-type": "application/xml"},
        )
        await broker.publish(
            (samples_dir / "ukcore" / "UKCore-Patient-RichardSmith-Example.xml").read_bytes(),
            topic="t1.hub.inbound.city-health",
            headers={"content-type": "application/fhir+xml"},
        )
        await broker.publish(
            family_message(),
            topic="t1.hub.inbound.family-portal",
            headers={"content-type": "application/json"},
        )
        await broker.publish(
            (samples_dir / "ssda903" / "fake_903.xml").read_bytes(),
            topic="t1.hub.inbound.county",
            headers={"content-type": "application/xml", "x-la-code": "201"},
        )
    assert handler.stats.dead_lettered == 0, await dead_letters(hub)
    assert handler.stats.messages == 4
    assert await sources(hub) == {"oak-school", "city-health", "family-portal", "county"}
    assert handler.stats.outcomes.get("withheld", 0) > 700


async def test_what_cannot_be_taken_is_dead_lettered_with_its_reason_and_the_stream_goes_on(
    hub: Hub,
) -> None:
    app, handler = create_inbound_app(hub.settings, hub=hub)
    async with TestKafkaBroker(app.brokers[0]) as broker:
        await broker.publish(
            b"<CTfile><Header>",
            topic="t1.hub.inbound.oak-school",
            headers={"content-type": "application/xml"},
        )
        await broker.publish(
            b"plain words",
            topic="t1.hub.inbound.oak-school",
            headers={"content-type": "text/plain"},
        )
        await broker.publish(
            family_message(hub_child_id="hc-nobody"),
            topic="t1.hub.inbound.family-portal",
            headers={"content-type": "application/json"},
        )
        await broker.publish(
            b"x",
            topic="t1.hub.inbound.oak-school",
            headers={"content-type": "application/xml", "x-hub-format": "pdf"},
        )
        await broker.publish(
            family_message(),
            topic="t1.hub.inbound.family-portal",
            headers={"content-type": "application/json"},
        )
    entries = await dead_letters(hub)
    reasons = sorted((e.exception_type, e.reason) for e in entries)
    assert len(entries) == 4 and handler.stats.dead_lettered == 4
    [(_, bad_format), (_, bad_xml), (_, rejected), (_, media)] = reasons
    assert "not well-formed XML" in bad_xml and "line 1" in bad_xml
    assert "x-hub-format: unknown format" in bad_format
    assert "3 of 3 facts rejected" in rejected and "no child with this hub child id" in rejected
    assert "unsupported media type 'text/plain'" in media
    for e in entries:
        assert (
            e.consumer.startswith("inbound:")
            and e.source_topic
            and e.source_topic.startswith("t1.hub.inbound.")
        )
        assert e.source_offset is not None and e.source_partition is not None
        assert e.record.value  # kept for replay
    assert handler.stats.outcomes == {"rejected": 3, "queued": 3}  # the last message was taken


async def test_a_header_that_is_not_utf8_does_not_stall_the_stream() -> None:
    record = ConsumerRecord(
        topic="hub.inbound.a",
        partition=0,
        offset=7,
        timestamp=0,
        timestamp_type=0,
        key=None,
        value=b"{}",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=2,
        headers=[("content-type", b"application/json"), ("x-odd", b"\xff\xfe")],
    )
    seen = []

    async def original(r: ConsumerRecord) -> object:  # type: ignore[type-arg]
        seen.append([(k, v.decode()) for k, v in r.headers])
        return r

    await _parse_safely(record, original)  # type: ignore[arg-type]
    assert seen == [[("content-type", "application/json"), ("x-odd", "\ufffd\ufffd")]]


def test_the_agency_is_the_topics_last_segment() -> None:
    handler = InboundHandler(lambda: None, topic_prefix="t1.")  # type: ignore[arg-type, return-value]
    assert handler.agency_of("t1.hub.inbound.oak-school") == "oak-school"
    assert handler.agency_of("hub.inbound.oak-school") is None
    assert handler.agency_of("t1.hub.inbound.a.b") is None
    assert handler.agency_of("t1.hub.events") is None


async def test_a_topic_with_no_configured_sender_is_dead_lettered_unread(hub: Hub) -> None:
    app, handler = create_inbound_app(hub.settings, hub=hub)
    async with TestKafkaBroker(app.brokers[0]) as broker:
        await broker.publish(
            family_message(),
            topic="t1.hub.inbound.stranger",
            headers={"content-type": "application/json"},
        )
    [entry] = await dead_letters(hub)
    assert entry.exception_type == "UnknownSender" and "[sender.unknown]" in entry.reason
    assert entry.consumer == "inbound:stranger" and entry.record.value == family_message()
    assert handler.stats.outcomes == {} and await sources(hub) == set()


def test_inbound_senders_are_checked_before_anything_is_consumed(tmp_path: Path) -> None:
    def settings(**senders: InboundSender) -> Settings:
        return Settings(data_dir=tmp_path, inbound_senders=senders, _env_file=None)  # type: ignore[call-arg]

    with pytest.raises(ValueError, match="sender kind 'wizard', which the sharing policy"):
        create_inbound_app(settings(oak=InboundSender(sender="wizard")))
    with pytest.raises(ValueError, match=r"no sender is configured for hub\.inbound\.county"):
        create_inbound_app(settings(oak=InboundSender(sender="education")), agencies=["county"])
    with pytest.raises(ValueError, match="organisation code is letters"):
        InboundSender(sender="education", organisations=("RR 8",))
    with pytest.raises(ValueError, match="is not a topic segment"):
        settings(**{"a.b": InboundSender(sender="education")})
    from_env = Settings.model_validate(
        {"inbound_senders": {"oak": {"sender": "education", "organisations": ["8881234"]}}}
    )
    assert from_env.inbound_senders["oak"].organisations == ("8881234",)
    assert from_env.inbound_bound_codes == frozenset({"8881234"})
