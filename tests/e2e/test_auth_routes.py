"""Every route of the real app refuses missing, malformed, unknown and revoked credentials
with 401, and callers of the wrong role with 403; `/whoami` answers each role.

Routes are enumerated from `app.routes`, so a route added later is checked without
editing this file; a route with no auth dependency fails here unless it is listed in
`PUBLIC` with its reason. The roles a route admits are read from its `require_roles`
dependency and then confirmed over HTTP (admitted roles are never refused, the others
always are). The app runs its real lifespan on a SQLite hub in a temporary directory and
is driven through httpx's ASGI transport (which does not run lifespans itself).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastapi.routing
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI
from fastapi.routing import APIRoute
from structlog.testing import capture_logs

from hub.api.app import create_app
from hub.api.auth import current_principal, require_roles, route_roles
from hub.auth import Authenticator, Principal, Role
from hub.auth.keys import Identity
from hub.settings import Settings
from hub.web import page_routers
from tests.unit.test_oidc import JwksServer, claims, sign

# Routes that answer without credentials, and why. Anything else must authenticate.
PUBLIC: dict[str, str] = {
    "/healthz": "liveness probe for orchestrators; answers only 'ok'",
    "/readyz": "readiness probe; reports backend reachability and lag, no records",
    # The API description is public: it holds route shapes, not data, and integrators
    # need it before they hold a credential. Each protected operation lists the scheme.
    "/openapi.json": "the OpenAPI document",
    "/docs": "Swagger UI over the OpenAPI document",
    "/docs/oauth2-redirect": "Swagger UI helper page",
    "/redoc": "ReDoc over the OpenAPI document",
    # FHIR clients read a server's CapabilityStatement before they authenticate (like
    # /openapi.json it holds what the server can do, never data).
    "/fhir/metadata": "the FHIR CapabilityStatement",
    # Exchanging a one-time invitation code for a family key is how a family member gets
    # a credential at all (like a sign-in); the code is the secret. Tested in
    # tests/e2e/test_team_access.py (used, expired and unknown codes refused alike).
    "/invitations/redeem": "redeems a family invitation code for the family's key",
}

AGENCY = "school:100001"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str

    def url(self) -> str:
        return re.sub(r"\{[^}]+\}", "x", self.path)


# Recent FastAPI keeps included routers lazily in `app.routes`; `iter_route_contexts`
# flattens them. Older versions have no such function, and their `app.routes` is flat.
_iter_route_contexts: Callable[[Any], Iterable[Any]] = getattr(
    fastapi.routing, "iter_route_contexts", iter
)


def _routes(app: FastAPI) -> list[Any]:
    """Every route as served, with the prefix and dependencies of its routers."""
    return list(_iter_route_contexts(app.routes))


def _is_api_route(route: Any) -> bool:
    return isinstance(getattr(route, "original_route", route), APIRoute)


# The web pages (hub.web.pages) and their static files authenticate by session cookie,
# not bearer token: tests/e2e/test_web_pages.py walks every page route with no session,
# each role and a child out of reach, and checks that it knows every page route.
WEB_PAGES: frozenset[str] = frozenset(
    r.path for router in page_routers() for r in router.routes
) | {"/static"}


def _endpoints_of(app: FastAPI) -> list[Endpoint]:
    found = []
    for route in _routes(app):
        path = getattr(route, "path", None) or repr(route)
        if path in PUBLIC or path in WEB_PAGES:
            continue
        for method in sorted(getattr(route, "methods", None) or {"*"}):
            found.append(Endpoint(method, path))
    return found


def _route_of(app: FastAPI, endpoint: Endpoint) -> Any:
    for route in _routes(app):
        if getattr(route, "path", None) == endpoint.path and endpoint.method in (
            getattr(route, "methods", None) or {"*"}
        ):
            return route
    raise AssertionError(f"{endpoint} vanished from the app")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "endpoint" in metafunc.fixturenames:
        # Building the app does no I/O: the hub opens only in the lifespan.
        app = create_app(Settings(data_dir=Path("never-opened")), run_projector=False)
        endpoints = _endpoints_of(app)
        assert endpoints, "the app has no protected routes at all?"
        metafunc.parametrize(
            "endpoint", [pytest.param(e, id=f"{e.method} {e.path}") for e in endpoints]
        )


# -- fixtures ---------------------------------------------------------------------------


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings, run_projector=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            yield app, client


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    with JwksServer() as server:
        server.add_rsa_key("k1")
        yield server


@dataclass(frozen=True)
class Deployment:
    """How the hub under test is configured: API keys only, or API keys and OIDC."""

    settings: Settings
    jwks: JwksServer | None = None


@pytest.fixture(params=["api_keys", "api_keys_and_oidc"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Deployment:
    if request.param == "api_keys":
        return Deployment(Settings(data_dir=tmp_path))
    server: JwksServer = request.getfixturevalue("jwks")
    return Deployment(server.settings(tmp_path), server)


@pytest.fixture
async def hub(deployment: Deployment) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running(deployment.settings) as pair:
        yield pair


@pytest.fixture
def app(hub: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return hub[0]


@pytest.fixture
def client(hub: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return hub[1]


IDENTITIES: dict[Role, Identity] = {
    Role.PRACTITIONER: Identity(practitioner_id="gmc:C9900010", policy_role="senco"),
    Role.FAMILY: Identity(child_id="hc-e2e", capacity="parent_with_pr"),
}
AGENCIES: dict[Role, str] = {Role.AGENCY: AGENCY, Role.PRACTITIONER: "education"}


@pytest.fixture
async def tokens(app: FastAPI) -> dict[Role, str]:
    """One active API key per role."""
    auth: Authenticator = app.state.auth
    out = {}
    for role in Role:
        _, out[role] = await auth.keys.create(
            role, f"e2e {role.value}", AGENCIES.get(role), IDENTITIES.get(role)
        )
    return out


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response: httpx.Response, *secrets_: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert (body["status"], body["title"]) == (401, "Unauthorized")
    assert body["detail"]
    for secret in secrets_:
        assert secret not in response.text


def refused_for_role(response: httpx.Response) -> bool:
    return response.status_code == 403 and "may not call this route" in response.text


async def bad_credentials(app: FastAPI, deployment: Deployment) -> list[tuple[str, str]]:
    """(Authorization header, what is wrong with it) pairs that must all get 401."""
    auth: Authenticator = app.state.auth
    revoked_id, revoked = await auth.keys.create(Role.ADMIN, "e2e revoked")
    await auth.keys.revoke(revoked_id)
    live_id, live = await auth.keys.create(Role.ADMIN, "e2e live")
    hs_jwt = jwt.encode({"sub": "x", "hub_role": "admin"}, secrets.token_hex(32), algorithm="HS256")
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = sign(stranger, "k1", claims(hub_role="admin"))
    cases = [
        ("Basic x", "not Bearer"),
        ("Basic " + live, "a good key under the wrong scheme"),
        ("Token " + live, "a good key under an unknown scheme"),
        ("Bearer", "no token"),
        (live, "no scheme"),
        ("Bearer thk_nope_nope", "malformed API key"),
        (f"Bearer thk_{'0' * 16}_{live.split('_', 2)[2]}", "unknown key id"),
        (f"Bearer thk_{live_id}_{secrets.token_urlsafe(32)}", "wrong secret"),
        (f"Bearer {live}x", "secret with a character added"),
        (f"Bearer {revoked}", "revoked key"),
        (f"Bearer {hs_jwt}", "random HMAC JWT"),
        (f"Bearer {forged}", "RS256 JWT signed by a stranger"),
        ("Bearer not-a-token-at-all", "garbage"),
        # RFC 6750 §2.1: `Bearer SP b64token`, nothing looser
        (f"Bearer  {live}", "two spaces after the scheme"),
        (f"Bearer\t{live}", "a tab after the scheme"),
        (f"Bearer {live} {live}", "two tokens"),
        (f"Bearer {live},Basic x", "a list of credentials"),
        (f"Bearer {live}!", "a character outside b64token"),
    ]
    if deployment.jwks is not None:
        server_key = deployment.jwks.keys["k1"]
        now = claims()["iat"]
        cases += [
            (f"Bearer {sign(server_key, 'k1', claims(exp=now - 3600))}", "expired JWT"),
            (f"Bearer {sign(server_key, 'k1', claims(iss='https://evil.test'))}", "wrong issuer"),
            (f"Bearer {sign(server_key, 'k1', claims(aud='other'))}", "wrong audience"),
            (f"Bearer {sign(server_key, 'k1', claims(hub_role='root'))}", "unmapped role"),
        ]
    return cases


def oidc_tokens(jwks: JwksServer) -> dict[Role, str]:
    """One valid OIDC token per role that an identity provider can vouch for (a family
    member's link to a child comes from an invitation, never from a token), signed by the
    issuer's published key."""
    key = jwks.keys["k1"]
    practitioner = {"hub_practitioner_id": "gmc:C9900010", "hub_policy_role": "senco"}
    return {
        role: sign(
            key,
            "k1",
            claims(
                hub_role=role.value,
                hub_agency=AGENCIES.get(role),
                **(practitioner if role is Role.PRACTITIONER else {}),
            ),
        )
        for role in Role
        if role is not Role.FAMILY
    }


# -- every route ------------------------------------------------------------------------


async def test_every_route_refuses_missing_bad_and_revoked_credentials_and_wrong_roles(
    endpoint: Endpoint,
    app: FastAPI,
    client: httpx.AsyncClient,
    deployment: Deployment,
    tokens: dict[Role, str],
) -> None:
    route = _route_of(app, endpoint)
    assert _is_api_route(route), (
        f"{endpoint} is not an API route, so this test cannot see its authentication: make "
        "it an API route with an auth dependency, or add it to PUBLIC with a reason"
    )
    allowed = route_roles(route)
    assert allowed is not None, (
        f"{endpoint} has no auth dependency: declare Depends(require_roles(...)) (or "
        "Depends(current_principal) for any role), or add it to PUBLIC with a reason"
    )
    url = endpoint.url()
    send: Callable[..., Awaitable[httpx.Response]] = client.request

    assert_unauthorized(await send(endpoint.method, url))
    for header, what in await bad_credentials(app, deployment):
        response = await send(endpoint.method, url, headers={"Authorization": header})
        assert response.status_code == 401, f"{what}: {response.status_code} {response.text}"
        credential = header.rpartition(" ")[2]
        assert_unauthorized(response, *([credential] if len(credential) > 8 else []))

    by_mechanism = {"api_key": tokens}
    if deployment.jwks is not None:
        by_mechanism["oidc"] = oidc_tokens(deployment.jwks)
    needs = ", ".join(r.value for r in Role if r in allowed)
    for mechanism, role_tokens in by_mechanism.items():
        for role, token in role_tokens.items():
            response = await send(endpoint.method, url, headers=bearer(token))
            if role in allowed:
                assert response.status_code != 401, (mechanism, role, response.text)
                assert not refused_for_role(response), (mechanism, role, response.text)
            else:
                assert response.status_code == 403, (mechanism, role, response.text)
                assert response.headers["content-type"].startswith("application/problem+json")
                assert response.json()["detail"] == (
                    f"role {role.value} may not call this route; needs one of: {needs}"
                )


async def test_a_route_without_an_auth_dependency_is_caught(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path), run_projector=False)

    @app.get("/leaky")
    async def leaky() -> dict[str, str]:
        return {}

    @app.get("/guarded", dependencies=[Depends(require_roles("ig_auditor", Role.ADMIN))])
    async def guarded() -> dict[str, str]:
        return {}

    @app.get("/signed-in")
    async def signed_in(p: Principal = Depends(current_principal)) -> dict[str, str]:  # noqa: B008
        return {}

    by_path = {r.path: r for r in _routes(app) if _is_api_route(r)}
    assert route_roles(by_path["/leaky"]) is None
    assert route_roles(by_path["/guarded"]) == frozenset({Role.IG_AUDITOR, Role.ADMIN})
    assert route_roles(by_path["/signed-in"]) == frozenset(Role)
    assert Endpoint("GET", "/leaky") in _endpoints_of(app)


def test_require_roles_refuses_unknown_roles() -> None:
    with pytest.raises(ValueError, match="unknown role 'root'"):
        require_roles("root")
    with pytest.raises(ValueError, match="at least one role"):
        require_roles()


# -- /whoami ----------------------------------------------------------------------------


async def test_whoami_answers_each_role_with_its_name_role_and_agency(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    for role, token in tokens.items():
        response = await client.get("/whoami", headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json() == {
            "name": f"e2e {role.value}",
            "role": role.value,
            "agency": AGENCIES.get(role),
            "via": "api_key",
        }
        assert token not in response.text


async def test_the_bearer_scheme_is_case_insensitive_and_the_rest_strict(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    token = tokens[Role.ADMIN]
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):  # RFC 9110 §11.1
        response = await client.get("/whoami", headers={"Authorization": f"{scheme} {token}"})
        assert response.status_code == 200, (scheme, response.text)
    for header in (f"Bearer  {token}", f"Bearer {token} x", f"Bearer {token}=x"):
        response = await client.get("/whoami", headers={"Authorization": header})
        assert_unauthorized(response, token)
        assert response.json()["detail"].startswith("Bearer token is malformed"), header
    tabbed = await client.get("/whoami", headers={"Authorization": f"Bearer\t{token}"})
    assert_unauthorized(tabbed, token)
    assert tabbed.json()["detail"].startswith("Authorization header is malformed")


async def test_whoami_answers_an_oidc_caller(jwks: JwksServer, tmp_path: Path) -> None:
    async with running(jwks.settings(tmp_path, oidc_role_map={"SEND-Team": "coordinator"})) as (
        _,
        client,
    ):
        token = sign(jwks.keys["k1"], "k1", claims(hub_role=["Staff", "SEND-Team"]))
        response = await client.get("/whoami", headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.json() == {
            "name": "sam.coordinator",
            "role": "coordinator",
            "agency": None,
            "via": "oidc",
        }


async def test_a_revoked_key_is_refused_on_the_next_request(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    auth: Authenticator = app.state.auth
    key_id, token = await auth.keys.create(Role.COORDINATOR, "e2e soon revoked")
    assert (await client.get("/whoami", headers=bearer(token))).status_code == 200
    assert await auth.keys.revoke(key_id) == 1
    response = await client.get("/whoami", headers=bearer(token))
    assert_unauthorized(response, token)
    assert response.json()["detail"] == "unknown or revoked API key"


async def test_refusals_name_the_problem_and_log_no_secret(
    client: httpx.AsyncClient, tokens: dict[Role, str]
) -> None:
    token = tokens[Role.ADMIN]
    key_id, secret = token.split("_", 2)[1:]
    wrong = f"thk_{key_id}_{secrets.token_urlsafe(32)}"
    with capture_logs() as logs:
        missing = await client.get("/whoami")
        basic = await client.get("/whoami", headers={"Authorization": f"Basic {token}"})
        bad = await client.get("/whoami", headers=bearer(wrong))
    assert missing.json()["detail"].startswith("missing Authorization header")
    assert missing.headers["www-authenticate"] == 'Bearer realm="tac-hub"'
    assert bad.headers["www-authenticate"] == 'Bearer realm="tac-hub", error="invalid_token"'
    assert basic.json()["detail"] == "Authorization scheme must be Bearer"
    assert bad.json()["detail"] == "unknown or revoked API key"
    logged = repr(logs)
    assert secret not in logged and wrong.split("_", 2)[2] not in logged
    refusals = [e for e in logs if e.get("event") == "auth.refused"]
    assert len(refusals) == 3
    assert refusals[2]["key_id"] == key_id  # ids only


async def test_metrics_answer_an_admin(client: httpx.AsyncClient, tokens: dict[Role, str]) -> None:
    response = await client.get("/metrics", headers=bearer(tokens[Role.ADMIN]))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")


# -- public routes ----------------------------------------------------------------------


async def test_health_and_readiness_answer_without_credentials(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"


async def test_the_api_description_is_public_and_names_the_bearer_scheme(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for route in _routes(app):
        if not _is_api_route(route) or route.path in PUBLIC or route.path in WEB_PAGES:
            continue
        for method in route.methods:
            operation = doc["paths"][route.path_format][method.lower()]
            assert operation.get("security") == [{"bearer": []}], (method, route.path)
    assert "security" not in doc["paths"]["/healthz"]["get"]
    whoami = doc["paths"]["/whoami"]["get"]
    assert whoami["summary"].startswith("Who am I?")
    assert whoami["responses"]["200"]["content"]["application/json"]["example"]["role"]
    assert (await client.get("/docs")).status_code == 200


async def test_routes_answer_503_not_200_when_auth_never_started(tmp_path: Path) -> None:
    # Fail closed: an app whose lifespan did not run has no authenticator.
    app = create_app(Settings(data_dir=tmp_path), run_projector=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        response = await client.get("/whoami", headers=bearer("thk_nope_nope"))
    assert response.status_code == 503
