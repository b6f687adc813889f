"""Idempotency claims: the write side's memory of what it has taken.

Before the gate appends a fact it claims the fact's idempotency key (source agency,
message id, the fact's place in the message) for the fact's event id, under a unique
key in the store, so any number of processes taking the same message at once append it
once: the first claim holds, every other taker is told "duplicate" with the holder's
event id. Once the fact is on the log its claim is marked appended. A claim that was
never marked (its taker died between the claim and the append) may be taken over after
`LEASE`, once the log shows the fact did not land. Never decided from a read model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

LEASE = timedelta(seconds=60)
"""How long an unmarked claim is its taker's; after that it may be taken over."""


@dataclass(frozen=True, slots=True)
class Claim:
    dedupe_key: str
    event_id: str
    child_id: str
    claimed_at: datetime
    appended: bool = False

    def stale(self, now: datetime) -> bool:
        """Left unmarked past the lease: its taker most likely died before the append."""
        return not self.appended and now - self.claimed_at > LEASE


class IngestClaims(Protocol):
    """The claims port (memory, SQLite and PostgreSQL; one contract suite)."""

    async def holders(self, keys: Sequence[str]) -> dict[str, Claim]:
        """The claim that holds each of `keys`, for those that are claimed."""
        ...

    async def claim(self, wanted: Sequence[Claim]) -> dict[str, Claim]:
        """Claim each key for its event id, atomically per key; a key already held is
        left with its holder, except a stale claim, which `wanted` takes over. Returns the
        holder of every key after the call (ours where we won)."""
        ...

    async def mark_appended(self, keys: Sequence[str], event_ids: Sequence[str]) -> None:
        """The facts are on the log: their claims hold for good."""
        ...

    async def release(self, keys: Sequence[str], event_ids: Sequence[str]) -> None:
        """Give back claims whose facts were not appended (the append failed)."""
        ...

    async def claim_consent_id(self, consent_id: str, child_id: str) -> str:
        """Claim a consent id for a child; returns the child that holds it. Consent ids are
        scoped per child (migration 0008), so that is always `child_id`: another child's
        consent id of the same name is neither learnt of nor taken."""
        ...


class MemoryIngestClaims:
    """`IngestClaims` in a dict: for unit tests and single-process tools."""

    def __init__(self) -> None:
        self._held: dict[str, Claim] = {}
        self._consent_ids: set[tuple[str, str]] = set()

    async def claim_consent_id(self, consent_id: str, child_id: str) -> str:
        self._consent_ids.add((child_id, consent_id))
        return child_id

    async def holders(self, keys: Sequence[str]) -> dict[str, Claim]:
        return {k: self._held[k] for k in keys if k in self._held}

    async def claim(self, wanted: Sequence[Claim]) -> dict[str, Claim]:
        for want in wanted:
            held = self._held.get(want.dedupe_key)
            if held is None or held.stale(want.claimed_at):
                self._held[want.dedupe_key] = replace(want, appended=False)
        return {w.dedupe_key: self._held[w.dedupe_key] for w in wanted}

    async def mark_appended(self, keys: Sequence[str], event_ids: Sequence[str]) -> None:
        for key, event_id in zip(keys, event_ids, strict=True):
            held = self._held.get(key)
            if held is not None and held.event_id == event_id:
                self._held[key] = replace(held, appended=True)

    async def release(self, keys: Sequence[str], event_ids: Sequence[str]) -> None:
        for key, event_id in zip(keys, event_ids, strict=True):
            held = self._held.get(key)
            if held is not None and held.event_id == event_id and not held.appended:
                del self._held[key]


def ours(wanted: Sequence[Claim], holders: dict[str, Claim]) -> set[str]:
    """The keys of `wanted` that the claim call gave to us."""
    return {w.dedupe_key for w in wanted if holders[w.dedupe_key].event_id == w.event_id}
