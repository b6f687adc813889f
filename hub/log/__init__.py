"""The hub's logs: one `EventLog` port, a SQLite and a Kafka implementation."""

from hub.log.base import (
    EventLog,
    Headers,
    LogName,
    NewRecord,
    Position,
    StartOffsets,
    StoredRecord,
    Subscription,
    partition_for,
)

__all__ = [
    "EventLog",
    "Headers",
    "LogName",
    "NewRecord",
    "Position",
    "StartOffsets",
    "StoredRecord",
    "Subscription",
    "partition_for",
]
