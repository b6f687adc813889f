"""The audit trail port: every decision, release, erasure and read, hash-chained.

`AuditTrail.append` seals entries into chains (`hub.consent.audit_chain.seal`) and keeps
them; `verify` re-derives every hash and names the first record that does not fit. The
implementation on the `hub.audit` log (one chain per partition, heads in the read store)
lives with the stores; `MemoryAuditTrail` keeps one chain per child in lists, for unit
tests. One contract suite runs against each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from hub.consent.audit_chain import AuditKind, AuditRecord, VerifyResult, seal, verify_lines

GLOBAL_CHAIN_KEY = "hub"
"""Where entries about no child are chained."""


@dataclass(frozen=True)
class AuditEntry:
    kind: AuditKind
    actor: str
    child_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    at: datetime | None = None


class AuditTrail(Protocol):
    """The audit trail port (memory; the `hub.audit` log on SQLite or Kafka)."""

    async def append(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        """Chain and keep the entries, all or none; returns the sealed records in input
        order. Concurrent appends never fork a chain."""
        ...

    async def verify(self) -> VerifyResult:
        """Verify every chain; report the first broken record."""
        ...


class MemoryAuditTrail:
    """`AuditTrail` in lists: one chain per child (and one for entries about no child),
    each kept as the canonical lines a stored trail holds. An append runs without
    awaiting, so concurrent appends in one event loop never interleave."""

    def __init__(self) -> None:
        self._heads: dict[str, AuditRecord] = {}
        self._lines: dict[str, list[bytes]] = {}

    async def append(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        heads = dict(self._heads)
        out: list[AuditRecord] = []
        for entry in entries:
            chain = entry.child_id or GLOBAL_CHAIN_KEY
            record = seal(
                heads.get(chain),
                chain=chain,
                kind=entry.kind,
                at=entry.at or datetime.now(UTC),
                actor=entry.actor,
                child_id=entry.child_id,
                details=entry.details,
            )
            heads[chain] = record
            out.append(record)
        # sealed all before keeping any: an entry that does not seal leaves no trace
        self._heads = heads
        for record in out:
            self._lines.setdefault(record.chain, []).append(record.to_line())
        return out

    async def verify(self) -> VerifyResult:
        checked = 0
        for lines in self._lines.values():
            result = verify_lines(lines)
            if not result.ok:
                return result.model_copy(update={"checked": checked + result.checked})
            checked += result.checked
        return VerifyResult(ok=True, checked=checked, chains=len(self._lines))

    def lines(self, chain: str) -> list[bytes]:
        """The stored lines of one chain (a test may alter one to see it detected)."""
        return self._lines.setdefault(chain, [])
