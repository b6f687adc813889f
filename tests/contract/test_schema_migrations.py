"""Schema migrations of the read store, on SQLite and PostgreSQL: a fresh store is at the
newest revision; a database made by the hub before migrations existed is upgraded in
place, keeping what it had taken; stores starting at once on one empty database all come
up (each process's start-up migrates under the schema lock)."""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from hub.store import ReadStore
from hub.store.schema import MIGRATIONS, VERSION_TABLE, alembic_head, head_revision
from tests.support.stores import make_store

baseline = importlib.import_module("hub.store.migrations.versions.0001_baseline")


async def _old_hub_database(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The schema and a little data as the hub before migrations left them."""
    rows = [
        "INSERT INTO ingest_dedupe (dedupe_key, event_id, child_id, log)"
        " VALUES ('school|m-1|pupil', 'e-1', 'hc-1', 'hub.events')",
        "INSERT INTO consent_event (event_id, child_id, part, log_offset, consent_id, body)"
        " VALUES ('e-2', 'hc-1', 0, 4, 'c-1', 'x'), ('e-3', 'hc-1', 0, 9, 'c-1', 'y')",
    ]
    if kind == "sqlite":
        conn = sqlite3.connect(tmp_path / "store.db")
        with conn:
            for stmt in (*baseline.STATEMENTS, *rows):
                conn.execute(stmt)
        conn.close()
        return
    import asyncpg

    conn = await asyncpg.connect(
        request.getfixturevalue("postgres_dsn"),
        server_settings={"search_path": request.getfixturevalue("postgres_schema")},
    )
    try:
        for stmt in (*baseline.STATEMENTS, *rows):
            await conn.execute(stmt.replace("'x'", "'x'::bytea").replace("'y'", "'y'::bytea"))
    finally:
        await conn.close()


async def _version(store: ReadStore) -> list[Any]:
    return [r[0] for r in await store.fetchall(f"SELECT version_num FROM {VERSION_TABLE}")]  # noqa: S608


def test_the_revision_files_are_one_chain_named_by_their_ids() -> None:
    """The cheap head (from file names) is alembic's head, and each file's name starts
    with the revision it holds, following the one before."""
    files = sorted((MIGRATIONS / "versions").glob("[0-9]*_*.py"))
    modules = [importlib.import_module(f"hub.store.migrations.versions.{f.stem}") for f in files]
    assert [m.revision for m in modules] == [f.name.split("_", 1)[0] for f in files]
    assert [m.down_revision for m in modules] == [None, *(m.revision for m in modules[:-1])]
    assert head_revision() == alembic_head() == modules[-1].revision


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_new_store_is_at_the_newest_revision(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = await make_store(kind, request, tmp_path)
    await store.start()
    try:
        assert await _version(store) == [head_revision()]
        assert await store.fetchall("SELECT * FROM ingest_claim") == []
    finally:
        await store.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_database_from_before_migrations_is_upgraded_keeping_what_it_took(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    await _old_hub_database(kind, request, tmp_path)
    store = await make_store(kind, request, tmp_path)
    await store.start()
    try:
        assert await _version(store) == [head_revision()]
        claims = await store.fetchall(
            "SELECT dedupe_key, event_id, child_id, appended_at IS NOT NULL FROM ingest_claim"
        )
        assert [tuple(bool(v) if i == 3 else v for i, v in enumerate(r)) for r in claims] == [
            ("school|m-1|pupil", "e-1", "hc-1", True)
        ]
        assert await store.fetchall("SELECT consent_id, child_id FROM consent_claim") == [
            ("c-1", "hc-1")
        ]
        # the old rows are still there, and a second start finds nothing to do
        assert len(await store.fetchall("SELECT event_id FROM consent_event")) == 2
    finally:
        await store.close()
    again = await make_store(kind, request, tmp_path)
    await again.start()
    try:
        assert await _version(again) == [head_revision()]
        assert len(await again.fetchall("SELECT dedupe_key FROM ingest_claim")) == 1
    finally:
        await again.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_stores_starting_at_once_on_an_empty_database_all_come_up(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    stores = [await make_store(kind, request, tmp_path) for _ in range(4)]
    results = await asyncio.gather(*(s.start() for s in stores), return_exceptions=True)
    try:
        assert [r for r in results if isinstance(r, BaseException)] == []
        for s in stores:
            assert await _version(s) == [head_revision()]
    finally:
        for s in stores:
            await s.close()


async def test_the_pages_of_a_trail_and_of_the_match_queue_are_read_by_index(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The paging queries' plans use the paging indexes (revision 0006), not a sort of
    the child's whole trail or the whole queue."""
    store = await make_store("sqlite", request, tmp_path)
    await store.start()
    try:
        trail = await store.fetchall(
            "EXPLAIN QUERY PLAN SELECT line, part, log_offset FROM audit_entry"
            " WHERE child_id = ? AND (part > ? OR (part = ? AND log_offset > ?))"
            " ORDER BY part, log_offset LIMIT ?",
            ["hc-1", 0, 0, 5, 51],
        )
        queue = await store.fetchall(
            "EXPLAIN QUERY PLAN SELECT item_id FROM match_queue_item"
            " WHERE (created_at > ? OR (created_at = ? AND item_id > ?))"
            " ORDER BY created_at, item_id LIMIT ?",
            ["2024-01-01", "2024-01-01", "mq-1", 51],
        )
    finally:
        await store.close()
    trail_plan = " ".join(str(r[-1]) for r in trail)
    queue_plan = " ".join(str(r[-1]) for r in queue)
    assert "audit_entry_child_log" in trail_plan and "TEMP B-TREE" not in trail_plan, trail_plan
    assert "TEMP B-TREE" not in queue_plan, queue_plan
