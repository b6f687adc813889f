"""Erasure by crypto-shredding: a child's whole record (`EraseChild`) or one data
category whose retention rule has run out (`ApplyRetention`). The data keys are deleted,
a tombstone is appended so every projection drops what it derived, and the erasure is
audited; the child's name and date-of-birth fingerprints go too. On SQLite the store's
write-ahead log is folded in, so no deleted key lingers (and again once the projections
have applied the tombstone: `hub.projections.runner`'s `after_tombstone`)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Protocol

from hub.consent.audit_chain import AuditKind
from hub.consent.audit_trail import AuditEntry, AuditTrail
from hub.consent.crypto import KeyStore
from hub.consent.opener import data_key_id
from hub.consent.policy import SharingPolicy
from hub.errors import NotFound
from hub.events import Envelope, Source, encode
from hub.events.envelope import EventPayload
from hub.events.identity import CategoryErased, ChildErased
from hub.identity.person_index import PersonIndex
from hub.log import EventLog, LogName, NewRecord
from hub.projections.gate_views import last_shared_on
from hub.store import ReadStore


class ChildCredentials(Protocol):
    """Credentials bound to one child (a family member's keys and invitations)."""

    async def revoke_child(self, child_id: str) -> int: ...


class Fingerprints(Protocol):
    """Demographic fingerprints seen with a child (the match queue's)."""

    async def forget(self, child_id: str) -> None: ...


class _Shredder:
    def __init__(
        self,
        *,
        log: EventLog,
        store: ReadStore,
        keys: KeyStore,
        policy: SharingPolicy,
        persons: PersonIndex,
        trail: AuditTrail,
        credentials: ChildCredentials | None = None,
        fingerprints: Fingerprints | None = None,
    ) -> None:
        self.log = log
        self.store = store
        self.keys = keys
        self.policy = policy
        self.persons = persons
        self.trail = trail
        self.credentials = credentials
        self.fingerprints = fingerprints

    async def _tombstone(
        self,
        child_id: str,
        payload: EventPayload,
        *,
        actor: str,
        kind: AuditKind,
        details: dict[str, Any],
    ) -> None:
        """Append the tombstone `payload` for the child and audit it (`outcome: erased`)."""
        now = datetime.now(UTC)
        tombstone = Envelope.wrap(
            payload,
            child_id=child_id,
            source=Source(agency="hub", system="tac-hub"),
            occurred_at=now,
        )
        await self.trail.append(
            [
                AuditEntry(
                    kind=kind,
                    actor=actor,
                    child_id=child_id,
                    at=now,
                    details={"event_id": str(tombstone.event_id), **details, "outcome": "erased"},
                )
            ]
        )
        await self.log.append(LogName.EVENTS, [NewRecord(key=child_id, value=encode(tombstone))])

    async def _checkpoint(self) -> None:
        """Fold the store's write-ahead log into its files, where the store has one."""
        checkpoint = getattr(self.store, "checkpoint", None)
        if checkpoint is not None:
            await checkpoint()


class EraseChild(_Shredder):
    async def __call__(self, child_id: str, *, actor: str, reason: str) -> int:
        """Crypto-shred every data key of the child, tombstone, audit. Returns keys deleted;
        `NotFound` for a child the hub does not know (or erased already)."""
        if not await self.persons.exists(child_id):
            raise NotFound(f"no child {child_id}")
        return await self.shred(child_id, actor=actor, reason=reason)

    async def shred(self, child_id: str, *, actor: str, reason: str) -> int:
        """The erasure itself, for any child id the hub holds keys for — a provisional
        child of the match queue too, which the person index does not know."""
        deleted = 0
        for category in self.policy.categories:
            if await self.keys.delete(data_key_id(child_id, category)):
                deleted += 1
        await self.persons.erase(child_id)
        if self.fingerprints is not None:  # a name and date of birth that once named them
            await self.fingerprints.forget(child_id)
        revoked = 0 if self.credentials is None else await self.credentials.revoke_child(child_id)
        await self._checkpoint()
        await self._tombstone(
            child_id,
            ChildErased(reason=reason[:200] or "erasure", requested_by=actor[:128]),
            actor=actor,
            kind="erasure",
            details={"keys_deleted": deleted, "family_keys_revoked": revoked},
        )
        return deleted


class ApplyRetention(_Shredder):
    async def __call__(
        self, *, today: date, actor: str = "system:retention"
    ) -> list[tuple[str, str]]:
        """Crypto-shred every (child, category) whose retention rule has run out by
        `today`: delete that category's data key, append an `identity.category_erased`
        tombstone and audit it. Returns the (child, category) pairs erased now."""
        done: list[tuple[str, str]] = []
        for child_id, dob in await self.persons.children_with_dob():
            for category in self.policy.categories:
                kid = data_key_id(child_id, category)
                if await self.keys.get(kid) is None:
                    continue  # nothing held under this category (or already shredded)
                last = await last_shared_on(self.store, child_id, category)
                rule = self.policy.retention_for(category)
                keep_until = rule.keep_until(
                    date_of_birth=dob, last_event_on=date.fromisoformat(last[:10]) if last else None
                )
                if today <= keep_until:
                    continue
                await self.keys.delete(kid)
                await self._tombstone(
                    child_id,
                    CategoryErased(
                        erased_category=category, rule=f"keep until {keep_until.isoformat()}"
                    ),
                    actor=actor,
                    kind="retention",
                    details={"category": category, "keep_until": keep_until.isoformat()},
                )
                done.append((child_id, category))
        if done:
            await self._checkpoint()
        return done
