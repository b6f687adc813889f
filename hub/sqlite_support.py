"""What the SQLite log and the SQLite read store share: connecting and classifying errors."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

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
