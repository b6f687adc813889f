"""The scale-out `EventLog`: one Kafka topic per hub log, written and read with aiokafka.

`append` picks each record's partition with `partition_for` (as SQLite does), builds the
record batches itself and queues them all before awaiting any acknowledgement; aiokafka
keeps one produce request in flight per broker and re-queues a retried batch first, so
per-partition order holds with or without idempotence. `read` sends its own Fetch
requests (max wait 1 ms) through a dedicated client rather than seeking a consumer: an
empty answer then means "nothing at this offset", which a consumer's background prefetch
can only guess at by waiting out a timeout, and which end offsets cannot tell on the
Tansu test broker (they under-count multi-record batches; Tansu also answers a Fetch
with max wait 0 with no partitions at all, hence 1 ms). This uses aiokafka's protocol
request builders, so it needs aiokafka 0.13 or later.

A read at the end of a partition (the usual catch-up check, "anything after my offset?")
does not fetch there: a Fetch at the end is held by the broker (Tansu: 2-10 ms, whatever
max wait says), a Fetch at an offset that exists is answered at once. It asks for the
log's end instead (`_log_end`): one Fetch, 1 byte wanted, at the last offset known to
exist, whose high watermark is the end (unlike ListOffsets, exact on Tansu). Concurrent
callers share these probes, one Fetch per broker for every partition waiting: a caller
joins the probe not yet sent, or starts one, never one sent before it arrived (so it
sees every append acknowledged before it asked). Only when the end lies past the
caller's offset is a Fetch at the offset sent, and that one has records to answer with.

`subscribe` joins a consumer group with auto-commit off; on every assignment it asks
`start_offsets` (the read store, the source of truth) and seeks there, and `acknowledge`
only mirrors applied offsets into the group. Tansu supports group membership but holds a
group's first JoinGroup for about half the session timeout, so a new subscriber waits a
few seconds for its first batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn

import structlog
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    CommitFailedError,
    ConsumerStoppedError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    NodeNotReadyError,
    NotLeaderForPartitionError,
    OffsetOutOfRangeError,
    RequestTimedOutError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.offset import OffsetRequest
from aiokafka.record.memory_records import MemoryRecords

from hub.errors import TransientError
from hub.log.base import (
    LogName,
    NewRecord,
    Position,
    StartOffsets,
    StoredRecord,
    partition_for,
)

log = structlog.get_logger(__name__)

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]

_TRANSIENT = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, RequestTimedOutError)
_FETCH_MAX_WAIT_MS = 1  # Tansu answers max_wait=0 with an empty response
_EMPTY_RETRIES = 12  # empty fetches below the high watermark tried again (backoff to 0.1 s)
_TAIL_MAX_WAIT_MS = 100  # a subscriber's long poll: bounds the live-tail latency
_LATEST = -1  # ListOffsets timestamp meaning "the next offset"
_EARLIEST = -2


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _TRANSIENT) or (
        isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))
    )


def _observe(fut: asyncio.Future[Any]) -> None:
    """Retrieve a future's error so asyncio does not report it as never retrieved."""
    if not fut.cancelled():
        fut.exception()


def _raise_transient(what: str, topic: str, exc: BaseException) -> NoReturn:
    raise TransientError(f"kafka log: {what} on {topic} failed: {type(exc).__name__}") from exc


class KafkaEventLog:
    """`EventLog` on Kafka topics named `{topic_prefix}{log}`."""

    reads_are_round_trips = True
    """A `read` asks the broker: callers overlap it with other round trips where they can."""

    def __init__(
        self,
        bootstrap_servers: str | list[str],
        *,
        topic_prefix: str = "",
        partitions: int = 12,
        replication_factor: int = 1,
        enable_idempotence: bool = True,
        acks: str | int = "all",
        linger_ms: int = 5,
        max_batch_size: int = 256 * 1024,
        client_id: str = "tac-hub",
        security_protocol: SecurityProtocol = "PLAINTEXT",
        sasl_mechanism: SaslMechanism | None = None,
        sasl_username: str | None = None,
        sasl_password: str | None = None,
        ssl_cafile: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        request_timeout_ms: int = 30_000,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        fetch_max_bytes: int = 1024 * 1024,
        ping_timeout: float = 5.0,
    ) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        if security_protocol.startswith("SASL") and sasl_mechanism is None:
            raise ValueError(f"security_protocol {security_protocol} needs a sasl_mechanism")
        self._bootstrap = bootstrap_servers
        self._prefix = topic_prefix
        self._partitions = partitions
        self._replication_factor = replication_factor
        self._enable_idempotence = enable_idempotence
        self._acks = acks
        self._linger_ms = linger_ms
        self._max_batch_size = max_batch_size
        self._client_id = client_id
        self._security_protocol = security_protocol
        self._sasl_mechanism = sasl_mechanism
        self._sasl_username = sasl_username
        self._sasl_password = sasl_password
        self._ssl_files = (ssl_cafile, ssl_certfile, ssl_keyfile)
        self._ssl_context: ssl.SSLContext | None = None
        self._request_timeout_ms = request_timeout_ms
        self._session_timeout_ms = session_timeout_ms
        self._heartbeat_interval_ms = heartbeat_interval_ms
        self._fetch_max_bytes = fetch_max_bytes
        self._ping_timeout = ping_timeout
        self._producer: Any = None
        self._client: Any = None
        self._last_highwater: dict[tuple[str, int], int] = {}
        self._known_end: dict[tuple[str, int], int] = {}
        """Per partition, the end (next offset) last seen by a fetch or an append: the
        offset before it exists (nothing is deleted while the hub runs)."""
        self._probe_next: dict[int, dict[tuple[str, int], asyncio.Future[int | None]]] = {}
        """Per broker, the partitions whose end callers wait for, not asked yet."""
        self._probers: dict[int, asyncio.Task[None]] = {}
        self.probes_sent = 0
        """End probes sent (each one Fetch for every partition waiting on that broker)."""
        self._subscriptions: set[_KafkaSubscription] = set()

    # -- plumbing -------------------------------------------------------------------
    def topic(self, log_name: LogName) -> str:
        return f"{self._prefix}{log_name.value}"

    def _connection_options(self) -> dict[str, Any]:
        """Connection and security settings shared by every aiokafka object we create."""
        options: dict[str, Any] = {
            "bootstrap_servers": self._bootstrap,
            "client_id": self._client_id,
            "request_timeout_ms": self._request_timeout_ms,
            "security_protocol": self._security_protocol,
        }
        if self._security_protocol in ("SSL", "SASL_SSL"):
            if self._ssl_context is None:
                cafile, certfile, keyfile = self._ssl_files
                self._ssl_context = create_ssl_context(
                    cafile=cafile, certfile=certfile, keyfile=keyfile
                )
            options["ssl_context"] = self._ssl_context
        if self._sasl_mechanism is not None:
            options["sasl_mechanism"] = self._sasl_mechanism
            options["sasl_plain_username"] = self._sasl_username
            options["sasl_plain_password"] = self._sasl_password
        return options

    def _require_client(self) -> Any:
        if self._client is None:
            raise RuntimeError("KafkaEventLog used before start()")
        return self._client

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        if self._client is not None:
            return
        options = self._connection_options()
        client = AIOKafkaClient(**options)
        producer = AIOKafkaProducer(
            **options,
            acks=self._acks,
            enable_idempotence=self._enable_idempotence,
            linger_ms=self._linger_ms,
            max_batch_size=self._max_batch_size,
        )
        try:
            await self._create_topics(options)
            await client.bootstrap()
            await client.set_topics([self.topic(log_name) for log_name in LogName])
            await producer.start()
        except BaseException as exc:
            await producer.stop()
            await client.close()
            if _is_transient(exc):
                _raise_transient("start", self._prefix + "*", exc)
            raise
        self._client, self._producer = client, producer
        log.info("kafka_log_started", topic_prefix=self._prefix, partitions=self._partitions)

    async def _create_topics(self, options: dict[str, Any]) -> None:
        """Create the four topics if missing; refuse ones with another partition count."""
        admin = AIOKafkaAdminClient(**options)
        try:
            await admin.start()
            names = [self.topic(log_name) for log_name in LogName]
            response = await admin.create_topics(
                [NewTopic(name, self._partitions, self._replication_factor) for name in names]
            )
            for name, code, *_ in response.topic_errors:
                error = for_code(code)
                if code != 0 and error is not TopicAlreadyExistsError:
                    raise error(f"creating topic {name}")
            for described in await admin.describe_topics(names):
                count = len(described["partitions"])
                if described["error_code"] == 0 and count != self._partitions:
                    raise ValueError(
                        f"topic {described['topic']} has {count} partitions, but "
                        f"{self._partitions} were configured; repartitioning would break "
                        "per-child order"
                    )
        finally:
            await admin.close()

    async def close(self) -> None:
        for sub in list(self._subscriptions):
            await sub.close()
        probers = list(self._probers.values())
        for task in probers:
            task.cancel()
        await asyncio.gather(*probers, return_exceptions=True)
        producer, client = self._producer, self._client
        self._producer = self._client = None
        if producer is not None:
            await producer.stop()
        if client is not None:
            await client.close()

    async def ping(self) -> None:
        client = self._require_client()
        try:
            await asyncio.wait_for(client.fetch_all_metadata(), self._ping_timeout)
        except (TimeoutError, KafkaError) as exc:
            raise TransientError(f"kafka log: broker unreachable ({type(exc).__name__})") from exc

    def partitions(self, log: LogName) -> int:
        return self._partitions

    # -- append ---------------------------------------------------------------------
    async def append(self, log: LogName, records: Sequence[NewRecord]) -> list[Position]:
        if not records:
            return []
        if self._producer is None:
            raise RuntimeError("KafkaEventLog used before start()")
        producer = self._producer
        topic = self.topic(log)
        n = self._partitions
        by_partition: dict[int, list[int]] = {}
        for i, rec in enumerate(records):
            by_partition.setdefault(partition_for(rec.key, n), []).append(i)
        # Build whole record batches ourselves (per partition, up to max_batch_size) and
        # queue them all before awaiting the broker: one acknowledgement per batch, not
        # per record. A record's offset is its batch's base offset plus its place in it.
        sent: list[tuple[int, asyncio.Future[Any], list[tuple[int, int]]]] = []

        async def queue(part: int, builder: Any, members: list[tuple[int, int]]) -> None:
            # closed, the batch is sent at once: an open one would wait out linger_ms for
            # records that never come (this append built it whole), ~5 ms on every append
            builder.close()
            sent.append((part, await producer.send_batch(builder, topic, partition=part), members))

        try:
            for part, indexes in by_partition.items():
                builder = producer.create_batch()
                members: list[tuple[int, int]] = []
                for i in indexes:
                    rec = records[i]
                    fields = {
                        "key": rec.key.encode("utf-8"),
                        "value": rec.value,
                        "timestamp": None,
                        "headers": list(rec.headers),
                    }
                    meta = builder.append(**fields)
                    if meta is None:  # batch full: queue it and start the next
                        await queue(part, builder, members)
                        builder, members = producer.create_batch(), []
                        meta = builder.append(**fields)
                    members.append((i, meta.offset))
                await queue(part, builder, members)
        except KafkaError as exc:
            for _, fut, _ in sent:
                fut.add_done_callback(_observe)
            if _is_transient(exc):
                _raise_transient("append", topic, exc)
            raise
        # wait for every queued batch, so a failure leaves no unobserved error behind
        outcomes = await asyncio.gather(*(fut for _, fut, _ in sent), return_exceptions=True)
        positions: list[Position] = [Position(0, 0)] * len(records)
        for (part, _, members), outcome in zip(sent, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if _is_transient(outcome):
                    _raise_transient("append", topic, outcome)
                raise outcome
            for i, relative in members:
                positions[i] = Position(part, outcome.offset + relative)
            if members:
                self._saw_end((topic, part), outcome.offset + members[-1][1] + 1)
        return positions

    # -- read -----------------------------------------------------------------------
    async def read(
        self, log: LogName, partition: int, from_offset: int, limit: int = 1000
    ) -> list[StoredRecord]:
        if limit <= 0:
            return []
        topic = self.topic(log)
        tp = TopicPartition(topic, partition)
        out: list[StoredRecord] = []
        offset = from_offset
        retries = 0
        try:
            known = self._known_end.get((topic, partition))
            if known is not None and 0 < known <= offset:
                # at the end as far as we know: ask where the end is (answered at once)
                end = await self._log_end(tp)
                if end is not None and end <= offset:
                    return out
            while len(out) < limit:
                got, next_offset = await self._fetch(log, tp, offset, limit - len(out))
                out.extend(got)
                if next_offset <= offset:
                    # An empty answer is "nothing more" only if the fetch's high watermark
                    # says so: under load the broker may answer a 1 ms fetch with nothing
                    # although records exist (seen with Tansu on a busy machine).
                    highwater = self._last_highwater.get((tp.topic, tp.partition))
                    if highwater is not None and highwater > offset and retries < _EMPTY_RETRIES:
                        retries += 1
                        await asyncio.sleep(min(0.001 * 2**retries, 0.1))
                        continue
                    break
                retries = 0
                offset = next_offset
                if offset >= self._last_highwater.get((tp.topic, tp.partition), offset + 1):
                    break  # the fetch said this is the end: no need to ask again
        except KafkaError as exc:
            if _is_transient(exc):
                _raise_transient("read", topic, exc)
            raise
        return out

    async def _fetch(
        self, log: LogName, tp: Any, offset: int, limit: int
    ) -> tuple[list[StoredRecord], int]:
        """One Fetch at `offset`: up to `limit` records from it, and the offset after the
        last record or batch consumed (equal to `offset` when there was nothing)."""
        client = self._require_client()
        node = client.cluster.leader_for_partition(tp)
        if node is None or node == -1:
            await client.force_metadata_update()
            node = client.cluster.leader_for_partition(tp)
            if node is None or node == -1:
                raise UnknownTopicOrPartitionError(f"no leader for {tp.topic}:{tp.partition}")
        request = FetchRequest(
            _FETCH_MAX_WAIT_MS,
            1,
            self._fetch_max_bytes,
            0,  # read_uncommitted: the hub writes no transactions
            [(tp.topic, [(tp.partition, offset, self._fetch_max_bytes)])],
        )
        response = await client.send(node, request)
        # a response without our partition tells nothing about the end: assume more
        self._last_highwater[(tp.topic, tp.partition)] = offset + 1
        for topic, parts in response.topics:
            for part, error_code, highwater, *part_data in parts:
                if topic != tp.topic or part != tp.partition:
                    continue
                self._last_highwater[(topic, part)] = int(highwater)
                if error_code == 0:
                    self._saw_end((topic, part), int(highwater))
                error = for_code(error_code)
                if error is OffsetOutOfRangeError:
                    return await self._out_of_range(log, tp, offset, limit)
                if error is NotLeaderForPartitionError:
                    client.force_metadata_update()
                if error_code != 0:
                    raise error(f"fetch {tp.topic}:{tp.partition}")
                return self._decode(log, tp.partition, part_data[-1], offset, limit)
        return [], offset

    def _saw_end(self, key: tuple[str, int], end: int) -> None:
        if end > self._known_end.get(key, 0):
            self._known_end[key] = end

    async def _log_end(self, tp: Any) -> int | None:
        """The partition's end (next offset) as a probe sent after this call began says
        (None: the probe could not tell). Probes are shared: a caller joins the probe its
        partition's leader has not been sent yet (one Fetch for every partition waiting),
        which goes as soon as the one in flight to that broker is answered."""
        client = self._require_client()
        node = client.cluster.leader_for_partition(tp)
        if node is None or node == -1:
            return None  # the ordinary fetch finds the leader
        key = (tp.topic, tp.partition)
        waiting = self._probe_next.setdefault(node, {})
        fut = waiting.get(key)
        if fut is None:
            fut = waiting[key] = asyncio.get_running_loop().create_future()
            fut.add_done_callback(_observe)
        if node not in self._probers:
            self._probers[node] = asyncio.create_task(
                self._probe_loop(node), name=f"kafka-end-probe-{node}"
            )
        # shielded: a caller that gives up does not cancel the probe under the others
        return await asyncio.shield(fut)

    async def _probe_loop(self, node: int) -> None:
        """Send the broker the probe callers wait for, answer them, and go on while
        callers who came during it wait for the next."""
        batch: dict[tuple[str, int], asyncio.Future[int | None]] = {}
        try:
            while batch := self._probe_next.pop(node, {}):
                try:
                    ends = await self._probe(node, list(batch))
                except Exception as exc:
                    for fut in batch.values():
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for key, fut in batch.items():
                    if not fut.done():
                        fut.set_result(ends.get(key))
        except BaseException:  # cancelled (closing): nobody waits on a probe never sent
            for fut in (*batch.values(), *self._probe_next.pop(node, {}).values()):
                if not fut.done():
                    fut.cancel()
            raise
        finally:
            self._probers.pop(node, None)

    async def _probe(self, node: int, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """One Fetch of 1 byte per partition, each at its last offset known to exist:
        their high watermarks (a partition the answer leaves out or refuses is absent)."""
        by_topic: dict[str, list[tuple[int, int, int]]] = {}
        for topic, part in keys:
            known = self._known_end.get((topic, part), 0)
            if known > 0:
                by_topic.setdefault(topic, []).append((part, known - 1, 1))
        if not by_topic:
            return {}
        request = FetchRequest(_FETCH_MAX_WAIT_MS, 1, len(keys), 0, list(by_topic.items()))
        self.probes_sent += 1
        response = await self._require_client().send(node, request)
        ends: dict[tuple[str, int], int] = {}
        for topic, parts in response.topics:
            for part, error_code, highwater, *_ in parts:
                if error_code == 0 and (topic, part) in self._known_end:
                    self._saw_end((topic, part), int(highwater))
                    ends[(topic, part)] = int(highwater)
        return ends

    async def _out_of_range(
        self, log: LogName, tp: Any, offset: int, limit: int
    ) -> tuple[list[StoredRecord], int]:
        """Beyond the end there is nothing yet; before the start, read from the start."""
        earliest = (await self._list_offsets(tp.topic, [tp.partition], _EARLIEST))[tp.partition]
        if offset < earliest:
            return await self._fetch(log, tp, earliest, limit)
        return [], offset

    @staticmethod
    def _decode(
        log: LogName, partition: int, raw: bytes, offset: int, limit: int
    ) -> tuple[list[StoredRecord], int]:
        out: list[StoredRecord] = []
        next_offset = offset
        records = MemoryRecords(raw)
        while records.has_next() and len(out) < limit:
            batch = records.next_batch()
            if batch is None:
                break  # a truncated trailing batch: fetched again next time
            if not batch.validate_crc():
                raise KafkaError(f"corrupt record batch in {log.value}:{partition}")
            if getattr(batch, "is_control_batch", False):
                next_offset = max(next_offset, batch.next_offset)
                continue
            for rec in batch:
                if rec.offset < offset:
                    continue  # the broker answers with whole batches
                out.append(
                    StoredRecord(
                        log=log,
                        partition=partition,
                        offset=rec.offset,
                        key=rec.key.decode("utf-8") if rec.key is not None else "",
                        value=rec.value if rec.value is not None else b"",
                        headers=tuple((k, v or b"") for k, v in rec.headers),
                        timestamp=datetime.fromtimestamp(rec.timestamp / 1000, UTC),
                    )
                )
                next_offset = rec.offset + 1
                if len(out) >= limit:
                    break
            else:
                next_offset = max(next_offset, batch.next_offset)
        return out, next_offset

    async def _list_offsets(self, topic: str, parts: list[int], when: int) -> dict[int, int]:
        client = self._require_client()
        by_node: dict[int, list[int]] = {}
        for p in parts:
            node = client.cluster.leader_for_partition(TopicPartition(topic, p))
            if node is None or node == -1:
                raise UnknownTopicOrPartitionError(f"no leader for {topic}:{p}")
            by_node.setdefault(node, []).append(p)
        result: dict[int, int] = {}
        for node, node_parts in by_node.items():
            request = OffsetRequest(-1, 0, [(topic, [(p, when) for p in node_parts])])
            response = await client.send(node, request)
            for _topic, part_data in response.topics:
                for part, error_code, *info in part_data:
                    if error_code != 0:
                        raise for_code(error_code)(f"list offsets {topic}:{part}")
                    if response.API_VERSION == 0:
                        result[part] = info[0][0] if info[0] else 0
                    else:
                        result[part] = info[1]
        return result

    async def end_offsets(self, log: LogName) -> dict[int, int]:
        topic = self.topic(log)
        try:
            return await self._list_offsets(topic, list(range(self._partitions)), _LATEST)
        except KafkaError as exc:
            if _is_transient(exc):
                _raise_transient("end offsets", topic, exc)
            raise

    # -- subscribe ------------------------------------------------------------------
    def subscribe(
        self,
        log: LogName,
        *,
        group: str,
        start_offsets: StartOffsets,
        max_batch: int = 500,
    ) -> _KafkaSubscription:
        self._require_client()
        sub = _KafkaSubscription(self, log, f"{self._prefix}{group}", start_offsets, max_batch)
        self._subscriptions.add(sub)
        return sub

    def _consumer(self, group_id: str) -> Any:
        return AIOKafkaConsumer(
            **self._connection_options(),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._session_timeout_ms,
            heartbeat_interval_ms=self._heartbeat_interval_ms,
            fetch_max_wait_ms=_TAIL_MAX_WAIT_MS,
        )


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    """On every assignment, seek each partition to where the read store says to resume."""

    def __init__(self, sub: _KafkaSubscription) -> None:
        self._sub = sub

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._sub._on_assigned(assigned)


class _KafkaSubscription:
    def __init__(
        self,
        owner: KafkaEventLog,
        log: LogName,
        group_id: str,
        start_offsets: StartOffsets,
        max_batch: int,
    ) -> None:
        self._owner = owner
        self._log = log
        self._topic = owner.topic(log)
        self._group_id = group_id
        self._start_offsets = start_offsets
        self._max_batch = max_batch
        self._consumer: Any = None
        self._closed = False
        self._started = False
        self._error: BaseException | None = None

    async def _on_assigned(self, assigned: Any) -> None:
        consumer = self._consumer
        if consumer is None:  # closed meanwhile
            return
        mine = [tp for tp in assigned if tp.topic == self._topic]
        try:
            stored = await self._start_offsets(frozenset(tp.partition for tp in mine))
        except Exception as exc:
            # aiokafka logs and swallows listener errors, then falls back to the committed
            # offsets: pause instead, and let batches() raise what went wrong.
            self._error = exc
            consumer.pause(*mine)
            return
        for tp in mine:
            consumer.seek(tp, stored.get(tp.partition, 0))
        log.info(
            "kafka_subscription_assigned",
            group=self._group_id,
            topic=self._topic,
            partitions=sorted(tp.partition for tp in mine),
        )

    async def batches(self) -> AsyncIterator[list[StoredRecord]]:
        if self._started:
            raise RuntimeError("a subscription's batches() can be iterated only once")
        self._started = True
        if self._closed:
            return
        consumer = self._owner._consumer(self._group_id)
        consumer.subscribe([self._topic], listener=_SeekToStoredOffsets(self))
        self._consumer = consumer
        try:
            await consumer.start()
            while not self._closed:
                try:
                    fetched = await consumer.getmany(timeout_ms=200, max_records=self._max_batch)
                except ConsumerStoppedError:
                    return
                if self._error is not None:
                    raise self._error
                for tp in sorted(fetched, key=lambda t: t.partition):
                    if self._closed:
                        return
                    batch = [self._stored(tp.partition, msg) for msg in fetched[tp]]
                    if batch:
                        yield batch
        except KafkaError as exc:
            if _is_transient(exc):
                _raise_transient("subscribe", self._topic, exc)
            raise
        finally:
            await self.close()

    def _stored(self, partition: int, msg: Any) -> StoredRecord:
        return StoredRecord(
            log=self._log,
            partition=partition,
            offset=msg.offset,
            key=msg.key.decode("utf-8") if msg.key is not None else "",
            value=msg.value if msg.value is not None else b"",
            headers=tuple((k, v or b"") for k, v in msg.headers),
            timestamp=datetime.fromtimestamp(msg.timestamp / 1000, UTC),
        )

    async def acknowledge(self, positions: dict[int, int]) -> None:
        """Mirror applied offsets into the group (next offset = applied + 1). The read
        store stays the source of truth: a commit refused because the group is
        rebalancing is logged and skipped, as the next assignment seeks from the store."""
        consumer = self._consumer
        if consumer is None or self._closed or not positions:
            return
        owned = {tp.partition for tp in consumer.assignment()}
        offsets = {
            TopicPartition(self._topic, p): off + 1 for p, off in positions.items() if p in owned
        }
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning(
                "kafka_commit_skipped",
                group=self._group_id,
                topic=self._topic,
                reason=type(exc).__name__,
            )
        except KafkaError as exc:
            if _is_transient(exc):
                _raise_transient("commit", self._topic, exc)
            raise

    async def close(self) -> None:
        self._closed = True
        self._owner._subscriptions.discard(self)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(ConsumerStoppedError):
                await consumer.stop()
