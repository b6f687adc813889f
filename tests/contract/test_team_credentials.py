"""Practitioner and family credentials, one suite against SQLite and PostgreSQL: keys
that carry who a practitioner is or which child a family member acts for, and one-time
family invitations (single use across concurrent redeemers, expiry, no code stored)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.auth import ApiKeyStore, Principal, Role
from hub.auth.invitations import FamilyInvitations, InvitationError
from hub.auth.keys import Identity
from hub.consent.policy import load_policy
from hub.store import ReadStore
from tests.support.stores import started_store


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ReadStore]:
    async with started_store(request.param, request, tmp_path) as s:
        yield s


@pytest.fixture
def keys(store: ReadStore) -> ApiKeyStore:
    return ApiKeyStore(store)


@pytest.fixture
def invitations(store: ReadStore, keys: ApiKeyStore) -> FamilyInvitations:
    return FamilyInvitations(store, keys)


async def test_a_practitioner_key_carries_their_team_identity(keys: ApiKeyStore) -> None:
    agency, identity = Identity.practitioner(load_policy(), "gmc:C9900010", "paediatrician", "RZ9")
    assert agency == "health"
    key_id, token = await keys.create(Role.PRACTITIONER, "Dr Shah", agency, identity)
    principal = await keys.verify(token)
    assert principal == Principal(
        name="Dr Shah",
        role=Role.PRACTITIONER,
        agency="health",
        key_id=key_id,
        practitioner_id="gmc:C9900010",
        policy_role="paediatrician",
        organisation="RZ9",
    )
    assert principal.viewer_role == "paediatrician"
    [info] = await keys.list()
    assert info.identity == identity


async def test_a_practitioner_key_needs_a_policy_role_and_an_id(keys: ApiKeyStore) -> None:
    with pytest.raises(ValueError, match="not a practitioner role of the policy; roles are: "):
        Identity.practitioner(load_policy(), "gmc:C9900010", "coordinator")
    with pytest.raises(ValueError, match="needs practitioner_id, policy_role"):
        await keys.create(Role.PRACTITIONER, "nobody", "health")
    with pytest.raises(ValueError, match="practitioner_id must be an id"):
        await keys.create(
            Role.PRACTITIONER, "x", "health", Identity("Dr Priya Shah", "paediatrician")
        )
    with pytest.raises(ValueError, match="only a practitioner principal"):
        await keys.create(Role.COORDINATOR, "x", None, Identity("gmc:1", "senco"))
    with pytest.raises(ValueError, match="only a family principal"):
        await keys.create(Role.COORDINATOR, "x", None, Identity(child_id="hc-1"))
    assert await keys.list() == []


async def test_an_invitation_is_redeemed_once_into_a_family_key(
    invitations: FamilyInvitations, keys: ApiKeyStore, store: ReadStore
) -> None:
    invitation = await invitations.issue("hc-1", "young_person", invited_by="coordinator:casey")
    assert len(invitation.code) == 19 and invitation.code.count("-") == 3
    rows = await store.fetchall("SELECT code_hash FROM family_invitation")
    assert invitation.code not in str(rows) and invitation.code.replace("-", "") not in str(rows)

    # two redeemers at once: exactly one gets a key
    results = await asyncio.gather(
        invitations.redeem(invitation.code),
        invitations.redeem(f"  {invitation.code.lower()} "),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, InvitationError)]
    assert len(won) == 1 and len(lost) == 1, results
    principal = await keys.verify(won[0].token)
    assert principal is not None
    assert (principal.role, principal.children, principal.capacity) == (
        Role.FAMILY,
        ("hc-1",),
        "young_person",
    )
    assert principal.name == f"family:{invitation.invitation_id}"
    assert principal.viewer_role == "young_person"
    assert await invitations.family_keys("hc-1") == [
        (won[0].key_id, principal.name, "young_person")
    ]


async def test_an_expired_or_unknown_code_is_refused_alike(
    invitations: FamilyInvitations,
) -> None:
    then = datetime.now(UTC) - timedelta(days=3)
    old = await invitations.issue("hc-1", "parent_with_pr", invited_by="c", days=2, now=then)
    with pytest.raises(InvitationError, match="unknown, used or expired") as expired:
        await invitations.redeem(old.code)
    with pytest.raises(InvitationError) as unknown:
        await invitations.redeem("AAAA-BBBB-CCCC-DDDD")
    assert str(expired.value) == str(unknown.value)
    with pytest.raises(ValueError, match="days must be between 1 and 30"):
        await invitations.issue("hc-1", "parent_with_pr", invited_by="c", days=31)
    with pytest.raises(ValueError, match="capacity must be one of"):
        await invitations.issue("hc-1", "deputy", invited_by="c")  # type: ignore[arg-type]
