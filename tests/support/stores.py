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


def backend_options(request: pytest.FixtureRequest, log_kind: str, store_kind: str) -> dict:
    """Settings for a hub on `log_kind` ("sqlite" or "kafka", on the test broker) and
    `store_kind` ("sqlite" or "postgres", in this test's schema)."""
    options: dict = {"log_backend": log_kind, "store_backend": store_kind}
    if log_kind == "kafka":
        options |= {
            "kafka_bootstrap_servers": request.getfixturevalue("kafka_bootstrap"),
            "kafka_topic_prefix": request.getfixturevalue("topic_prefix"),
            "kafka_enable_idempotence": False,  # the test broker has no idempotent producer
        }
    if store_kind == "postgres":
        options |= {
            "postgres_dsn": request.getfixturevalue("postgres_dsn"),
            "postgres_schema": request.getfixturevalue("postgres_schema"),
        }
    return options
