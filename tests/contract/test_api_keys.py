"""The `ApiKeyStore` contract: one suite, run unchanged against SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.auth import ApiKeyStore, Principal, Role
from hub.store import ReadStore
from tests.support.stores import started_store


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ReadStore]:
    async with started_store(request.param, request, tmp_path) as s:
        yield s


@pytest.fixture
async def keys(store: ReadStore) -> ApiKeyStore:
    return ApiKeyStore(store)


def _secret_of(token: str) -> str:
    return token.split("_", 2)[2]


async def test_a_created_key_verifies_as_its_principal(keys: ApiKeyStore) -> None:
    key_id, token = await keys.create(Role.AGENCY, "Riverside MIS feed", agency="school:100001")
    assert token.startswith(f"thk_{key_id}_")
    assert len(_secret_of(token)) >= 43  # 32 random bytes, URL-safe base64
    assert await keys.verify(token) == Principal(
        name="Riverside MIS feed",
        role=Role.AGENCY,
        agency="school:100001",
        key_id=key_id,
        via="api_key",
    )


async def test_roles_may_be_given_by_name(keys: ApiKeyStore) -> None:
    _, token = await keys.create("coordinator", "SEND team")
    principal = await keys.verify(token)
    assert principal is not None
    assert principal.role is Role.COORDINATOR
    assert principal.agency is None


async def test_each_key_is_distinct(keys: ApiKeyStore) -> None:
    a = await keys.create(Role.ADMIN, "ops")
    b = await keys.create(Role.ADMIN, "ops")
    assert a[0] != b[0] and _secret_of(a[1]) != _secret_of(b[1])


async def test_a_wrong_secret_does_not_verify(keys: ApiKeyStore) -> None:
    key_id, token = await keys.create(Role.ADMIN, "ops")
    secret = _secret_of(token)
    flipped = ("A" if secret[0] != "A" else "B") + secret[1:]
    assert await keys.verify(f"thk_{key_id}_{flipped}") is None
    assert await keys.verify(token[:-1]) is None
    assert await keys.verify(token + "x") is None


async def test_a_secret_does_not_verify_under_another_key_id(keys: ApiKeyStore) -> None:
    _, token_a = await keys.create(Role.ADMIN, "a")
    key_b, _ = await keys.create(Role.ADMIN, "b")
    assert await keys.verify(f"thk_{key_b}_{_secret_of(token_a)}") is None


async def test_unknown_and_malformed_tokens_do_not_verify(keys: ApiKeyStore) -> None:
    _, token = await keys.create(Role.ADMIN, "ops")
    assert await keys.verify(f"thk_{'0' * 16}_{_secret_of(token)}") is None
    for junk in ("", "thk_", "thk_nope_nope", "thk_x_y_z", "Bearer " + token, token.upper()):
        assert await keys.verify(junk) is None, junk


async def test_a_revoked_key_stops_working_at_once(keys: ApiKeyStore) -> None:
    key_id, token = await keys.create(Role.COORDINATOR, "caseworker laptop")
    _, other = await keys.create(Role.COORDINATOR, "another")
    assert await keys.verify(token) is not None
    assert await keys.revoke(key_id) == 1
    assert await keys.verify(token) is None
    assert await keys.verify(other) is not None
    assert await keys.revoke(key_id) == 0  # already revoked


async def test_revoking_by_name_revokes_every_active_key_of_that_name(keys: ApiKeyStore) -> None:
    _, one = await keys.create(Role.AGENCY, "feed", agency="nhs:RX1")
    _, two = await keys.create(Role.AGENCY, "feed", agency="nhs:RX1")
    _, keep = await keys.create(Role.AGENCY, "other feed", agency="nhs:RX1")
    assert await keys.revoke("feed") == 2
    assert await keys.verify(one) is None
    assert await keys.verify(two) is None
    assert await keys.verify(keep) is not None
    assert await keys.revoke("no such key") == 0


async def test_the_secret_is_not_stored_in_plain_text(keys: ApiKeyStore, store: ReadStore) -> None:
    key_id, token = await keys.create(Role.IG_AUDITOR, "IG lead")
    secret = _secret_of(token)
    rows = await store.fetchall("SELECT * FROM api_key")
    assert len(rows) == 1
    stored = " ".join(str(v) for v in rows[0])
    assert secret not in stored
    assert token not in stored
    (secret_hash,) = await store.fetchone(  # type: ignore[misc]
        "SELECT secret_hash FROM api_key WHERE key_id = ?", (key_id,)
    )
    assert str(secret_hash).startswith("sha256:")


async def test_the_listing_shows_keys_without_secrets(keys: ApiKeyStore) -> None:
    id_a, token_a = await keys.create(Role.ADMIN, "ops")
    id_b, token_b = await keys.create(Role.AGENCY, "feed", agency="la:E09000001")
    await keys.revoke(id_a)
    listed = await keys.list()
    assert [k.key_id for k in listed] == [id_a, id_b]
    a, b = listed
    assert (a.name, a.role, a.agency, a.active) == ("ops", Role.ADMIN, None, False)
    assert (b.name, b.role, b.agency, b.active) == ("feed", Role.AGENCY, "la:E09000001", True)
    assert a.revoked_at is not None and a.revoked_at >= a.created_at
    text = repr(listed)
    for token in (token_a, token_b):
        assert _secret_of(token) not in text
    assert "sha256" not in text


@pytest.mark.parametrize(
    ("role", "name", "agency", "message"),
    [
        ("superuser", "x", None, "unknown role 'superuser'; roles are: agency, coordinator"),
        (Role.AGENCY, "feed", None, "agency is required for role agency"),
        (Role.ADMIN, "", None, "name must not be empty"),
        (Role.ADMIN, "   ", None, "name must not be empty"),
        (Role.ADMIN, "x" * 129, None, "name must be at most 128 characters"),
        (Role.ADMIN, "bad\nname", None, "name must contain printable characters only"),
        (Role.ADMIN, " padded", None, "name must not start or end with whitespace"),
        (Role.AGENCY, "feed", "", "agency must not be empty"),
    ],
)
async def test_bad_requests_for_keys_are_refused_with_a_reason(
    keys: ApiKeyStore, role: Role | str, name: str, agency: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        await keys.create(role, name, agency=agency)
    assert await keys.list() == []


async def test_a_name_of_128_printable_characters_is_accepted(keys: ApiKeyStore) -> None:
    _, token = await keys.create(Role.COORDINATOR, "é" * 128)
    principal = await keys.verify(token)
    assert principal is not None and principal.name == "é" * 128
