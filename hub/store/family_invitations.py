"""`hub.auth.invitations.FamilyInvitations` in the read store (SQLite or PostgreSQL).

Table `family_invitation`: one row per invitation (its id, the code's `sha256:` digest —
never the code —, child, capacity, who invited, ISO 8601 times of creation, expiry and
redemption, and the key it was redeemed into, or `oidc`). Table `family_binding`: an
identity provider's subject linked to a child. A redemption claims the row with one
conditional `UPDATE ... RETURNING`, so two processes redeeming one code at the same
moment issue one key.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from hub.auth.invitations import (
    DEFAULT_DAYS,
    Invitation,
    InvitationError,
    Redeemed,
    code_digest,
    family_key,
    family_name,
    family_principal,
    new_invitation,
    refused,
)
from hub.auth.keys import ApiKeys
from hub.auth.principal import FamilyCapacity, Principal
from hub.store.base import ReadStore

log = structlog.get_logger(__name__)


class SqlFamilyInvitations:
    """Invitations in the `family_invitation` table; redeemed into family keys of `keys`."""

    def __init__(self, store: ReadStore, keys: ApiKeys) -> None:
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
        invitation, at = new_invitation(child_id, capacity, days=days, now=now)
        async with self._store.transaction() as tx:
            await tx.execute(
                "INSERT INTO family_invitation (invitation_id, code_hash, child_id, capacity,"
                " invited_by, created_at, expires_at, redeemed_at, key_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (
                    invitation.invitation_id,
                    code_digest(invitation.code),
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
        at = (now or datetime.now(UTC)).isoformat()
        async with self._store.transaction() as tx:
            row = await tx.fetchone(
                "UPDATE family_invitation SET redeemed_at = ?"
                " WHERE code_hash = ? AND redeemed_at IS NULL AND expires_at > ?"
                " RETURNING invitation_id, child_id, capacity",
                (at, code_digest(code), at),
            )
        if row is None:
            raise refused()
        invitation_id, child_id, capacity = str(row[0]), str(row[1]), row[2]
        key_id, token = await family_key(self._keys, invitation_id, child_id, capacity)
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
        at = (now or datetime.now(UTC)).isoformat()
        async with self._store.transaction() as tx:
            row = await tx.fetchone(
                "SELECT invitation_id, child_id, capacity FROM family_invitation"
                " WHERE code_hash = ? AND redeemed_at IS NULL AND expires_at > ?",
                (code_digest(code), at),
            )
            if row is None:
                raise refused()
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
                raise refused()
            await tx.execute(
                "INSERT INTO family_binding (issuer, subject, child_id, capacity, name,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (issuer, subject, child_id) DO NOTHING",
                (issuer, subject, child_id, capacity, family_name(invitation_id), at),
            )
        log.info("invitation.redeemed_for_sign_in", invitation_id=invitation_id)
        return child_id, capacity

    async def signed_in(self, issuer: str, subject: str) -> Principal | None:
        rows = await self._store.fetchall(
            "SELECT child_id, capacity, name FROM family_binding WHERE issuer = ? AND"
            " subject = ? ORDER BY created_at, child_id",
            (issuer, subject),
        )
        if not rows:
            return None
        return family_principal(str(rows[0][2]), rows[0][1], [str(r[0]) for r in rows])

    async def revoke_child(self, child_id: str) -> int:
        # the invitations first: none left to redeem into a key after the keys are revoked
        async with self._store.transaction() as tx:
            await tx.execute("DELETE FROM family_invitation WHERE child_id = ?", (child_id,))
            await tx.execute("DELETE FROM family_binding WHERE child_id = ?", (child_id,))
        return await self._keys.revoke_child(child_id)
