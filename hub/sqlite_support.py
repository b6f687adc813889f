"""What the SQLite log and the SQLite read store share: connecting and classifying errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

_TRANSIENT_MARKERS = ("locked", "busy", "disk i/o", "unable to open")


def is_transient(exc: sqlite3.OperationalError) -> bool:
    """Locks and I/O hiccups are worth a retry; a missing table or bad SQL is not."""
    text = str(exc).lower()
    return any(marker in text for marker in _TRANSIENT_MARKERS)


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """A WAL-mode connection in autocommit (we issue BEGIN/COMMIT ourselves)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn
