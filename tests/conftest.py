"""Shared fixtures: real backends for the contract and integration suites.

Under CI=true a backend that cannot be reached fails the test; elsewhere it skips with
the reason. Each test gets fresh topics (Kafka) or a fresh schema (PostgreSQL).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.broker import BrokerUnavailable, kafka_broker

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_DSN = os.environ.get("HUB_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
T = TypeVar("T")
SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples"


def backend_missing(what: str, why: object) -> None:
    """A missing backend fails under CI=true and skips elsewhere."""
    message = f"{what} unavailable: {why}"
    if IN_CI:
        pytest.fail(message + " (CI=true: every backend must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    try:
        with kafka_broker() as (bootstrap, kind):
            print(f"\n[kafka] {kind} broker at {bootstrap}")
            yield bootstrap
    except BrokerUnavailable as exc:
        backend_missing("Kafka broker", exc)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(PG_DSN, timeout=5)
        await conn.close()

    try:  # in a thread: this fixture may be first requested from inside a running loop
        run_sync(probe())
    except Exception as exc:
        backend_missing(f"PostgreSQL at {PG_DSN}", exc)
    yield PG_DSN


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even inside a running loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _pg_exec(dsn: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def postgres_schema(postgres_dsn: str) -> Iterator[str]:
    """A fresh schema for one test, dropped afterwards. (Sync, so that async fixtures
    can request it with getfixturevalue.)"""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    run_sync(_pg_exec(postgres_dsn, f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        run_sync(_pg_exec(postgres_dsn, f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def topic_prefix() -> str:
    """Fresh topic names per test (the test broker keeps every message in memory)."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        if IN_CI:
            pytest.fail(f"samples folder {SAMPLES} is missing (CI=true)", pytrace=False)
        pytest.skip(f"samples folder {SAMPLES} is missing")
    return SAMPLES


_BACKEND_SUITES = {
    "tests/contract/test_event_log.py": "EventLog contract",
    "tests/contract/test_read_store.py": "ReadStore contract",
    "tests/contract/test_projection_runner.py": "projection runner",
    "tests/contract/test_api_keys.py": "API keys",
    "tests/contract/test_team_credentials.py": "team credentials",
    "tests/contract/test_joined_view_rebuild.py": "joined-view rebuild",
    "tests/contract/test_ingest_claims.py": "ingest claims",
    "tests/contract/test_person_index.py": "person index",
    "tests/contract/test_match_queue.py": "match queue",
    "tests/contract/test_key_store.py": "key store",
    "tests/contract/test_audit_trail.py": "audit trail",
    "tests/contract/test_notify_outbox.py": "notify outbox",
}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say which backends each contract suite really ran against (passed tests only)."""
    import re

    seen: dict[str, dict[str, int]] = {}
    for report in terminalreporter.stats.get("passed", []):
        path, _, rest = report.nodeid.partition("::")
        suite = _BACKEND_SUITES.get(path)
        if suite is None:
            continue
        match = re.search(r"\[([^\]]+)\]", rest)
        backend = match.group(1) if match else "default"
        if "-log+" not in backend:
            backend = backend.split("-", 1)[0]
        seen.setdefault(suite, {})
        seen[suite][backend] = seen[suite].get(backend, 0) + 1
    if not seen:
        return
    terminalreporter.write_sep("-", "backends exercised (passed tests per backend)")
    for suite, backends in seen.items():
        parts = ", ".join(f"{b}: {n}" for b, n in sorted(backends.items()))
        terminalreporter.write_line(f"{suite:<22} {parts}")
