"""OIDC bearer tokens: a JWT checked against the issuer's published keys (JWKS).

`OidcVerifier` accepts a token only if its signature verifies with a key from
`HUB_OIDC_JWKS_URL` under one of `HUB_OIDC_ALGORITHMS` (asymmetric only; `none` and HMAC
are refused), its `iss` is `HUB_OIDC_ISSUER`, its `aud` includes `HUB_OIDC_AUDIENCE` when
one is set, and it is within `exp`/`nbf` (30 seconds of clock skew allowed). The role comes
from the `HUB_OIDC_ROLE_CLAIM` claim (a string, or a list whose first value that maps
wins; a dotted name reaches into nested claims such as `realm_access.roles`), translated
by `HUB_OIDC_ROLE_MAP` (empty: claim values are hub role names). The JWKS is fetched on a
worker thread and cached for five minutes; an unknown `kid` refetches at most every 30
seconds (PyJWT's cool-down), so forged key ids cannot hammer the issuer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import jwt
import structlog
from jwt import PyJWK, PyJWKClient

from hub.auth.principal import AuthError, Principal, Role
from hub.settings import Settings

log = structlog.get_logger(__name__)

CLOCK_SKEW_SECONDS = 30
JWKS_CACHE_SECONDS = 300
JWKS_TIMEOUT_SECONDS = 10
_ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_ROLES = frozenset(r.value for r in Role)


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by name; a dotted name not present as such walks nested objects."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


class OidcVerifier:
    """Turns an OIDC JWT into a `Principal`, or raises `AuthError`."""

    def __init__(self, settings: Settings) -> None:
        if not settings.oidc_issuer or not settings.oidc_jwks_url:
            raise ValueError("OIDC needs both HUB_OIDC_ISSUER and HUB_OIDC_JWKS_URL")
        refused = [a for a in settings.oidc_algorithms if a not in _ASYMMETRIC]
        if refused or not settings.oidc_algorithms:
            raise ValueError(
                "HUB_OIDC_ALGORITHMS must list asymmetric JWS algorithms only "
                f"(refused: {', '.join(refused) or 'an empty list'}; "
                f"allowed: {', '.join(sorted(_ASYMMETRIC))})"
            )
        bad_targets = sorted({v for v in settings.oidc_role_map.values() if v not in _ROLES})
        if bad_targets:
            raise ValueError(
                f"HUB_OIDC_ROLE_MAP maps to unknown roles {bad_targets}; "
                f"roles are: {', '.join(sorted(_ROLES))}"
            )
        self._issuer = settings.oidc_issuer
        self._audience = settings.oidc_audience
        self._algorithms = list(settings.oidc_algorithms)
        self._role_claim = settings.oidc_role_claim
        self._agency_claim = settings.oidc_agency_claim
        self._name_claim = settings.oidc_name_claim
        self._practitioner_claims = (
            settings.oidc_practitioner_claim,
            settings.oidc_policy_role_claim,
            settings.oidc_organisation_claim,
        )
        self._publishing_claims = (settings.oidc_sender_claim, settings.oidc_organisations_claim)
        self._role_map = dict(settings.oidc_role_map)
        # Only the JWK set is cached (with an expiry), not PyJWKClient's per-kid LRU of
        # keys (`cache_keys`), which never expires: a key the issuer withdraws must stop
        # verifying once the cached set is refreshed, not at the next restart.
        self._jwks = PyJWKClient(
            settings.oidc_jwks_url,
            cache_jwk_set=True,
            lifespan=JWKS_CACHE_SECONDS,
            timeout=JWKS_TIMEOUT_SECONDS,
        )

    @property
    def issuer(self) -> str:
        return self._issuer

    async def verify(self, token: str) -> Principal:
        return self.principal(await self.verified_claims(token))

    async def verified_claims(self, token: str) -> dict[str, Any]:
        """The token's claims once its signature, issuer, audience and times check out."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError(
                "the bearer token is neither an API key nor a well-formed JWT"
            ) from None
        alg = header.get("alg")
        if alg not in self._algorithms:
            raise AuthError(
                f"JWT algorithm is not allowed; accepted: {', '.join(self._algorithms)}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("JWT header has no kid naming the issuer's signing key")
        key = await self._signing_key(kid)
        return self._decode(token, key)

    async def _signing_key(self, kid: str) -> PyJWK:
        try:
            # PyJWKClient fetches over blocking urllib: keep it off the event loop.
            return await asyncio.to_thread(self._jwks.get_signing_key, kid)
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("oidc.jwks_unreachable", error_type=type(exc).__name__)
            raise AuthError("the issuer's signing keys cannot be fetched", status=503) from None
        except jwt.PyJWKClientError:
            raise AuthError("JWT is signed with a key the issuer does not publish") from None
        except (jwt.PyJWKSetError, jwt.PyJWKError) as exc:
            log.warning("oidc.jwks_unusable", error_type=type(exc).__name__)
            raise AuthError("the issuer's signing keys are unusable", status=503) from None

    def _decode(self, token: str, key: PyJWK) -> dict[str, Any]:
        required = ["exp", "iss"] + (["aud"] if self._audience else [])
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": required, "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("JWT has expired") from None
        except jwt.ImmatureSignatureError:
            raise AuthError("JWT is not valid yet (nbf)") from None
        except jwt.InvalidIssuerError:
            raise AuthError("JWT issuer is not the configured issuer") from None
        except jwt.InvalidAudienceError:
            raise AuthError("JWT audience does not include this hub") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"JWT lacks the required {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise AuthError("JWT signature does not verify") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError("JWT algorithm does not match the issuer's key") from None
        except jwt.PyJWTError:
            raise AuthError("JWT is invalid") from None
        return claims

    def _role(self, value: Any) -> Role | None:
        candidates: Sequence[Any] = (
            [value] if isinstance(value, str) else value if isinstance(value, list) else []
        )
        for candidate in candidates:
            if not isinstance(candidate, str):
                continue
            mapped = self._role_map.get(candidate) if self._role_map else candidate
            if mapped in _ROLES:
                return Role(mapped)
        return None

    def role_of(self, claims: Mapping[str, Any]) -> Role:
        """The hub role the verified claims grant, or `AuthError`."""
        raw_role = _claim(claims, self._role_claim)
        if raw_role is None:
            raise AuthError(f"JWT has no {self._role_claim} claim")
        role = self._role(raw_role)
        if role is None:
            raise AuthError(f"JWT {self._role_claim} claim maps to no hub role")
        return role

    def subject_of(self, claims: Mapping[str, Any]) -> str:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise AuthError("JWT has no sub claim")
        return subject

    def principal(self, claims: Mapping[str, Any]) -> Principal:
        """The principal the verified claims stand for (not a family member: see
        `Authenticator`, which links a family sign-in to its children)."""
        role = self.role_of(claims)
        agency = _claim(claims, self._agency_claim)
        if not isinstance(agency, str) or not agency:
            agency = None
        if role is Role.AGENCY and agency is None:
            raise AuthError(f"JWT grants role agency but has no {self._agency_claim} claim")
        name = _claim(claims, self._name_claim)
        if not isinstance(name, str) or not name:
            name = claims.get("sub")
        if not isinstance(name, str) or not name:
            raise AuthError(f"JWT has neither a {self._name_claim} nor a sub claim")
        if role is Role.FAMILY:
            # A family member's link to a child comes from a redeemed invitation, which
            # an identity provider's token cannot carry.
            raise AuthError("a family sign-in is linked to a child by redeeming an invitation")
        practitioner: dict[str, str | None] = {}
        if role is Role.PRACTITIONER:
            for field, claim in zip(
                ("practitioner_id", "policy_role", "organisation"),
                self._practitioner_claims,
                strict=True,
            ):
                value = _claim(claims, claim)
                practitioner[field] = value if isinstance(value, str) and value else None
            missing = [
                claim
                for field, claim in zip(
                    ("practitioner_id", "policy_role"), self._practitioner_claims, strict=False
                )
                if practitioner[field] is None
            ]
            if agency is None:
                missing.append(self._agency_claim)
            if missing:
                needs = ", ".join(missing)
                raise AuthError(f"JWT grants role practitioner but has no {needs} claim")
        sender, organisations = self._publishing(claims) if role is Role.AGENCY else (None, ())
        return Principal(
            name=name,
            role=role,
            agency=agency,
            key_id=None,
            via="oidc",
            practitioner_id=practitioner.get("practitioner_id"),
            policy_role=practitioner.get("policy_role"),
            organisation=practitioner.get("organisation"),
            sender=sender,
            organisations=organisations,
        )

    def _publishing(self, claims: Mapping[str, Any]) -> tuple[str | None, tuple[str, ...]]:
        """An agency token's kind of sender and organisation codes, from the claims the
        identity provider is configured to issue (`HUB_OIDC_SENDER_CLAIM`,
        `HUB_OIDC_ORGANISATIONS_CLAIM`): a list of codes, or one string of codes separated
        by spaces. Absent, the token authenticates but may not publish (the ingest routes
        refuse it); malformed, it is refused here, naming the claim."""
        from hub.auth.keys import Publishing

        sender_claim, orgs_claim = self._publishing_claims
        sender = _claim(claims, sender_claim)
        raw = _claim(claims, orgs_claim)
        codes = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
        if (sender is not None and not isinstance(sender, str)) or not all(
            isinstance(c, str) for c in codes
        ):
            raise AuthError(f"JWT {sender_claim} or {orgs_claim} claim is not text")
        organisations = tuple(dict.fromkeys(codes))
        try:
            Publishing(sender or None, organisations).check(Role.AGENCY)
        except ValueError as exc:
            raise AuthError(f"JWT {sender_claim} or {orgs_claim} claim: {exc}") from None
        return sender or None, organisations
