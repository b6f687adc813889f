"""API keys: issued once, stored only as a hash, checked in constant time, revocable.

A token is `thk_<key_id>_<secret>`: `key_id` (16 hex characters) finds the key, `secret`
(32 random bytes, URL-safe base64) proves possession. A key is kept as a `StoredKey`:
its id, name, role, agency, times of creation and revocation, who it stands for, and a
SHA-256 digest of the secret — never the secret. Every check reads the store, so a
revoked key stops working on the very next request, in every process sharing it.
Log lines name key ids only.

`ApiKeys` is the port; everything about the token format, the digest and what a key
may be is decided here, so that every implementation keeps keys alike:
`hub.auth.memory.MemoryApiKeys` in a dict, `hub.store.api_keys.SqlApiKeys` in the
read store's `api_key` table (SQLite and PostgreSQL). One contract suite runs against
each (tests/contract/test_api_keys.py).
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

import structlog

from hub.auth.principal import FAMILY_VIEWER_ROLES, FamilyCapacity, Principal, Role, parse_role
from hub.consent.policy import SharingPolicy
from hub.consent.senders import Sender

log = structlog.get_logger(__name__)

TOKEN_PREFIX = "thk_"  # noqa: S105 - the public marker of our token format, not a secret
MAX_NAME = 128
MAX_AGENCY = 128
_TOKEN = re.compile(r"thk_([0-9a-f]{16})_([A-Za-z0-9_-]{32,128})")
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/|-]{0,127}")
_ORGANISATION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
"""An organisation code as a fact's source names it (URN, DfE number, ODS code, LA code)."""
_SENDER = re.compile(r"[a-z][a-z0-9_]{0,63}")
"""An id as team events name a practitioner (or a child): never a name, no spaces."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a practitioner or family key stands for (beyond its name and role)."""

    practitioner_id: str | None = None
    policy_role: str | None = None
    organisation: str | None = None
    child_id: str | None = None
    capacity: FamilyCapacity | None = None

    @classmethod
    def practitioner(
        cls,
        policy: SharingPolicy,
        practitioner_id: str,
        policy_role: str,
        organisation: str | None = None,
    ) -> tuple[str, Identity]:
        """A practitioner's identity and the agency their policy role belongs to;
        `ValueError` naming the roles there are when `policy_role` is not one."""
        spec = policy.roles.get(policy_role)
        if spec is None or spec.kind != "practitioner" or spec.agency is None:
            roles = ", ".join(
                sorted(r for r, spec in policy.roles.items() if spec.kind == "practitioner")
            )
            raise ValueError(
                f"policy_role {policy_role!r} is not a practitioner role of the policy; "
                f"roles are: {roles}"
            )
        return spec.agency, cls(
            practitioner_id=practitioner_id, policy_role=policy_role, organisation=organisation
        )

    def check(self, role: Role, agency: str | None) -> None:
        """`ValueError` naming the option that is missing or malformed for `role`."""
        for what in ("practitioner_id", "organisation", "child_id"):
            value = getattr(self, what)
            if value is not None and not _REFERENCE.fullmatch(value):
                raise ValueError(
                    f"{what} must be an id of letters, digits and . _ : / | - (no spaces), "
                    "at most 128 characters"
                )
        if self.capacity is not None and self.capacity not in FAMILY_VIEWER_ROLES:
            raise ValueError(f"capacity must be one of: {', '.join(FAMILY_VIEWER_ROLES)}")
        # The principal's own rules say which fields each role needs.
        Principal(
            name="check",
            role=role,
            agency=agency,
            practitioner_id=self.practitioner_id,
            policy_role=self.policy_role,
            organisation=self.organisation,
            children=(self.child_id,) if self.child_id else (),
            capacity=self.capacity,
        )


@dataclass(frozen=True, slots=True)
class Publishing:
    """What an agency key may claim: its kind of sender in the policy (`senders`: the
    statutory bases it may rely on) and the organisation codes it publishes as."""

    sender: str | None = None
    organisations: tuple[str, ...] = ()

    def check(self, role: Role) -> None:
        if (self.sender or self.organisations) and role is not Role.AGENCY:
            raise ValueError("only an agency key has a sender kind or organisation codes")
        if self.sender is not None and not _SENDER.fullmatch(self.sender):
            raise ValueError("sender must be a lower-case code of the policy's senders")
        for code in self.organisations:
            if not _ORGANISATION.fullmatch(code) or not code.isascii():
                raise ValueError(
                    "an organisation code is letters, digits and . _ - (ASCII, no spaces), "
                    "at most 32 characters"
                )

    @property
    def stored(self) -> str | None:
        return " ".join(sorted(set(self.organisations))) or None


def organisations_of(stored: object) -> tuple[str, ...]:
    """The organisation codes of `Publishing.stored` (None or "" for none)."""
    return tuple(str(stored).split()) if stored else ()


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What `ApiKeys.list()` shows of a key: everything but the secret."""

    key_id: str
    name: str
    role: Role
    agency: str | None
    created_at: datetime
    revoked_at: datetime | None
    identity: Identity = Identity()
    publishing: Publishing = Publishing()

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _digest(key_id: str, secret: str) -> str:
    # Why plain SHA-256 and not bcrypt/argon2: the secret is 256 bits from `secrets`, not a
    # password a person chose, so no dictionary applies and brute force over 2^256 is out
    # of reach whatever the hash costs; a deliberately slow KDF would only add latency to
    # every request. Not HMAC with a server key either: `HUB_MASTER_KEY` is optional and
    # rotating it would silently void every key. The key id is hashed in too, so a digest
    # copied onto another row does not verify there. The `sha256:` tag leaves room to
    # change scheme later without guessing what a stored value is.
    material = f"{key_id}:{secret}".encode()
    return "sha256:" + hashlib.sha256(material).hexdigest()


def now_stamp() -> str:
    """A time as keys record it (creation, revocation): UTC ISO 8601 to the microsecond,
    so that stamps sort as text in the order of time."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _check_text(what: str, value: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{what} must be at most {limit} characters (got {len(value)})")
    if not value.isprintable():
        raise ValueError(f"{what} must contain printable characters only")
    if value != value.strip():
        raise ValueError(f"{what} must not start or end with whitespace")
    return value


def key_id_of(token: str) -> str | None:
    """The key id of a well-formed API key token, else None (safe to log)."""
    match = _TOKEN.fullmatch(token)
    return match.group(1) if match else None


def token_parts(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed token, else None."""
    match = _TOKEN.fullmatch(token)
    return None if match is None else (match.group(1), match.group(2))


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One key as a store keeps it: the digest of its secret, never the secret. `role`
    and the times are kept as stored (text), so a row edited by hand into something
    impossible is refused when used rather than when read."""

    key_id: str
    name: str
    role: str
    agency: str | None
    secret_hash: str
    created_at: str
    revoked_at: str | None = None
    identity: Identity = Identity()
    publishing: Publishing = Publishing()

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def revoked(self, at: str) -> StoredKey:
        return replace(self, revoked_at=at)

    def info(self) -> KeyInfo:
        return KeyInfo(
            key_id=self.key_id,
            name=self.name,
            role=Role(self.role),
            agency=self.agency,
            created_at=datetime.fromisoformat(self.created_at),
            revoked_at=datetime.fromisoformat(self.revoked_at) if self.revoked_at else None,
            identity=self.identity,
            publishing=self.publishing,
        )


def new_key(
    role: Role | str,
    name: str,
    agency: str | None = None,
    identity: Identity | None = None,
    publishing: Publishing | None = None,
) -> tuple[StoredKey, str]:
    """A new key to store, and its token (shown once, never stored); `ValueError` naming
    what is wrong with the request (see `ApiKeys.create`)."""
    the_role = parse_role(role)
    who = identity or Identity()
    pub = publishing or Publishing()
    pub.check(the_role)
    _check_text("name", name, MAX_NAME)
    if agency is not None:
        _check_text("agency", agency, MAX_AGENCY)
    elif the_role is Role.AGENCY:
        raise ValueError("agency is required for role agency (the agency it publishes as)")
    who.check(the_role, agency)
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    stored = StoredKey(
        key_id=key_id,
        name=name,
        role=the_role.value,
        agency=agency,
        secret_hash=_digest(key_id, secret),
        created_at=now_stamp(),
        identity=who,
        publishing=Publishing(pub.sender, organisations_of(pub.stored)),
    )
    return stored, f"{TOKEN_PREFIX}{key_id}_{secret}"


_ABSENT = _digest("0" * 16, "")


def verified(key_id: str, secret: str, stored: StoredKey | None) -> Principal | None:
    """The principal `stored` stands for when `secret` is its secret and it is active,
    else None. Compared in constant time, and even when the key is missing, so that both
    paths take the same time."""
    presented = _digest(key_id, secret)
    kept = stored.secret_hash if stored is not None else _ABSENT
    matches = hmac.compare_digest(presented.encode(), str(kept).encode())
    if stored is None or not matches or not stored.active:
        return None
    who, pub = stored.identity, stored.publishing
    try:
        return Principal(
            name=stored.name,
            role=Role(stored.role),
            agency=stored.agency,
            key_id=key_id,
            via="api_key",
            practitioner_id=who.practitioner_id,
            policy_role=who.policy_role,
            organisation=who.organisation,
            children=(who.child_id,) if who.child_id else (),
            capacity=who.capacity,
            sender=pub.sender,
            organisations=pub.organisations,
        )
    except ValueError:  # a row edited by hand into an impossible state
        log.warning("api_key.unusable_row", key_id=key_id)
        return None


def publisher_of(key: str, named: list[StoredKey]) -> Principal:
    """The agency principal of the one active key `named` holds (the active keys whose
    id or name is `key`, by key id); `LookupError` saying why not."""
    if not named:
        raise LookupError(f"no active API key is named {key!r} (hub keys list)")
    if len(named) > 1:
        ids = ", ".join(k.key_id for k in named)
        raise LookupError(f"several active keys are named {key!r}: use a key id ({ids})")
    (k,) = named
    if k.role != Role.AGENCY.value:
        raise LookupError(f"key {key!r} is a {k.role} key, not an agency's: it publishes nothing")
    return Principal(
        name=k.name,
        role=Role.AGENCY,
        agency=k.agency,
        key_id=k.key_id,
        sender=k.publishing.sender,
        organisations=k.publishing.organisations,
    )


class ApiKeys(Protocol):
    """The API keys port: what the authenticator, `hub keys` and `hub ingest --as`, the
    family invitations, the inbound Kafka consumer and the routes use. Implementations
    build keys with `new_key`, check them with `verified` and find publishers with
    `publisher_of`, so keys are alike whichever store keeps them."""

    async def create(
        self,
        role: Role | str,
        name: str,
        agency: str | None = None,
        identity: Identity | None = None,
        publishing: Publishing | None = None,
    ) -> tuple[str, str]:
        """Issue a key; returns `(key_id, token)`. The token is not stored and cannot be
        shown again. `agency` is required for roles `agency` and `practitioner`;
        `identity` carries a practitioner's id, policy role and organisation, or the child
        and capacity of a family member; `publishing` an agency's sender kind and the
        organisation codes it may publish as. `ValueError` naming what is wrong."""
        ...

    async def verify(self, token: str) -> Principal | None:
        """The principal a token stands for, or None when it is malformed, unknown, wrong
        or revoked (the caller is not told which)."""
        ...

    async def revoke(self, key_id_or_name: str) -> int:
        """Revoke the active key with this id, or every active key with this name; returns
        how many were revoked (0 when none matched). Effective immediately."""
        ...

    async def revoke_child(self, child_id: str) -> int:
        """Revoke every active key bound to the child (a family member's, on the child's
        erasure); returns how many."""
        ...

    async def list(self) -> builtins.list[KeyInfo]:
        """Every key, active and revoked, oldest first, without secrets or digests."""
        ...

    async def bound_codes(self) -> frozenset[str]:
        """The organisation codes active agency keys are bound to."""
        ...

    async def publisher(self, key: str) -> Principal:
        """The active agency key named `key` (its name, or its key id) as the principal it
        stands for, for publishing from the command line (`hub ingest --as`); `LookupError`
        saying why not (no such active key, several of that name, not an agency key)."""
        ...


async def sender_of(
    keys: ApiKeys, principal: Principal, *, also_bound: frozenset[str] = frozenset()
) -> Sender:
    """What `principal` (an agency) may claim: its sender kind and organisation codes;
    for a credential bound to none, the codes other active keys (and `also_bound`: the
    configured Kafka senders') are bound to, which it may not name."""
    agency = principal.agency or ""
    if principal.organisations:
        return Sender(agency, principal.sender, frozenset(principal.organisations))
    taken = await keys.bound_codes() | also_bound
    return Sender(agency, principal.sender, taken_elsewhere=taken)
