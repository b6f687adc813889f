"""Build read stores for tests: SQLite in a temp dir, PostgreSQL in a fresh schema."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.store import ReadStore


async def make_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> ReadStore:
    if kind == "sqlite":
        from hub.store.sqlite import SqliteReadStore

        return SqliteReadStore(tmp_path / "store.db")
    from hub.store.postgres import PostgresReadStore

    dsn = request.getfixturevalue("postgres_dsn")
    schema = request.getfixturevalue("postgres_schema")
    return PostgresReadStore(dsn, schema=schema)


@contextlib.asynccontextmanager
async def started_store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ReadStore]:
    """A started read store of `kind` ("sqlite" or "postgres"), closed afterwards."""
    s = await make_store(kind, request, tmp_path)
    await s.start()
    try:
        yield s
    finally:
        await s.close()
