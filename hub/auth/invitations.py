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

`FamilyInvitations` is the port; the code, its digest, what may be invited and the
family key a redemption issues are decided here, so that every implementation keeps
invitations alike: `hub.auth.memory.MemoryFamilyInvitations`, and
`hub.store.family_invitations.SqlFamilyInvitations` in the read store's
`family_invitation` and `family_binding` tables (SQLite and PostgreSQL). One contract
suite runs against each (tests/contract/test_team_credentials.py).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from hub.auth.keys import ApiKeys, Identity
from hub.auth.principal import FAMILY_VIEWER_ROLES, FamilyCapacity, Principal, Role

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


def code_digest(code: str) -> str:
    """What is stored of a code: the SHA-256 of its normalised form."""
    return "sha256:" + hashlib.sha256(normalise(code).encode()).hexdigest()


def _new_code() -> str:
    chars = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_LENGTH))
    return "-".join(chars[i : i + GROUP_LENGTH] for i in range(0, len(chars), GROUP_LENGTH))


def refused() -> InvitationError:
    """The one refusal of a code that cannot be redeemed, whatever the reason."""
    return InvitationError("this invitation code is not valid (unknown, used or expired)")


def new_invitation(
    child_id: str,
    capacity: FamilyCapacity,
    *,
    days: int = DEFAULT_DAYS,
    now: datetime | None = None,
) -> tuple[Invitation, datetime]:
    """A new invitation for the child and capacity, valid for `days` days from `now`, and
    the time it was made; `ValueError` for a capacity or a number of days not allowed."""
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
    return invitation, at


def family_name(invitation_id: str) -> str:
    """The opaque name a redeemed invitation's family member goes by."""
    return f"family:{invitation_id}"


async def family_key(
    keys: ApiKeys, invitation_id: str, child_id: str, capacity: FamilyCapacity
) -> tuple[str, str]:
    """Issue the family key a redeemed invitation gives: (key id, token)."""
    return await keys.create(
        Role.FAMILY,
        family_name(invitation_id),
        identity=Identity(child_id=child_id, capacity=capacity),
    )


def family_principal(name: str, capacity: FamilyCapacity, children: Sequence[str]) -> Principal:
    """A signed-in family member linked to `children` (oldest link first)."""
    return Principal(
        name=name, role=Role.FAMILY, via="oidc", children=tuple(children), capacity=capacity
    )


class FamilyInvitations(Protocol):
    """The family invitations port: what the team routes, the web sign-in and code pages,
    the authenticator and erasure use."""

    async def issue(
        self,
        child_id: str,
        capacity: FamilyCapacity,
        *,
        invited_by: str,
        days: int = DEFAULT_DAYS,
        now: datetime | None = None,
    ) -> Invitation:
        """A new one-time code for the child and capacity, valid for `days` days;
        `ValueError` for a capacity or a number of days not allowed."""
        ...

    async def redeem(self, code: str, *, now: datetime | None = None) -> Redeemed:
        """Exchange the code for a family key, once; `InvitationError` otherwise. Two
        redeemers of one code at the same moment (in two processes too) get one key."""
        ...

    async def redeem_for_sign_in(
        self, code: str, *, issuer: str, subject: str, now: datetime | None = None
    ) -> tuple[str, FamilyCapacity]:
        """Link an identity provider's subject to the invitation's child, once; the
        subject's later tokens act for that child (and any others it was linked to, in
        the same capacity). Returns (child id, capacity); `InvitationError` otherwise."""
        ...

    async def signed_in(self, issuer: str, subject: str) -> Principal | None:
        """The family principal an identity provider's subject stands for, if linked."""
        ...

    async def revoke_child(self, child_id: str) -> int:
        """On the child's erasure: forget its invitations and sign-in links, then revoke
        every family key bound to the child. Returns how many keys were revoked."""
        ...
