"""API keys: issued once, stored only as a hash, checked in constant time, revocable.

A token is `thk_<key_id>_<secret>`: `key_id` (16 hex characters) finds the row, `secret`
(32 random bytes, URL-safe base64) proves possession. The `api_key` table in the read
store holds the key id, name, role, agency, times of creation and revocation, and a
SHA-256 digest of the secret — never the secret. Every check reads the table, so a
revoked key stops working on the very next request, in every process sharing the store.
Log lines name key ids only.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from hub.auth.principal import FAMILY_VIEWER_ROLES, FamilyCapacity, Principal, Role, parse_role
from hub.consent.policy import SharingPolicy
from hub.consent.senders import Sender
from hub.store import ReadStore

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


def _organisations(stored: object) -> tuple[str, ...]:
    return tuple(str(stored).split()) if stored else ()


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What `ApiKeyStore.list()` shows of a key: everything but the secret."""

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


def _now() -> str:
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


class ApiKeyStore:
    """API keys in the `api_key` table of a `ReadStore` (SQLite or PostgreSQL)."""

    def __init__(self, store: ReadStore) -> None:
        self._store = store

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
        organisation codes it may publish as."""
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
        async with self._store.transaction() as tx:
            await tx.execute(
                "INSERT INTO api_key (key_id, name, role, agency, secret_hash, created_at,"
                " revoked_at, practitioner_id, policy_role, organisation, child_id, capacity,"
                " sender, organisations)"
                " VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key_id,
                    name,
                    the_role.value,
                    agency,
                    _digest(key_id, secret),
                    _now(),
                    who.practitioner_id,
                    who.policy_role,
                    who.organisation,
                    who.child_id,
                    who.capacity,
                    pub.sender,
                    pub.stored,
                ),
            )
        log.info("api_key.created", key_id=key_id, role=the_role.value)
        return key_id, f"{TOKEN_PREFIX}{key_id}_{secret}"

    async def verify(self, token: str) -> Principal | None:
        """The principal a token stands for, or None when it is malformed, unknown, wrong
        or revoked (the caller is not told which)."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        key_id, secret = match.group(1), match.group(2)
        row = await self._store.fetchone(
            "SELECT name, role, agency, secret_hash, revoked_at, practitioner_id, policy_role,"
            " organisation, child_id, capacity, sender, organisations FROM api_key"
            " WHERE key_id = ?",
            (key_id,),
        )
        presented = _digest(key_id, secret)
        # Compare even when the row is missing, so both paths take the same time.
        stored = row[3] if row is not None else _digest("0" * 16, "")
        matches = hmac.compare_digest(presented.encode(), str(stored).encode())
        if row is None or not matches or row[4] is not None:
            return None
        name, role, agency = row[0], row[1], row[2]
        try:
            return Principal(
                name=name,
                role=Role(role),
                agency=agency,
                key_id=key_id,
                via="api_key",
                practitioner_id=row[5],
                policy_role=row[6],
                organisation=row[7],
                children=(row[8],) if row[8] else (),
                capacity=row[9],
                sender=row[10],
                organisations=_organisations(row[11]),
            )
        except ValueError:  # a row edited by hand into an impossible state
            log.warning("api_key.unusable_row", key_id=key_id)
            return None

    async def revoke(self, key_id_or_name: str) -> int:
        """Revoke the active key with this id, or every active key with this name; returns
        how many were revoked (0 when none matched). Effective immediately."""
        async with self._store.transaction() as tx:
            rows = await tx.fetchall(
                "UPDATE api_key SET revoked_at = ?"
                " WHERE (key_id = ? OR name = ?) AND revoked_at IS NULL RETURNING key_id",
                (_now(), key_id_or_name, key_id_or_name),
            )
        revoked = sorted(str(r[0]) for r in rows)
        if revoked:
            log.info("api_key.revoked", key_ids=revoked)
        return len(revoked)

    async def list(self) -> builtins.list[KeyInfo]:
        """Every key, active and revoked, oldest first, without secrets or digests."""
        rows = await self._store.fetchall(
            "SELECT key_id, name, role, agency, created_at, revoked_at, practitioner_id,"
            " policy_role, organisation, child_id, capacity, sender, organisations FROM api_key"
            " ORDER BY created_at, key_id"
        )
        return [
            KeyInfo(
                key_id=str(r[0]),
                name=str(r[1]),
                role=Role(r[2]),
                agency=r[3],
                created_at=datetime.fromisoformat(r[4]),
                revoked_at=datetime.fromisoformat(r[5]) if r[5] is not None else None,
                identity=Identity(*r[6:11]),
                publishing=Publishing(r[11], _organisations(r[12])),
            )
            for r in rows
        ]

    async def bound_codes(self) -> frozenset[str]:
        """The organisation codes active agency keys are bound to."""
        rows = await self._store.fetchall(
            "SELECT organisations FROM api_key WHERE revoked_at IS NULL"
            " AND organisations IS NOT NULL"
        )
        return frozenset(c for r in rows for c in _organisations(r[0]))

    async def sender_of(
        self, principal: Principal, *, also_bound: frozenset[str] = frozenset()
    ) -> Sender:
        """What `principal` (an agency) may claim: its sender kind and organisation codes;
        for a credential bound to none, the codes other active keys (and `also_bound`:
        the configured Kafka senders') are bound to, which it may not name."""
        agency = principal.agency or ""
        if principal.organisations:
            return Sender(agency, principal.sender, frozenset(principal.organisations))
        taken = await self.bound_codes() | also_bound
        return Sender(agency, principal.sender, taken_elsewhere=taken)

    async def publisher(self, key: str) -> Principal:
        """The active agency key named `key` (its name, or its key id) as the principal it
        stands for, for publishing from the command line (`hub ingest --as`); `LookupError`
        saying why not (no such active key, several of that name, not an agency key)."""
        rows = await self._store.fetchall(
            "SELECT key_id, name, role, agency, sender, organisations FROM api_key"
            " WHERE (key_id = ? OR name = ?) AND revoked_at IS NULL ORDER BY key_id",
            (key, key),
        )
        if not rows:
            raise LookupError(f"no active API key is named {key!r} (hub keys list)")
        if len(rows) > 1:
            ids = ", ".join(str(r[0]) for r in rows)
            raise LookupError(f"several active keys are named {key!r}: use a key id ({ids})")
        key_id, name, role, agency, sender, organisations = rows[0]
        if role != Role.AGENCY.value:
            raise LookupError(f"key {key!r} is a {role} key, not an agency's: it publishes nothing")
        return Principal(
            name=str(name),
            role=Role.AGENCY,
            agency=agency,
            key_id=str(key_id),
            sender=sender,
            organisations=_organisations(organisations),
        )
