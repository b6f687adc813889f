"""The credential ports in memory, for unit tests and single-process tools:
`MemoryApiKeys` (`hub.auth.keys.ApiKeys`) and `MemoryFamilyInvitations`
(`hub.auth.invitations.FamilyInvitations`). Each call decides without awaiting in
between, so concurrent callers in one event loop see one another's changes whole (one
redeemer of a code wins). The same contract suites run against these and the SQL ones."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog

from hub.auth.invitations import (
    DEFAULT_DAYS,
    Invitation,
    InvitationError,
    Redeemed,
    code_digest,
    family_key,
    family_principal,
    new_invitation,
    refused,
)
from hub.auth.keys import (
    ApiKeys,
    Identity,
    KeyInfo,
    Publishing,
    StoredKey,
    new_key,
    now_stamp,
    publisher_of,
    token_parts,
    verified,
)
from hub.auth.principal import FamilyCapacity, Principal, Role

log = structlog.get_logger(__name__)


class MemoryApiKeys:
    """`ApiKeys` in a dict by key id."""

    def __init__(self) -> None:
        self._keys: dict[str, StoredKey] = {}

    async def create(
        self,
        role: Role | str,
        name: str,
        agency: str | None = None,
        identity: Identity | None = None,
        publishing: Publishing | None = None,
    ) -> tuple[str, str]:
        key, token = new_key(role, name, agency, identity, publishing)
        self._keys[key.key_id] = key
        log.info("api_key.created", key_id=key.key_id, role=key.role)
        return key.key_id, token

    async def verify(self, token: str) -> Principal | None:
        parts = token_parts(token)
        if parts is None:
            return None
        key_id, secret = parts
        return verified(key_id, secret, self._keys.get(key_id))

    def _revoke(self, keys: builtins.list[StoredKey]) -> int:
        at = now_stamp()
        for key in keys:
            self._keys[key.key_id] = key.revoked(at)
        revoked = sorted(k.key_id for k in keys)
        if revoked:
            log.info("api_key.revoked", key_ids=revoked)
        return len(revoked)

    async def revoke(self, key_id_or_name: str) -> int:
        return self._revoke(
            [k for k in self._keys.values() if k.active and key_id_or_name in (k.key_id, k.name)]
        )

    async def revoke_child(self, child_id: str) -> int:
        return self._revoke(
            [k for k in self._keys.values() if k.active and k.identity.child_id == child_id]
        )

    async def list(self) -> builtins.list[KeyInfo]:
        ordered = sorted(self._keys.values(), key=lambda k: (k.created_at, k.key_id))
        return [k.info() for k in ordered]

    async def bound_codes(self) -> frozenset[str]:
        return frozenset(
            c for k in self._keys.values() if k.active for c in k.publishing.organisations
        )

    async def publisher(self, key: str) -> Principal:
        named = sorted(
            (k for k in self._keys.values() if k.active and key in (k.key_id, k.name)),
            key=lambda k: k.key_id,
        )
        return publisher_of(key, named)


@dataclass(frozen=True, slots=True)
class _Kept:
    invitation: Invitation
    code_hash: str
    invited_by: str
    created_at: datetime
    redeemed_at: datetime | None = None
    key_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Binding:
    issuer: str
    subject: str
    child_id: str
    capacity: FamilyCapacity
    name: str
    created_at: datetime


class MemoryFamilyInvitations:
    """`FamilyInvitations` in dicts; redeemed into family keys of `keys`."""

    def __init__(self, keys: ApiKeys) -> None:
        self._keys = keys
        self._kept: dict[str, _Kept] = {}  # by invitation id
        self._bindings: list[_Binding] = []

    async def issue(
        self,
        child_id: str,
        capacity: FamilyCapacity,
        *,
        invited_by: str,
        days: int = DEFAULT_DAYS,
        now: datetime | None = None,
    ) -> Invitation:
        invitation, at = new_invitation(child_id, capacity, days=days, now=now)
        self._kept[invitation.invitation_id] = _Kept(
            invitation, code_digest(invitation.code), invited_by, at
        )
        log.info("invitation.issued", invitation_id=invitation.invitation_id)
        return invitation

    def _claim(self, code: str, at: datetime) -> _Kept:
        """The redeemable invitation of `code`, marked redeemed at `at` (no await)."""
        digest = code_digest(code)
        for kept in self._kept.values():
            if (
                kept.code_hash == digest
                and kept.redeemed_at is None
                and kept.invitation.expires_at > at
            ):
                return kept
        raise refused()

    async def redeem(self, code: str, *, now: datetime | None = None) -> Redeemed:
        at = now or datetime.now(UTC)
        kept = self._claim(code, at)
        invitation = kept.invitation
        self._kept[invitation.invitation_id] = replace(kept, redeemed_at=at)
        key_id, token = await family_key(
            self._keys, invitation.invitation_id, invitation.child_id, invitation.capacity
        )
        self._kept[invitation.invitation_id] = replace(kept, redeemed_at=at, key_id=key_id)
        log.info("invitation.redeemed", invitation_id=invitation.invitation_id, key_id=key_id)
        return Redeemed(
            key_id=key_id, token=token, child_id=invitation.child_id, capacity=invitation.capacity
        )

    async def redeem_for_sign_in(
        self, code: str, *, issuer: str, subject: str, now: datetime | None = None
    ) -> tuple[str, FamilyCapacity]:
        at = now or datetime.now(UTC)
        kept = self._claim(code, at)
        invitation = kept.invitation
        held = {b.capacity for b in self._bindings if (b.issuer, b.subject) == (issuer, subject)}
        if any(c != invitation.capacity for c in held):
            raise InvitationError(
                "this sign-in already acts in another capacity; a parent and a young "
                "person each need their own sign-in"
            )
        self._kept[invitation.invitation_id] = replace(kept, redeemed_at=at, key_id="oidc")
        if not any(
            (b.issuer, b.subject, b.child_id) == (issuer, subject, invitation.child_id)
            for b in self._bindings
        ):
            self._bindings.append(
                _Binding(
                    issuer,
                    subject,
                    invitation.child_id,
                    invitation.capacity,
                    f"family:{invitation.invitation_id}",
                    at,
                )
            )
        log.info("invitation.redeemed_for_sign_in", invitation_id=invitation.invitation_id)
        return invitation.child_id, invitation.capacity

    async def signed_in(self, issuer: str, subject: str) -> Principal | None:
        mine = sorted(
            (b for b in self._bindings if (b.issuer, b.subject) == (issuer, subject)),
            key=lambda b: (b.created_at, b.child_id),
        )
        if not mine:
            return None
        return family_principal(mine[0].name, mine[0].capacity, [b.child_id for b in mine])

    async def revoke_child(self, child_id: str) -> int:
        self._kept = {i: k for i, k in self._kept.items() if k.invitation.child_id != child_id}
        self._bindings = [b for b in self._bindings if b.child_id != child_id]
        return await self._keys.revoke_child(child_id)
