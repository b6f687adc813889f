"""HTTP side of authentication: the dependencies every protected route declares.

`current_principal` turns the request's `Authorization: Bearer <token>` into a
`Principal` through the process's `Authenticator` (`app.state.auth`), answering 401 with
`WWW-Authenticate: Bearer` and an RFC 9457 problem body otherwise; `require_roles(...)`
adds the role check (403 naming the roles the route admits) and records those roles on
the dependency, so `route_roles()` — and the test that walks every route — can read them.
The OpenAPI document stays public: it describes shapes, not data, and integrators need
it before they hold a credential; each protected operation lists the bearer scheme.
"""

# No `from __future__ import annotations` here: FastAPI resolves the signature of the
# callable `RoleRequirement` instances at runtime, and an instance has no `__globals__`
# in which to evaluate string annotations.

from collections.abc import Iterable
from typing import Annotated, Any

import structlog
from fastapi import HTTPException, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hub.api.request_guard import PRINCIPAL_KEY, auth_refusal_headers
from hub.auth import (
    ApiKeys,
    Authenticator,
    AuthError,
    Principal,
    Role,
    create_authenticator,
    parse_role,
)
from hub.auth.keys import sender_of as key_sender
from hub.consent.senders import Sender

__all__ = [
    "AUTH_RESPONSES",
    "ApiKeys",
    "Authenticator",
    "Principal",
    "Role",
    "RoleRequirement",
    "create_authenticator",
    "current_principal",
    "require_roles",
    "route_roles",
]

# Only declares the scheme in the OpenAPI document (the "Authorize" button of /docs);
# `current_principal` reads and judges the header itself.
_bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key (`thk_...`, from `hub keys create`) or, where the hub is "
    "configured for it, an OIDC access token from the organisation's identity provider.",
)

_PROBLEM = "application/problem+json"
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "No credentials, or credentials that are malformed, unknown, "
        "revoked or expired (problem details; `WWW-Authenticate: Bearer`)",
        "content": {
            _PROBLEM: {
                "example": {
                    "type": "about:blank",
                    "title": "Unauthorized",
                    "status": 401,
                    "detail": "unknown or revoked API key",
                }
            }
        },
    },
    403: {
        "description": "Authenticated, but the caller's role may not call this route",
        "content": {
            _PROBLEM: {
                "example": {
                    "type": "about:blank",
                    "title": "Forbidden",
                    "status": 403,
                    "detail": "role coordinator may not call this route; needs one of: admin",
                }
            }
        },
    },
}


def _authenticator(request: Request) -> Authenticator:
    auth = getattr(request.app.state, "auth", None)
    if not isinstance(auth, Authenticator):
        # Fail closed: an app started without its lifespan has no way to check anyone.
        raise HTTPException(503, detail="authentication is not initialised")
    return auth


async def sender_of(request: Request, principal: Principal) -> Sender:
    """What the calling agency may claim about its facts (its credential's sender kind and
    organisation codes), for `handlers.submit_as_sender`. An identity provider's token
    publishes only when its claims name both, and a kind the policy has (403 naming the
    claims otherwise): there is no unbound OIDC sender, as there are API keys from before
    organisation codes were recorded."""
    from hub.api.deps import hub_of

    the_hub = hub_of(request)
    if principal.via == "oidc":
        settings = the_hub.settings
        claims = f"{settings.oidc_sender_claim} and {settings.oidc_organisations_claim}"
        if not principal.sender or not principal.organisations:
            raise HTTPException(
                403,
                detail=f"this token may not publish: an agency's token needs {claims} claims "
                "(its kind of sender in the sharing policy and its organisation codes)",
            )
        if principal.sender not in the_hub.policy.senders:
            kinds = ", ".join(sorted(the_hub.policy.senders))
            raise HTTPException(
                403,
                detail=f"this token may not publish: its {settings.oidc_sender_claim} claim "
                f"names no sender of the sharing policy (senders are: {kinds})",
            )
    return await key_sender(
        _authenticator(request).keys, principal, also_bound=the_hub.settings.inbound_bound_codes
    )


async def current_principal(
    request: Request,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer_scheme)],
) -> Principal:
    """The authenticated caller; 401 (or 503 when the issuer's keys are unreachable).
    Behind `RequestGuard` (every app `create_app` builds) the caller was authenticated
    before the body was read, and is taken from the request's scope state."""
    return await _principal_of(request)


async def _principal_of(request: Request) -> Principal:
    principal = request.scope.get("state", {}).get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        authorization = request.headers.get("authorization")
        try:
            principal = await _authenticator(request).authenticate(authorization)
        except AuthError as exc:
            headers = auth_refusal_headers(exc, authorization)
            raise HTTPException(exc.status, detail=exc.reason, headers=headers) from None
    # Later log lines of this request say who acted (ids and role only, never names).
    structlog.contextvars.bind_contextvars(
        auth_role=principal.role.value, auth_key_id=principal.key_id
    )
    return principal


class RoleRequirement:
    """A dependency admitting callers whose role is in `allowed_roles`, else 403."""

    def __init__(self, roles: Iterable[Role | str]) -> None:
        allowed = frozenset(parse_role(r) for r in roles)
        if not allowed:
            raise ValueError("require_roles needs at least one role")
        self.allowed_roles: frozenset[Role] = allowed
        self._needs = ", ".join(r.value for r in Role if r in allowed)

    async def __call__(
        self,
        request: Request,
        _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer_scheme)],
    ) -> Principal:
        # the caller as `current_principal` has it, without a dependency level of its own
        principal = await _principal_of(request)
        if principal.role not in self.allowed_roles:
            raise HTTPException(
                403,
                detail=f"role {principal.role.value} may not call this route; "
                f"needs one of: {self._needs}",
            )
        return principal

    def __repr__(self) -> str:
        return f"require_roles({self._needs})"


def require_roles(*roles: Role | str) -> RoleRequirement:
    """`Depends(require_roles("admin"))`: the caller, if their role is one of `roles`."""
    return RoleRequirement(roles)


def route_roles(route: object) -> frozenset[Role] | None:
    """The roles a route admits, read from its dependencies; None when it has no auth
    dependency at all (a public route). Several `require_roles` must all be met. Takes an
    `APIRoute`, or the `RouteContext` of a route inside an included router (which carries
    the router-level dependencies too)."""
    dependant = getattr(route, "dependant", None)
    if not isinstance(dependant, Dependant):
        return None
    requirements: list[frozenset[Role]] = []
    authenticated = False

    def walk(dependant: Dependant) -> None:
        nonlocal authenticated
        for dep in dependant.dependencies:
            if isinstance(dep.call, RoleRequirement):
                requirements.append(dep.call.allowed_roles)
                authenticated = True
            elif dep.call is current_principal:
                authenticated = True
            walk(dep)

    walk(dependant)
    if not authenticated:
        return None
    allowed = frozenset(Role)
    for required in requirements:
        allowed &= required
    return allowed
