"""The notification outbox on the read store (SQLite or PostgreSQL), `hub.notify.ports.Outbox`.

A notice is one row by its id (`INSERT ... ON CONFLICT DO NOTHING`), so deriving it again
changes nothing. `claim` moves due rows to `sending` under a lease in one statement
(`UPDATE ... RETURNING`); on PostgreSQL the candidate rows are locked `FOR UPDATE SKIP
LOCKED` and the outer condition is checked again on the locked row, so two notifiers
never claim one notice; SQLite has one writer at a time. Every later step names the
claim's owner: a notifier whose lease lapsed and was taken over cannot mark the notice.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from hub.notify.model import Notice, Preference
from hub.notify.ports import Claimed
from hub.notify.secret_box import SecretBox, SecretUnreadable, is_sealed
from hub.store import ReadStore

_COLUMNS = "notice_id, kind, recipient, child_id, plan_id, about, due_on, link"
_RETURNED = ", ".join(f"notify_outbox.{c.strip()}" for c in _COLUMNS.split(","))
_DUE = "((status = 'pending' AND next_attempt_at <= ?) OR (status = 'sending' AND lease_until < ?))"


def _notice(row: Sequence[object]) -> Notice:
    return Notice(
        id=str(row[0]),
        kind=str(row[1]),  # type: ignore[arg-type]
        recipient=str(row[2]),
        child_id=str(row[3]),
        plan_id=None if row[4] is None else str(row[4]),
        about=str(row[5]),
        due_on=None if row[6] is None else date.fromisoformat(str(row[6])),
        link=str(row[7]),
    )


class SqlOutbox:
    """`secrets` seals each agency's webhook secret in its row (`hub.notify.secret_box`);
    without one, webhooks cannot be set (read: only secrets stored before sealing)."""

    def __init__(self, store: ReadStore, secrets: SecretBox | None = None) -> None:
        self.store = store
        self.secrets = secrets

    async def add(self, notices: Sequence[Notice], at: datetime) -> int:
        if not notices:
            return 0
        ids = [n.id for n in notices]
        known: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await self.store.fetchall(
                f"SELECT notice_id FROM notify_outbox WHERE notice_id IN ({marks})",  # noqa: S608 - placeholders
                chunk,
            )
            known.update(str(r[0]) for r in rows)
        fresh = [n for n in {n.id: n for n in notices}.values() if n.id not in known]
        if not fresh:
            return 0
        stamp = at.isoformat()
        async with self.store.transaction() as tx:
            await tx.executemany(
                f"INSERT INTO notify_outbox ({_COLUMNS}, created_at, status, attempts,"  # noqa: S608 - constant
                " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?)"
                " ON CONFLICT (notice_id) DO NOTHING",
                [
                    (
                        n.id,
                        n.kind,
                        n.recipient,
                        n.child_id,
                        n.plan_id,
                        n.about,
                        n.due_on.isoformat() if n.due_on else None,
                        n.link,
                        stamp,
                        stamp,
                    )
                    for n in fresh
                ],
            )
        return len(fresh)

    async def claim(
        self, owner: str, at: datetime, lease_seconds: float, limit: int
    ) -> list[Claimed]:
        now = at.isoformat()
        until = (at + timedelta(seconds=lease_seconds)).isoformat()
        async with self.store.transaction() as tx:
            if self.store.dialect == "postgres":
                # The pick is a materialised CTE so that it runs once: as an IN (...)
                # subquery the planner may rerun it, and a rerun skips what other
                # claimants locked meanwhile, leaving due notices unclaimed.
                rows = await tx.fetchall(
                    "WITH picked AS MATERIALIZED (SELECT notice_id FROM notify_outbox"  # noqa: S608 - constants
                    f" WHERE {_DUE} ORDER BY next_attempt_at, notice_id LIMIT ?"
                    " FOR UPDATE SKIP LOCKED)"
                    " UPDATE notify_outbox SET status = 'sending', lease_owner = ?,"
                    " lease_until = ?, attempts = attempts + 1 FROM picked"
                    " WHERE notify_outbox.notice_id = picked.notice_id"
                    f" RETURNING {_RETURNED}, notify_outbox.attempts",
                    (now, now, limit, owner, until),
                )
            else:  # SQLite: one writer at a time, the statement is the lock
                rows = await tx.fetchall(
                    "UPDATE notify_outbox SET status = 'sending', lease_owner = ?,"  # noqa: S608 - constants
                    " lease_until = ?, attempts = attempts + 1 WHERE notice_id IN (SELECT"
                    f" notice_id FROM notify_outbox WHERE {_DUE}"
                    " ORDER BY next_attempt_at, notice_id LIMIT ?)"
                    f" RETURNING {_COLUMNS}, attempts",
                    (owner, until, now, now, limit),
                )
        return [Claimed(_notice(r), int(r[8])) for r in rows]

    async def sent(self, notice_id: str, owner: str, at: datetime, channel: str) -> bool:
        async with self.store.transaction() as tx:
            rows = await tx.fetchall(
                "UPDATE notify_outbox SET status = 'sent', sent_at = ?, channel = ?,"
                " lease_owner = NULL, lease_until = NULL, last_error = NULL"
                " WHERE notice_id = ? AND status = 'sending' AND lease_owner = ?"
                " RETURNING notice_id",
                (at.isoformat(), channel, notice_id, owner),
            )
        return bool(rows)

    async def failed(
        self, notice_id: str, owner: str, reason: str, retry_at: datetime | None
    ) -> None:
        status = "pending" if retry_at is not None else "dead"
        async with self.store.transaction() as tx:
            await tx.execute(
                "UPDATE notify_outbox SET status = ?,"
                " next_attempt_at = COALESCE(?, next_attempt_at), last_error = ?,"
                " lease_owner = NULL, lease_until = NULL"
                " WHERE notice_id = ? AND status = 'sending' AND lease_owner = ?",
                (
                    status,
                    retry_at.isoformat() if retry_at else None,
                    reason[:500],
                    notice_id,
                    owner,
                ),
            )

    async def hold(self, notice_id: str, owner: str) -> None:
        async with self.store.transaction() as tx:
            await tx.execute(
                "UPDATE notify_outbox SET status = 'held', lease_owner = NULL, lease_until = NULL,"
                " attempts = 0 WHERE notice_id = ? AND status = 'sending' AND lease_owner = ?",
                (notice_id, owner),
            )

    async def held(self, recipient: str) -> list[Notice]:
        rows = await self.store.fetchall(
            f"SELECT {_COLUMNS} FROM notify_outbox WHERE recipient = ? AND status = 'held'"  # noqa: S608 - constant
            " ORDER BY due_on, notice_id",
            (recipient,),
        )
        return [_notice(r) for r in rows]

    async def held_recipients(self) -> list[str]:
        rows = await self.store.fetchall(
            "SELECT DISTINCT recipient FROM notify_outbox WHERE status = 'held' ORDER BY recipient"
        )
        return [str(r[0]) for r in rows]

    async def digested(self, digest_notice: Notice, items: Sequence[str], at: datetime) -> int:
        """Add the day's digest notice and mark its items as in it, in one transaction
        (0: that day's digest was made already)."""
        stamp = at.isoformat()
        async with self.store.transaction() as tx:
            made = await tx.fetchall(
                f"INSERT INTO notify_outbox ({_COLUMNS}, created_at, status, attempts,"  # noqa: S608 - constant
                " next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?)"
                " ON CONFLICT (notice_id) DO NOTHING RETURNING notice_id",
                (digest_notice.id, "digest", digest_notice.recipient, digest_notice.child_id,
                 None, digest_notice.about, None, digest_notice.link, stamp, stamp),
            )  # fmt: skip
            if not made:
                return 0
            for i in range(0, len(items), 500):
                chunk = list(items[i : i + 500])
                marks = ", ".join("?" for _ in chunk)
                await tx.execute(
                    "UPDATE notify_outbox SET status = 'digested', digest_id = ?"  # noqa: S608 - placeholders
                    f" WHERE status = 'held' AND notice_id IN ({marks})",
                    (digest_notice.id, *chunk),
                )
        return len(items)

    async def digest_items(self, digest_id: str) -> list[Notice]:
        rows = await self.store.fetchall(
            f"SELECT {_COLUMNS} FROM notify_outbox WHERE digest_id = ? ORDER BY due_on, notice_id",  # noqa: S608 - constant
            (digest_id,),
        )
        return [_notice(r) for r in rows]

    async def revive(self, notice_id: str, at: datetime) -> bool:
        """Queue a dead notice to be sent again (False: it is not dead)."""
        async with self.store.transaction() as tx:
            rows = await tx.fetchall(
                "UPDATE notify_outbox SET status = 'pending', attempts = 0, next_attempt_at = ?,"
                " last_error = NULL WHERE notice_id = ? AND status = 'dead' RETURNING notice_id",
                (at.isoformat(), notice_id),
            )
        return bool(rows)

    async def counts(self) -> dict[str, int]:
        rows = await self.store.fetchall(
            "SELECT status, COUNT(*) FROM notify_outbox GROUP BY status ORDER BY status"
        )
        return {str(s): int(n) for s, n in rows}

    # -- preferences and webhooks ----------------------------------------------------
    async def preference(self, recipient: str) -> Preference | None:
        row = await self.store.fetchone(
            "SELECT recipient, channel, address, digest FROM notify_preference WHERE recipient = ?",
            (recipient,),
        )
        if row is None:
            return None
        return Preference(str(row[0]), str(row[1]), row[2], bool(row[3]))  # type: ignore[arg-type]

    async def set_preference(self, pref: Preference, at: datetime) -> None:
        async with self.store.transaction() as tx:
            await tx.execute(
                "INSERT INTO notify_preference (recipient, channel, address, digest, updated_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (recipient) DO UPDATE SET"
                " channel = excluded.channel, address = excluded.address,"
                " digest = excluded.digest, updated_at = excluded.updated_at",
                (pref.recipient, pref.channel, pref.address, int(pref.digest), at.isoformat()),
            )

    async def webhook(self, agency: str) -> tuple[str, str] | None:
        row = await self.store.fetchone(
            "SELECT url, secret FROM notify_webhook WHERE agency = ?", (agency,)
        )
        if row is None:
            return None
        stored = str(row[1])
        if self.secrets is None:
            if is_sealed(stored):
                raise SecretUnreadable(f"no key to open the webhook secret of {agency}")
            return str(row[0]), stored
        return str(row[0]), self.secrets.open(stored, owner=f"webhook:{agency}")

    async def set_webhook(self, agency: str, url: str, secret: str, at: datetime) -> None:
        if self.secrets is None:
            raise SecretUnreadable("webhook secrets are kept sealed: this outbox has no key")
        secret = self.secrets.seal(secret, owner=f"webhook:{agency}")
        async with self.store.transaction() as tx:
            await tx.execute(
                "INSERT INTO notify_webhook (agency, url, secret, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (agency) DO UPDATE SET url = excluded.url,"
                " secret = excluded.secret, updated_at = excluded.updated_at",
                (agency, url, secret, at.isoformat()),
            )

    async def webhook_agencies(self) -> list[str]:
        rows = await self.store.fetchall("SELECT agency FROM notify_webhook ORDER BY agency")
        return [str(r[0]) for r in rows]
