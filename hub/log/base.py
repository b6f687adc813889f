"""The `EventLog` port: four append-only, partitioned logs with per-child ordering.

Both backends (SQLite, Kafka) implement the same protocol and pass the same contract
suite. A record's position is `(partition, offset)`; offsets are dense per partition on
SQLite and Kafka offsets on Kafka. The partition of a record is decided here, from its
key, by the same function on every backend, so one child's facts keep one order.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable


class LogName(StrEnum):
    EVENTS = "hub.events"
    WITHHELD = "hub.withheld"
    AUDIT = "hub.audit"
    DEADLETTER = "hub.deadletter"


Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record to append: `key` decides its partition (the hub child id, or the source
    for dead-letters)."""

    key: str
    value: bytes
    headers: Headers = ()


@dataclass(frozen=True, slots=True, order=True)
class Position:
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Position:
        part, _, off = text.partition(":")
        if not (part.isascii() and part.isdigit()) or not (off.isascii() and off.isdigit()):
            raise ValueError(f"position {text!r} is not PARTITION:OFFSET")
        return cls(int(part), int(off))


@dataclass(frozen=True, slots=True)
class StoredRecord:
    log: LogName
    partition: int
    offset: int
    key: str
    value: bytes
    headers: Headers
    timestamp: datetime

    @property
    def position(self) -> Position:
        return Position(self.partition, self.offset)

    def header(self, name: str) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


def partition_for(key: str, partitions: int) -> int:
    """Stable partition of a key: CRC-32 of its UTF-8 bytes modulo the partition count."""
    return zlib.crc32(key.encode("utf-8")) % partitions


StartOffsets = Callable[[frozenset[int]], Awaitable[dict[int, int]]]
"""Called when partitions are (re)assigned to a subscriber: returns the next offset to
read for each assigned partition (those missing start at 0)."""


@runtime_checkable
class Subscription(Protocol):
    """A live, batched reader of one log from stored positions onwards."""

    def batches(self) -> AsyncIterator[list[StoredRecord]]:
        """Yield batches in offset order per partition; waits (live tail) when caught up."""
        ...

    async def acknowledge(self, positions: dict[int, int]) -> None:
        """Tell the backend that every offset up to and including these is durably applied."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class EventLog(Protocol):
    """Append, read and subscribe across the four hub logs."""

    async def start(self) -> None:
        """Connect and create the logs (tables or topics) if missing."""
        ...

    async def close(self) -> None: ...

    def partitions(self, log: LogName) -> int: ...

    async def append(self, log: LogName, records: Sequence[NewRecord]) -> list[Position]:
        """Append atomically-per-record, durably, in order; returns each record's position."""
        ...

    async def read(
        self, log: LogName, partition: int, from_offset: int, limit: int = 1000
    ) -> list[StoredRecord]:
        """Records of one partition with offset >= from_offset, in order, at most `limit`."""
        ...

    async def end_offsets(self, log: LogName) -> dict[int, int]:
        """The next offset per partition (for lag metrics only: Tansu under-counts)."""
        ...

    def subscribe(
        self,
        log: LogName,
        *,
        group: str,
        start_offsets: StartOffsets,
        max_batch: int = 500,
    ) -> Subscription: ...

    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""
        ...


@dataclass
class LogStats:
    appended: dict[str, int] = field(default_factory=dict)

    def count(self, log: LogName, n: int) -> None:
        self.appended[log.value] = self.appended.get(log.value, 0) + n
