"""Who is calling: the hub's four roles, the authenticated `Principal`, and `AuthError`.

A principal is what every credential — an API key or an OIDC JWT — is reduced to before
any route sees it: a display name, one role, the agency it acts for (required for the
`agency` role, which publishes only as its own agency), the API key id when there is one,
and which mechanism vouched for it. `AuthError` carries a reason that is safe to show the
caller: it never echoes the token.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Via = Literal["api_key", "oidc"]


class Role(StrEnum):
    """What a caller may do. Routes name the roles they admit; there is no hierarchy."""

    AGENCY = "agency"  # publishes facts, as its own agency only
    COORDINATOR = "coordinator"  # reads children on their caseload
    IG_AUDITOR = "ig_auditor"  # reads audit trails
    ADMIN = "admin"  # operates the hub


ROLE_NAMES = ", ".join(r.value for r in Role)


def parse_role(value: str) -> Role:
    """`value` as a `Role`, or a `ValueError` that lists the roles there are."""
    try:
        return Role(value)
    except ValueError:
        raise ValueError(f"unknown role {value!r}; roles are: {ROLE_NAMES}") from None


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `agency` is required for (and only meaningful with) the
    `agency` role; `key_id` is set when an API key vouched for the caller."""

    name: str
    role: Role
    agency: str | None = None
    key_id: str | None = None
    via: Via = "api_key"

    def __post_init__(self) -> None:
        if self.role is Role.AGENCY and not self.agency:
            raise ValueError("a principal with role agency needs an agency")


class AuthError(Exception):
    """The request cannot be authenticated. `reason` is safe to return to the caller (it
    names what is wrong, never the token); `status` is 401, or 503 when the issuer's
    signing keys cannot be fetched."""

    def __init__(self, reason: str, *, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status

    def __str__(self) -> str:
        return self.reason
