"""`AuditTrail` on the `hub.audit` log: hash-chained records, one chain per partition.

Each partition of `hub.audit` is one chain (`hub.audit/<partition>`), so the chain's
order is the log's order. Appends to a partition are serialised by a lock row in the
read store (`audit_head`: last seq, hash and log offset) held across the log append;
after a crash between the append and the head update, the next writer finds the
orphaned records after the head's offset and adopts them, so the chain never forks.
`verify()` reads every partition and re-derives every hash; the first record that does
not fit is named.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson

from hub.consent.audit_chain import AuditRecord, VerifyResult, seal, verify_lines
from hub.consent.audit_trail import GLOBAL_CHAIN_KEY, AuditEntry
from hub.log import EventLog, LogName, NewRecord, partition_for
from hub.store.base import ReadStore, Tx


def chain_name(part: int) -> str:
    return f"{LogName.AUDIT.value}/{part}"


class LogAuditTrail:
    """The trail's records on the `hub.audit` log; each chain's head in the read store."""

    def __init__(self, log: EventLog, store: ReadStore) -> None:
        self._log = log
        self._store = store
        self._locks: dict[int, asyncio.Lock] = {}

    def _lock(self, part: int) -> asyncio.Lock:
        return self._locks.setdefault(part, asyncio.Lock())

    async def append(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Chain and append the entries; returns the sealed records in input order. All
        the partitions they fall in are locked (in partition order, so two writers never
        wait on each other crosswise) and written in one store transaction and one log
        append: a read shown for 500 children costs one commit, not one per partition."""
        n = self._log.partitions(LogName.AUDIT)
        by_part: dict[int, list[tuple[int, AuditEntry]]] = {}
        for i, entry in enumerate(entries):
            key = entry.child_id or GLOBAL_CHAIN_KEY
            by_part.setdefault(partition_for(key, n), []).append((i, entry))
        parts = sorted(by_part)
        out: list[AuditRecord | None] = [None] * len(entries)
        async with contextlib.AsyncExitStack() as held:
            for part in parts:
                await held.enter_async_context(self._lock(part))
            async with self._store.transaction() as tx:
                sealed: dict[int, list[AuditRecord]] = {}
                for part in parts:
                    prev = await self._head(tx, part)
                    chain: list[AuditRecord] = []
                    for _, entry in by_part[part]:
                        prev = seal(
                            prev,
                            chain=chain_name(part),
                            kind=entry.kind,
                            at=entry.at or datetime.now(UTC),
                            actor=entry.actor,
                            child_id=entry.child_id,
                            details=entry.details,
                        )
                        chain.append(prev)
                    sealed[part] = chain
                lines = {part: [r.to_line() for r in sealed[part]] for part in parts}
                positions = await self._log.append(
                    LogName.AUDIT,
                    [
                        NewRecord(key=e.child_id or GLOBAL_CHAIN_KEY, value=line)
                        for part in parts
                        for (_, e), line in zip(by_part[part], lines[part], strict=True)
                    ],
                )
                at = 0
                for part in parts:
                    landed = positions[at : at + len(sealed[part])]
                    at += len(sealed[part])
                    if any(p.partition != part for p in landed):
                        raise RuntimeError(
                            "audit record landed in another partition than its chain"
                        )
                    await tx.execute(
                        "UPDATE audit_head SET seq = ?, hash = ?, log_offset = ?, record = ?"
                        " WHERE part = ?",
                        (sealed[part][-1].seq, sealed[part][-1].hash, landed[-1].offset,
                         lines[part][-1], part),
                    )  # fmt: skip
                    for (i, _), rec in zip(by_part[part], sealed[part], strict=True):
                        out[i] = rec
        return [r for r in out if r is not None]

    async def _head(self, tx: Tx, part: int) -> AuditRecord | None:
        lock = " FOR UPDATE" if tx.dialect == "postgres" else ""
        select = f"SELECT seq, log_offset, record FROM audit_head WHERE part = ?{lock}"  # noqa: S608
        row = await tx.fetchone(select, (part,))
        if row is None:  # the partition's first record: create its head row, then lock it
            await tx.execute(
                "INSERT INTO audit_head (part, seq, hash, log_offset) VALUES (?, 0, '', -1)"
                " ON CONFLICT (part) DO NOTHING",
                (part,),
            )
            row = await tx.fetchone(select, (part,))
        assert row is not None
        head: AuditRecord | None = (
            AuditRecord.model_validate(orjson.loads(bytes(row[2]))) if row[2] else None
        )
        offset = int(row[1])
        # adopt records appended after the head (a crash between append and head update)
        while True:
            orphans = await self._log.read(LogName.AUDIT, part, offset + 1, 500)
            if not orphans:
                return head
            for rec in orphans:
                head = AuditRecord.model_validate(orjson.loads(rec.value))
                offset = rec.offset

    async def read_all(self, part: int) -> list[bytes]:
        lines: list[bytes] = []
        offset = 0
        while batch := await self._log.read(LogName.AUDIT, part, offset, 1000):
            lines.extend(r.value for r in batch)
            offset = batch[-1].offset + 1
        return lines

    async def verify(self) -> VerifyResult:
        """Verify every chain; report the first broken record (with its partition:offset)."""
        checked = 0
        chains = 0
        for part in range(self._log.partitions(LogName.AUDIT)):
            lines = await self.read_all(part)
            result = verify_lines(lines)
            if not result.ok:
                return result.model_copy(update={"checked": checked + result.checked})
            checked += result.checked
            chains += 1 if lines else 0
        return VerifyResult(ok=True, checked=checked, chains=chains)
