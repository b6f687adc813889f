"""Read stores for projections and queries: one port, SQLite and PostgreSQL."""

from hub.store.base import Dialect, ReadStore, Row, Tx

__all__ = ["Dialect", "ReadStore", "Row", "Tx"]
