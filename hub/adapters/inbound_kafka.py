"""Kafka inbound: the faststream app that takes agency messages from `hub.inbound.<agency>`
through the same adapters and consent gate as the HTTP ingest routes.

`create_inbound_app(settings)` builds a `FastStream` app (nothing is built at import) whose
one subscriber reads every `hub.inbound.<agency>` topic (a pattern, or the topics of the
agencies named) in the consumer group `hub-inbound`. One topic per sender: the topic
names the sending agency, and `HUB_INBOUND_SENDERS` says who that is — its kind of sender
in the policy and its organisation codes, as an agency key does on HTTP — so nothing in a
message (no header, no field) can choose what it may claim; the broker's ACLs let each
agency's principal write its own topic only. A message on a topic with no configured
sender is dead-lettered unread (`sender.unknown`); every fact of the others is judged by
`handlers.submit_as_sender` exactly as on `POST /ingest/*` (refusals audited, with the
rule). The message's `content-type` header picks the
adapter through `hub.adapters.registry` (`x-hub-format` may name it outright;
`x-la-code` carries an SSDA903 return's LA). A message that cannot be read, or whose
facts the gate rejects, is appended to `hub.deadletter` with reason headers
(`hub.deadletter.dead_letter_for`) and the stream goes on; a store or log that fails is
retried with backoff, then the message is dead-lettered (and if even that fails, it is
not acknowledged, so it comes again). Offsets are committed only after a message was
taken or dead-lettered, and the gate's idempotency keys make a redelivery harmless.
`asyncapi_yaml()` renders the app's AsyncAPI document (faststream's own generator) for
`contracts/asyncapi.yaml`. Log lines carry ids, counts and positions only.
"""

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy, AsyncAPI, FastStream, StreamMessage
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from hub.consent.policy import SharingPolicy
from hub.consent.senders import Sender
from hub.deadletter import SRC_OFFSET, SRC_PARTITION, dead_letter_for
from hub.errors import PermanentError, TransientError
from hub.ingest.model import FactOutcome
from hub.log import LogName
from hub.observability import log_ref
from hub.settings import AGENCY_SEGMENT, InboundSender, Settings

if TYPE_CHECKING:
    from hub.bootstrap import Hub

log = structlog.get_logger(__name__)

INBOUND_PREFIX = "hub.inbound."
GROUP_ID = "hub-inbound"
CONSUMER = "inbound"
FORMAT_HEADER = "x-hub-format"
LA_CODE_HEADER = "x-la-code"
UNKNOWN_SENDER_RULE = "sender.unknown"
_AGENCY = re.compile(AGENCY_SEGMENT)
_DESCRIPTION = (
    "One message per record an agency system sends: a DfE CTF or CIN census (XML), an "
    "SSDA903 return (XML, or episodes CSV with an `x-la-code` header), a FHIR R4 Bundle, "
    "resource or ndjson, or the hub's school MIS, social care or family JSON forms "
    "(contracts/inbound/). The `content-type` header picks the adapter (`x-hub-format` may "
    "name it: ctf, cin, ssda903, fhir, school-mis-json, social-care-json, family-json); the "
    "topic's last segment names the sending agency, and the hub's configuration "
    "(`HUB_INBOUND_SENDERS`) says what kind of sender it is and which organisation codes it "
    "publishes as: a topic per sender, written only by that sender. A message on a topic "
    "with no configured sender is not read (`sender.unknown`); a fact claiming a category, "
    "statutory basis or organisation code its sender may not is refused with the rule "
    "(`sender.category_not_permitted`, `sender.basis_not_claimable`, "
    "`sender.organisation_not_allowed`) and audited. What cannot be taken goes to "
    "`hub.deadletter` with `x-dlq-reason` and the source topic, partition and offset."
)


def check_inbound_senders(
    senders: Mapping[str, InboundSender],
    policy: SharingPolicy,
    agencies: Sequence[str] = (),
) -> None:
    """`ValueError` naming the first configured sender whose kind the policy does not
    have, or agency to consume that has no configured sender."""
    for agency, configured in senders.items():
        if configured.sender not in policy.senders:
            kinds = ", ".join(sorted(policy.senders))
            raise ValueError(
                f"HUB_INBOUND_SENDERS: {agency!r} is of sender kind {configured.sender!r}, "
                f"which the sharing policy does not have (senders are: {kinds})"
            )
    missing = [a for a in agencies if a not in senders]
    if missing:
        raise ValueError(
            f"no sender is configured for hub.inbound.{missing[0]}: add it to "
            'HUB_INBOUND_SENDERS ({"<agency>": {"sender": KIND, "organisations": [...]}})'
        )


@dataclass(frozen=True)
class InboundRecord:
    """One message as it came off an inbound topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v.decode("utf-8", "replace")
        return None


@dataclass
class InboundStats:
    messages: int = 0
    dead_lettered: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class InboundHandler:
    """Takes one inbound record: agency from the topic, adapter from the content type,
    facts through the gate; dead-letters, with the reason, what cannot be taken."""

    def __init__(
        self,
        hub: Callable[[], "Hub"],
        *,
        senders: Mapping[str, InboundSender] | None = None,
        topic_prefix: str = "",
        max_bytes: int = 10 * 1024 * 1024,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self._hub = hub
        self._senders = dict(senders or {})
        self._prefix = topic_prefix + INBOUND_PREFIX
        self._max_bytes = max_bytes
        self._retries = retries
        self.backoff = backoff
        self.stats = InboundStats()

    def agency_of(self, topic: str) -> str | None:
        if not topic.startswith(self._prefix):
            return None
        agency = topic[len(self._prefix) :]
        return agency if _AGENCY.match(agency) else None

    async def handle(self, record: InboundRecord) -> list[FactOutcome]:
        from hub.adapters.registry import FORMATS, format_for, parse

        self.stats.messages += 1
        where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        agency = self.agency_of(record.topic)
        if agency is None:
            await self._dead_letter(
                record,
                "the topic does not name an agency (hub.inbound.<agency>)",
                "PermanentError",
                agency="-",
            )
            return []
        if agency not in self._senders:
            await self._dead_letter(
                record,
                f"no sender is configured for this topic (HUB_INBOUND_SENDERS has no "
                f"{agency!r}): its facts were not read [{UNKNOWN_SENDER_RULE}]",
                "UnknownSender",
                agency=agency,
            )
            return []
        if len(record.value) > self._max_bytes:
            await self._dead_letter(
                record,
                f"the message is larger than the limit of {self._max_bytes} bytes",
                "PermanentError",
                agency=agency,
            )
            return []
        content_type = record.header("content-type")
        named = record.header(FORMAT_HEADER)
        fmt = "-"
        policy = self._hub().policy  # outside the try: no hub yet is not the message's fault
        try:
            if named is not None and named not in FORMATS:
                raise PermanentError(
                    f"unknown format; formats are: {', '.join(FORMATS)}", field=FORMAT_HEADER
                )
            fmt = named or format_for("any", content_type, record.value)
            result = parse(
                fmt,
                record.value,
                content_type,
                agency,
                la_code=record.header(LA_CODE_HEADER),
                policy=policy,
            )
        except PermanentError as exc:
            await self._dead_letter(record, str(exc), type(exc).__name__, agency=agency)
            return []
        except Exception as exc:  # an adapter fault must not stall the stream
            log.error("inbound.adapter_failed", **where, format=fmt, error=type(exc).__name__)
            await self._dead_letter(
                record,
                f"the {fmt} adapter failed unexpectedly ({type(exc).__name__})",
                type(exc).__name__,
                agency=agency,
            )
            return []
        outcomes, attempts, failure = await self._submit(result.facts, agency)
        if failure is not None:
            await self._dead_letter(
                record,
                f"the hub could not take the message after {attempts} attempts "
                f"({type(failure).__name__})",
                type(failure).__name__,
                agency=agency,
                attempts=attempts,
            )
            return []
        summary: dict[str, int] = {}
        for o in outcomes:
            summary[o.status] = summary.get(o.status, 0) + 1
            self.stats.outcomes[o.status] = self.stats.outcomes.get(o.status, 0) + 1
        rejected = [o for o in outcomes if o.status == "rejected"]
        if rejected:
            parts = [
                f"{o.ref}: {o.field or 'fact'}: {o.reason or 'rejected'}"
                + (f" [{o.rule}]" if o.rule else "")
                for o in rejected[:20]
            ]
            await self._dead_letter(
                record,
                f"{len(rejected)} of {len(outcomes)} facts rejected; the rest were "
                f"taken: {'; '.join(parts)}",
                "RejectedFacts",
                agency=agency,
            )
        log.info(
            "inbound.message",
            **where,
            agency=agency,
            format=fmt,
            message_ref=log_ref(result.message_id),
            not_taken=len(result.not_taken),
            **summary,
        )
        return outcomes

    async def sender_of(self, agency: str) -> Sender:
        """What the topic's sender may claim: its configured kind and organisation codes;
        configured with none, the codes other senders (agency keys, other topics) are bound
        to, which it may not name."""
        configured = self._senders[agency]
        if configured.organisations:
            return Sender(agency, configured.sender, frozenset(configured.organisations))
        taken = await self._hub().api_keys.bound_codes()
        others = frozenset(c for s in self._senders.values() for c in s.organisations)
        return Sender(agency, configured.sender, taken_elsewhere=taken | others)

    async def _submit(
        self, facts: Sequence[Any], agency: str
    ) -> tuple[list[FactOutcome], int, BaseException | None]:
        attempts = 0
        while True:
            attempts += 1
            try:
                sender = await self.sender_of(agency)
                return (
                    await self._hub().handlers.submit_as_sender(
                        facts, sender=sender, actor=f"{CONSUMER}:{agency}"
                    ),
                    attempts,
                    None,
                )
            except (TransientError, OSError) as exc:
                if attempts > self._retries:
                    return [], attempts, exc
                log.warning("inbound.retry", attempt=attempts, error=type(exc).__name__)
                await asyncio.sleep(self.backoff * 2 ** (attempts - 1))
            except Exception as exc:  # dead-lettered with its type; the stream goes on
                log.error("inbound.submit_failed", error=type(exc).__name__)
                return [], attempts, exc

    async def _dead_letter(
        self, record: InboundRecord, reason: str, exc_type: str, *, agency: str, attempts: int = 1
    ) -> None:
        self.stats.dead_lettered += 1
        entry = dead_letter_for(
            key=agency,
            value=record.value,
            reason=reason,
            exception_type=exc_type,
            consumer=f"{CONSUMER}:{agency}",
            attempts=attempts,
            source_topic=record.topic,
            original_headers=record.headers,
            extra=(
                (SRC_PARTITION, str(record.partition).encode()),
                (SRC_OFFSET, str(record.offset).encode()),
            ),
        )
        await self._hub().log.append(LogName.DEADLETTER, [entry])
        log.warning(
            "inbound.dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            agency=agency,
            error=exc_type,
        )


# -- faststream wiring ------------------------------------------------------------------------


async def _parse_safely(
    record: ConsumerRecord[Any, Any],
    original: Callable[[ConsumerRecord[Any, Any]], Awaitable[StreamMessage[Any]]],
) -> StreamMessage[Any]:
    """faststream's parser decodes every header as UTF-8 and would fail — before any
    handler could dead-letter it — on a header that is not: replace such bytes first."""
    headers = list(record.headers or ())
    clean = [(k, v.decode("utf-8", "replace").encode()) for k, v in headers]
    if clean != headers:
        record.headers = clean
    return await original(record)


async def _raw_body(message: StreamMessage[Any]) -> bytes:
    """The body as sent: the adapters decode it themselves (never faststream's JSON)."""
    body = message.body
    return bytes(body) if isinstance(body, (bytes, bytearray, memoryview)) else b""


def kafka_security(settings: Settings) -> BaseSecurity | None:
    """faststream's security object for the hub's Kafka settings."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        context = create_ssl_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
            certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
            keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    user = settings.kafka_sasl_username or ""
    password = (
        settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    )
    sasl = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    cls = sasl[settings.kafka_sasl_mechanism or "PLAIN"]
    return cls(user, password, ssl_context=context, use_ssl=protocol == "SASL_SSL")


def create_inbound_broker(
    settings: Settings,
    handler: InboundHandler,
    *,
    agencies: Sequence[str] = (),
    group_options: dict[str, Any] | None = None,
) -> KafkaBroker:
    """The broker and its one router: `hub.inbound.{agency}` as a pattern, or the topics of
    `agencies`. `group_options` passes consumer-group timings through (tests)."""
    for agency in agencies:
        if not _AGENCY.match(agency):
            raise ValueError(f"not a usable agency topic segment: {agency!r}")
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id="tac-hub-inbound",
        enable_idempotence=settings.kafka_enable_idempotence,
        security=kafka_security(settings),
        description="The TAC hub's inbound agency topics",
        logger=None,
    )
    router = KafkaRouter(prefix=settings.kafka_topic_prefix)
    options: dict[str, Any] = {
        "group_id": settings.kafka_topic_prefix + GROUP_ID,
        "auto_offset_reset": "earliest",
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "parser": _parse_safely,
        "decoder": _raw_body,
        "title": "hub.inbound.{agency}:take",
        "description": _DESCRIPTION,
        **(group_options or {}),
    }
    if agencies:
        subscriber = router.subscriber(*(INBOUND_PREFIX + a for a in agencies), **options)
    else:
        subscriber = router.subscriber(pattern=INBOUND_PREFIX + "{agency}", **options)

    async def take(body: bytes, msg: KafkaMessage) -> None:
        raw = cast("ConsumerRecord[Any, Any]", msg.raw_message)
        record = InboundRecord(
            topic=raw.topic,
            partition=raw.partition,
            offset=raw.offset,
            key=raw.key,
            value=body,
            headers=tuple((k, bytes(v)) for k, v in (raw.headers or ())),
        )
        try:
            await handler.handle(record)
        except Exception as exc:
            # not even the dead-letter log took it: not acknowledged, so it comes again
            log.error("inbound.not_acknowledged", topic=raw.topic, partition=raw.partition,
                      offset=raw.offset, error=type(exc).__name__)  # fmt: skip
            await asyncio.sleep(handler.backoff)
            raise

    subscriber(take)
    broker.include_router(router)
    return broker


def create_inbound_app(
    settings: Settings,
    *,
    hub: "Hub | None" = None,
    agencies: Sequence[str] = (),
    group_options: dict[str, Any] | None = None,
) -> tuple[FastStream, InboundHandler]:
    """The inbound app and its handler. The hub (log, store, gate) is opened when the app
    starts — or `hub` is used, and left open — and closed when it stops."""
    if hub is not None:
        policy = hub.policy
    else:
        from hub.consent.policy import load_policy

        policy = load_policy(settings.consent_policy)
    check_inbound_senders(settings.inbound_senders, policy, agencies)
    opened: dict[str, Hub] = {}

    def current() -> "Hub":
        the_hub = hub or opened.get("hub")
        if the_hub is None:
            raise TransientError("the hub is not open yet")
        return the_hub

    handler = InboundHandler(
        current,
        senders=settings.inbound_senders,
        topic_prefix=settings.kafka_topic_prefix,
        max_bytes=settings.max_body_bytes,
        retries=settings.projector_retries,
        backoff=max(settings.projector_backoff_seconds, 0.05),
    )
    broker = create_inbound_broker(
        settings, handler, agencies=agencies, group_options=group_options
    )

    async def open_the_hub() -> None:
        if hub is None:
            from hub.bootstrap import open_hub

            opened["hub"] = await open_hub(settings)

    async def close_the_hub() -> None:
        owned = opened.pop("hub", None)
        if owned is not None:
            await owned.close()

    app = FastStream(
        broker,
        on_startup=[open_the_hub],
        after_shutdown=[close_the_hub],
        specification=specification(broker),
        logger=None,
    )
    return app, handler


def specification(broker: KafkaBroker) -> AsyncAPI:
    from hub import __version__

    return AsyncAPI(
        broker,
        title="TAC Hub topics",
        version=__version__,
        description="Agency systems publish their records to `hub.inbound.<agency>`; the hub "
        "reads them through the same adapters and consent gate as `POST /ingest/*`. The hub "
        "writes hub.events, hub.withheld, hub.audit and hub.deadletter (each name after "
        "`HUB_KAFKA_TOPIC_PREFIX`).",
        schema_version="3.0.0",
    )


def asyncapi_yaml(settings: Settings | None = None) -> str:
    """The AsyncAPI document of the inbound app, from faststream's generator, for
    `contracts/asyncapi.yaml` (with the default local broker address, no topic prefix)."""
    settings = settings or Settings(
        _env_file=None,
        kafka_bootstrap_servers="localhost:9092",
        kafka_topic_prefix="",
        kafka_security_protocol="PLAINTEXT",
    )

    def no_hub() -> "Hub":
        raise TransientError("documentation only")

    broker = create_inbound_broker(settings, InboundHandler(no_hub))
    import yaml

    from hub.contracts import add_written_topics

    doc = add_written_topics(specification(broker).to_specification().to_jsonable())
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=88)


if __name__ == "__main__":  # python -m hub.adapters.inbound_kafka: rewrite the contract
    from hub.contracts import packaged

    target = packaged("asyncapi.yaml")
    target.write_text(asyncapi_yaml(), encoding="utf-8")
    print(target)  # noqa: T201 - a command-line entry point prints what it wrote
