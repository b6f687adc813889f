"""Build read stores for tests: SQLite in a temp dir, PostgreSQL in a fresh schema."""

from __future__ import annotations

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
