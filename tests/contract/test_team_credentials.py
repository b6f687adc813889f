"""Practitioner and family credentials, one suite against memory, SQLite and
PostgreSQL: keys that carry who a practitioner is or which child a family member acts
for, and one-time family invitations (single use across concurrent redeemers, expiry,
sign-in links, erasure); then what the SQL stores keep (no code stored)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.auth import ApiKeys, Principal, Role
from hub.auth.invitations import FamilyInvitations, InvitationError
from hub.auth.keys import Identity
from hub.auth.memory import MemoryApiKeys, MemoryFamilyInvitations
from hub.consent.policy import load_policy
from hub.store import ReadStore
from hub.store.api_keys import SqlApiKeys
from hub.store.family_invitations import SqlFamilyInvitations
from tests.support.stores import started_store


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def credentials(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[ApiKeys, FamilyInvitations]]:
    if request.param == "memory":
        memory = MemoryApiKeys()
        yield memory, MemoryFamilyInvitations(memory)
        return
    async with started_store(request.param, request, tmp_path) as store:
        sql = SqlApiKeys(store)
        yield sql, SqlFamilyInvitations(store, sql)


@pytest.fixture
def keys(credentials: tuple[ApiKeys, FamilyInvitations]) -> ApiKeys:
    return credentials[0]


@pytest.fixture
def invitations(credentials: tuple[ApiKeys, FamilyInvitations]) -> FamilyInvitations:
    return credentials[1]


async def _family_keys(keys: ApiKeys, child_id: str) -> list[tuple[str, str, str | None]]:
    """(key id, name, capacity) of the child's active family keys."""
    return [
        (k.key_id, k.name, k.identity.capacity)
        for k in await keys.list()
        if k.active and k.role is Role.FAMILY and k.identity.child_id == child_id
    ]


async def test_a_practitioner_key_carries_their_team_identity(keys: ApiKeys) -> None:
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


async def test_a_practitioner_key_needs_a_policy_role_and_an_id(keys: ApiKeys) -> None:
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
    invitations: FamilyInvitations, keys: ApiKeys
) -> None:
    invitation = await invitations.issue("hc-1", "young_person", invited_by="coordinator:casey")
    assert len(invitation.code) == 19 and invitation.code.count("-") == 3

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
    assert await _family_keys(keys, "hc-1") == [(won[0].key_id, principal.name, "young_person")]


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


async def test_a_sign_in_is_linked_once_to_the_invited_child(
    invitations: FamilyInvitations,
) -> None:
    first = await invitations.issue("hc-1", "parent_with_pr", invited_by="c")
    second = await invitations.issue("hc-2", "parent_with_pr", invited_by="c")
    other_capacity = await invitations.issue("hc-3", "young_person", invited_by="c")
    assert await invitations.signed_in("https://idp", "sub-1") is None

    assert await invitations.redeem_for_sign_in(
        first.code, issuer="https://idp", subject="sub-1"
    ) == ("hc-1", "parent_with_pr")
    with pytest.raises(InvitationError, match="unknown, used or expired"):
        await invitations.redeem_for_sign_in(first.code, issuer="https://idp", subject="sub-9")
    with pytest.raises(InvitationError, match="unknown, used or expired"):
        await invitations.redeem(first.code)
    await invitations.redeem_for_sign_in(second.code, issuer="https://idp", subject="sub-1")
    with pytest.raises(InvitationError, match="already acts in another capacity"):
        await invitations.redeem_for_sign_in(
            other_capacity.code, issuer="https://idp", subject="sub-1"
        )
    # refused for that sign-in, the code is still there for the young person's own
    assert await invitations.redeem_for_sign_in(
        other_capacity.code, issuer="https://idp", subject="sub-2"
    ) == ("hc-3", "young_person")

    principal = await invitations.signed_in("https://idp", "sub-1")
    assert principal == Principal(
        name=f"family:{first.invitation_id}",
        role=Role.FAMILY,
        via="oidc",
        children=("hc-1", "hc-2"),
        capacity="parent_with_pr",
    )
    assert await invitations.signed_in("https://other-idp", "sub-1") is None


async def test_erasing_a_child_forgets_its_invitations_links_and_keys(
    invitations: FamilyInvitations, keys: ApiKeys
) -> None:
    redeemed = await invitations.redeem(
        (await invitations.issue("hc-1", "parent_with_pr", invited_by="c")).code
    )
    linked = await invitations.issue("hc-1", "young_person", invited_by="c")
    await invitations.redeem_for_sign_in(linked.code, issuer="https://idp", subject="yp")
    pending = await invitations.issue("hc-1", "parent_with_pr", invited_by="c")
    kept = await invitations.redeem(
        (await invitations.issue("hc-2", "parent_with_pr", invited_by="c")).code
    )

    assert await invitations.revoke_child("hc-1") == 1
    assert await keys.verify(redeemed.token) is None
    assert await invitations.signed_in("https://idp", "yp") is None
    with pytest.raises(InvitationError):
        await invitations.redeem(pending.code)
    assert await keys.verify(kept.token) is not None
    assert [k[0] for k in await _family_keys(keys, "hc-2")] == [kept.key_id]
    assert await invitations.revoke_child("hc-1") == 0


# -- what the SQL stores keep -------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ReadStore]:
    async with started_store(request.param, request, tmp_path) as s:
        yield s


async def test_no_invitation_code_is_stored(store: ReadStore) -> None:
    invitations = SqlFamilyInvitations(store, SqlApiKeys(store))
    invitation = await invitations.issue("hc-1", "young_person", invited_by="coordinator:casey")
    rows = await store.fetchall("SELECT * FROM family_invitation")
    assert len(rows) == 1
    kept = str(rows)
    assert invitation.code not in kept and invitation.code.replace("-", "") not in kept
    (code_hash,) = await store.fetchone("SELECT code_hash FROM family_invitation")  # type: ignore[misc]
    assert str(code_hash).startswith("sha256:")
