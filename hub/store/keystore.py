"""The SQL `KeyStore`: children's data keys, wrapped by the master key, in the read store's
database (SQLite or PostgreSQL). Deleting a row is the erasure; an `erased_at` marker
stays so that an erased child never silently gets a fresh key."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from hub.consent.crypto import KeyErasedError, MasterKey, new_data_key
from hub.store.base import ReadStore

_SELECT_IN = "SELECT child_id, wrapped, erased_at FROM data_key WHERE child_id IN ({marks})"
"""`marks` is only ever a run of `?` placeholders."""


class SqlKeyStore:
    def __init__(
        self,
        store: ReadStore,
        master: MasterKey,
        *,
        cache_size: int = 10_000,
        on_delete: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._master = master
        self._cache: dict[str, bytes] = {}
        self._cache_size = cache_size
        self._on_delete = on_delete
        """Told each key id this process deletes (to drop what was opened with it)."""

    def forget(self, child_id: str) -> None:
        """Drop a cached key (after an erasure seen from another process)."""
        self._cache.pop(child_id, None)

    def forget_child(self, child_id: str) -> None:
        """Drop every cached data key of a child (`<child>/<category>`): after its erasure
        tombstone is applied here, this process reads the keys' erasure from the store."""
        prefix = f"{child_id}/"
        for kid in [k for k in self._cache if k == child_id or k.startswith(prefix)]:
            del self._cache[kid]

    def _remember(self, child_id: str, key: bytes) -> None:
        if len(self._cache) >= self._cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[child_id] = key

    async def get(self, child_id: str) -> bytes | None:
        cached = self._cache.get(child_id)
        if cached is not None:
            return cached
        row = await self._store.fetchone(
            "SELECT wrapped FROM data_key WHERE child_id = ? AND erased_at IS NULL", (child_id,)
        )
        if row is None or row[0] is None:
            return None
        key = self._master.unwrap(bytes(row[0]), child_id)
        self._remember(child_id, key)
        return key

    async def create(self, child_id: str) -> bytes:
        existing = await self.get(child_id)
        if existing is not None:
            return existing
        key = new_data_key()
        async with self._store.transaction() as tx:
            await tx.execute(
                "INSERT INTO data_key (child_id, wrapped, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (child_id) DO NOTHING",
                (child_id, self._master.wrap(key, child_id), datetime.now(UTC).isoformat()),
            )
            row = await tx.fetchone(
                "SELECT wrapped, erased_at FROM data_key WHERE child_id = ?", (child_id,)
            )
        if row is None or row[1] is not None or row[0] is None:
            raise KeyErasedError(child_id)
        stored = self._master.unwrap(bytes(row[0]), child_id)  # another writer may have won
        self._remember(child_id, stored)
        return stored

    async def create_many(self, key_ids: Sequence[str]) -> None:
        """Make sure each key exists (one transaction for all the missing ones); erased ids
        are skipped (their facts are refused when sealed)."""
        missing = [k for k in dict.fromkeys(key_ids) if k not in self._cache]
        if not missing:
            return
        now = datetime.now(UTC).isoformat()
        async with self._store.transaction() as tx:
            for i in range(0, len(missing), 500):
                chunk = missing[i : i + 500]
                marks = ", ".join("?" for _ in chunk)
                rows = await tx.fetchall(
                    "SELECT child_id, wrapped, erased_at FROM data_key"  # noqa: S608 - placeholders only
                    f" WHERE child_id IN ({marks})",
                    chunk,
                )
                known = {str(r[0]): r for r in rows}
                new = [k for k in chunk if k not in known]
                fresh = {k: new_data_key() for k in new}
                await tx.executemany(
                    "INSERT INTO data_key (child_id, wrapped, created_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (child_id) DO NOTHING",
                    [(k, self._master.wrap(key, k), now) for k, key in fresh.items()],
                )
                if new:
                    marks = ", ".join("?" for _ in new)
                    rows = await tx.fetchall(
                        "SELECT child_id, wrapped, erased_at FROM data_key"  # noqa: S608 - placeholders only
                        f" WHERE child_id IN ({marks})",
                        new,
                    )
                    known.update({str(r[0]): r for r in rows})
                for kid, (_, wrapped, erased_at) in known.items():
                    if erased_at is None and wrapped is not None:
                        self._remember(kid, self._master.unwrap(bytes(wrapped), kid))

    async def delete(self, child_id: str) -> bool:
        self._cache.pop(child_id, None)
        if self._on_delete is not None:
            self._on_delete(child_id)
        now = datetime.now(UTC).isoformat()
        async with self._store.transaction() as tx:
            row = await tx.fetchone("SELECT wrapped FROM data_key WHERE child_id = ?", (child_id,))
            await tx.execute(
                "INSERT INTO data_key (child_id, wrapped, created_at, erased_at)"
                " VALUES (?, NULL, ?, ?) ON CONFLICT (child_id)"
                " DO UPDATE SET wrapped = NULL, erased_at = excluded.erased_at",
                (child_id, now, now),
            )
        return row is not None and row[0] is not None

    async def is_erased(self, child_id: str) -> bool:
        row = await self._store.fetchone(
            "SELECT erased_at FROM data_key WHERE child_id = ?", (child_id,)
        )
        return row is not None and row[0] is not None
