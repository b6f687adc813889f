"""The projection runner: applies log records to a read model exactly once in effect.

Each batch is applied in one read-store transaction that also records the last applied
offset per partition; records at or below the stored offset are skipped (they were
applied before a crash or by another runner). A subscriber seeks to the stored offsets
on every (re)assignment and acknowledges only after the commit. A record that cannot be
applied goes to `hub.deadletter` with its reason and the stream goes on: a
`PermanentError` at once, anything else after retries with backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from hub.consent.opener import EnvelopeOpener
from hub.deadletter import GENERATION, DeadLetterEntry, dead_letter_for
from hub.errors import PermanentError, TransientError
from hub.events import EventRegistry, upcast_envelope
from hub.events import registry as default_registry
from hub.log import EventLog, LogName, Position, StoredRecord
from hub.projections.base import RAW_ONLY, Applied, Projection
from hub.store import ReadStore, Tx

log = structlog.get_logger(__name__)

Progress = Callable[[int], None]
AfterTombstone = Callable[[Sequence[str]], Awaitable[None]]
"""Called with the children whose erasure tombstones a committed batch applied."""
TOMBSTONES = frozenset({"identity.child_erased", "identity.category_erased"})


@dataclass
class RunnerStats:
    applied: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    batches: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class GenerationChanged(Exception):
    """The projection was reset (rebuilt) since this runner subscribed: resubscribe."""


class ProjectionRunner:
    """Keeps one projection up to date with the logs it reads."""

    def __init__(
        self,
        projection: Projection,
        event_log: EventLog,
        store: ReadStore,
        *,
        batch_size: int = 500,
        retries: int = 3,
        backoff: float = 0.2,
        registry: EventRegistry = default_registry,
        opener: EnvelopeOpener | None = None,
        after_tombstone: AfterTombstone | None = None,
    ) -> None:
        self.projection = projection
        self.after_tombstone = after_tombstone
        self.log = event_log
        self.store = store
        self.batch_size = batch_size
        self.retries = retries
        self.backoff = backoff
        self.registry = registry
        self.opener = opener or EnvelopeOpener(None, registry)
        self.stats = RunnerStats()
        self._generation: int | None = None

    @property
    def name(self) -> str:
        return self.projection.name

    async def setup(self) -> None:
        async with self.store.transaction() as tx:
            await tx.execute(
                "INSERT INTO projection_state (projection, generation) VALUES (?, 0)"
                " ON CONFLICT (projection) DO NOTHING",
                (self.name,),
            )

    async def _current_generation(self) -> int:
        row = await self.store.fetchone(
            "SELECT generation FROM projection_state WHERE projection = ?", (self.name,)
        )
        return int(row[0]) if row else 0

    async def start_offsets(self, log_name: LogName, parts: frozenset[int]) -> dict[int, int]:
        """Where to resume: one past the stored offset. Also pins the generation."""
        self._generation = await self._current_generation()
        stored = await self.store.offsets(self.name, log_name.value)
        return {p: stored[p] + 1 for p in parts if p in stored}

    async def lag(self) -> int:
        total = 0
        for log_name in self.projection.logs:
            ends = await self.log.end_offsets(log_name)
            stored = await self.store.offsets(self.name, log_name.value)
            total += sum(max(0, end - (stored.get(p, -1) + 1)) for p, end in ends.items())
        return total

    # -- applying -------------------------------------------------------------------
    @property
    def decode_mode(self) -> str:
        """How this projection reads records: "raw" (as stored), "metadata" (sealed
        payloads left sealed) or "open" (decrypted and validated)."""
        if getattr(self.projection, "raw_records", False):  # e.g. the audit index
            return "raw"
        if getattr(self.projection, "metadata_only", False):
            return "metadata"
        return "open"

    async def _decode(self, records: Sequence[StoredRecord]) -> Decoded:
        return await decode_records(self.opener, self.decode_mode, records)

    async def process(
        self, records: Sequence[StoredRecord], decoded: Decoded | None = None
    ) -> None:
        """Apply one batch of records from one partition of one log (`decoded`: the
        records already decoded in this runner's mode, shared by a joint rebuild)."""
        if not records:
            return
        log_name, part = records[0].log, records[0].partition
        good, bad = decoded if decoded is not None else await self._decode(records)
        for rec, exc in bad:  # at-least-once into the dead-letter log, before the offset moves
            await self._dead_letter(rec, exc, attempts=1)
        last = records[-1].offset
        try:
            await self._with_retries(lambda: self._apply_batch(log_name, part, good, last))
            self.stats.batches += 1
        except GenerationChanged:
            raise
        except Exception:
            for applied in good:
                await self._apply_one(applied)
            await self._with_retries(lambda: self._advance(log_name, part, last))
        if self.after_tombstone is not None:
            erased = [a.envelope.child_id for a in good if a.envelope.event_type in TOMBSTONES]
            if erased:  # the derived rows are gone now: fold them out of the files too
                await self.after_tombstone(erased)

    async def _apply_batch(
        self, log_name: LogName, part: int, events: Sequence[Applied], last: int
    ) -> None:
        async with self.store.transaction() as tx:
            stored = (await tx.lock_offsets(self.name, log_name.value, [part]))[part]
            await self._check_generation(tx)
            fresh = [a for a in events if a.position.offset > stored]
            self.stats.skipped += len(events) - len(fresh)
            if fresh:
                await self.projection.apply(tx, fresh)
            if last > stored:
                await tx.set_offset(self.name, log_name.value, part, last)
        self.stats.applied += len(fresh)

    async def _check_generation(self, tx: Tx) -> None:
        if self._generation is None:
            return
        row = await tx.fetchone(
            "SELECT generation FROM projection_state WHERE projection = ?", (self.name,)
        )
        if row is not None and int(row[0]) != self._generation:
            raise GenerationChanged(self.name)

    async def _advance(self, log_name: LogName, part: int, last: int) -> None:
        async with self.store.transaction() as tx:
            stored = (await tx.lock_offsets(self.name, log_name.value, [part]))[part]
            await self._check_generation(tx)
            if last > stored:
                await tx.set_offset(self.name, log_name.value, part, last)

    async def _apply_one(self, applied: Applied) -> None:
        attempts = 0
        while True:
            attempts += 1
            try:
                await self._apply_batch(
                    applied.log, applied.position.partition, [applied], applied.position.offset
                )
                return
            except GenerationChanged:
                raise
            except PermanentError as exc:
                return await self._dead_letter_applied(applied, exc, attempts)
            except Exception as exc:
                if attempts > self.retries:
                    return await self._dead_letter_applied(applied, exc, attempts)
                await asyncio.sleep(self.backoff * 2 ** (attempts - 1))

    async def _with_retries(self, op: Callable[[], object]) -> None:
        attempts = 0
        while True:
            attempts += 1
            try:
                await op()  # type: ignore[misc]
                return
            except TransientError:
                if attempts > self.retries:
                    raise
                await asyncio.sleep(self.backoff * 2 ** (attempts - 1))

    async def _dead_letter_applied(self, applied: Applied, exc: Exception, attempts: int) -> None:
        part, off = applied.position.partition, applied.position.offset
        records = await self.log.read(applied.log, part, off, 1)
        if not records or records[0].offset != off:
            raise RuntimeError(f"{applied.log.value} {part}:{off} vanished from the log")
        await self._dead_letter(records[0], exc, attempts)
        await self._with_retries(lambda: self._advance(applied.log, part, off))

    async def _dead_letter(self, rec: StoredRecord, exc: Exception, attempts: int) -> None:
        reason = str(exc) if isinstance(exc, PermanentError) else f"{type(exc).__name__}: {exc}"
        await self.log.append(
            LogName.DEADLETTER,
            [
                dead_letter_for(
                    key=f"projection:{self.name}",
                    value=rec.value,
                    reason=reason,
                    exception_type=type(exc).__name__,
                    consumer=f"projection:{self.name}",
                    attempts=attempts,
                    source=rec,
                    extra=((GENERATION, str(self._generation or 0).encode()),),
                )
            ],
        )
        self.stats.dead_lettered += 1
        self.stats.errors[type(exc).__name__] = self.stats.errors.get(type(exc).__name__, 0) + 1
        log.warning(
            "projection.dead_lettered",
            projection=self.name,
            topic=rec.log.value,
            partition=rec.partition,
            offset=rec.offset,
            exception_type=type(exc).__name__,
            attempts=attempts,
        )

    async def apply_dead_letter(self, entry: DeadLetterEntry) -> str:
        """Apply one dead-lettered record again (after a fix). Returns what happened:
        "applied", "already replayed", or "superseded" when a rebuild since then has
        already re-applied (or re-dead-lettered) it."""
        await self.setup()
        envelope = await self.opener.open_value(entry.record.value)
        async with self.store.transaction() as tx:
            row = await tx.fetchone(
                "SELECT generation FROM projection_state WHERE projection = ?", (self.name,)
            )
            if row is not None and int(row[0]) != (entry.generation or 0):
                return "superseded"
            done = await tx.fetchone(
                "SELECT 1 FROM projection_replayed WHERE projection = ? AND dlq_id = ?",
                (self.name, entry.id),
            )
            if done:
                return "already replayed"
            source = Position(entry.source_partition or 0, entry.source_offset or 0)
            await self.projection.apply(
                tx,
                [
                    Applied(
                        upcast_envelope(envelope, entry.record.headers),
                        entry.source_log or LogName.EVENTS,
                        source,
                        entry.record.value,
                        entry.record.headers,
                    )
                ],
            )
            await tx.execute(
                "INSERT INTO projection_replayed (projection, dlq_id) VALUES (?, ?)",
                (self.name, entry.id),
            )
        self.stats.applied += 1
        return "applied"

    async def catch_up(self, log_name: LogName, part: int) -> int:
        """Apply everything in one partition past the stored offset, now (the gate calls
        this before it reads the projection's tables, so they are current)."""
        stored = (await self.store.offsets(self.name, log_name.value)).get(part, -1)
        total = 0
        while batch := await self.log.read(log_name, part, stored + 1, self.batch_size):
            await self.process(batch)
            stored = batch[-1].offset
            total += len(batch)
        return total

    # -- running --------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Follow every log of the projection until `stop` is set (or cancelled)."""
        await self.setup()
        stop = stop or asyncio.Event()
        tasks = [asyncio.create_task(self._follow(name, stop)) for name in self.projection.logs]
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, log_name: LogName, stop: asyncio.Event) -> None:
        delay = self.backoff or 0.1
        while not stop.is_set():
            sub = self.log.subscribe(
                log_name,
                group=f"projection.{self.name}",
                start_offsets=lambda parts: self.start_offsets(log_name, parts),
                max_batch=self.batch_size,
            )
            try:
                async for batch in sub.batches():
                    await self.process(batch)
                    await sub.acknowledge({batch[-1].partition: batch[-1].offset})
                    delay = self.backoff or 0.1
            except asyncio.CancelledError:
                raise
            except GenerationChanged:
                log.info("projection.reset_seen", projection=self.name, topic=log_name.value)
            except Exception as exc:
                log.error(
                    "projection.follow_failed",
                    projection=self.name,
                    topic=log_name.value,
                    exception_type=type(exc).__name__,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            finally:
                await sub.close()

    async def reset(self) -> None:
        """Drop the read model and its offsets and bump the generation (so a live runner
        elsewhere resubscribes instead of skipping what it has not seen)."""
        await self.setup()
        async with self.store.transaction() as tx:
            for table in self.projection.tables:
                await tx.execute(f"DELETE FROM {table}")  # noqa: S608 - names are the projection's own
            await tx.execute("DELETE FROM projection_offset WHERE projection = ?", (self.name,))
            await tx.execute("DELETE FROM projection_replayed WHERE projection = ?", (self.name,))
            await tx.execute(
                "UPDATE projection_state SET generation = generation + 1 WHERE projection = ?",
                (self.name,),
            )
        self._generation = await self._current_generation()

    async def rebuild(self, progress: Progress | None = None) -> int:
        """Drop the read model and its offsets, then apply every log from offset 0."""
        return await rebuild_together([self], progress)


Decoded = tuple[list[Applied], list[tuple[StoredRecord, PermanentError]]]


async def decode_records(
    opener: EnvelopeOpener, mode: str, records: Sequence[StoredRecord]
) -> Decoded:
    """Decode a batch the way a projection reads it (see `ProjectionRunner.decode_mode`):
    the records that decode, and the ones that cannot with why."""
    good: list[Applied] = []
    bad: list[tuple[StoredRecord, PermanentError]] = []
    if mode == "raw":
        return [Applied(RAW_ONLY, r.log, r.position, r.value, r.headers) for r in records], bad
    if mode == "metadata":
        opened_all = opener.metadata_values([r.value for r in records])
    else:
        opened_all = await opener.open_records(records)
    for rec, opened in zip(records, opened_all, strict=True):
        if isinstance(opened, PermanentError):
            bad.append((rec, opened))
        else:
            opened = upcast_envelope(opened, rec.headers)  # a v1 record's headers, once
            good.append(Applied(opened, rec.log, rec.position, rec.value, rec.headers))
    return good, bad


async def rebuild_together(
    runners: Sequence[ProjectionRunner], progress: Progress | None = None
) -> int:
    """Rebuild the runners' projections from offset 0 in one pass over the logs: each
    batch is read once and decoded once per mode (opening a sealed record, i.e.
    decrypting and validating it, is most of a rebuild's cost), then applied by every
    runner that reads that log, each in its own transaction with its own offsets.
    Returns the number of log records read; `progress` is told of each batch."""
    for runner in runners:
        await runner.reset()
    if not runners:
        return 0
    first = runners[0]
    logs: list[LogName] = []
    for runner in runners:
        logs.extend(n for n in runner.projection.logs if n not in logs)
    total = 0
    for log_name in logs:
        readers = [r for r in runners if log_name in r.projection.logs]
        batch_size = max(r.batch_size for r in readers)
        for part in range(first.log.partitions(log_name)):
            offset = 0
            # read the next batch while this one is applied (the read releases the GIL)
            pending = asyncio.ensure_future(first.log.read(log_name, part, offset, batch_size))
            try:
                while batch := await pending:
                    offset = batch[-1].offset + 1
                    pending = asyncio.ensure_future(
                        first.log.read(log_name, part, offset, batch_size)
                    )
                    decoded: dict[tuple[str, int], Decoded] = {}
                    for runner in readers:
                        how = (runner.decode_mode, id(runner.opener))
                        if how not in decoded:
                            decoded[how] = await decode_records(runner.opener, how[0], batch)
                        await runner.process(batch, decoded[how])
                    total += len(batch)
                    if progress:
                        progress(len(batch))
            finally:
                if not pending.done():
                    pending.cancel()
    await refresh_statistics(runners)
    return total


async def refresh_statistics(runners: Sequence[ProjectionRunner]) -> None:
    """ANALYZE the rebuilt tables: a rebuild replaces every row at once, and until the
    planner's statistics catch up (PostgreSQL's autovacuum runs later) it may choose a
    plan for the tables as they were, e.g. a scan of every plan-less fact instead of the
    child's index."""
    for runner in runners:
        for table in runner.projection.tables:
            async with runner.store.transaction() as tx:
                await tx.execute(f"ANALYZE {table}")  # the projection's own table names
