"""`hub.auth.keys.ApiKeys` in the read store's `api_key` table (SQLite or PostgreSQL).

One row per key: the key id, name, role, agency, `secret_hash` (the `sha256:` digest of
`hub.auth.keys`, never the secret), `created_at` and `revoked_at` (ISO 8601 text), who a
practitioner or family key stands for, and an agency key's sender kind and organisation
codes (space-separated). Revoking is one `UPDATE ... RETURNING`, so it is effective for
every process sharing the store at once.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

import structlog

from hub.auth.keys import (
    Identity,
    KeyInfo,
    Publishing,
    StoredKey,
    new_key,
    now_stamp,
    organisations_of,
    publisher_of,
    token_parts,
    verified,
)
from hub.auth.principal import Principal, Role
from hub.store.base import ReadStore

log = structlog.get_logger(__name__)

_COLUMNS = (
    "key_id, name, role, agency, secret_hash, created_at, revoked_at, practitioner_id,"
    " policy_role, organisation, child_id, capacity, sender, organisations"
)


def _stored(row: Sequence[object]) -> StoredKey:
    r = row
    return StoredKey(
        key_id=str(r[0]),
        name=str(r[1]),
        role=str(r[2]),
        agency=None if r[3] is None else str(r[3]),
        secret_hash=str(r[4]),
        created_at=str(r[5]),
        revoked_at=None if r[6] is None else str(r[6]),
        identity=Identity(*r[7:12]),  # type: ignore[arg-type]
        publishing=Publishing(
            None if r[12] is None else str(r[12]),
            organisations_of(r[13]),
        ),
    )


class SqlApiKeys:
    """API keys in the `api_key` table of a `ReadStore`."""

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
        key, token = new_key(role, name, agency, identity, publishing)
        who, pub = key.identity, key.publishing
        async with self._store.transaction() as tx:
            await tx.execute(
                f"INSERT INTO api_key ({_COLUMNS})"  # noqa: S608 - constant
                " VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key.key_id,
                    key.name,
                    key.role,
                    key.agency,
                    key.secret_hash,
                    key.created_at,
                    who.practitioner_id,
                    who.policy_role,
                    who.organisation,
                    who.child_id,
                    who.capacity,
                    pub.sender,
                    pub.stored,
                ),
            )
        log.info("api_key.created", key_id=key.key_id, role=key.role)
        return key.key_id, token

    async def verify(self, token: str) -> Principal | None:
        parts = token_parts(token)
        if parts is None:
            return None
        key_id, secret = parts
        row = await self._store.fetchone(
            f"SELECT {_COLUMNS} FROM api_key WHERE key_id = ?",  # noqa: S608 - constant
            (key_id,),
        )
        return verified(key_id, secret, None if row is None else _stored(row))

    async def _revoke(self, where: str, params: tuple[str, ...]) -> int:
        async with self._store.transaction() as tx:
            rows = await tx.fetchall(
                f"UPDATE api_key SET revoked_at = ? WHERE ({where}) AND revoked_at IS NULL"  # noqa: S608 - constant
                " RETURNING key_id",
                (now_stamp(), *params),
            )
        revoked = sorted(str(r[0]) for r in rows)
        if revoked:
            log.info("api_key.revoked", key_ids=revoked)
        return len(revoked)

    async def revoke(self, key_id_or_name: str) -> int:
        return await self._revoke("key_id = ? OR name = ?", (key_id_or_name, key_id_or_name))

    async def revoke_child(self, child_id: str) -> int:
        return await self._revoke("child_id = ?", (child_id,))

    async def list(self) -> builtins.list[KeyInfo]:
        rows = await self._store.fetchall(
            f"SELECT {_COLUMNS} FROM api_key ORDER BY created_at, key_id"  # noqa: S608 - constant
        )
        return [_stored(r).info() for r in rows]

    async def bound_codes(self) -> frozenset[str]:
        rows = await self._store.fetchall(
            "SELECT organisations FROM api_key WHERE revoked_at IS NULL"
            " AND organisations IS NOT NULL"
        )
        return frozenset(c for r in rows for c in organisations_of(r[0]))

    async def publisher(self, key: str) -> Principal:
        rows = await self._store.fetchall(
            f"SELECT {_COLUMNS} FROM api_key"  # noqa: S608 - constant
            " WHERE (key_id = ? OR name = ?) AND revoked_at IS NULL ORDER BY key_id",
            (key, key),
        )
        return publisher_of(key, [_stored(r) for r in rows])
