"""The audit trail port: every decision, release, erasure and read, hash-chained.

`AuditTrail.append` seals entries into chains (`hub.consent.audit_chain.seal`) and keeps
them, with each chain's head signed (`hub.consent.audit_heads`); `verify` re-derives every
hash, names the first record that does not fit, and checks every chain against its signed
head and the set of chains (truncation, a chain deleted, a head edited); `signed_heads`
exports the heads and the public key for IG. The
implementation on the `hub.audit` log (one chain per partition, heads in the read store)
lives with the stores; `MemoryAuditTrail` keeps one chain per child in lists, for unit
tests. One contract suite runs against each.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from hub.consent.audit_chain import AuditKind, AuditRecord, VerifyResult, seal_line
from hub.consent.audit_heads import (
    HeadsExport,
    HeadSigner,
    SignedHead,
    export_heads,
    verify_against_heads,
)

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

    async def verify(self, exported: HeadsExport | None = None) -> VerifyResult:
        """Verify every chain, and every chain against its signed head and the set of
        chains (and, given heads exported earlier, that no chain holds less than it did
        then); report the first broken record and every chain that does not match."""
        ...

    async def signed_heads(self) -> HeadsExport:
        """Every chain's signed head, with the public key that checks them."""
        ...


class MemoryAuditTrail:
    """`AuditTrail` in lists: one chain per child (and one for entries about no child),
    each kept as the canonical lines a stored trail holds. An append runs without
    awaiting, so concurrent appends in one event loop never interleave."""

    def __init__(self, signer: HeadSigner | None = None) -> None:
        self._heads: dict[str, AuditRecord] = {}
        self._lines: dict[str, list[bytes]] = {}
        self._signer = signer or HeadSigner(os.urandom(32))
        self.signed: dict[str, SignedHead] = {}
        """Each chain's signed head (a test may alter one to see it detected)."""

    async def append(self, entries: Sequence[AuditEntry]) -> list[AuditRecord]:
        heads = dict(self._heads)
        out: list[AuditRecord] = []
        lines: list[bytes] = []
        for entry in entries:
            chain = entry.child_id or GLOBAL_CHAIN_KEY
            record, line = seal_line(
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
            lines.append(line)
        # sealed all before keeping any: an entry that does not seal leaves no trace
        self._heads = heads
        for record, line in zip(out, lines, strict=True):
            self._lines.setdefault(record.chain, []).append(line)
        # the set of chains grows here, so every head is signed again with the new count
        n = len(self._heads)
        self.signed = {
            c: self._signer.sign(c, h.seq, h.hash, n) for c, h in sorted(self._heads.items())
        }
        return out

    async def verify(self, exported: HeadsExport | None = None) -> VerifyResult:
        expected = set(self._heads) or set(self._lines)
        return verify_against_heads(
            self._lines, self.signed, expected, self._signer, exported=exported
        )

    async def signed_heads(self) -> HeadsExport:
        return export_heads(list(self.signed.values()), self._signer, len(self._heads))

    def lines(self, chain: str) -> list[bytes]:
        """The stored lines of one chain (a test may alter one to see it detected)."""
        return self._lines.setdefault(chain, [])
