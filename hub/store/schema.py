"""The read store's schema: versioned alembic migrations, applied under a lock.

Every table the hub keeps in its read store (projections, the write side's claims, keys,
the person index, the audit heads) is created and changed only by the revisions in
`hub/store/migrations/versions/`. `migrate()` brings a store to the newest revision; any
number of processes may call it at once (every `hub` process does at start-up, and
`hub migrate` does it alone): on PostgreSQL the whole upgrade runs in one transaction
under an advisory lock, on SQLite under an exclusive lock on a file beside the database.
The version is kept in `hub_schema_version`. A start on a current schema reads that
one row with the plain driver; alembic is imported only when there is something to do.
"""

from __future__ import annotations

import asyncio
import fcntl
import sqlite3
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = structlog.get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "hub_schema_version"
SCHEMA_LOCK = 7262011
"""The advisory lock (PostgreSQL) every migration runs under."""


@dataclass(frozen=True)
class MigrationReport:
    before: str | None
    """The revision the store was at (None: no version recorded, empty or pre-migrations)."""
    applied: tuple[str, ...]
    head: str


def head_revision() -> str:
    """The newest revision, from the file names (`NNNN_what.py`, NNNN its revision id; a
    test holds them to alembic's own view), so that a start on a current schema need not
    import alembic at all."""
    ids = sorted(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))
    if not ids:  # the package ships its revisions; none is a broken install
        raise RuntimeError(f"no schema revisions found in {MIGRATIONS}")
    return ids[-1]


def alembic_head() -> str | None:
    """The head as alembic sees it (the revisions' `down_revision` chain)."""
    head: str | None = _script().get_current_head()
    return head


def _script() -> Any:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def _upgrade(conn: Connection) -> MigrationReport:
    """Bring the schema on `conn` to the head revision (inside the caller's transaction)."""
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.runtime.migration import MigrationContext

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = _script()
    before = MigrationContext.configure(
        conn, opts={"version_table": VERSION_TABLE}
    ).get_current_revision()
    applied: list[str] = []

    def upgrade(rev: Any, _context: Any) -> Any:
        return script._upgrade_revs("head", rev)

    def on_apply(
        ctx: MigrationContext, step: Any, heads: Collection[Any], run_args: Mapping[str, Any]
    ) -> None:
        applied.append(str(step.up_revision_id))

    with EnvironmentContext(config, script, fn=upgrade) as env:
        env.configure(
            connection=conn,
            version_table=VERSION_TABLE,
            transactional_ddl=True,
            on_version_apply=on_apply,
        )
        with env.begin_transaction():
            env.run_migrations()
    return MigrationReport(before, tuple(applied), head_revision())


def _logged(report: MigrationReport, backend: str) -> MigrationReport:
    if report.applied:  # creating a new store is routine; upgrading one is news
        say = log.info if report.before is not None else log.debug
        say("schema.migrated", backend=backend, before=report.before, applied=report.applied)
    return report


async def migrate_sqlite(path: Path) -> MigrationReport:
    """Migrate the SQLite database at `path`, holding `<path>.migrate.lock` meanwhile."""
    return await asyncio.to_thread(_migrate_sqlite_locked, path)


def _sqlite_version(path: Path) -> str | None:
    """The recorded revision, read with the standard library (None: none recorded)."""
    if not path.exists():
        return None
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()  # noqa: S608 - a constant
    except sqlite3.OperationalError:  # no version table yet
        return None
    finally:
        conn.close()
    return None if row is None else str(row[0])


def _migrate_sqlite_locked(path: Path) -> MigrationReport:
    from sqlalchemy import create_engine

    head = head_revision()
    if _sqlite_version(path) == head:  # the usual start: nothing to do, no alembic import
        return MigrationReport(head, (), head)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".migrate.lock").open("a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # released when the file closes
        engine = create_engine(f"sqlite:///{path}")
        try:
            with engine.begin() as conn:
                return _logged(_upgrade(conn), "sqlite")
        finally:
            engine.dispose()


def postgres_url(dsn: str) -> str:
    """The DSN as SQLAlchemy names the asyncpg driver (`postgresql+asyncpg://...`)."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme not in ("postgres", "postgresql", "postgresql+asyncpg"):
        raise ValueError("HUB_POSTGRES_DSN must be a postgresql:// URL")
    return "postgresql+asyncpg://" + rest


async def _postgres_version(dsn: str, schema: str) -> str | None:
    import asyncpg

    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema}, timeout=10)
    try:
        value = await conn.fetchval(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 - a constant
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return None
    finally:
        await conn.close()
    return None if value is None else str(value)


async def migrate_postgres(dsn: str, schema: str) -> MigrationReport:
    """Migrate `schema` (created when missing), in one transaction under the schema lock:
    processes starting together wait for the first, then find nothing to do."""
    head = head_revision()
    if await _postgres_version(dsn, schema) == head:  # the usual start: nothing to do
        return MigrationReport(head, (), head)
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    engine = create_async_engine(
        postgres_url(dsn),
        poolclass=NullPool,
        connect_args={"server_settings": {"search_path": schema}},
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK})
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            upgrade: Callable[[Connection], MigrationReport] = _upgrade
            report = await conn.run_sync(upgrade)
        return _logged(report, "postgres")
    finally:
        await engine.dispose()
