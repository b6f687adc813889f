"""`IngestClaims` in the read store's database (SQLite or PostgreSQL): the
`ingest_claim` table, whose primary key is the idempotency key. Two takers of one key
meet at that key: the second INSERT waits for the first to commit, then finds it held."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime

from hub.ingest.claims import LEASE, Claim
from hub.store.base import ReadStore, Row

_CHUNK = 500
_SELECT = (
    "SELECT dedupe_key, event_id, child_id, claimed_at, appended_at FROM ingest_claim"
    " WHERE dedupe_key IN ({marks})"
)
"""`marks` is only ever a run of `?` placeholders."""
_CLAIM = (
    "INSERT INTO ingest_claim (dedupe_key, event_id, child_id, claimed_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (dedupe_key) DO UPDATE SET event_id = excluded.event_id,"
    " child_id = excluded.child_id, claimed_at = excluded.claimed_at"
    " WHERE ingest_claim.appended_at IS NULL AND ingest_claim.claimed_at < ?"
)
_EPOCH = datetime.min.replace(tzinfo=UTC)


@functools.lru_cache(maxsize=1024)  # a batch's claims share one time
def _at(text: object) -> datetime:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:  # claims carried over by the migration: taken before it
        return _EPOCH


def _claim(row: Row) -> Claim:
    key, event_id, child_id, claimed_at, appended_at = row
    return Claim(str(key), str(event_id), str(child_id), _at(claimed_at), appended_at is not None)


def _in_key_order(keys: Sequence[str], event_ids: Sequence[str]) -> list[tuple[str, str]]:
    """(key, event id) pairs sorted by key: every statement that locks several claims
    takes their row locks in one order (as `claim` does), so a taker's claim racing the
    holder's marks or releases waits instead of deadlocking (PostgreSQL)."""
    return sorted(zip(keys, event_ids, strict=True))


class SqlIngestClaims:
    def __init__(self, store: ReadStore) -> None:
        self._store = store

    async def holders(self, keys: Sequence[str]) -> dict[str, Claim]:
        unique = sorted(set(keys))
        out: dict[str, Claim] = {}
        for i in range(0, len(unique), _CHUNK):
            chunk = unique[i : i + _CHUNK]
            sql = _SELECT.format(marks=", ".join("?" for _ in chunk))
            out.update(
                (c.dedupe_key, c) for c in map(_claim, await self._store.fetchall(sql, chunk))
            )
        return out

    async def claim(self, wanted: Sequence[Claim]) -> dict[str, Claim]:
        if not wanted:
            return {}
        stamps: dict[datetime, tuple[str, str]] = {}  # a batch's claims share one time

        def stamp(at: datetime) -> tuple[str, str]:
            if at not in stamps:
                stamps[at] = (at.isoformat(), (at - LEASE).isoformat())
            return stamps[at]

        rows = [
            (w.dedupe_key, w.event_id, w.child_id, *stamp(w.claimed_at))
            for w in sorted(wanted, key=lambda w: w.dedupe_key)  # one lock order for all
        ]
        keys = [r[0] for r in rows]
        out: dict[str, Claim] = {}
        async with self._store.transaction() as tx:
            await tx.executemany(_CLAIM, rows)
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i : i + _CHUNK]
                sql = _SELECT.format(marks=", ".join("?" for _ in chunk))
                out.update((c.dedupe_key, c) for c in map(_claim, await tx.fetchall(sql, chunk)))
        return out

    async def mark_appended(self, keys: Sequence[str], event_ids: Sequence[str]) -> None:
        if keys:
            now = datetime.now(UTC).isoformat()
            async with self._store.transaction() as tx:
                await tx.executemany(
                    "UPDATE ingest_claim SET appended_at = ? WHERE dedupe_key = ? AND event_id = ?",
                    [(now, k, e) for k, e in _in_key_order(keys, event_ids)],
                )

    async def claim_consent_id(self, consent_id: str, child_id: str) -> str:
        async with self._store.transaction() as tx:
            await tx.execute(
                "INSERT INTO consent_claim (child_id, consent_id) VALUES (?, ?)"
                " ON CONFLICT (child_id, consent_id) DO NOTHING",
                (child_id, consent_id),
            )
        return child_id  # consent ids are per child: another child's says nothing here

    async def release(self, keys: Sequence[str], event_ids: Sequence[str]) -> None:
        if keys:
            async with self._store.transaction() as tx:
                await tx.executemany(
                    "DELETE FROM ingest_claim"
                    " WHERE dedupe_key = ? AND event_id = ? AND appended_at IS NULL",
                    _in_key_order(keys, event_ids),
                )
