"""The embedded read store: one SQLite file in WAL mode.

A writer connection on one worker thread serves transactions (SQLite has one writer);
queries outside a transaction run on the event loop's thread on a read-only connection
that never waits for a lock (a hand-off to a thread costs several times a short indexed
read), and a query that would have to wait goes to a reader connection on its own
thread, as every query did before. WAL lets both read beside writes.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from hub.errors import TransientError
from hub.sqlite_support import connect, connect_inline, inline_read, is_transient
from hub.store.base import Dialect, Row
from hub.store.schema import migrate_sqlite

T = TypeVar("T")


class _SqliteTx:
    """One transaction on the writer connection. Statements whose result is not asked
    for (`execute`, `executemany`, and the `BEGIN IMMEDIATE` itself) are queued and run,
    in order, on the writer thread together with the next statement that returns rows,
    `lock`, or the `COMMIT`: one hop to that thread instead of one each. Nothing outside
    sees the difference (the transaction's writes are only visible once committed, and
    it reads its own writes in order); an error in a queued statement is raised by the
    call that runs it, inside the transaction, which is then rolled back."""

    dialect: Dialect = "sqlite"

    def __init__(self, store: SqliteReadStore, conn: sqlite3.Connection) -> None:
        self._store = store
        self._conn = conn
        self._queued: list[Callable[[], object]] = [lambda: conn.execute("BEGIN IMMEDIATE")]

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run what is queued, then `fn`, in one hop to the writer thread."""
        queued, self._queued = self._queued, []
        if not queued:
            return await self._store._on_writer(fn)

        def steps() -> T:
            for step in queued:
                step()
            return fn()

        return await self._store._on_writer(steps)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        kept = params if isinstance(params, tuple) else list(params)  # as it is now
        self._queued.append(lambda: self._conn.execute(sql, kept))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            kept = list(rows)  # as they are now, should the caller reuse its list
            self._queued.append(lambda: self._conn.executemany(sql, kept))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        result: list[Row] = await self._run(lambda: self._conn.execute(sql, params).fetchall())
        return result

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        result: Row | None = await self._run(lambda: self._conn.execute(sql, params).fetchone())
        return result

    async def _commit(self) -> None:
        await self._run(lambda: self._conn.execute("COMMIT").fetchall())

    async def _rollback(self) -> None:
        self._queued = []
        conn = self._conn
        await self._store._on_writer(lambda: conn.in_transaction and conn.execute("ROLLBACK"))

    async def lock_offsets(self, projection: str, log: str, parts: Sequence[int]) -> dict[int, int]:
        # BEGIN IMMEDIATE already holds the database's write lock.
        rows = await self.fetchall(
            "SELECT part, applied_offset FROM projection_offset WHERE projection = ? AND log = ?",
            (projection, log),
        )
        found: dict[int, int] = dict(rows)
        return {p: found.get(p, -1) for p in parts}

    async def lock(self, names: Sequence[str]) -> None:
        """The database's one write lock: BEGIN IMMEDIATE takes it (now, if still queued)."""
        await self._run(lambda: None)

    async def set_offset(self, projection: str, log: str, part: int, offset: int) -> None:
        await self.execute(
            "INSERT INTO projection_offset (projection, log, part, applied_offset)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (projection, log, part)"
            " DO UPDATE SET applied_offset = excluded.applied_offset",
            (projection, log, part, offset),
        )


class SqliteReadStore:
    """`ReadStore` on a SQLite file."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._wpool = ThreadPoolExecutor(1, thread_name_prefix="hub-store-w")
        self._rpool = ThreadPoolExecutor(1, thread_name_prefix="hub-store-r")
        self._tx_lock = asyncio.Lock()
        self._named: dict[str, asyncio.Lock] = {}

    async def _on(self, pool: ThreadPoolExecutor, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn)
        except sqlite3.OperationalError as exc:
            if not is_transient(exc):
                raise
            raise TransientError(f"sqlite store: {exc}") from exc

    async def _on_writer(self, fn: Callable[[], T]) -> T:
        return await self._on(self._wpool, fn)

    def _w(self) -> sqlite3.Connection:
        if self._writer is None:
            raise RuntimeError("SqliteReadStore used before start()")
        return self._writer

    def _r(self) -> sqlite3.Connection:
        if self._reader is None:
            raise RuntimeError("SqliteReadStore used before start()")
        return self._reader

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._on(self._wpool, lambda: connect(self.path, "NORMAL"))
        # erased keys are overwritten with zeros, not left in free pages
        # each statement is stepped to its end here: a PRAGMA answers a row, and a cursor
        # left holding it would keep a statement open on the writer, failing the next
        # COMMIT ("cannot commit transaction - SQL statements in progress")
        await self._on_writer(lambda: self._w().execute("PRAGMA secure_delete=ON").fetchall())
        await migrate_sqlite(self.path)
        self._reader = await self._on(self._rpool, lambda: connect(self.path, "NORMAL"))
        self._inline = connect_inline(self.path)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        if self._writer is not None:
            await loop.run_in_executor(self._wpool, self._writer.close)
        if self._reader is not None:
            await loop.run_in_executor(self._rpool, self._reader.close)
        self._writer = self._reader = None
        self._wpool.shutdown(wait=False)
        self._rpool.shutdown(wait=False)

    async def checkpoint(self) -> None:
        """Fold the WAL into the database and truncate it, so that overwritten pages (an
        erased key) do not linger in the WAL file."""
        await self._on_writer(
            lambda: self._w().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        )

    async def ping(self) -> None:
        await self._on(self._rpool, lambda: self._r().execute("SELECT 1").fetchone())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteTx]:
        async with self._tx_lock:
            tx = _SqliteTx(self, self._w())
            try:
                yield tx
                await tx._commit()
            except BaseException:
                await tx._rollback()
                raise

    @asynccontextmanager
    async def held(self, name: str) -> AsyncIterator[None]:
        # One process writes a SQLite store: a lock per name in this process is enough.
        lock = self._named.setdefault(name, asyncio.Lock())
        async with lock:
            yield

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        rows = inline_read(self._inline, sql, params)
        if rows is not None:
            return rows
        return await self._on(self._rpool, lambda: self._r().execute(sql, params).fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = inline_read(self._inline, sql, params, one=True)
        if rows is not None:
            return rows[0] if rows else None
        result: Row | None = await self._on(
            self._rpool, lambda: self._r().execute(sql, params).fetchone()
        )
        return result

    async def offsets(self, projection: str, log: str) -> dict[int, int]:
        rows = await self.fetchall(
            "SELECT part, applied_offset FROM projection_offset WHERE projection = ? AND log = ?",
            (projection, log),
        )
        return {int(p): int(o) for p, o in rows}
