"""Signing in to the web pages through a real OpenID Connect provider on loopback (a
separate process with its own signing key and discovery document, enforcing PKCE): the
authorisation code flow with PKCE, the state, nonce and verifier checked, the ID token's
claims mapped to a hub role exactly as a bearer JWT's are, and a family sign-in linked to
a child once with an invitation code. No HTTP client is mocked: the hub fetches the
discovery document, the keys and the token from the provider process."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from hub.settings import Settings
from hub.web.oidc import PENDING_COOKIE, PENDING_SECONDS
from tests.e2e.test_team_access import SENCO
from tests.support.api import Api, running_api
from tests.support.oidc_provider import Provider, oidc_provider
from tests.support.web import Seeded, csrf_of, seed

HUB = "http://hub.test"
SENCO_CLAIMS = {
    "preferred_username": "sam.senco",
    "hub_role": "practitioner",
    "hub_agency": "education",
    "hub_practitioner_id": SENCO,
    "hub_policy_role": "senco",
    "hub_organisation": "8881234",
}


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[Provider]:
    with oidc_provider(tmp_path / "oidc-provider.log") as p:
        p.add_user("senco-sub", SENCO_CLAIMS)
        p.add_user("casey-sub", {"preferred_username": "casey", "hub_role": "coordinator"})
        p.add_user("parent-sub", {"preferred_username": "a-parent", "hub_role": "family"})
        p.add_user("nobody-sub", {"preferred_username": "nobody"})
        yield p


@pytest.fixture
async def api(tmp_path: Path, provider: Provider) -> AsyncIterator[Api]:
    settings = Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        oidc_issuer=provider.issuer,
        oidc_jwks_url=provider.jwks_url,
        oidc_client_id="tac-hub-web",
        oidc_client_secret="a-client-secret-for-tests",
        oidc_display_name="Test Council",
        _env_file=None,
    )
    async with running_api(settings) as a:
        yield a


@pytest.fixture
async def seeded(api: Api) -> Seeded:
    return await seed(api)


def browser(api: Api) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url=HUB)


async def start(client: httpx.AsyncClient, next_path: str = "/") -> str:
    """Press "Sign in with ..."; the provider's authorisation address it sends us to."""
    page = await client.get("/sign-in")
    assert 'data-testid="oidc-sign-in"' in page.text and "Sign in with Test Council" in page.text
    r = await client.get(f"/sign-in/oidc?next={next_path}")
    assert r.status_code == 303, r.text
    return str(r.headers["location"])


async def through_provider(
    client: httpx.AsyncClient, provider: Provider, sub: str, next_path: str = "/"
) -> httpx.Response:
    back = await provider.authorise(await start(client, next_path), sub)
    assert back.startswith(f"{HUB}/sign-in/oidc/callback?"), back
    return await client.get(back.removeprefix(HUB))


def target_of(signed_in: httpx.Response) -> str:
    assert signed_in.status_code == 200, signed_in.text
    assert 'http-equiv="refresh"' in signed_in.text
    return signed_in.text.split('data-testid="continue"')[0].rsplit('href="', 1)[1].split('"')[0]


async def test_a_practitioner_signs_in_with_the_provider_and_sees_their_children(
    api: Api, seeded: Seeded, provider: Provider
) -> None:
    client = browser(api)
    location = await start(client, f"/child/{seeded.child}")
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(f"{provider.issuer}/oauth2/authorize?")
    assert query["response_type"] == ["code"] and query["client_id"] == ["tac-hub-web"]
    assert query["redirect_uri"] == [f"{HUB}/sign-in/oidc/callback"]
    assert query["scope"] == ["openid profile"] and query["code_challenge_method"] == ["S256"]
    # the challenge is S256 of the verifier kept (sealed) in the pending cookie
    pending = api.app.state.web_sessions.open_value(
        client.cookies.get(PENDING_COOKIE), PENDING_SECONDS
    )
    assert query["state"] == [pending["state"]] and query["nonce"] == [pending["nonce"]]
    digest = hashlib.sha256(pending["verifier"].encode()).digest()
    assert query["code_challenge"] == [base64.urlsafe_b64encode(digest).rstrip(b"=").decode()]
    assert pending["verifier"] not in location

    back = await provider.authorise(location, "senco-sub")
    done = await client.get(back.removeprefix(HUB))
    assert target_of(done) == f"/child/{seeded.child}"
    cookie = done.headers.get_list("set-cookie")
    assert any(c.startswith("tac_hub_session=") and "SameSite=strict" in c for c in cookie)
    assert any(c.startswith(f"{PENDING_COOKIE}=") and "Max-Age=0" in c for c in cookie)
    child = await client.get(f"/child/{seeded.child}")
    assert child.status_code == 200 and "sam.senco (senco)" in child.text
    home = await client.get("/")
    assert home.status_code == 200 and f"/child/{seeded.child}" in home.text
    assert (await client.get(f"/our-child/{seeded.child}")).status_code == 403
    # the ID token itself is never kept: the session carries only the mapped claims
    session = api.app.state.web_sessions.open(client.cookies.get("tac_hub_session"))
    assert session.token is None and session.oidc["hub_practitioner_id"] == SENCO
    assert "nonce" not in session.oidc and "aud" not in session.oidc


async def test_a_coordinator_signs_in_and_their_caseload_is_their_preferred_username(
    api: Api, seeded: Seeded, provider: Provider
) -> None:
    client = browser(api)
    assert target_of(await through_provider(client, provider, "casey-sub")) == "/"
    home = await client.get("/")
    assert home.status_code == 200 and 'data-testid="caseload-row"' in home.text


async def test_a_family_sign_in_is_linked_to_the_child_once_with_the_invitation_code(
    api: Api, seeded: Seeded, provider: Provider
) -> None:
    client = browser(api)
    assert target_of(await through_provider(client, provider, "parent-sub")) == (
        "/sign-in/oidc/link"
    )
    assert (await client.get(f"/our-child/{seeded.child}")).status_code == 303
    page = await client.get("/sign-in/oidc/link")
    assert page.status_code == 200 and 'name="code"' in page.text
    r = await client.post("/sign-in/oidc/link", data={"code": seeded.invitation_code})
    assert r.status_code == 403  # no CSRF token
    r = await client.post(
        "/sign-in/oidc/link", data={"csrf_token": csrf_of(page.text), "code": "ABCD-EFGH-JKLM"}
    )
    assert r.status_code == 400 and 'href="#code"' in r.text and "not valid" in r.text
    r = await client.post(
        "/sign-in/oidc/link",
        data={"csrf_token": csrf_of(page.text), "code": seeded.invitation_code},
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
    home = await client.get("/")
    assert home.status_code == 303 and home.headers["location"] == f"/our-child/{seeded.child}"
    assert (await client.get(f"/our-child/{seeded.child}")).status_code == 200

    # next time, signing in is enough; the code itself is used up
    again = browser(api)
    assert target_of(await through_provider(again, provider, "parent-sub")) == "/"
    assert (await again.get(f"/our-child/{seeded.child}")).status_code == 200
    # the child's erasure unlinks the sign-in at the next request
    await api.app.state.auth.families.revoke_child(seeded.child)
    r = await again.get(f"/our-child/{seeded.child}")
    assert r.status_code == 303 and r.headers["location"] == "/sign-in/oidc/link"


async def test_a_sign_in_without_a_hub_role_is_refused_naming_the_claim(
    api: Api, seeded: Seeded, provider: Provider
) -> None:
    client = browser(api)
    r = await through_provider(client, provider, "nobody-sub")
    assert r.status_code == 403 and "does not give you a role in the hub" in r.text
    assert "hub_role" in r.text and 'href="#oidc"' in r.text
    assert (await client.get("/")).status_code == 303


async def test_state_nonce_and_code_are_checked_and_a_code_works_once(
    api: Api, seeded: Seeded, provider: Provider
) -> None:
    client = browser(api)
    back = await provider.authorise(await start(client), "senco-sub")
    path = back.removeprefix(HUB)
    query = parse_qs(urlsplit(back).query)

    # a callback in another browser (no pending sign-in) is refused
    other = browser(api)
    r = await other.get(path)
    assert r.status_code == 400 and "did not start here" in r.text
    # a state that is not the one this browser sent
    forged = path.replace(f"state={query['state'][0]}", "state=forged")
    r = await client.get(forged)
    assert r.status_code == 400 and "did not start here" in r.text
    # the provider's refusal
    r = await client.get(f"/sign-in/oidc/callback?state={query['state'][0]}&error=access_denied")
    assert r.status_code == 400 and "You did not sign in with Test Council" in r.text
    # a nonce that is not the one the ID token carries
    codec = api.app.state.web_sessions
    pending = codec.open_value(client.cookies.get(PENDING_COOKIE), PENDING_SECONDS)
    wrong_nonce = browser(api)
    sealed = codec.seal_value({**pending, "nonce": "another-nonce"})
    wrong_nonce.cookies.set(PENDING_COOKIE, sealed, path="/sign-in/oidc")
    r = await wrong_nonce.get(path)
    assert r.status_code == 400 and "ID token did not check out" in r.text
    # the code was used up by that exchange: the right browser cannot use it either
    r = await client.get(path)
    assert r.status_code == 400 and "did not accept the sign-in" in r.text
    assert (await client.get("/")).status_code == 303

    # a fresh sign-in works
    assert target_of(await through_provider(client, provider, "senco-sub")) == "/"
    assert (await client.get("/")).status_code == 200


async def test_the_provider_refuses_a_code_sent_without_the_matching_pkce_verifier(
    api: Api, seeded: Seeded, provider: Provider
) -> None:
    client = browser(api)
    back = await provider.authorise(await start(client), "senco-sub")
    codec = api.app.state.web_sessions
    pending = codec.open_value(client.cookies.get(PENDING_COOKIE), PENDING_SECONDS)
    thief = browser(api)  # has the code and the state, not the verifier
    sealed = codec.seal_value({**pending, "verifier": "x" * 64})
    thief.cookies.set(PENDING_COOKIE, sealed, path="/sign-in/oidc")
    r = await thief.get(back.removeprefix(HUB))
    assert r.status_code == 400 and "did not accept the sign-in" in r.text
    assert (await thief.get("/")).status_code == 303
    # the browser that holds the verifier completes the same code
    assert target_of(await client.get(back.removeprefix(HUB))) == "/"
    assert (await client.get("/")).status_code == 200


async def test_an_unreachable_provider_is_a_page_saying_so(tmp_path: Path) -> None:
    from tests.support.broker import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    settings = Settings(  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        oidc_issuer=dead,
        oidc_jwks_url=f"{dead}/jwks",
        oidc_client_id="tac-hub-web",
        _env_file=None,
    )
    async with running_api(settings) as api:
        client = browser(api)
        await client.get("/sign-in")
        r = await client.get("/sign-in/oidc")
        assert r.status_code == 503 and "cannot be reached" in r.text


OIDC_ROUTES = {"/sign-in/oidc", "/sign-in/oidc/callback", "/sign-in/oidc/link"}


def test_the_oidc_routes_are_all_tested_here() -> None:
    from hub.web.oidc import router

    assert {r.path for r in router.routes} == OIDC_ROUTES


async def test_the_link_page_is_for_an_unlinked_family_sign_in_only(
    api: Api, seeded: Seeded, provider: Provider
) -> None:
    anonymous = browser(api)
    page = await anonymous.get("/sign-in")
    assert (await anonymous.get("/sign-in/oidc/link")).status_code == 401
    r = await anonymous.post(
        "/sign-in/oidc/link", data={"csrf_token": csrf_of(page.text), "code": "ABCD-EFGH-JKLM"}
    )
    assert r.status_code == 401
    for sub in ("casey-sub", "senco-sub"):  # signed in with a role: nothing to link
        client = browser(api)
        await through_provider(client, provider, sub)
        assert (await client.get("/sign-in/oidc/link")).headers["location"] == "/"
    key_holder = browser(api)
    page = await key_holder.get("/sign-in")
    r = await key_holder.post(
        "/sign-in",
        data={"csrf_token": csrf_of(page.text), "credential": seeded.tokens["casey"]},
    )
    assert r.status_code == 303
    assert (await key_holder.get("/sign-in/oidc/link")).status_code == 303


async def test_without_a_client_id_there_is_no_provider_sign_in(tmp_path: Path) -> None:
    from tests.support.api import embedded

    async with running_api(embedded(tmp_path)) as api:
        client = browser(api)
        page = await client.get("/sign-in")
        assert 'data-testid="oidc-sign-in"' not in page.text
        assert (await client.get("/sign-in/oidc")).status_code == 404
        assert (await client.get("/sign-in/oidc/callback?code=x&state=y")).status_code == 404


async def test_guessing_invitation_codes_at_the_link_page_is_throttled(
    api: Api, seeded: Seeded, provider: Provider
) -> None:
    from hub.web.throttle import MAX_FAILURES

    client = browser(api)
    await through_provider(client, provider, "parent-sub")
    page = await client.get("/sign-in/oidc/link")
    token = csrf_of(page.text)
    for _ in range(MAX_FAILURES - 1):
        r = await client.post(
            "/sign-in/oidc/link", data={"csrf_token": token, "code": "ABCD-EFGH-JKLM"}
        )
        assert r.status_code == 400
    r = await client.post(
        "/sign-in/oidc/link", data={"csrf_token": token, "code": "ABCD-EFGH-JKLM"}
    )
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert 'href="#code"' in r.text and "too many failed sign-ins" in r.text
    r = await client.post(
        "/sign-in/oidc/link", data={"csrf_token": token, "code": seeded.invitation_code}
    )
    assert r.status_code == 429  # even the right code waits


# ----------------------------------------------------- private_key_jwt (GOV.UK One Login)


def _key_pair(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """An RSA key pair as PEM files: (private, public)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = tmp_path / f"{name}.pem", tmp_path / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


ONE_LOGIN_PARAMS = {"vtr": '["Cl.Cm"]', "ui_locales": "en"}


async def test_a_client_with_a_key_signs_its_token_requests_as_one_login_requires(
    tmp_path: Path,
) -> None:
    """With HUB_OIDC_CLIENT_KEY_FILE the hub authenticates to the token endpoint with a
    signed client assertion (private_key_jwt) and sends the configured authorisation
    parameters (One Login's `vtr`, `ui_locales`); a hub holding another key, or only a
    secret, is refused by the provider and signs nobody in."""
    private, public = _key_pair(tmp_path, "client")
    other, _ = _key_pair(tmp_path, "other")
    with oidc_provider(
        tmp_path / "oidc-provider.log", client_id="tac-hub-web", client_public_key=public
    ) as provider:
        provider.add_user("senco-sub", SENCO_CLAIMS)

        def settings(name: str, **auth: object) -> Settings:
            return Settings(  # type: ignore[call-arg]
                data_dir=tmp_path / name, oidc_issuer=provider.issuer,
                oidc_jwks_url=provider.jwks_url, oidc_client_id="tac-hub-web",
                oidc_display_name="Test Council", oidc_auth_params=ONE_LOGIN_PARAMS,
                _env_file=None, **auth,
            )  # fmt: skip

        async with running_api(settings("signed", oidc_client_key_file=private)) as api:
            await seed(api)
            client = browser(api)
            assert target_of(await through_provider(client, provider, "senco-sub")) == "/"
            assert (await client.get("/")).status_code == 200
            sent = provider.authorisation_requests()[-1]
            assert sent["vtr"] == ['["Cl.Cm"]'] and sent["ui_locales"] == ["en"]
        for name, auth in (
            ("wrong-key", {"oidc_client_key_file": other}),
            ("secret-only", {"oidc_client_secret": "a-client-secret-for-tests"}),
        ):
            async with running_api(settings(name, **auth)) as api:
                client = browser(api)
                r = await through_provider(client, provider, "senco-sub")
                assert r.status_code == 400 and "did not accept the sign-in" in r.text, name
                assert (await client.get("/")).status_code == 303, name


def test_a_client_key_or_parameter_the_hub_cannot_use_is_one_clear_error(
    tmp_path: Path,
) -> None:
    from hub.web.oidc import OidcSignIn

    _, public = _key_pair(tmp_path, "client")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    cases = (
        ({"oidc_client_key_file": tmp_path / "missing.pem"}, "cannot read"),
        ({"oidc_client_key_file": garbage}, "is not an RSA key in PEM"),
        ({"oidc_client_key_file": public}, "holds a public key"),
        ({"oidc_auth_params": {"state": "x", "vtr": "[]"}}, "state is set by the hub itself"),
    )
    for extra, words in cases:
        s = Settings(  # type: ignore[call-arg]
            data_dir=tmp_path / "data", oidc_issuer="https://issuer.example",
            oidc_jwks_url="https://issuer.example/jwks",
            oidc_client_id="tac-hub-web", _env_file=None, **extra,
        )  # fmt: skip
        with pytest.raises(ValueError, match=words):
            OidcSignIn(s)
