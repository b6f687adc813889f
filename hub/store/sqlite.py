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
    dialect: Dialect = "sqlite"

    def __init__(self, store: SqliteReadStore, conn: sqlite3.Connection) -> None:
        self._store = store
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._store._on_writer(lambda: self._conn.execute(sql, params))

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._store._on_writer(lambda: self._conn.executemany(sql, rows))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        result: list[Row] = await self._store._on_writer(
            lambda: self._conn.execute(sql, params).fetchall()
        )
        return result

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        result: Row | None = await self._store._on_writer(
            lambda: self._conn.execute(sql, params).fetchone()
        )
        return result

    async def lock_offsets(self, projection: str, log: str, parts: Sequence[int]) -> dict[int, int]:
        # BEGIN IMMEDIATE already holds the database's write lock.
        rows = await self.fetchall(
            "SELECT part, applied_offset FROM projection_offset WHERE projection = ? AND log = ?",
            (projection, log),
        )
        found: dict[int, int] = dict(rows)
        return {p: found.get(p, -1) for p in parts}

    async def lock(self, names: Sequence[str]) -> None:
        """Nothing to take: BEGIN IMMEDIATE already holds the database's one write lock."""

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
        await self._on_writer(lambda: self._w().execute("PRAGMA secure_delete=ON"))
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
        await self._on_writer(lambda: self._w().execute("PRAGMA wal_checkpoint(TRUNCATE)"))

    async def ping(self) -> None:
        await self._on(self._rpool, lambda: self._r().execute("SELECT 1").fetchone())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteTx]:
        async with self._tx_lock:
            conn = self._w()
            await self._on_writer(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                yield _SqliteTx(self, conn)
            except BaseException:
                await self._on_writer(lambda: conn.execute("ROLLBACK"))
                raise
            else:
                await self._on_writer(lambda: conn.execute("COMMIT"))

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
