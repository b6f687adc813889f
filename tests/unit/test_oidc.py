"""OIDC bearer tokens: JWTs signed with a real RSA key, keys served by a real JWKS endpoint.

`JwksServer` is a `http.server` on a free loopback port, in a thread; the tokens are
signed with PyJWT. Nothing here is mocked: the verifier fetches the key set over HTTP.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from hub.auth import AuthError, OidcVerifier, Principal, Role, create_authenticator
from hub.auth.memory import MemoryApiKeys, MemoryFamilyInvitations
from hub.settings import Settings

ISSUER = "https://login.example-la.gov.uk/realms/send"
AUDIENCE = "tac-hub"


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 with signing keys we hold; counts its fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}  # kid -> private key
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                body = json.dumps(server.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def add_rsa_key(self, kid: str) -> rsa.RSAPrivateKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys[kid] = key
        return key

    def add_ec_key(self, kid: str) -> ec.EllipticCurvePrivateKey:
        key = ec.generate_private_key(ec.SECP256R1())
        self.keys[kid] = key
        return key

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid, key in self.keys.items():
            if isinstance(key, rsa.RSAPrivateKey):
                jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
                jwk["alg"] = "RS256"
            else:
                jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
                jwk["alg"] = "ES256"
            out.append({**jwk, "kid": kid, "use": "sig"})
        return {"keys": out}

    def settings(self, tmp_path: Path, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path,
            "oidc_issuer": ISSUER,
            "oidc_jwks_url": self.url,
            "oidc_audience": AUDIENCE,
        }
        values.update(overrides)
        return Settings(**values)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "f3a1c2d4-0000-4000-8000-000000000001",
        "preferred_username": "sam.coordinator",
        "hub_role": "coordinator",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Any, kid: str | None, payload: dict[str, Any], alg: str = "RS256") -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with JwksServer() as server:
        server.add_rsa_key("k1")
        yield server


@pytest.fixture
def verifier(jwks: JwksServer, tmp_path: Path) -> OidcVerifier:
    return OidcVerifier(jwks.settings(tmp_path))


async def refused(verifier: OidcVerifier, token: str) -> AuthError:
    with pytest.raises(AuthError) as caught:
        await verifier.verify(token)
    err = caught.value
    assert token not in err.reason
    signature = token.split(".")[-1]
    assert not signature or signature not in err.reason
    return err


# -- accepted ---------------------------------------------------------------------------


async def test_a_valid_token_is_the_principal_it_names(
    jwks: JwksServer, verifier: OidcVerifier
) -> None:
    token = sign(jwks.keys["k1"], "k1", claims())
    assert await verifier.verify(token) == Principal(
        name="sam.coordinator", role=Role.COORDINATOR, agency=None, key_id=None, via="oidc"
    )


async def test_the_role_map_translates_the_first_claim_value_that_maps(
    jwks: JwksServer, tmp_path: Path
) -> None:
    verifier = OidcVerifier(
        jwks.settings(
            tmp_path,
            oidc_role_claim="groups",
            oidc_agency_claim="org",
            oidc_role_map={"SEND-Publishers": "agency", "SEND-Team": "coordinator"},
        )
    )
    token = sign(
        jwks.keys["k1"],
        "k1",
        claims(hub_role=None, groups=["Staff", "SEND-Publishers", "SEND-Team"], org="nhs:RX1"),
    )
    principal = await verifier.verify(token)
    assert (principal.role, principal.agency, principal.via) == (Role.AGENCY, "nhs:RX1", "oidc")


async def test_an_empty_role_map_takes_claim_values_as_role_names(
    jwks: JwksServer, verifier: OidcVerifier
) -> None:
    token = sign(jwks.keys["k1"], "k1", claims(hub_role="ig_auditor"))
    assert (await verifier.verify(token)).role is Role.IG_AUDITOR


async def test_a_dotted_role_claim_reaches_into_nested_claims(
    jwks: JwksServer, tmp_path: Path
) -> None:
    verifier = OidcVerifier(jwks.settings(tmp_path, oidc_role_claim="realm_access.roles"))
    token = sign(
        jwks.keys["k1"], "k1", claims(hub_role=None, realm_access={"roles": ["offline", "admin"]})
    )
    assert (await verifier.verify(token)).role is Role.ADMIN


async def test_the_name_falls_back_to_the_subject(jwks: JwksServer, verifier: OidcVerifier) -> None:
    token = sign(jwks.keys["k1"], "k1", claims(preferred_username=None))
    assert (await verifier.verify(token)).name == "f3a1c2d4-0000-4000-8000-000000000001"


async def test_no_audience_configured_accepts_tokens_with_or_without_aud(
    jwks: JwksServer, tmp_path: Path
) -> None:
    verifier = OidcVerifier(jwks.settings(tmp_path, oidc_audience=None))
    for aud in (None, "someone-else"):
        token = sign(jwks.keys["k1"], "k1", claims(aud=aud))
        assert (await verifier.verify(token)).role is Role.COORDINATOR


async def test_an_ec_key_verifies_es256_tokens(jwks: JwksServer, verifier: OidcVerifier) -> None:
    ec_key = jwks.add_ec_key("ec1")
    token = sign(ec_key, "ec1", claims(), alg="ES256")
    assert (await verifier.verify(token)).role is Role.COORDINATOR


async def test_the_key_set_is_fetched_once_and_cached(
    jwks: JwksServer, verifier: OidcVerifier
) -> None:
    for _ in range(5):
        await verifier.verify(sign(jwks.keys["k1"], "k1", claims()))
    assert jwks.fetches == 1


async def test_forged_key_ids_do_not_hammer_the_issuer(
    jwks: JwksServer, verifier: OidcVerifier
) -> None:
    await verifier.verify(sign(jwks.keys["k1"], "k1", claims()))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for n in range(5):
        await refused(verifier, sign(stranger, f"forged-{n}", claims()))
    # PyJWT refetches for an unknown kid at most once per 30 s after a fetch.
    assert jwks.fetches == 1


async def test_a_key_published_before_first_use_is_found(
    jwks: JwksServer, verifier: OidcVerifier
) -> None:
    new_key = jwks.add_rsa_key("k2")
    assert (await verifier.verify(sign(new_key, "k2", claims()))).role is Role.COORDINATOR
    assert (await verifier.verify(sign(jwks.keys["k1"], "k1", claims()))).role is Role.COORDINATOR
    assert jwks.fetches == 1


# -- refused ----------------------------------------------------------------------------


async def test_an_expired_token_is_refused(jwks: JwksServer, verifier: OidcVerifier) -> None:
    now = int(time.time())
    err = await refused(
        verifier,
        sign(jwks.keys["k1"], "k1", claims(iat=now - 7200, nbf=now - 7200, exp=now - 3600)),
    )
    assert (err.status, err.reason) == (401, "JWT has expired")


async def test_a_token_not_yet_valid_is_refused(jwks: JwksServer, verifier: OidcVerifier) -> None:
    now = int(time.time())
    err = await refused(verifier, sign(jwks.keys["k1"], "k1", claims(nbf=now + 3600)))
    assert err.reason == "JWT is not valid yet (nbf)"


async def test_a_token_without_exp_is_refused(jwks: JwksServer, verifier: OidcVerifier) -> None:
    err = await refused(verifier, sign(jwks.keys["k1"], "k1", claims(exp=None)))
    assert err.reason == "JWT lacks the required exp claim"


async def test_a_token_from_another_issuer_is_refused(
    jwks: JwksServer, verifier: OidcVerifier
) -> None:
    err = await refused(verifier, sign(jwks.keys["k1"], "k1", claims(iss="https://evil.test")))
    assert (err.status, err.reason) == (401, "JWT issuer is not the configured issuer")


async def test_a_token_for_another_audience_is_refused(
    jwks: JwksServer, verifier: OidcVerifier
) -> None:
    err = await refused(verifier, sign(jwks.keys["k1"], "k1", claims(aud="another-service")))
    assert (err.status, err.reason) == (401, "JWT audience does not include this hub")
    err = await refused(verifier, sign(jwks.keys["k1"], "k1", claims(aud=None)))
    assert err.reason == "JWT lacks the required aud claim"


async def test_a_token_signed_with_another_key_under_a_published_kid_is_refused(
    jwks: JwksServer, verifier: OidcVerifier
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    err = await refused(verifier, sign(stranger, "k1", claims()))
    assert (err.status, err.reason) == (401, "JWT signature does not verify")


async def test_a_token_naming_an_unpublished_kid_is_refused(
    jwks: JwksServer, verifier: OidcVerifier
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    err = await refused(verifier, sign(stranger, "not-published", claims()))
    assert (err.status, err.reason) == (401, "JWT is signed with a key the issuer does not publish")
    err = await refused(verifier, sign(stranger, None, claims()))
    assert err.reason == "JWT header has no kid naming the issuer's signing key"


async def test_an_unmapped_role_is_refused(jwks: JwksServer, tmp_path: Path) -> None:
    verifier = OidcVerifier(jwks.settings(tmp_path, oidc_role_map={"SEND-Team": "coordinator"}))
    # With a map, claim values are not taken as role names, even when they are one.
    for role in ("admin", ["Staff", "Visitors"], "SEND-Other"):
        err = await refused(verifier, sign(jwks.keys["k1"], "k1", claims(hub_role=role)))
        assert (err.status, err.reason) == (401, "JWT hub_role claim maps to no hub role")


async def test_a_token_without_a_role_claim_is_refused(
    jwks: JwksServer, verifier: OidcVerifier
) -> None:
    err = await refused(verifier, sign(jwks.keys["k1"], "k1", claims(hub_role=None)))
    assert err.reason == "JWT has no hub_role claim"


async def test_role_agency_without_an_agency_claim_is_refused(
    jwks: JwksServer, verifier: OidcVerifier
) -> None:
    err = await refused(verifier, sign(jwks.keys["k1"], "k1", claims(hub_role="agency")))
    assert err.reason == "JWT grants role agency but has no hub_agency claim"
    ok = sign(jwks.keys["k1"], "k1", claims(hub_role="agency", hub_agency="school:100001"))
    assert (await verifier.verify(ok)).agency == "school:100001"


async def test_an_agency_token_carries_its_sender_kind_and_organisation_codes(
    jwks: JwksServer, tmp_path: Path
) -> None:
    verifier = OidcVerifier(
        jwks.settings(tmp_path, oidc_sender_claim="ext.kind", oidc_organisations_claim="orgs")
    )
    agency = {"hub_role": "agency", "hub_agency": "oak-school"}

    def token(**extra: Any) -> str:
        return sign(jwks.keys["k1"], "k1", claims(**agency, **extra))

    listed = await verifier.verify(token(ext={"kind": "education"}, orgs=["8881234", "100001"]))
    assert (listed.sender, listed.organisations) == ("education", ("8881234", "100001"))
    spaced = await verifier.verify(token(ext={"kind": "education"}, orgs="8881234 100001"))
    assert spaced.organisations == ("8881234", "100001")
    bare = await verifier.verify(token())  # authenticates; the ingest routes refuse it
    assert (bare.sender, bare.organisations) == (None, ())
    for bad in ({"orgs": ["RR 8"]}, {"orgs": [7]}, {"ext": {"kind": "Health!"}}):
        err = await refused(verifier, token(**bad))
        assert err.reason.startswith("JWT ext.kind or orgs claim"), (bad, err.reason)
    # only an agency's token publishes: the claims mean nothing on another role's
    other = await verifier.verify(
        sign(jwks.keys["k1"], "k1", claims(hub_role="coordinator", orgs=["8881234"]))
    )
    assert (other.sender, other.organisations) == (None, ())


async def test_a_practitioner_token_carries_their_team_identity(
    jwks: JwksServer, verifier: OidcVerifier
) -> None:
    practitioner = {"hub_role": "practitioner", "hub_agency": "health"}
    bare = sign(jwks.keys["k1"], "k1", claims(**practitioner))
    err = await refused(verifier, bare)
    assert err.reason == (
        "JWT grants role practitioner but has no hub_practitioner_id, hub_policy_role claim"
    )
    full = claims(
        **practitioner,
        hub_practitioner_id="gmc:C9900010",
        hub_policy_role="paediatrician",
        hub_organisation="RZ9",
    )
    principal = await verifier.verify(sign(jwks.keys["k1"], "k1", full))
    assert (principal.practitioner_id, principal.viewer_role, principal.organisation) == (
        "gmc:C9900010",
        "paediatrician",
        "RZ9",
    )


async def test_a_family_token_is_refused_a_family_key_comes_from_an_invitation(
    jwks: JwksServer, verifier: OidcVerifier
) -> None:
    err = await refused(verifier, sign(jwks.keys["k1"], "k1", claims(hub_role="family")))
    assert "invitation" in err.reason


async def test_an_unsigned_token_alg_none_is_refused(
    jwks: JwksServer, verifier: OidcVerifier
) -> None:
    token = jwt.encode(claims(), "", algorithm="none", headers={"kid": "k1"})
    err = await refused(verifier, token)
    assert (err.status, err.reason) == (401, "JWT algorithm is not allowed; accepted: RS256, ES256")
    assert jwks.fetches == 0  # refused before any key lookup


async def test_an_hmac_token_keyed_with_the_public_key_is_refused(
    jwks: JwksServer, verifier: OidcVerifier
) -> None:
    # The classic algorithm-confusion forgery: HS256 with the issuer's public key as secret.
    public_pem = (
        jwks.keys["k1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    err = await refused(verifier, f"{signing_input}.{b64(mac)}")
    assert err.reason.startswith("JWT algorithm is not allowed")


async def test_a_token_whose_alg_differs_from_its_key_is_refused(
    jwks: JwksServer, verifier: OidcVerifier
) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    err = await refused(verifier, sign(ec_key, "k1", claims(), alg="ES256"))  # k1 is RSA
    assert err.reason == "JWT algorithm does not match the issuer's key"


async def test_garbage_is_refused_as_not_a_jwt(verifier: OidcVerifier) -> None:
    for junk in ("abc", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30"):
        err = await refused(verifier, junk)
        assert err.reason == "the bearer token is neither an API key nor a well-formed JWT"


async def test_an_unreachable_key_set_is_a_503_not_a_401(tmp_path: Path) -> None:
    with JwksServer() as server:
        key = server.add_rsa_key("k1")
        url = server.url  # the server is gone once this block ends
    verifier = OidcVerifier(
        Settings(data_dir=tmp_path, oidc_issuer=ISSUER, oidc_jwks_url=url, oidc_audience=None)
    )
    err = await refused(verifier, sign(key, "k1", claims()))
    assert (err.status, err.reason) == (503, "the issuer's signing keys cannot be fetched")


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"oidc_algorithms": ["RS256", "none"]}, "asymmetric JWS algorithms only"),
        ({"oidc_algorithms": ["HS256"]}, "asymmetric JWS algorithms only"),
        ({"oidc_algorithms": []}, "asymmetric JWS algorithms only"),
        ({"oidc_role_map": {"Staff": "superuser"}}, "maps to unknown roles"),
    ],
)
def test_unsafe_or_wrong_oidc_settings_are_refused_at_start(
    jwks: JwksServer, tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        OidcVerifier(jwks.settings(tmp_path, **overrides))


async def test_the_authenticator_routes_tokens_by_kind(jwks: JwksServer, tmp_path: Path) -> None:
    keys = MemoryApiKeys()
    with_oidc = await create_authenticator(
        jwks.settings(tmp_path), keys, MemoryFamilyInvitations(keys)
    )
    without = await create_authenticator(Settings(data_dir=tmp_path), keys, None)
    _, api_key = await with_oidc.keys.create(Role.ADMIN, "ops")
    token = sign(jwks.keys["k1"], "k1", claims())

    assert (await with_oidc.authenticate(f"Bearer {api_key}")).via == "api_key"
    assert (await without.authenticate(f"Bearer {api_key}")).via == "api_key"
    assert (await with_oidc.authenticate(f"bearer {token}")).via == "oidc"
    with pytest.raises(AuthError, match="OIDC is not configured"):
        await without.authenticate(f"Bearer {token}")
    for header, reason in [
        (None, "missing Authorization header"),
        ("", "missing Authorization header"),
        (f"Basic {api_key}", "Authorization scheme must be Bearer"),
        ("Bearer", "Bearer token is empty"),
        ("Bearer   ", "Bearer token is empty"),
        (f"Bearer {api_key} extra", "Bearer token is malformed"),
        ("Bearer thk_nope_nope", "unknown or revoked API key"),
    ]:
        with pytest.raises(AuthError) as caught:
            await with_oidc.authenticate(header)
        assert caught.value.reason.startswith(reason), header
        assert caught.value.status == 401
        assert api_key not in caught.value.reason


async def test_a_jwks_url_without_an_issuer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="HUB_OIDC_ISSUER is required"):
        await create_authenticator(
            Settings(data_dir=tmp_path, oidc_jwks_url="http://127.0.0.1:9/jwks"),
            MemoryApiKeys(),
            None,
        )
