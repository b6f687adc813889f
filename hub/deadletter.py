"""Dead-letter records: what could not be taken, why, and from where, so it can be replayed.

A dead-letter keeps the original value and headers and adds the reason headers of
STYLE.md (`x-dlq-reason`, `x-dlq-exception-type`, `x-dlq-source-topic/partition/offset`,
`x-dlq-attempts`) plus `x-dlq-id`, `x-dlq-consumer` and `x-dlq-at`. Reasons name the field
and the rule, never the value.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from hub.log import LogName, NewRecord, StoredRecord

REASON = "x-dlq-reason"
EXC_TYPE = "x-dlq-exception-type"
SRC_TOPIC = "x-dlq-source-topic"
SRC_PARTITION = "x-dlq-source-partition"
SRC_OFFSET = "x-dlq-source-offset"
ATTEMPTS = "x-dlq-attempts"
DLQ_ID = "x-dlq-id"
CONSUMER = "x-dlq-consumer"
AT = "x-dlq-at"
GENERATION = "x-dlq-generation"
_OURS = {
    REASON,
    EXC_TYPE,
    SRC_TOPIC,
    SRC_PARTITION,
    SRC_OFFSET,
    ATTEMPTS,
    DLQ_ID,
    CONSUMER,
    AT,
    GENERATION,
}


def dead_letter_for(
    *,
    key: str,
    value: bytes,
    reason: str,
    exception_type: str,
    consumer: str,
    attempts: int,
    source: StoredRecord | None = None,
    source_topic: str | None = None,
    original_headers: tuple[tuple[str, bytes], ...] = (),
    extra: tuple[tuple[str, bytes], ...] = (),
) -> NewRecord:
    """Build the dead-letter record for a message that could not be taken."""
    headers = [
        (DLQ_ID, str(uuid.uuid4()).encode()),
        (REASON, reason[:2000].encode("utf-8", "replace")),
        (EXC_TYPE, exception_type.encode()),
        (CONSUMER, consumer.encode()),
        (ATTEMPTS, str(attempts).encode()),
        (AT, datetime.now(UTC).isoformat().encode()),
    ]
    if source is not None:
        headers += [
            (SRC_TOPIC, source.log.value.encode()),
            (SRC_PARTITION, str(source.partition).encode()),
            (SRC_OFFSET, str(source.offset).encode()),
        ]
        original_headers = source.headers
    elif source_topic is not None:
        headers.append((SRC_TOPIC, source_topic.encode()))
    headers += list(extra)
    headers += [(k, v) for k, v in original_headers if k not in _OURS and k not in dict(extra)]
    return NewRecord(key=key, value=value, headers=tuple(headers))


@dataclass(frozen=True)
class DeadLetterEntry:
    id: str
    reason: str
    exception_type: str
    consumer: str
    attempts: int
    at: str
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    generation: int | None
    record: StoredRecord

    @classmethod
    def from_record(cls, rec: StoredRecord) -> DeadLetterEntry:
        def text(name: str) -> str | None:
            raw = rec.header(name)
            return None if raw is None else raw.decode("utf-8", "replace")

        def number(name: str) -> int | None:
            raw = text(name)
            return int(raw) if raw is not None and (raw.isascii() and raw.isdigit()) else None

        return cls(
            id=text(DLQ_ID) or f"{rec.partition}:{rec.offset}",
            reason=text(REASON) or "",
            exception_type=text(EXC_TYPE) or "",
            consumer=text(CONSUMER) or "",
            attempts=number(ATTEMPTS) or 0,
            at=text(AT) or rec.timestamp.isoformat(),
            source_topic=text(SRC_TOPIC),
            source_partition=number(SRC_PARTITION),
            source_offset=number(SRC_OFFSET),
            generation=number(GENERATION),
            record=rec,
        )

    @property
    def source_log(self) -> LogName | None:
        try:
            return LogName(self.source_topic) if self.source_topic else None
        except ValueError:
            return None
