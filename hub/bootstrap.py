"""The composition root: builds the log, the read store and the projection runners from
`Settings`. Nothing else in the hub knows every piece; nothing is built at import."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from hub.log import EventLog, LogName, NewRecord, Position
from hub.observability import Metrics, create_metrics
from hub.projections import ProjectionRunner, all_projections
from hub.settings import Settings
from hub.store import ReadStore

log = structlog.get_logger(__name__)


def create_log(settings: Settings) -> EventLog:
    if settings.log_backend == "kafka":
        from hub.log.kafka import KafkaEventLog

        return KafkaEventLog(
            settings.kafka_bootstrap_servers,
            topic_prefix=settings.kafka_topic_prefix,
            partitions=settings.log_partitions,
            replication_factor=settings.kafka_replication_factor,
            enable_idempotence=settings.kafka_enable_idempotence,
            security_protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=(
                settings.kafka_sasl_password.get_secret_value()
                if settings.kafka_sasl_password
                else None
            ),
            ssl_cafile=settings.kafka_ssl_cafile,
            ssl_certfile=settings.kafka_ssl_certfile,
            ssl_keyfile=settings.kafka_ssl_keyfile,
        )
    from hub.log.sqlite import SqliteEventLog

    return SqliteEventLog(
        settings.log_path,
        partitions=settings.log_partitions,
        synchronous=settings.sqlite_synchronous,
    )


def create_store(settings: Settings) -> ReadStore:
    if settings.store_backend == "postgres":
        from hub.store.postgres import PostgresReadStore

        if settings.postgres_dsn is None:  # the settings validator already refuses this
            raise ValueError("HUB_POSTGRES_DSN is required for the postgres store")
        return PostgresReadStore(
            settings.postgres_dsn.get_secret_value(), schema=settings.postgres_schema
        )
    from hub.store.sqlite import SqliteReadStore

    return SqliteReadStore(settings.store_path)


class CountingLog:
    """Decorates an `EventLog` so that appends are counted in the process's metrics."""

    def __init__(self, inner: EventLog, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    async def append(self, log_name: LogName, records: Sequence[NewRecord]) -> list[Position]:
        positions = await self._inner.append(log_name, records)
        self._metrics.events_appended.labels(log=log_name.value).inc(len(positions))
        return positions


@dataclass
class Hub:
    """Every long-lived piece of one hub process."""

    settings: Settings
    log: EventLog
    store: ReadStore
    metrics: Metrics
    runners: list[ProjectionRunner] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start_projector(self) -> None:
        for runner in self.runners:
            await runner.setup()
        self._tasks = [asyncio.create_task(r.run(self._stop)) for r in self.runners]
        log.info("projector.started", projections=[r.name for r in self.runners])

    async def stop_projector(self) -> None:
        self._stop.set()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def runner(self, name: str) -> ProjectionRunner:
        for r in self.runners:
            if r.name == name:
                return r
        known = ", ".join(r.name for r in self.runners)
        raise KeyError(f"no projection named {name!r} (known: {known})")

    async def close(self) -> None:
        await self.stop_projector()
        await self.store.close()
        await self.log.close()


async def open_hub(settings: Settings) -> Hub:
    """Connect the log and the store (creating tables/topics) and build the runners."""
    metrics = create_metrics()
    event_log = create_log(settings)
    store = create_store(settings)
    await event_log.start()
    try:
        await store.start()
    except BaseException:
        await event_log.close()
        raise
    counted = CountingLog(event_log, metrics)
    runners = [
        ProjectionRunner(
            p,
            counted,  # type: ignore[arg-type]
            store,
            batch_size=settings.projector_batch,
            retries=settings.projector_retries,
            backoff=settings.projector_backoff_seconds,
        )
        for p in all_projections()
    ]
    return Hub(settings, counted, store, metrics, runners)  # type: ignore[arg-type]
