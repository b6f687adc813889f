"""Family invitations: how a parent or young person gets a credential on the embedded
default, where no identity provider is configured.

A coordinator with the child on their caseload issues an invitation for one child and
one capacity (a parent with parental responsibility, or the young person themself); the
hub answers a one-time code (`XXXX-XXXX-XXXX-XXXX`, 80 random bits) that the coordinator
hands to the family outside the hub. Only the code's SHA-256 digest is stored. Redeeming
it once, before it expires, issues a `family` API key bound to that child and capacity;
a second redemption, an expired or an unknown code all fail alike. Where the hub trusts
an identity provider, a family member may instead redeem the code while signed in: their
subject is then linked to the child (`family_binding`) and their tokens act for it. The
family key's
name is an opaque reference (`family:<invitation id>`), never a person's name, so the
audit trail and consent records name the family member without naming them.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from hub.auth.keys import ApiKeyStore, Identity
from hub.auth.principal import FAMILY_VIEWER_ROLES, FamilyCapacity, Principal, Role
from hub.store import ReadStore

log = structlog.get_logger(__name__)

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""Crockford-like: no 0/O or 1/I, so a code read aloud or copied by hand survives."""
GROUPS, GROUP_LENGTH = 4, 4
DEFAULT_DAYS, MAX_DAYS = 14, 30


@dataclass(frozen=True, slots=True)
class Invitation:
    invitation_id: str
    code: str
    child_id: str
    capacity: FamilyCapacity
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Redeemed:
    key_id: str
    token: str
    child_id: str
    capacity: FamilyCapacity


class InvitationError(ValueError):
    """The code cannot be redeemed (unknown, used or expired: the caller is not told which)."""


def normalise(code: str) -> str:
    """The code as stored: upper case, without spaces or dashes."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def _digest(code: str) -> str:
    return "sha256:" + hashlib.sha256(normalise(code).encode()).hexdigest()


def _new_code() -> str:
    chars = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_LENGTH))
    return "-".join(chars[i : i + GROUP_LENGTH] for i in range(0, len(chars), GROUP_LENGTH))


class FamilyInvitations:
    """Invitations in the `family_invitation` table; redeemed into family API keys."""

    def __init__(self, store: ReadStore, keys: ApiKeyStore) -> None:
        self._store = store
        self._keys = keys

    async def issue(
        self,
        child_id: str,
        capacity: FamilyCapacity,
        *,
        invited_by: str,
        days: int = DEFAULT_DAYS,
        now: datetime | None = None,
    ) -> Invitation:
        """A new one-time code for the child and capacity, valid for `days` days."""
        if capacity not in FAMILY_VIEWER_ROLES:
            raise ValueError(f"capacity must be one of: {', '.join(FAMILY_VIEWER_ROLES)}")
        if not 1 <= days <= MAX_DAYS:
            raise ValueError(f"days must be between 1 and {MAX_DAYS}")
        at = now or datetime.now(UTC)
        invitation = Invitation(
            invitation_id=uuid.uuid4().hex[:16],
            code=_new_code(),
            child_id=child_id,
            capacity=capacity,
            expires_at=at + timedelta(days=days),
        )
        async with self._store.transaction() as tx:
            await tx.execute(
                "INSERT INTO family_invitation (invitation_id, code_hash, child_id, capacity,"
                " invited_by, created_at, expires_at, redeemed_at, key_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (
                    invitation.invitation_id,
                    _digest(invitation.code),
                    child_id,
                    capacity,
                    invited_by,
                    at.isoformat(),
                    invitation.expires_at.isoformat(),
                ),
            )
        log.info("invitation.issued", invitation_id=invitation.invitation_id)
        return invitation

    async def redeem(self, code: str, *, now: datetime | None = None) -> Redeemed:
        """Exchange the code for a family key, once; `InvitationError` otherwise. The
        claim is one conditional UPDATE, so two processes redeeming one code at the same
        moment issue one key."""
        at = (now or datetime.now(UTC)).isoformat()
        async with self._store.transaction() as tx:
            row = await tx.fetchone(
                "UPDATE family_invitation SET redeemed_at = ?"
                " WHERE code_hash = ? AND redeemed_at IS NULL AND expires_at > ?"
                " RETURNING invitation_id, child_id, capacity",
                (at, _digest(code), at),
            )
        if row is None:
            raise InvitationError("this invitation code is not valid (unknown, used or expired)")
        invitation_id, child_id, capacity = str(row[0]), str(row[1]), row[2]
        key_id, token = await self._keys.create(
            Role.FAMILY,
            f"family:{invitation_id}",
            identity=Identity(child_id=child_id, capacity=capacity),
        )
        async with self._store.transaction() as tx:
            await tx.execute(
                "UPDATE family_invitation SET key_id = ? WHERE invitation_id = ?",
                (key_id, invitation_id),
            )
        log.info("invitation.redeemed", invitation_id=invitation_id, key_id=key_id)
        return Redeemed(key_id=key_id, token=token, child_id=child_id, capacity=capacity)

    async def redeem_for_sign_in(
        self, code: str, *, issuer: str, subject: str, now: datetime | None = None
    ) -> tuple[str, FamilyCapacity]:
        """Link an identity provider's subject to the invitation's child, once; the
        subject's later tokens act for that child (and any others it was linked to, in
        the same capacity). Returns (child id, capacity); `InvitationError` otherwise."""
        at = (now or datetime.now(UTC)).isoformat()
        async with self._store.transaction() as tx:
            row = await tx.fetchone(
                "SELECT invitation_id, child_id, capacity FROM family_invitation"
                " WHERE code_hash = ? AND redeemed_at IS NULL AND expires_at > ?",
                (_digest(code), at),
            )
            if row is None:
                raise InvitationError(
                    "this invitation code is not valid (unknown, used or expired)"
                )
            invitation_id, child_id, capacity = str(row[0]), str(row[1]), row[2]
            held = await tx.fetchall(
                "SELECT DISTINCT capacity FROM family_binding WHERE issuer = ? AND subject = ?",
                (issuer, subject),
            )
            if any(str(h[0]) != capacity for h in held):
                raise InvitationError(
                    "this sign-in already acts in another capacity; a parent and a young "
                    "person each need their own sign-in"
                )
            claimed = await tx.fetchone(
                "UPDATE family_invitation SET redeemed_at = ?, key_id = 'oidc'"
                " WHERE invitation_id = ? AND redeemed_at IS NULL RETURNING invitation_id",
                (at, invitation_id),
            )
            if claimed is None:
                raise InvitationError(
                    "this invitation code is not valid (unknown, used or expired)"
                )
            await tx.execute(
                "INSERT INTO family_binding (issuer, subject, child_id, capacity, name,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (issuer, subject, child_id) DO NOTHING",
                (issuer, subject, child_id, capacity, f"family:{invitation_id}", at),
            )
        log.info("invitation.redeemed_for_sign_in", invitation_id=invitation_id)
        return child_id, capacity

    async def signed_in(self, issuer: str, subject: str) -> Principal | None:
        """The family principal an identity provider's subject stands for, if linked."""
        rows = await self._store.fetchall(
            "SELECT child_id, capacity, name FROM family_binding WHERE issuer = ? AND"
            " subject = ? ORDER BY created_at, child_id",
            (issuer, subject),
        )
        if not rows:
            return None
        return Principal(
            name=str(rows[0][2]),
            role=Role.FAMILY,
            via="oidc",
            children=tuple(str(r[0]) for r in rows),
            capacity=rows[0][1],
        )

    async def family_keys(self, child_id: str) -> list[tuple[str, str, str]]:
        """(key id, principal name, capacity) of the child's active family keys."""
        rows = await self._store.fetchall(
            "SELECT key_id, name, capacity FROM api_key WHERE child_id = ? AND role = ?"
            " AND revoked_at IS NULL ORDER BY created_at, key_id",
            (child_id, Role.FAMILY.value),
        )
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    async def revoke_child(self, child_id: str) -> int:
        """On the child's erasure: revoke every family key bound to the child and forget
        its invitations. Returns how many keys were revoked."""
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        async with self._store.transaction() as tx:
            rows = await tx.fetchall(
                "UPDATE api_key SET revoked_at = ? WHERE child_id = ? AND revoked_at IS NULL"
                " RETURNING key_id",
                (at, child_id),
            )
            await tx.execute("DELETE FROM family_invitation WHERE child_id = ?", (child_id,))
            await tx.execute("DELETE FROM family_binding WHERE child_id = ?", (child_id,))
        if rows:
            log.info("invitation.keys_revoked", key_ids=sorted(str(r[0]) for r in rows))
        return len(rows)
