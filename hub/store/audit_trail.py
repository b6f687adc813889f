"""`AuditTrail` on the `hub.audit` log: hash-chained records, one chain per partition.

Each partition of `hub.audit` is one chain (`hub.audit/<partition>`), so the chain's
order is the log's order. Appends to a partition are serialised by a lock row in the
read store (`audit_head`: last seq, hash and log offset) held across the log append;
after a crash between the append and the head update, the next writer finds the
orphaned records after the head's offset and adopts them, so the chain never forks.
Appends are group-committed: concurrent callers are written together, in one store
transaction and one log append (one fsync on the embedded log), by one writer task.
Each head row is signed (Ed25519, `hub.consent.audit_heads`, a key derived from the
master key) whenever it moves; on the first use of a store that has no signed head yet,
every partition gets its head row, signed. From then on a writer refuses to extend a
chain whose head is missing or does not match its signature (`AuditTrailTampered`)
rather than sign over it. `verify()` reads every partition, re-derives every hash, names
the first record that does not fit, and checks every chain against its signed head and
the number of chains (a truncated or deleted chain, an edited head).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from hub.consent.audit_chain import GENESIS_HASH, AuditRecord, VerifyResult, seal_line
from hub.consent.audit_heads import (
    HeadsExport,
    HeadSigner,
    SignedHead,
    export_heads,
    verify_against_heads,
)
from hub.consent.audit_trail import GLOBAL_CHAIN_KEY, AuditEntry
from hub.log import EventLog, LogName, NewRecord, partition_for
from hub.store.base import ReadStore, Tx

log = structlog.get_logger(__name__)

HEADS_LOCK = "audit_head.signing"
"""The store lock under which the heads are first created and signed."""


class AuditTrailTampered(RuntimeError):
    """A chain's head is missing or does not match its signature: the trail is not
    extended over it (run `hub audit verify`)."""


def chain_name(part: int) -> str:
    return f"{LogName.AUDIT.value}/{part}"


@dataclass
class _Pending:
    """One caller's entries, waiting for the batch that writes them."""

    entries: Sequence[AuditEntry]
    done: asyncio.Future[list[AuditRecord]]


_UNSEALED: Any = object()
"""A partition no record of the batch has been sealed on yet."""


class LogAuditTrail:
    """The trail's records on the `hub.audit` log; each chain's head in the read store.
    Appends are group-committed: each caller queues its entries and waits; one writer
    task (started by whoever finds none running) takes everything queued, up to
    `max_batch` entries, seals it on each partition's head and writes it in one store
    transaction and one log append, then hands each caller its own records and goes on
    while more is queued. Concurrent readers so share one commit (one fsync on the
    embedded log) instead of queueing for one each. A caller's entries that cannot be
    sealed (details holding personal data) fail that caller alone; a failed write fails
    every caller of its batch with the same exception."""

    def __init__(
        self, log: EventLog, store: ReadStore, *, signer: HeadSigner, max_batch: int = 2000
    ) -> None:
        self._log = log
        self._store = store
        self._signer = signer
        self._heads_ready = False
        self._locks: dict[int, asyncio.Lock] = {}
        self._max_batch = max_batch
        self._queue: deque[_Pending] = deque()
        self._writer: asyncio.Task[None] | None = None

    def _lock(self, part: int) -> asyncio.Lock:
        return self._locks.setdefault(part, asyncio.Lock())

    async def append(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Chain and append the entries; returns the sealed records in input order, once
        they are committed. All the partitions a batch falls in are locked (in partition
        order, so two writers never wait on each other crosswise) and written in one
        store transaction and one log append: a read shown for 500 children costs one
        commit, not one per partition, and so do 50 readers arriving together."""
        if not entries:
            return []
        pending = _Pending(list(entries), asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if self._writer is None:
            # A task of its own, so that a caller cancelled while its batch is being
            # written does not cancel the write under the other callers of the batch.
            self._writer = asyncio.create_task(self._drain(), name="audit-trail-writer")
        return await pending.done

    async def _drain(self) -> None:
        batch: list[_Pending] = []
        try:
            while self._queue:
                batch = self._take()
                try:
                    await self._write(batch)
                except Exception as exc:  # every caller of the failed batch is told
                    for p in batch:
                        if not p.done.done():
                            p.done.set_exception(exc)
                batch = []
        except BaseException:  # cancelled (the loop is closing): nobody is left waiting
            for p in (*batch, *self._queue):
                if not p.done.done():
                    p.done.cancel()
            self._queue.clear()
            raise
        finally:
            self._writer = None

    def _take(self) -> list[_Pending]:
        """The callers of the next batch, in arrival order: at least one, then as many
        as fit in `max_batch` entries (a caller's entries are never split). Callers that
        gave up (cancelled) before their batch was taken are left out, as before."""
        batch: list[_Pending] = []
        size = 0
        while self._queue:
            head = self._queue[0]
            if head.done.done():
                self._queue.popleft()
                continue
            if batch and size + len(head.entries) > self._max_batch:
                break
            batch.append(self._queue.popleft())
            size += len(head.entries)
        return batch

    async def _ensure_heads(self) -> None:
        """On a store with no signed head at all (new, or from before heads were signed):
        give every partition its head row and sign each as it stands. A store with any
        signed head is left as it is: a head missing there was deleted, and is reported,
        not recreated."""
        if self._heads_ready:
            return
        n = self._log.partitions(LogName.AUDIT)
        async with self._store.transaction() as tx:
            await tx.lock([HEADS_LOCK])
            rows = await tx.fetchall("SELECT part, seq, hash, signature FROM audit_head")
            if not any(r[3] for r in rows):
                await tx.executemany(
                    "INSERT INTO audit_head (part, seq, hash, log_offset) VALUES (?, 0, '', -1)"
                    " ON CONFLICT (part) DO NOTHING",
                    [(p,) for p in range(n)],
                )
                rows = await tx.fetchall("SELECT part, seq, hash, signature FROM audit_head")
                for part, seq, hash_, _ in rows:
                    head = self._signer.sign(chain_name(int(part)), int(seq), str(hash_), n)
                    await tx.execute(
                        "UPDATE audit_head SET signature = ? WHERE part = ?",
                        (head.signature, part),
                    )
                legacy = sum(1 for r in rows if int(r[1]) > 0)
                log.info("audit.heads_signed", chains=n, heads=len(rows), legacy_heads=legacy)
        self._heads_ready = True

    async def _write(self, batch: list[_Pending]) -> None:
        await self._ensure_heads()
        n = self._log.partitions(LogName.AUDIT)
        parts_of = [
            [partition_for(e.child_id or GLOBAL_CHAIN_KEY, n) for e in p.entries] for p in batch
        ]
        parts = sorted({part for ps in parts_of for part in ps})
        taken: list[tuple[_Pending, list[AuditRecord]]] = []
        async with contextlib.AsyncExitStack() as held:
            for part in parts:
                await held.enter_async_context(self._lock(part))
            async with self._store.transaction() as tx:
                heads = await self._heads(tx, parts)
                last: dict[int, tuple[AuditRecord, bytes]] = {}
                records: list[NewRecord] = []
                sealed_parts: list[int] = []
                for p, p_parts in zip(batch, parts_of, strict=True):
                    try:
                        mine = self._seal(p.entries, p_parts, heads)
                    except Exception as exc:  # this caller's entries only
                        if not p.done.done():
                            p.done.set_exception(exc)
                        continue
                    for (rec, line), part in zip(mine, p_parts, strict=True):
                        heads[part] = rec
                        last[part] = (rec, line)
                        records.append(NewRecord(key=rec.child_id or GLOBAL_CHAIN_KEY, value=line))
                        sealed_parts.append(part)
                    taken.append((p, [rec for rec, _ in mine]))
                if not records:
                    return
                # each partition's records in chain order, so its chain is the log's order
                positions = await self._log.append(LogName.AUDIT, records)
                landed: dict[int, int] = {}
                for pos, part in zip(positions, sealed_parts, strict=True):
                    if pos.partition != part:
                        raise RuntimeError(
                            "audit record landed in another partition than its chain"
                        )
                    landed[part] = pos.offset
                moved = []
                for part, (rec, line) in sorted(last.items()):
                    signed = self._signer.sign(rec.chain, rec.seq, rec.hash, n)
                    moved.append((rec.seq, rec.hash, landed[part], line, signed.signature, part))
                await tx.executemany(  # every head the batch moved, in one round trip
                    "UPDATE audit_head SET seq = ?, hash = ?, log_offset = ?, record = ?,"
                    " signature = ? WHERE part = ?",
                    moved,
                )
        for p, theirs in taken:  # committed: each caller gets its own records, in its order
            if not p.done.done():
                p.done.set_result(theirs)

    @staticmethod
    def _seal(
        entries: Sequence[AuditEntry], parts: Sequence[int], heads: dict[int, AuditRecord | None]
    ) -> list[tuple[AuditRecord, bytes]]:
        """One caller's entries sealed after the batch's heads so far (which are not
        moved: a caller whose entries do not seal leaves the chain as it was), each with
        its stored line."""
        mine: list[tuple[AuditRecord, bytes]] = []
        tips: dict[int, AuditRecord | None] = {}
        for entry, part in zip(entries, parts, strict=True):
            prev = tips.get(part, _UNSEALED)
            if prev is _UNSEALED:
                prev = heads[part]
            rec, line = seal_line(
                prev,
                chain=chain_name(part),
                kind=entry.kind,
                at=entry.at or datetime.now(UTC),
                actor=entry.actor,
                child_id=entry.child_id,
                details=entry.details,
            )
            tips[part] = rec
            mine.append((rec, line))
        return mine

    async def _heads(self, tx: Tx, parts: Sequence[int]) -> dict[int, AuditRecord | None]:
        """The partitions' heads, locked (in partition order), read in one query: each
        signed head row, then any records a crash left after it. Refuses
        (`AuditTrailTampered`) a missing head or one that does not match its signature,
        rather than extend and re-sign over it."""
        lock = " FOR UPDATE" if tx.dialect == "postgres" else ""
        marks = ", ".join("?" for _ in parts)
        select = (
            "SELECT part, seq, hash, log_offset, record, signature FROM audit_head"  # noqa: S608 - placeholders only
            f" WHERE part IN ({marks}) ORDER BY part{lock}"
        )
        rows = {int(r[0]): r[1:] for r in await tx.fetchall(select, list(parts))}
        signed = [self._signed_head(part, rows.get(part)) for part in parts]
        # the partitions' logs are read for orphans all at once
        adopted = await asyncio.gather(
            *(self._adopt(part, *at) for part, at in zip(parts, signed, strict=True))
        )
        return dict(zip(parts, adopted, strict=True))

    def _signed_head(self, part: int, row: Sequence[Any] | None) -> tuple[AuditRecord | None, int]:
        """The head record a partition's head row holds, and its log offset."""
        chain = chain_name(part)
        if row is None:
            raise AuditTrailTampered(f"chain {chain} has no head; run `hub audit verify`")
        seq, hash_ = int(row[0]), str(row[1]) or GENESIS_HASH
        signed = SignedHead(
            chain=chain,
            seq=seq,
            hash=hash_,
            chains=self._log.partitions(LogName.AUDIT),
            signature=str(row[4] or ""),
        )
        head: AuditRecord | None = (
            AuditRecord.model_validate(orjson.loads(bytes(row[3]))) if row[3] else None
        )
        at_head = (head.seq, head.hash) if head is not None else (0, GENESIS_HASH)
        if not self._signer.check(signed) or at_head != (seq, hash_):
            raise AuditTrailTampered(
                f"the head of chain {chain} does not match its signature; run `hub audit verify`"
            )
        return head, int(row[2])

    async def _adopt(self, part: int, head: AuditRecord | None, offset: int) -> AuditRecord | None:
        """Adopt records appended after the head (a crash between append and head update).
        Asked on every batch, for each partition it writes: an orphan may be left by a
        writer in another process, which nothing but the log can tell. On Kafka an empty
        answer costs one probe of the log's end, shared by the batch's partitions."""
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

    async def _signed_heads(self) -> dict[str, SignedHead]:
        n = self._log.partitions(LogName.AUDIT)
        rows = await self._store.fetchall(
            "SELECT part, seq, hash, signature FROM audit_head ORDER BY part"
        )
        return {
            chain_name(int(part)): SignedHead(
                chain=chain_name(int(part)),
                seq=int(seq),
                hash=str(hash_) or GENESIS_HASH,
                chains=n,
                signature=str(signature or ""),
            )
            for part, seq, hash_, signature in rows
        }

    async def verify(self, exported: HeadsExport | None = None) -> VerifyResult:
        """Verify every chain and check each against its signed head and the number of
        chains (and against heads exported earlier, when given); report the first broken
        record and every chain that does not match."""
        await self._ensure_heads()
        heads = await self._signed_heads()
        n = self._log.partitions(LogName.AUDIT)
        chains = {chain_name(part): await self.read_all(part) for part in range(n)}
        expected = [chain_name(p) for p in range(n)]
        return verify_against_heads(chains, heads, expected, self._signer, exported=exported)

    async def signed_heads(self) -> HeadsExport:
        """Every chain's signed head as stored, with the public key (for IG)."""
        await self._ensure_heads()
        heads = await self._signed_heads()
        return export_heads(list(heads.values()), self._signer, self._log.partitions(LogName.AUDIT))
