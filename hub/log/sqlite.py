"""The embedded `EventLog`: append-only SQLite tables, one per hub log, in one WAL file.

Writes go through one connection on one worker thread (SQLite has one writer anyway);
reads run on the event loop's thread on a read-only connection that never waits for a
lock (a hand-off to a thread costs several times a short read), and one that would wait
goes to a reader connection on another thread, so a subscriber never waits behind an
append. An append wakes only the subscribers of the log it appended to (an audited read
does not send every projection to read every partition of `hub.events`). Appends are
group-committed: those made while one is being written share the next transaction (one
fsync), whole and in the order they were made. Positions are handed out from `log_head`
inside the transaction, so several processes (the server and a CLI ingest) can append to
the same file.
Triggers refuse UPDATE and DELETE: the log is immutable.

A record's row is keyed by its position packed into SQLite's rowid (`pos`, the partition
in the bits above `POS_BITS` and the offset below), so each partition is one run of the
table's own B-tree, read in order without an index. Files made before that key their
rows by `(partition, offset)` in a WITHOUT ROWID table, which SQLite stores badly for
rows of a kilobyte or more (a sealed fact, an audit record: twice the CPU per append);
they are read and appended to as they are, never rewritten.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from hub.errors import TransientError
from hub.log.base import (
    Headers,
    LogName,
    NewRecord,
    Position,
    StartOffsets,
    StoredRecord,
    partition_for,
)
from hub.sqlite_support import connect, connect_inline, inline_read, is_transient

T = TypeVar("T")


def _table(log: LogName) -> str:
    return "log_" + log.value.replace(".", "_")


POS_BITS = 40
"""A row's `pos` is `partition << POS_BITS | offset` (2**40 records per partition)."""


def _encode_headers(headers: Headers) -> bytes | None:
    if not headers:
        return None
    return orjson.dumps([[k, v.hex()] for k, v in headers])


def _decode_headers(raw: bytes | None) -> Headers:
    if not raw:
        return ()
    return tuple((k, bytes.fromhex(v)) for k, v in orjson.loads(raw))


@dataclass
class _PendingAppend:
    """One caller's records, waiting for the group that writes them."""

    log: LogName
    records: list[NewRecord]
    done: asyncio.Future[list[Position]]


class SqliteEventLog:
    """`EventLog` on a SQLite file (the embedded default)."""

    reads_are_round_trips = False
    """A `read` is a local query, usually on the caller's own thread."""

    def __init__(
        self,
        path: Path | str,
        *,
        partitions: int = 4,
        synchronous: str = "FULL",
        poll_interval: float = 0.2,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous must be FULL, NORMAL or EXTRA")
        self.path = Path(path)
        self._partitions = partitions
        self._synchronous = synchronous
        self._poll_interval = poll_interval
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._wpool = ThreadPoolExecutor(1, thread_name_prefix="hub-log-w")
        self._rpool = ThreadPoolExecutor(1, thread_name_prefix="hub-log-r")
        self._waiters: dict[LogName, set[asyncio.Event]] = {name: set() for name in LogName}
        self._queue: list[_PendingAppend] = []
        self._appender: asyncio.Task[None] | None = None
        self._keyed_by_pos: dict[LogName, bool] = {}
        """Per log: whether its table keys rows by `pos` (else by partition and offset)."""

    # -- plumbing -------------------------------------------------------------------
    async def _on(self, pool: ThreadPoolExecutor, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, fn, *args)
        except sqlite3.OperationalError as exc:
            if not is_transient(exc):
                raise  # locked, disk I/O: worth a retry
            raise TransientError(f"sqlite log: {exc}") from exc

    def _require(self, conn: sqlite3.Connection | None) -> sqlite3.Connection:
        if conn is None:
            raise RuntimeError("SqliteEventLog used before start()")
        return conn

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._on(self._wpool, connect, self.path, self._synchronous)
        await self._on(self._wpool, self._create)
        self._reader = await self._on(self._rpool, connect, self.path, self._synchronous)
        self._inline = connect_inline(self.path)

    def _create(self) -> None:
        conn = self._require(self._writer)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS log_meta ("
                " log TEXT PRIMARY KEY, partitions INTEGER NOT NULL)"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS log_head ("
                " log TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,"
                " PRIMARY KEY (log, partition)) WITHOUT ROWID"
            )
            for log in LogName:
                table = _table(log)
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} ("
                    " pos INTEGER PRIMARY KEY,"
                    " partition INTEGER NOT NULL, offset INTEGER NOT NULL,"
                    " key TEXT NOT NULL, value BLOB NOT NULL, headers BLOB, ts TEXT NOT NULL)"
                )
                ddl = conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
                ).fetchone()
                self._keyed_by_pos[log] = "WITHOUT ROWID" not in str(ddl[0]).upper()
                if self._keyed_by_pos[log]:  # a writer that does not know `pos` is refused
                    conn.execute(
                        f"CREATE TRIGGER IF NOT EXISTS {table}_pos BEFORE INSERT ON {table}"
                        f" WHEN NEW.pos IS NOT (NEW.partition << {POS_BITS} | NEW.offset) BEGIN"
                        f" SELECT RAISE(ABORT, '{log.value}: pos must be partition << {POS_BITS}"
                        " | offset'); END"
                    )
                for op in ("UPDATE", "DELETE"):
                    conn.execute(
                        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} "
                        f"ON {table} BEGIN SELECT RAISE(ABORT, '{log.value} is append-only'); END"
                    )
                row = conn.execute(
                    "SELECT partitions FROM log_meta WHERE log = ?", (log.value,)
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO log_meta (log, partitions) VALUES (?, ?)",
                        (log.value, self._partitions),
                    )
                    conn.executemany(
                        "INSERT INTO log_head (log, partition, next_offset) VALUES (?, ?, 0)",
                        [(log.value, p) for p in range(self._partitions)],
                    )
                elif row[0] != self._partitions:
                    raise ValueError(
                        f"{self.path} holds {log.value} with {row[0]} partitions, but "
                        f"{self._partitions} were configured; repartitioning would break "
                        "per-child order"
                    )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        for conn, pool in ((self._writer, self._wpool), (self._reader, self._rpool)):
            if conn is not None:
                await asyncio.get_running_loop().run_in_executor(pool, conn.close)
        self._writer = self._reader = None
        self._wpool.shutdown(wait=False)
        self._rpool.shutdown(wait=False)

    async def ping(self) -> None:
        reader = self._require(self._reader)
        await self._on(self._rpool, lambda: reader.execute("SELECT 1").fetchall())

    def partitions(self, log: LogName) -> int:
        return self._partitions

    # -- append ---------------------------------------------------------------------
    async def append(self, log: LogName, records: Sequence[NewRecord]) -> list[Position]:
        """Appends are group-committed: appends made while one is being written (to any
        log) are written together after it, in one transaction (one fsync), in the order
        they were made; each caller gets its own positions once they are committed. A
        failed write fails every append of its group."""
        if not records:
            return []
        pending = _PendingAppend(log, list(records), asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if self._appender is None:
            # a task of its own: a caller cancelled while its group is being written
            # does not cancel the write under the other callers of the group
            self._appender = asyncio.create_task(self._drain(), name="sqlite-log-appender")
        return await pending.done

    async def _drain(self) -> None:
        group: list[_PendingAppend] = []
        try:
            while self._queue:
                group = [p for p in self._queue if not p.done.done()]
                self._queue.clear()
                if not group:
                    continue
                try:
                    written = await self._on(
                        self._wpool, self._append_all, [(p.log, p.records) for p in group]
                    )
                except Exception as exc:
                    for p in group:
                        if not p.done.done():
                            p.done.set_exception(exc)
                else:
                    for p, positions in zip(group, written, strict=True):
                        if not p.done.done():
                            p.done.set_result(positions)
                    for name in dict.fromkeys(p.log for p in group):
                        for waiter in list(self._waiters[name]):  # only this log's subscribers
                            waiter.set()
                group = []
        except BaseException:  # cancelled (the loop is closing): nobody is left waiting
            for p in (*group, *self._queue):
                if not p.done.done():
                    p.done.cancel()
            self._queue.clear()
            raise
        finally:
            self._appender = None

    def _append_all(
        self, appends: Sequence[tuple[LogName, Sequence[NewRecord]]]
    ) -> list[list[Position]]:
        conn = self._require(self._writer)
        now = datetime.now(UTC).isoformat()
        conn.execute("BEGIN IMMEDIATE")
        try:
            out = [self._append(conn, log, records, now) for log, records in appends]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return out

    def _append(
        self, conn: sqlite3.Connection, log: LogName, records: Sequence[NewRecord], now: str
    ) -> list[Position]:
        n = self._partitions
        heads = dict(
            conn.execute(
                "SELECT partition, next_offset FROM log_head WHERE log = ?", (log.value,)
            ).fetchall()
        )
        positions: list[Position] = []
        rows: list[tuple[int, int, str, bytes, bytes | None, str]] = []
        for rec in records:
            part = partition_for(rec.key, n)
            off = heads[part]
            heads[part] = off + 1
            positions.append(Position(part, off))
            rows.append((part, off, rec.key, rec.value, _encode_headers(rec.headers), now))
        if self._keyed_by_pos[log]:
            conn.executemany(
                f"INSERT INTO {_table(log)} (pos, partition, offset, key, value, headers, ts)"  # noqa: S608
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(part << POS_BITS | off, part, off, *rest) for part, off, *rest in rows],
            )
        else:
            conn.executemany(
                f"INSERT INTO {_table(log)} (partition, offset, key, value, headers, ts)"  # noqa: S608
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
        conn.executemany(
            "UPDATE log_head SET next_offset = ? WHERE log = ? AND partition = ?",
            [(off, log.value, part) for part, off in heads.items()],
        )
        return positions

    # -- read -----------------------------------------------------------------------
    async def read(
        self, log: LogName, partition: int, from_offset: int, limit: int = 1000
    ) -> list[StoredRecord]:
        args: tuple[int, ...]
        if self._keyed_by_pos[log]:
            sql = (
                f"SELECT offset, key, value, headers, ts FROM {_table(log)}"  # noqa: S608
                " WHERE pos >= ? AND pos < ? ORDER BY pos LIMIT ?"
            )
            base = partition << POS_BITS
            args = (base + max(from_offset, 0), base + (1 << POS_BITS), limit)
        else:
            sql = (
                f"SELECT offset, key, value, headers, ts FROM {_table(log)}"  # noqa: S608
                " WHERE partition = ? AND offset >= ? ORDER BY offset LIMIT ?"
            )
            args = (partition, from_offset, limit)
        rows = inline_read(self._inline, sql, args)
        if rows is None:  # it would wait for a lock: on the reader thread
            conn = self._require(self._reader)
            rows = await self._on(self._rpool, lambda: conn.execute(sql, args).fetchall())
        return [
            StoredRecord(
                log=log,
                partition=partition,
                offset=off,
                key=key,
                value=value,
                headers=_decode_headers(headers),
                timestamp=datetime.fromisoformat(ts),
            )
            for off, key, value, headers, ts in rows
        ]

    async def end_offsets(self, log: LogName) -> dict[int, int]:
        def q() -> dict[int, int]:
            conn = self._require(self._reader)
            return dict(
                conn.execute(
                    "SELECT partition, next_offset FROM log_head WHERE log = ?", (log.value,)
                ).fetchall()
            )

        result: dict[int, int] = await self._on(self._rpool, q)
        return result

    # -- subscribe ------------------------------------------------------------------
    def subscribe(
        self,
        log: LogName,
        *,
        group: str,
        start_offsets: StartOffsets,
        max_batch: int = 500,
    ) -> _SqliteSubscription:
        return _SqliteSubscription(self, log, start_offsets, max_batch)


class _SqliteSubscription:
    def __init__(
        self, owner: SqliteEventLog, log: LogName, start_offsets: StartOffsets, max_batch: int
    ) -> None:
        self._owner = owner
        self._log = log
        self._start_offsets = start_offsets
        self._max_batch = max_batch
        self._closed = False
        self._wake = asyncio.Event()

    async def batches(self) -> AsyncIterator[list[StoredRecord]]:
        owner = self._owner
        parts = frozenset(range(owner.partitions(self._log)))
        stored = await self._start_offsets(parts)
        next_off = {p: stored.get(p, 0) for p in parts}
        owner._waiters[self._log].add(self._wake)
        try:
            while not self._closed:
                self._wake.clear()
                got_any = False
                for p in sorted(parts):
                    batch = await owner.read(self._log, p, next_off[p], self._max_batch)
                    if batch:
                        got_any = True
                        next_off[p] = batch[-1].offset + 1
                        yield batch
                        if self._closed:
                            return
                if not got_any:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a
                    # cancellation that lands as the wait ends (an append woke it), and
                    # the subscriber then polls on, cancelled, and never stops
                    try:
                        async with asyncio.timeout(owner._poll_interval):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
        finally:
            owner._waiters[self._log].discard(self._wake)

    async def acknowledge(self, positions: dict[int, int]) -> None:
        """Nothing to do: the read store holds the applied offsets."""

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
