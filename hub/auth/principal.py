"""Who is calling: the hub's roles, the authenticated `Principal`, and `AuthError`.

A principal is what every credential — an API key or an OIDC JWT — is reduced to before
any route sees it: a display name, one role, the agency it acts for (required for the
`agency` role, which publishes only as its own agency), the API key id when there is one,
and which mechanism vouched for it. A `practitioner` also carries who they are in the
team around a child (their practitioner id as team events name them, their role in the
policy's vocabulary, their organisation); a `family` member carries the one child whose
record they may open and the capacity they act in (a parent with parental
responsibility, or the young person themself). `AuthError` carries a reason that is safe
to show the caller: it never echoes the token.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

Via = Literal["api_key", "oidc"]
FamilyCapacity = Literal["parent_with_pr", "young_person"]
"""In what capacity a family member acts: a parent with parental responsibility, or the
young person themself (the consent grantor capacities a family member can hold)."""

FAMILY_VIEWER_ROLES: dict[str, str] = {"parent_with_pr": "parent", "young_person": "young_person"}
"""The policy's family role for each capacity (contracts/consent-policy.yaml `family_access`)."""


class Role(StrEnum):
    """What a caller may do. Routes name the roles they admit; there is no hierarchy."""

    AGENCY = "agency"  # publishes facts, as its own agency only
    COORDINATOR = "coordinator"  # reads children on their caseload
    PRACTITIONER = "practitioner"  # reads children whose team they are on, as the policy lets
    FAMILY = "family"  # reads their own child's shared view; gives and withdraws consent
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
    """An authenticated caller. `agency` is required for the `agency` and `practitioner`
    roles; `key_id` is set when an API key vouched for the caller. A practitioner needs
    `practitioner_id` and `policy_role`; a family member needs `children` (the child or
    children they act for: one per key, one or more per OIDC sign-in) and `capacity`."""

    name: str
    role: Role
    agency: str | None = None
    key_id: str | None = None
    via: Via = "api_key"
    practitioner_id: str | None = None
    policy_role: str | None = None
    organisation: str | None = None
    children: tuple[str, ...] = ()
    capacity: FamilyCapacity | None = None
    sender: str | None = None
    """An agency's kind of sender in the policy (`senders`): which statutory bases it may
    claim (None: none)."""
    organisations: tuple[str, ...] = ()
    """The organisation codes an agency credential may publish as (empty: unbound)."""

    def __post_init__(self) -> None:
        if self.role is not Role.AGENCY and (self.sender or self.organisations):
            raise ValueError("only an agency principal has a sender kind or organisation codes")
        if self.role is Role.AGENCY and not self.agency:
            raise ValueError("a principal with role agency needs an agency")
        if self.role is Role.PRACTITIONER:
            missing = [
                f for f in ("practitioner_id", "policy_role", "agency") if not getattr(self, f)
            ]
            if missing:
                raise ValueError(f"a practitioner principal needs {', '.join(missing)}")
        elif self.practitioner_id or self.policy_role:
            raise ValueError("only a practitioner principal has a practitioner id or policy role")
        if self.role is Role.FAMILY:
            if not self.children or self.capacity not in FAMILY_VIEWER_ROLES:
                raise ValueError("a family principal needs a child id and a capacity")
        elif self.children or self.capacity:
            raise ValueError("only a family principal is bound to a child")

    def acts_for(self, child_id: str) -> bool:
        """Whether this is a family member of the child (false for every other role)."""
        return self.role is Role.FAMILY and child_id in self.children

    @property
    def viewer_role(self) -> str:
        """The role the consent policy judges this caller as: a practitioner's policy role
        (senco, paediatrician, ...), a family member's family role, else the hub role."""
        if self.policy_role:
            return self.policy_role
        if self.capacity:
            return FAMILY_VIEWER_ROLES[self.capacity]
        return self.role.value

    @property
    def actor(self) -> str:
        """How the audit trail names who acted: role and principal name (never a person's
        name for a family member, whose principal name is an opaque reference)."""
        return f"{self.role}:{self.name}"


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
