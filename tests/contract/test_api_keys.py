"""The `ApiKeys` contract: one suite, run unchanged against memory, SQLite and
PostgreSQL; then what the SQL stores keep (the `api_key` row), and that a key stored
before the port moved to `hub.store` still authenticates."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.auth import ApiKeys, Principal, Role
from hub.auth.keys import Identity, Publishing, sender_of
from hub.auth.memory import MemoryApiKeys
from hub.store import ReadStore
from hub.store.api_keys import SqlApiKeys
from tests.support.stores import started_store


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def keys(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ApiKeys]:
    if request.param == "memory":
        yield MemoryApiKeys()
        return
    async with started_store(request.param, request, tmp_path) as store:
        yield SqlApiKeys(store)


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ReadStore]:
    async with started_store(request.param, request, tmp_path) as s:
        yield s


def _secret_of(token: str) -> str:
    return token.split("_", 2)[2]


async def test_a_created_key_verifies_as_its_principal(keys: ApiKeys) -> None:
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


async def test_roles_may_be_given_by_name(keys: ApiKeys) -> None:
    _, token = await keys.create("coordinator", "SEND team")
    principal = await keys.verify(token)
    assert principal is not None
    assert principal.role is Role.COORDINATOR
    assert principal.agency is None


async def test_each_key_is_distinct(keys: ApiKeys) -> None:
    a = await keys.create(Role.ADMIN, "ops")
    b = await keys.create(Role.ADMIN, "ops")
    assert a[0] != b[0] and _secret_of(a[1]) != _secret_of(b[1])


async def test_a_wrong_secret_does_not_verify(keys: ApiKeys) -> None:
    key_id, token = await keys.create(Role.ADMIN, "ops")
    secret = _secret_of(token)
    flipped = ("A" if secret[0] != "A" else "B") + secret[1:]
    assert await keys.verify(f"thk_{key_id}_{flipped}") is None
    assert await keys.verify(token[:-1]) is None
    assert await keys.verify(token + "x") is None


async def test_a_secret_does_not_verify_under_another_key_id(keys: ApiKeys) -> None:
    _, token_a = await keys.create(Role.ADMIN, "a")
    key_b, _ = await keys.create(Role.ADMIN, "b")
    assert await keys.verify(f"thk_{key_b}_{_secret_of(token_a)}") is None


async def test_unknown_and_malformed_tokens_do_not_verify(keys: ApiKeys) -> None:
    _, token = await keys.create(Role.ADMIN, "ops")
    assert await keys.verify(f"thk_{'0' * 16}_{_secret_of(token)}") is None
    for junk in ("", "thk_", "thk_nope_nope", "thk_x_y_z", "Bearer " + token, token.upper()):
        assert await keys.verify(junk) is None, junk


async def test_a_revoked_key_stops_working_at_once(keys: ApiKeys) -> None:
    key_id, token = await keys.create(Role.COORDINATOR, "caseworker laptop")
    _, other = await keys.create(Role.COORDINATOR, "another")
    assert await keys.verify(token) is not None
    assert await keys.revoke(key_id) == 1
    assert await keys.verify(token) is None
    assert await keys.verify(other) is not None
    assert await keys.revoke(key_id) == 0  # already revoked


async def test_revoking_by_name_revokes_every_active_key_of_that_name(keys: ApiKeys) -> None:
    _, one = await keys.create(Role.AGENCY, "feed", agency="nhs:RX1")
    _, two = await keys.create(Role.AGENCY, "feed", agency="nhs:RX1")
    _, keep = await keys.create(Role.AGENCY, "other feed", agency="nhs:RX1")
    assert await keys.revoke("feed") == 2
    assert await keys.verify(one) is None
    assert await keys.verify(two) is None
    assert await keys.verify(keep) is not None
    assert await keys.revoke("no such key") == 0


async def test_the_secret_is_not_stored_in_plain_text(store: ReadStore) -> None:
    key_id, token = await SqlApiKeys(store).create(Role.IG_AUDITOR, "IG lead")
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


async def test_the_listing_shows_keys_without_secrets(keys: ApiKeys) -> None:
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
    keys: ApiKeys, role: Role | str, name: str, agency: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        await keys.create(role, name, agency=agency)
    assert await keys.list() == []


async def test_a_name_of_128_printable_characters_is_accepted(keys: ApiKeys) -> None:
    _, token = await keys.create(Role.COORDINATOR, "é" * 128)
    principal = await keys.verify(token)
    assert principal is not None and principal.name == "é" * 128


async def test_an_agency_key_publishes_as_its_sender_and_codes(keys: ApiKeys) -> None:
    key_id, token = await keys.create(
        Role.AGENCY, "Riverside MIS", "school:100001", publishing=Publishing("school", ("B2", "A1"))
    )
    _, gone = await keys.create(
        Role.AGENCY, "old feed", "school:9", publishing=Publishing("school", ("Z9",))
    )
    await keys.create(Role.AGENCY, "unbound feed", "nhs:RX1")
    await keys.revoke("old feed")
    assert await keys.verify(gone) is None
    principal = await keys.verify(token)
    assert principal is not None
    assert (principal.sender, principal.organisations) == ("school", ("A1", "B2"))
    assert await keys.bound_codes() == frozenset({"A1", "B2"})
    infos = {k.name: k for k in await keys.list()}
    assert infos["Riverside MIS"].publishing == Publishing("school", ("A1", "B2"))
    assert infos["unbound feed"].publishing == Publishing()

    assert await keys.publisher("Riverside MIS") == await keys.publisher(key_id)
    publisher = await keys.publisher(key_id)
    assert (publisher.role, publisher.agency, publisher.key_id) == (
        Role.AGENCY,
        "school:100001",
        key_id,
    )
    assert publisher.organisations == ("A1", "B2")
    bound = await sender_of(keys, publisher)
    assert bound.organisations == frozenset({"A1", "B2"})
    unbound = await sender_of(
        keys, await keys.publisher("unbound feed"), also_bound=frozenset({"K1"})
    )
    assert unbound.taken_elsewhere == frozenset({"A1", "B2", "K1"})


async def test_a_publisher_is_one_active_agency_key(keys: ApiKeys) -> None:
    await keys.create(Role.AGENCY, "twin", "school:1")
    await keys.create(Role.AGENCY, "twin", "school:1")
    await keys.create(Role.COORDINATOR, "casey")
    retired, _ = await keys.create(Role.AGENCY, "retired", "school:2")
    await keys.revoke(retired)
    with pytest.raises(LookupError, match="no active API key is named 'nobody'"):
        await keys.publisher("nobody")
    with pytest.raises(LookupError, match="no active API key is named 'retired'"):
        await keys.publisher("retired")
    with pytest.raises(LookupError, match="several active keys are named 'twin': use a key id"):
        await keys.publisher("twin")
    with pytest.raises(LookupError, match="key 'casey' is a coordinator key, not an agency's"):
        await keys.publisher("casey")


async def test_revoking_a_child_revokes_the_keys_bound_to_them(keys: ApiKeys) -> None:
    _, parent = await keys.create(
        Role.FAMILY, "family:1", identity=Identity(child_id="hc-1", capacity="parent_with_pr")
    )
    _, young = await keys.create(
        Role.FAMILY, "family:2", identity=Identity(child_id="hc-1", capacity="young_person")
    )
    _, other = await keys.create(
        Role.FAMILY, "family:3", identity=Identity(child_id="hc-2", capacity="parent_with_pr")
    )
    principal = await keys.verify(parent)
    assert principal is not None and principal.children == ("hc-1",)
    assert await keys.revoke_child("hc-1") == 2
    assert await keys.verify(parent) is None and await keys.verify(young) is None
    assert await keys.verify(other) is not None
    assert await keys.revoke_child("hc-1") == 0


# -- what the SQL stores keep -------------------------------------------------------------
_OLD_INSERT = (
    "INSERT INTO api_key (key_id, name, role, agency, secret_hash, created_at,"
    " revoked_at, practitioner_id, policy_role, organisation, child_id, capacity,"
    " sender, organisations)"
    " VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?)"
)
"""The statement `hub.auth.keys.ApiKeyStore.create` wrote rows with before the port moved."""


async def test_a_key_stored_before_the_move_still_authenticates(store: ReadStore) -> None:
    # A row exactly as the pre-move code wrote it, with its digest spelled out: the
    # schema is untouched by the move, so keys already issued keep working.
    key_id, secret = "0123456789abcdef", "S" * 43
    digest = "sha256:ce303c73658778b38eb561d9a2ce9691ce5d3fbab758909a967c1156ed98be0d"
    assert digest == "sha256:" + hashlib.sha256(f"{key_id}:{secret}".encode()).hexdigest()
    async with store.transaction() as tx:
        await tx.execute(
            _OLD_INSERT,
            (key_id, "Riverside MIS", "agency", "school:100001", digest,
             "2026-01-05T09:00:00.000001+00:00", None, None, None, None, None,
             "school", "A1 B2"),
        )  # fmt: skip
    keys = SqlApiKeys(store)
    token = f"thk_{key_id}_{secret}"
    assert await keys.verify(token) == Principal(
        name="Riverside MIS",
        role=Role.AGENCY,
        agency="school:100001",
        key_id=key_id,
        via="api_key",
        sender="school",
        organisations=("A1", "B2"),
    )
    assert await keys.verify(f"thk_{key_id}_{'T' * 43}") is None
    [info] = await keys.list()
    assert (info.key_id, info.created_at.isoformat()) == (
        key_id,
        "2026-01-05T09:00:00.000001+00:00",
    )
    assert (await keys.publisher("Riverside MIS")).key_id == key_id
    assert await keys.revoke(key_id) == 1
    assert await keys.verify(token) is None


async def test_a_new_key_is_stored_as_before_the_move(store: ReadStore) -> None:
    keys = SqlApiKeys(store)
    key_id, token = await keys.create(
        Role.AGENCY, "feed", "school:1", publishing=Publishing("school", ("B2", "A1", "A1"))
    )
    row = await store.fetchone(
        "SELECT key_id, name, role, agency, secret_hash, revoked_at, practitioner_id,"
        " policy_role, organisation, child_id, capacity, sender, organisations, created_at"
        " FROM api_key"
    )
    assert row is not None
    secret = _secret_of(token)
    digest = "sha256:" + hashlib.sha256(f"{key_id}:{secret}".encode()).hexdigest()
    assert tuple(row[:13]) == (
        key_id, "feed", "agency", "school:1", digest, None, None, None, None, None, None,
        "school", "A1 B2",
    )  # fmt: skip
    assert str(row[13]).endswith("+00:00") and len(str(row[13])) == 32  # microseconds, UTC
