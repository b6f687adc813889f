"""What the SQLite log and the SQLite read store share: connecting and classifying errors."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

WAL_SWITCH_SECONDS = 30.0

_TRANSIENT_MARKERS = ("locked", "busy", "disk i/o", "unable to open")


def is_transient(exc: sqlite3.OperationalError) -> bool:
    """Locks and I/O hiccups are worth a retry; a missing table or bad SQL is not."""
    text = str(exc).lower()
    return any(marker in text for marker in _TRANSIENT_MARKERS)


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """A WAL-mode connection in autocommit (we issue BEGIN/COMMIT ourselves)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    _switch_to_wal(conn)
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def connect_inline(path: Path) -> sqlite3.Connection:
    """A read-only connection for short reads on the event loop's own thread, where a
    hand-off to a reader thread costs several times the read itself. It never waits for
    a lock (busy timeout 0): a read that would have to wait raises at once, and the
    caller hands it to its reader thread instead (see `inline_read`)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
    conn.execute("PRAGMA query_only=ON")
    return conn


def inline_read(
    conn: sqlite3.Connection | None, sql: str, params: Any, *, one: bool = False
) -> list[Any] | None:
    """The rows of a read run on this thread (`one`: at most the first), or None when it
    must wait for a lock (or there is no inline connection): then run it on the reader
    thread as before."""
    if conn is None:
        return None
    try:
        cursor = conn.execute(sql, params)
        try:
            if one:
                row = cursor.fetchone()
                return [] if row is None else [row]
            return cursor.fetchall()
        finally:
            cursor.close()  # ends the statement, and with it the read's snapshot
    except sqlite3.OperationalError as exc:
        if is_transient(exc):
            return None
        raise


def _switch_to_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode. Switching a new database needs an exclusive lock and
    SQLite answers "database is locked" at once, without its busy handler, when another
    process opening it at the same moment holds a lock; so the switch is retried (with a
    growing pause, for at most `WAL_SWITCH_SECONDS`) until that process lets go."""
    deadline = time.monotonic() + WAL_SWITCH_SECONDS
    pause = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not is_transient(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)  # waiting out another process's lock, not a stand-in for a sync
        pause = min(pause * 2, 0.2)
