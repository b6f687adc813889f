"""`MatchQueue` in the read store's database (SQLite or PostgreSQL).

Tables `match_queue_item` (one row per queued record: reason, candidates, the sealed
subject and its fingerprint, what it holds, the decision), `match_queue_fact` (the
idempotency key of each held fact -> its item; a key belongs to one item) and
`match_fingerprint` ((fingerprint, child) pairs seen on linked records). Sealing and
fingerprints are `hub.identity.match_queue.SubjectKeys`'.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

from hub.consent.crypto import KeyStore
from hub.identity.match_queue import (
    SEALED_NOTHING,
    Decision,
    QueueItem,
    Status,
    SubjectKeys,
    Unlinked,
    new_item_ids,
)
from hub.identity.subject import Subject
from hub.store.base import ReadStore, Tx

_COLUMNS = (
    "item_id, provisional_child_id, reason, rule, candidates, agency, message_id, held_types,"
    " facts_held, status, created_at, decision, resolved_child_id, resolved_by, resolved_at,"
    " subject"
)


def _item(row: Sequence[Any]) -> QueueItem:
    return QueueItem(
        item_id=str(row[0]),
        provisional_child_id=str(row[1]),
        reason=row[2],
        rule=row[3],
        candidates=tuple(orjson.loads(row[4])),
        agency=str(row[5]),
        message_id=row[6],
        held_types=dict(orjson.loads(row[7])),
        facts_held=int(row[8]),
        status=row[9],
        created_at=str(row[10]),
        decision=row[11],
        resolved_child_id=row[12],
        resolved_by=row[13],
        resolved_at=row[14],
        sealed_subject=bytes(row[15]),
    )


class SqlMatchQueue:
    """The queue's tables in the read store, and the demographic fingerprints."""

    def __init__(self, store: ReadStore, keys: KeyStore) -> None:
        self._store = store
        self._subjects = SubjectKeys(keys)

    # -- fingerprints ----------------------------------------------------------------
    async def fingerprint(self, subject: Subject) -> str | None:
        return await self._subjects.fingerprint(subject)

    async def remember(self, pairs: Iterable[tuple[str, str]]) -> None:
        rows = sorted(set(pairs))
        if not rows:
            return
        async with self._store.transaction() as tx:
            await tx.executemany(
                "INSERT INTO match_fingerprint (fingerprint, child_id) VALUES (?, ?)"
                " ON CONFLICT (fingerprint, child_id) DO NOTHING",
                rows,
            )

    async def forget(self, child_id: str) -> None:
        async with self._store.transaction() as tx:
            await tx.execute("DELETE FROM match_fingerprint WHERE child_id = ?", (child_id,))
            await tx.execute(
                "UPDATE match_queue_item SET fingerprint = NULL"
                " WHERE provisional_child_id = ? OR resolved_child_id = ?",
                (child_id, child_id),
            )

    async def children_with(self, fingerprint: str | None) -> tuple[str, ...]:
        if fingerprint is None:
            return ()
        rows = await self._store.fetchall(
            "SELECT child_id FROM match_fingerprint WHERE fingerprint = ? ORDER BY child_id",
            (fingerprint,),
        )
        return tuple(str(r[0]) for r in rows)

    # -- items -----------------------------------------------------------------------
    async def item_for_keys(self, dedupe_keys: Sequence[str]) -> QueueItem | None:
        unique = sorted(set(dedupe_keys))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            row = await self._store.fetchone(
                f"SELECT item_id FROM match_queue_fact WHERE dedupe_key IN ({marks})"  # noqa: S608
                " ORDER BY item_id LIMIT 1",
                chunk,
            )
            if row is not None:
                return await self.get(str(row[0]))
        return None

    async def enqueue(
        self,
        subject: Subject,
        unlinked: Unlinked,
        *,
        agency: str,
        message_id: str | None,
        dedupe_keys: Sequence[str],
        held_types: dict[str, int],
        now: datetime,
    ) -> tuple[QueueItem, bool]:
        item_id, provisional = new_item_ids()
        sealed = await self._subjects.seal(subject, provisional)
        fingerprint = await self.fingerprint(subject)
        keys = sorted(set(dedupe_keys))
        item = (
            item_id, provisional, unlinked.reason, unlinked.rule,
            orjson.dumps(list(unlinked.candidates)).decode(), agency, message_id, sealed,
            fingerprint, orjson.dumps(held_types).decode(), len(keys), now.isoformat(),
        )  # fmt: skip
        async with self._store.transaction() as tx:
            await tx.lock([f"match-fact:{k}" for k in keys])
            held = await self._holder(tx, keys)
            if held is None:
                await self._insert_item(tx, item, keys)
        found = await self.get(held or item_id)
        if found is None:
            raise RuntimeError(f"match queue item {held or item_id} is not stored")
        return found, held is None

    @staticmethod
    async def _holder(tx: Tx, keys: Sequence[str]) -> str | None:
        """The item already holding any of the facts (inside the locking transaction)."""
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            row = await tx.fetchone(
                f"SELECT item_id FROM match_queue_fact WHERE dedupe_key IN ({marks})"  # noqa: S608
                " ORDER BY item_id LIMIT 1",
                chunk,
            )
            if row is not None:
                return str(row[0])
        return None

    @staticmethod
    async def _insert_item(tx: Tx, item: tuple[Any, ...], keys: Sequence[str]) -> None:
        await tx.execute(
            "INSERT INTO match_queue_item (item_id, provisional_child_id, reason, rule,"
            " candidates, agency, message_id, subject, fingerprint, held_types, facts_held,"
            " status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
            item,
        )
        await tx.executemany(
            "INSERT INTO match_queue_fact (dedupe_key, item_id) VALUES (?, ?)"
            " ON CONFLICT (dedupe_key) DO NOTHING",
            [(k, item[0]) for k in keys],
        )

    async def add_facts(
        self, item_id: str, dedupe_keys: Sequence[str], held_types: dict[str, int]
    ) -> None:
        async with self._store.transaction() as tx:
            fresh = 0
            for k in sorted(set(dedupe_keys)):
                row = await tx.fetchone("SELECT 1 FROM match_queue_fact WHERE dedupe_key = ?", (k,))
                if row is None:
                    await tx.execute(
                        "INSERT INTO match_queue_fact (dedupe_key, item_id) VALUES (?, ?)",
                        (k, item_id),
                    )
                    fresh += 1
            if fresh:
                row = await tx.fetchone(
                    "SELECT held_types FROM match_queue_item WHERE item_id = ?", (item_id,)
                )
                types: dict[str, int] = dict(orjson.loads(row[0])) if row else {}
                for t, n in held_types.items():
                    types[t] = types.get(t, 0) + n
                await tx.execute(
                    "UPDATE match_queue_item SET facts_held = facts_held + ?, held_types = ?"
                    " WHERE item_id = ?",
                    (fresh, orjson.dumps(types).decode(), item_id),
                )

    async def get(self, item_id: str) -> QueueItem | None:
        row = await self._store.fetchone(
            f"SELECT {_COLUMNS} FROM match_queue_item WHERE item_id = ?",  # noqa: S608
            (item_id,),
        )
        return None if row is None else _item(row)

    async def items(
        self,
        *,
        status: Status | None = "pending",
        limit: int = 100,
        after: tuple[str, str] | None = None,
    ) -> list[QueueItem]:
        clauses: list[str] = []
        params: list[Any] = []
        if status:
            clauses.append("status = ?")
            params.append(status)
        if after is not None:
            clauses.append("(created_at > ? OR (created_at = ? AND item_id > ?))")
            params += [after[0], after[0], after[1]]
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = await self._store.fetchall(
            f"SELECT {_COLUMNS} FROM match_queue_item {where}"  # noqa: S608 - fixed clauses
            " ORDER BY created_at, item_id LIMIT ?",
            [*params, limit],
        )
        return [_item(r) for r in rows]

    async def open_subject(self, item: QueueItem) -> Subject | None:
        return await self._subjects.open(item)

    async def mark_resolved(
        self, item_id: str, *, decision: Decision, child_id: str, actor: str, now: datetime
    ) -> None:
        async with self._store.transaction() as tx:
            await tx.execute(
                "UPDATE match_queue_item SET status = 'resolved', decision = ?,"
                " resolved_child_id = ?, resolved_by = ?, resolved_at = ?, subject = ?"
                " WHERE item_id = ?",
                (decision, child_id, actor[:256], now.isoformat(), SEALED_NOTHING, item_id),
            )
