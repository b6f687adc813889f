"""Authentication and roles, free of any web framework: who a bearer token stands for.

The public surface is here: the four `Role`s, the `Principal` a credential reduces to,
`AuthError`, the `ApiKeys` port (hashed, revocable API keys; kept by the stores), the
`OidcVerifier` (JWTs checked against the issuer's JWKS), and the `Authenticator` that
chooses between them, built by `create_authenticator(settings, keys, families)`. The HTTP side
(dependencies, 401/403 answers) lives in `hub.api.auth`.
"""

from hub.auth.authenticator import Authenticator, create_authenticator
from hub.auth.keys import ApiKeys, KeyInfo
from hub.auth.oidc import OidcVerifier
from hub.auth.principal import AuthError, Principal, Role, Via, parse_role

__all__ = [
    "ApiKeys",
    "AuthError",
    "Authenticator",
    "KeyInfo",
    "OidcVerifier",
    "Principal",
    "Role",
    "Via",
    "create_authenticator",
    "parse_role",
]
