"""Signing in to the web pages through the identity provider: OpenID Connect's
authorisation code flow with PKCE (RFC 7636, S256), offered on the sign-in page when
`HUB_OIDC_ISSUER` and `HUB_OIDC_CLIENT_ID` are set.

`GET /sign-in/oidc` makes a state, a nonce and a code verifier, keeps them sealed in a
short-lived cookie of their own (`SameSite=Lax`, so the browser brings it back on the
provider's redirect, which the session cookie, `Strict`, would not be) and sends the
browser to the provider's authorisation endpoint, found in its discovery document.
`GET /sign-in/oidc/callback` checks the state, exchanges the code (with the verifier) at
the token endpoint, and checks the ID token as OpenID Connect Core §3.1.3.7 says: its
signature with a key from the provider's JWKS under an algorithm the hub allows, `iss`,
`aud` (this client), `azp`, `exp`/`iat`, the nonce and `at_hash`. The verified claims map
to a principal exactly as a bearer JWT's do (`Authenticator.principal_of_claims`): the
role claim, a practitioner's id, policy role and organisation claims; a family member's
sign-in stands for the children their subject redeemed an invitation for, and a family
sign-in linked to no child yet is asked for the invitation code once
(`/sign-in/oidc/link`, CSRF-protected and throttled like the sign-in form).

The OAuth client is authlib's (authorisation URL with the PKCE challenge, the token
request with the verifier and client authentication); the ID token is checked with
joserfc and authlib's `CodeIDToken` rules, as authlib's own OIDC clients do. Nothing the
provider sends is logged; log lines name the outcome and the hub role only.
"""

from __future__ import annotations

import asyncio
import hmac
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import structlog
from authlib.common.security import generate_token
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oidc.core import CodeIDToken

with warnings.catch_warnings():
    # authlib's httpx integration warns on import that it will move to httpx2; the hub
    # pins httpx, and the warning would be a stray line on every start's stderr
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from joserfc.jws import JWSRegistry

from hub.auth.invitations import InvitationError, normalise
from hub.auth.principal import AuthError, Role
from hub.settings import Settings
from hub.web.pages import (
    PageRefused,
    Visit,
    _codec,
    posted,
    render,
    safe_next,
    set_session,
    throttled,
    visit_of,
)
from hub.web.sessions import WebSession
from hub.web.throttle import SignInGuard

log = structlog.get_logger(__name__)

router = APIRouter(include_in_schema=False)

PENDING_COOKIE = "tac_hub_oidc"
PENDING_SECONDS = 10 * 60
"""How long a browser has at the provider before the sign-in must start again."""
PENDING_PATH = "/sign-in/oidc"
METADATA_SECONDS = 300
TIMEOUT_SECONDS = 10
CLOCK_SKEW_SECONDS = 30


RESERVED_AUTH_PARAMS = frozenset(
    {"client_id", "code_challenge", "code_challenge_method", "nonce", "redirect_uri",
     "response_type", "scope", "state"}
)  # fmt: skip
"""Authorisation request parameters the hub sets itself (not from HUB_OIDC_AUTH_PARAMS)."""


def client_key(path: Path) -> RSAKey:
    """The client's RSA private key from a PEM file, or a clear error naming the setting."""
    try:
        key = RSAKey.import_key(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"HUB_OIDC_CLIENT_KEY_FILE: cannot read {path}: {exc.strerror}") from None
    except (JoseError, ValueError, TypeError):
        raise ValueError(f"HUB_OIDC_CLIENT_KEY_FILE: {path} is not an RSA key in PEM") from None
    if not key.is_private:
        raise ValueError(
            f"HUB_OIDC_CLIENT_KEY_FILE: {path} holds a public key, not the private one"
        )
    return key


class ProviderError(Exception):
    """The provider cannot be reached or answered what the hub cannot use."""


@dataclass
class OidcSignIn:
    """The hub as a client of the provider: its discovery document and keys, cached."""

    settings: Settings
    _metadata: dict[str, Any] | None = None
    _metadata_at: float = 0.0
    _keys: dict[str, Any] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _client_key: RSAKey | None = None

    def __post_init__(self) -> None:
        reserved = RESERVED_AUTH_PARAMS & set(self.settings.oidc_auth_params)
        if reserved:
            raise ValueError(
                f"HUB_OIDC_AUTH_PARAMS: {', '.join(sorted(reserved))} is set by the hub itself"
            )
        path = self.settings.oidc_client_key_file
        if path is not None:
            self._client_key = client_key(path)

    @property
    def issuer(self) -> str:
        assert self.settings.oidc_issuer
        return self.settings.oidc_issuer

    @property
    def client_id(self) -> str:
        assert self.settings.oidc_client_id
        return self.settings.oidc_client_id

    @property
    def display_name(self) -> str:
        return self.settings.oidc_display_name

    def client(self, redirect_uri: str) -> AsyncOAuth2Client:
        """The OAuth client: authenticating with a signed assertion when a key is
        configured (private_key_jwt), else the secret (client_secret_basic), else as a
        public client (PKCE alone)."""
        secret = self.settings.oidc_client_secret
        if self._client_key is not None:
            credential: Any = self._client_key
            method = PrivateKeyJWT.name
        else:
            credential = secret.get_secret_value() if secret else None
            method = "client_secret_basic" if secret else "none"
        client = AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=credential,
            token_endpoint_auth_method=method,
            scope=self.settings.oidc_scopes,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=TIMEOUT_SECONDS,
        )
        if self._client_key is not None:
            client.register_client_auth_method(PrivateKeyJWT())  # audience: the token endpoint
        return client

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as http:
                response = await http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("web.oidc_provider_unreachable", error_type=type(exc).__name__)
            raise ProviderError("the sign-in service cannot be reached") from None
        if not isinstance(body, dict):
            raise ProviderError("the sign-in service answered what the hub cannot read")
        return body

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (its issuer must be the configured one)."""
        async with self._lock:
            fresh = time.monotonic() - self._metadata_at < METADATA_SECONDS
            if self._metadata is None or not fresh:
                url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
                document = await self._get_json(url)
                if document.get("issuer") != self.issuer:
                    raise ProviderError("the sign-in service names another issuer")
                for needed in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(document.get(needed), str):
                        raise ProviderError(f"the sign-in service publishes no {needed}")
                self._metadata, self._metadata_at, self._keys = document, time.monotonic(), None
            return self._metadata

    async def key_set(self, *, refresh: bool = False) -> KeySet:
        metadata = await self.metadata()
        if self._keys is None or refresh:
            self._keys = await self._get_json(metadata["jwks_uri"])
        try:
            return KeySet.import_key_set(self._keys)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError):
            raise ProviderError("the sign-in service's keys are unusable") from None

    async def authorization_url(self, redirect_uri: str, pending: dict[str, str]) -> str:
        metadata = await self.metadata()
        url, _ = self.client(redirect_uri).create_authorization_url(
            metadata["authorization_endpoint"],
            state=pending["state"],
            code_verifier=pending["verifier"],
            nonce=pending["nonce"],
            **self.settings.oidc_auth_params,
        )
        return str(url)

    async def exchange(self, redirect_uri: str, code: str, verifier: str) -> dict[str, Any]:
        """The token response for the code (sent with the PKCE verifier)."""
        metadata = await self.metadata()
        async with self.client(redirect_uri) as client:
            try:
                token = await client.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=verifier,
                )
            except httpx.HTTPError as exc:
                log.warning("web.oidc_token_unreachable", error_type=type(exc).__name__)
                raise ProviderError("the sign-in service cannot be reached") from None
            except Exception as exc:  # authlib's OAuthError and its kin
                error = getattr(exc, "error", None) or type(exc).__name__
                log.info("web.oidc_token_refused", error=str(error)[:64])
                raise AuthError("the sign-in service did not accept the sign-in") from None
        return dict(token)

    async def id_claims(self, token: dict[str, Any], nonce: str) -> dict[str, Any]:
        """The ID token's claims, once everything OIDC Core §3.1.3.7 asks checks out."""
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise AuthError("the sign-in service sent no ID token")
        registry = JWSRegistry(algorithms=list(self.settings.oidc_algorithms))
        try:
            try:
                decoded = jwt.decode(id_token, await self.key_set(), registry=registry)
            except JoseError as exc:
                if "kid" not in type(exc).__name__.lower() and "key" not in str(exc).lower():
                    raise
                decoded = jwt.decode(id_token, await self.key_set(refresh=True), registry=registry)
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                {
                    "iss": {"essential": True, "values": [self.issuer]},
                    "aud": {"essential": True, "values": [self.client_id]},
                },
                {
                    "nonce": nonce,
                    "client_id": self.client_id,
                    "access_token": token.get("access_token"),
                },
            )
            claims.validate(leeway=CLOCK_SKEW_SECONDS)
        except (JoseError, ValueError) as exc:
            log.info("web.oidc_id_token_refused", error_type=type(exc).__name__)
            raise AuthError("the sign-in service's ID token did not check out") from None
        except Exception as exc:  # authlib's claim errors (MissingClaimError, ...)
            log.info("web.oidc_id_token_refused", error_type=type(exc).__name__)
            raise AuthError("the sign-in service's ID token did not check out") from None
        return dict(claims)


def oidc_of(request: Request) -> OidcSignIn | None:
    found: OidcSignIn | None = getattr(request.app.state, "web_oidc", None)
    return found


def kept_claims(settings: Settings, claims: dict[str, Any]) -> dict[str, Any]:
    """The claims the hub maps to a principal (all it keeps in the session)."""
    names = {
        "iss",
        "sub",
        settings.oidc_role_claim,
        settings.oidc_agency_claim,
        settings.oidc_name_claim,
        settings.oidc_practitioner_claim,
        settings.oidc_policy_role_claim,
        settings.oidc_organisation_claim,
    }
    tops = {name.split(".")[0] for name in names} | names
    return {k: v for k, v in claims.items() if k in tops}


def _redirect_uri(request: Request, sign_in: OidcSignIn) -> str:
    configured = sign_in.settings.oidc_redirect_url
    return configured or str(request.url_for("oidc_callback"))


def _sign_in_error(visit: Visit, status: int, text: str) -> HTMLResponse:
    return render(
        visit,
        "sign_in.html",
        status=status,
        next="/",
        errors=[{"field": "oidc", "text": text}],
        ended=False,
        signed_out=False,
    )


def _unavailable(visit: Visit, sign_in: OidcSignIn, exc: ProviderError) -> HTMLResponse:
    text = f"You cannot sign in with {sign_in.display_name} now: {exc}. Try again later"
    return _sign_in_error(visit, 503, text)


def _continue(request: Request, session: WebSession, target: str) -> HTMLResponse:
    """Signed in: a page that moves on to `target` by itself. Not a redirect, because
    the browser came from the provider's site, and after a cross-site redirect chain it
    would not send the `SameSite=Strict` session cookie just set."""
    visit = Visit(request, session, None)
    response = render(visit, "signed_in.html", target=target)
    set_session(request, response, session)
    response.delete_cookie(PENDING_COOKIE, path=PENDING_PATH)
    return response


@router.get("/sign-in/oidc")
async def oidc_start(request: Request, next: str | None = None) -> Response:
    sign_in = oidc_of(request)
    visit = await visit_of(request)
    if sign_in is None:
        raise PageRefused(visit, 404)
    pending = {
        "state": generate_token(32),
        "nonce": generate_token(32),
        "verifier": generate_token(64),
        "next": safe_next(next),
    }
    try:
        url = await sign_in.authorization_url(_redirect_uri(request, sign_in), pending)
    except ProviderError as exc:
        return _unavailable(visit, sign_in, exc)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        PENDING_COOKIE,
        _codec(request).seal_value(pending),
        max_age=PENDING_SECONDS,
        path=PENDING_PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    if visit.set_cookie:
        set_session(request, response, visit.session)
    return response


@router.get("/sign-in/oidc/callback", name="oidc_callback")
async def oidc_callback(
    request: Request,
    code: str | None = None,
    state: str | None = None,
    error: str | None = None,
) -> Response:
    sign_in = oidc_of(request)
    visit = await visit_of(request)
    if sign_in is None:
        raise PageRefused(visit, 404)
    pending = _codec(request).open_value(request.cookies.get(PENDING_COOKIE), PENDING_SECONDS)
    if not isinstance(pending, dict) or not all(
        isinstance(pending.get(k), str) for k in ("state", "nonce", "verifier", "next")
    ):
        log.info("web.oidc_refused", reason="no_pending_sign_in")
        return _sign_in_error(
            visit, 400, "This sign-in took too long or did not start here. Sign in again"
        )
    if not state or not hmac.compare_digest(state.encode(), pending["state"].encode()):
        log.info("web.oidc_refused", reason="state_mismatch")
        return _sign_in_error(visit, 400, "This sign-in did not start here. Sign in again")
    if error or not code:
        log.info("web.oidc_refused", reason="provider_error", error=(error or "no_code")[:32])
        return _sign_in_error(
            visit, 400, f"You did not sign in with {sign_in.display_name}. Sign in again"
        )
    try:
        token = await sign_in.exchange(_redirect_uri(request, sign_in), code, pending["verifier"])
        claims = kept_claims(sign_in.settings, await sign_in.id_claims(token, pending["nonce"]))
    except ProviderError as exc:
        return _unavailable(visit, sign_in, exc)
    except AuthError as exc:
        log.info("web.oidc_refused", reason="token")
        return _sign_in_error(visit, 400, f"You could not be signed in: {exc}. Sign in again")
    auth = request.app.state.auth
    try:
        principal = await auth.principal_of_claims(claims)
    except AuthError as exc:
        try:
            family = auth.oidc.role_of(claims) is Role.FAMILY
        except AuthError:
            family = False
        if family:
            log.info("web.oidc_signed_in", auth_role="family", linked=False)
            return _continue(request, WebSession.new(oidc=claims), "/sign-in/oidc/link")
        log.info("web.oidc_refused", reason="claims")
        return _sign_in_error(
            visit,
            403,
            f"Your {sign_in.display_name} sign-in does not give you a role in the hub: {exc}",
        )
    log.info("web.oidc_signed_in", auth_role=principal.role.value)
    return _continue(request, WebSession.new(oidc=claims), pending["next"])


async def _link_form(
    visit: Visit, *, status: int = 200, errors: list[dict[str, str]] | None = None
) -> HTMLResponse:
    return render(visit, "oidc_link.html", status=status, errors=errors or [])


@router.get("/sign-in/oidc/link", response_class=HTMLResponse)
async def oidc_link_page(request: Request) -> Response:
    visit = await visit_of(request)
    if visit.principal is not None:
        return RedirectResponse("/", status_code=303)
    if not visit.extra.get("unlinked"):
        raise PageRefused(visit, 401)
    return await _link_form(visit)


@router.post("/sign-in/oidc/link", response_class=HTMLResponse)
async def oidc_link(request: Request) -> Response:
    visit = await visit_of(request)
    form = await posted(visit)
    if visit.principal is not None:
        return RedirectResponse("/", status_code=303)
    if not visit.extra.get("unlinked") or visit.session.oidc is None:
        raise PageRefused(visit, 401)
    guard = SignInGuard.of(request)
    if (refusal := guard.refused()) is not None:
        return throttled(visit, refusal, "oidc_link.html", "code", {})
    code = form.get("code", "").strip()
    if not code:
        return await _link_form(
            visit, status=400, errors=[{"field": "code", "text": "Enter your invitation code"}]
        )
    message = "This invitation code is not valid: it is unknown, used or expired"
    if 8 <= len(normalise(code)) <= 64:
        auth = request.app.state.auth
        try:
            await visit.hub.invitations.redeem_for_sign_in(
                code,
                issuer=auth.oidc.issuer,
                subject=auth.oidc.subject_of(visit.session.oidc),
            )
        except InvitationError as exc:
            if "capacity" in str(exc):
                message = f"This invitation code cannot be used: {exc}"
        else:
            guard.succeeded()
            log.info("web.oidc_linked", auth_role="family")
            return RedirectResponse("/", status_code=303)
    refusal = await guard.failed(visit.hub.trail, "invitation_code")
    if refusal is not None:
        return throttled(visit, refusal, "oidc_link.html", "code", {})
    return await _link_form(visit, status=400, errors=[{"field": "code", "text": message}])


def start_link(next_path: str) -> str:
    """The address that starts the provider's sign-in and comes back to `next_path`."""
    return f"{PENDING_PATH}?next={quote(next_path, safe='/')}"
