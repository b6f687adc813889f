"""From an `Authorization` header to a `Principal`: the one place that decides who calls.

`Authenticator.authenticate` accepts only `Bearer <token>` as RFC 6750 §2.1 writes it:
the scheme in any case (RFC 9110 §11.1), then exactly one space, then a `b64token`
(letters, digits, `-._~+/`, trailing `=`); tabs, several spaces, a comma-separated list
or other characters are refused as malformed (`bearer_token`). A token starting `thk_` is an
API key and is checked against the key table; any other token is an OIDC JWT, checked
when OIDC is configured and refused otherwise. A token granting the family role stands
for the children its subject was linked to by redeeming invitations (`family_binding`),
and is refused until there is one. Every refusal is an `AuthError` whose
reason names what is wrong without repeating the token; refusals are logged with the key
id at most.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import structlog

from hub.auth.invitations import FamilyInvitations
from hub.auth.keys import TOKEN_PREFIX, ApiKeys, key_id_of
from hub.auth.oidc import OidcVerifier
from hub.auth.principal import AuthError, Principal, Role
from hub.settings import Settings

log = structlog.get_logger(__name__)

MAX_TOKEN_CHARS = 8192
_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?: (.*))?", re.DOTALL)
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header value, else `AuthError`
    naming what is wrong (never repeating the value). Leading and trailing spaces are
    not part of a field value (RFC 9110 §5.5) and are ignored; anything else is strict."""
    if authorization is None or not authorization.strip(" \t"):
        raise AuthError("missing Authorization header; send 'Authorization: Bearer <token>'")
    match = _CREDENTIALS.fullmatch(authorization.strip(" \t"))
    if match is None:
        raise AuthError("Authorization header is malformed; send 'Authorization: Bearer <token>'")
    scheme, token = match.group(1), match.group(2)
    if scheme.lower() != "bearer":
        raise AuthError("Authorization scheme must be Bearer")
    if not token:
        raise AuthError("Bearer token is empty")
    if len(token) > MAX_TOKEN_CHARS or _B64TOKEN.fullmatch(token) is None:
        raise AuthError(
            "Bearer token is malformed: one space after Bearer, then the token alone "
            "(RFC 6750 b64token characters)"
        )
    return token


class Authenticator:
    """Checks bearer tokens against the API keys and, when configured, OIDC."""

    def __init__(
        self,
        keys: ApiKeys,
        oidc: OidcVerifier | None = None,
        families: FamilyInvitations | None = None,
    ) -> None:
        self.keys = keys
        self.oidc = oidc
        self.families = families

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller behind an `Authorization` header value, or `AuthError`."""
        try:
            principal = await self._authenticate(authorization)
        except AuthError as exc:
            key_id = None
            if authorization:
                key_id = key_id_of(authorization.partition(" ")[2].strip())
            log.info("auth.refused", reason=exc.reason, status=exc.status, key_id=key_id)
            raise
        return principal

    async def _authenticate(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        if token.startswith(TOKEN_PREFIX):
            principal = await self.keys.verify(token)
            if principal is None:
                raise AuthError("unknown or revoked API key")
            return principal
        if self.oidc is None:
            raise AuthError("token is not an API key, and OIDC is not configured on this hub")
        return await self.principal_of_claims(await self.oidc.verified_claims(token))

    async def principal_of_claims(self, claims: Mapping[str, Any]) -> Principal:
        """The principal an identity provider's verified claims stand for (a bearer JWT's,
        or the web sign-in's ID token's): the role by the role claim, a practitioner's
        identity from their claims, a family member's children from the invitations
        their subject redeemed (`AuthError` until there is one)."""
        if self.oidc is None:
            raise AuthError("OIDC is not configured on this hub")
        if self.oidc.role_of(claims) is not Role.FAMILY:
            return self.oidc.principal(claims)
        subject = self.oidc.subject_of(claims)
        principal = None
        if self.families is not None:
            principal = await self.families.signed_in(self.oidc.issuer, subject)
        if principal is None:
            raise AuthError(
                "this family sign-in is not linked to a child yet: redeem your invitation "
                "code while signed in (POST /invitations/redeem)"
            )
        return principal

    async def family_subject(self, authorization: str) -> tuple[str, str]:
        """(issuer, subject) of a valid OIDC token granting the family role (signed in,
        whether or not linked to a child yet), else `AuthError`."""
        try:
            token = bearer_token(authorization)
        except AuthError:
            token = None
        if token is None or self.oidc is None:
            raise AuthError("redeem while signed in with a Bearer token from the identity provider")
        claims = await self.oidc.verified_claims(token)
        if self.oidc.role_of(claims) is not Role.FAMILY:
            raise AuthError("only a family sign-in can redeem an invitation this way")
        return self.oidc.issuer, self.oidc.subject_of(claims)


async def create_authenticator(
    settings: Settings, keys: ApiKeys, families: FamilyInvitations | None
) -> Authenticator:
    """Build the authenticator for a hub process on its keys and family invitations
    (built by the composition root), with an OIDC verifier when `HUB_OIDC_ISSUER` is set.
    A JWKS URL without an issuer is refused rather than ignored, since it would otherwise
    look configured and accept nothing."""
    oidc: OidcVerifier | None = None
    if settings.oidc_issuer:
        oidc = OidcVerifier(settings)
    elif settings.oidc_jwks_url:
        raise ValueError("HUB_OIDC_ISSUER is required when HUB_OIDC_JWKS_URL is set")
    return Authenticator(keys, oidc, families)
