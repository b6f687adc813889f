"""The read-store port: SQL transactions for projections and queries, on SQLite or PostgreSQL.

Projections and the query layer write plain SQL with `?` placeholders and DDL that both
dialects accept (`TEXT`, `BIGINT`, `BYTEA`, `ON CONFLICT ... DO UPDATE`); the PostgreSQL
store rewrites placeholders to `$n`. The only thing the port adds to SQL is the offsets
table every projection records in the same transaction as its results. Tables are
created and changed only by the versioned migrations a store applies when it starts
(`hub.store.schema`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol, runtime_checkable

Dialect = Literal["sqlite", "postgres"]
Row = tuple[Any, ...]


@runtime_checkable
class Tx(Protocol):
    """One open transaction: everything done through it commits or rolls back together."""

    dialect: Dialect

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    async def lock_offsets(self, projection: str, log: str, parts: Sequence[int]) -> dict[int, int]:
        """Applied offset per partition (-1 when none), locked until the end of the
        transaction so that two runners of one projection cannot both apply a record."""
        ...

    async def set_offset(self, projection: str, log: str, part: int, offset: int) -> None: ...

    async def lock(self, names: Sequence[str]) -> None:
        """Hold an exclusive lock on each name until the transaction ends, so that writers
        in other processes deciding about the same names wait for this one (taken in
        sorted order, so two writers never wait on each other crosswise)."""
        ...


@runtime_checkable
class ReadStore(Protocol):
    dialect: Dialect

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[Tx]: ...

    def held(self, name: str) -> AbstractAsyncContextManager[None]:
        """Hold an exclusive lock on `name` across processes (a write-side decision that
        spans a check and an append, e.g. a plan step), outside any transaction."""
        ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """A read outside any write transaction (queries)."""
        ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    async def offsets(self, projection: str, log: str) -> dict[int, int]:
        """Applied offset per partition for a projection (absent = nothing applied)."""
        ...
