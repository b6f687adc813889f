"""The scale-out read store: PostgreSQL through an asyncpg pool.

A connection going back to the pool is not sent asyncpg's reset query (advisory locks,
cursors, listeners, session settings) after every query, which would double the round
trips of a read: an open transaction is still rolled back (asyncpg does that first), and
the full reset is run on a connection `held` took a session lock on and could not be seen
to release. Nothing else here changes session state (no LISTEN, no SET outside a
transaction, no cursor outside one).

SQL is written once with `?` placeholders; this store rewrites them to `$n` (cached).
Every connection's `search_path` is the configured schema.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from hub.errors import TransientError
from hub.store.base import Dialect, Row
from hub.store.schema import migrate_postgres

_PLACEHOLDER = re.compile(r"\?")
_TRANSIENT = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    ConnectionError,
    OSError,
)


@functools.lru_cache(maxsize=1024)
def to_postgres(sql: str) -> str:
    """Rewrite `?` placeholders as `$1`, `$2`, ... (our SQL has no `?` inside literals)."""
    counter = iter(range(1, 10_000))
    return _PLACEHOLDER.sub(lambda _m: f"${next(counter)}", sql)


class _PgTx:
    dialect: Dialect = "postgres"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._conn.execute(to_postgres(sql), *params)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self._conn.executemany(to_postgres(sql), rows)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [tuple(r) for r in await self._conn.fetch(to_postgres(sql), *params)]

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row = await self._conn.fetchrow(to_postgres(sql), *params)
        return None if row is None else tuple(row)

    async def lock_offsets(self, projection: str, log: str, parts: Sequence[int]) -> dict[int, int]:
        await self._conn.executemany(
            "INSERT INTO projection_offset (projection, log, part, applied_offset)"
            " VALUES ($1, $2, $3, -1) ON CONFLICT DO NOTHING",
            [(projection, log, p) for p in parts],
        )
        rows = await self._conn.fetch(
            "SELECT part, applied_offset FROM projection_offset"
            " WHERE projection = $1 AND log = $2 AND part = ANY($3::int[]) FOR UPDATE",
            projection,
            log,
            list(parts),
        )
        found = {int(r[0]): int(r[1]) for r in rows}
        return {p: found.get(p, -1) for p in parts}

    async def lock(self, names: Sequence[str]) -> None:
        for name in sorted(set(names)):
            await self._conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", name)

    async def set_offset(self, projection: str, log: str, part: int, offset: int) -> None:
        await self._conn.execute(
            "INSERT INTO projection_offset (projection, log, part, applied_offset)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (projection, log, part)"
            " DO UPDATE SET applied_offset = excluded.applied_offset",
            projection,
            log,
            part,
            offset,
        )


class PostgresReadStore:
    """`ReadStore` on PostgreSQL."""

    dialect: Dialect = "postgres"

    def __init__(
        self, dsn: str, *, schema: str = "public", min_size: int = 1, max_size: int = 10
    ) -> None:
        self._dsn = dsn
        self.schema = schema
        self._min = min_size
        self._max = max_size
        self._pool: asyncpg.Pool | None = None
        self._dirty: set[int] = set()
        """Backend pids of pooled connections that may hold a session lock."""

    def _p(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresReadStore used before start()")
        return self._pool

    async def start(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min,
                max_size=self._max,
                server_settings={"search_path": self.schema},
                timeout=10,
                reset=self._reset,
            )
        except _TRANSIENT as exc:
            raise TransientError(f"postgres store: cannot connect: {exc}") from exc
        await migrate_postgres(self._dsn, self.schema)

    async def _reset(self, conn: asyncpg.Connection) -> None:
        """What a released connection needs beyond asyncpg's rollback of an open
        transaction: the full reset only where `held` may have left a session lock."""
        pid = conn.get_server_pid()
        if pid in self._dirty:
            self._dirty.discard(pid)
            await conn.execute(conn.get_reset_query())

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def ping(self) -> None:
        try:
            await self._p().fetchval("SELECT 1")
        except _TRANSIENT as exc:
            raise TransientError(f"postgres store: {exc}") from exc

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PgTx]:
        try:
            async with self._p().acquire() as conn, conn.transaction():
                yield _PgTx(conn)
        except _TRANSIENT as exc:
            raise TransientError(f"postgres store: {exc}") from exc

    @asynccontextmanager
    async def held(self, name: str) -> AsyncIterator[None]:
        """A session advisory lock on its own connection, for as long as the block runs."""
        try:
            async with self._p().acquire() as conn:
                pid = conn.get_server_pid()
                self._dirty.add(pid)  # reset in full on release unless seen unlocked
                await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", name)
                try:
                    yield
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", name)
                    self._dirty.discard(pid)
        except _TRANSIENT as exc:
            raise TransientError(f"postgres store: {exc}") from exc

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [tuple(r) for r in await self._p().fetch(to_postgres(sql), *params)]

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row = await self._p().fetchrow(to_postgres(sql), *params)
        return None if row is None else tuple(row)

    async def offsets(self, projection: str, log: str) -> dict[int, int]:
        rows = await self.fetchall(
            "SELECT part, applied_offset FROM projection_offset"
            " WHERE projection = ? AND log = ? AND applied_offset >= 0",
            (projection, log),
        )
        return {int(p): int(o) for p, o in rows}
