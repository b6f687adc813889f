"""`MemoryOutbox`: the outbox in memory, for tests and as the contract's reference.

One process, one event loop: each method runs to completion without awaiting, so a
claim is as exclusive as the SQL implementations' single statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from hub.notify.model import Notice, Preference
from hub.notify.ports import Claimed


@dataclass(frozen=True, slots=True)
class _Row:
    notice: Notice
    status: str
    attempts: int
    next_attempt_at: datetime
    lease_owner: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = None
    digest_id: str | None = None

    def due(self, at: datetime) -> bool:
        if self.status == "pending":
            return self.next_attempt_at <= at
        return self.status == "sending" and self.lease_until is not None and self.lease_until < at

    def claimed_by(self, owner: str) -> bool:
        return self.status == "sending" and self.lease_owner == owner


def _by_due(n: Notice) -> tuple[bool, str, str]:
    return (n.due_on is None, n.due_on.isoformat() if n.due_on else "", n.id)


class MemoryOutbox:
    def __init__(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._prefs: dict[str, Preference] = {}
        self._hooks: dict[str, tuple[str, str]] = {}

    async def add(self, notices: Sequence[Notice], at: datetime) -> int:
        fresh = {n.id: n for n in notices if n.id not in self._rows}
        for n in fresh.values():
            self._rows[n.id] = _Row(n, "pending", 0, at)
        return len(fresh)

    async def claim(
        self, owner: str, at: datetime, lease_seconds: float, limit: int
    ) -> list[Claimed]:
        due = sorted(
            (r for r in self._rows.values() if r.due(at)),
            key=lambda r: (r.next_attempt_at, r.notice.id),
        )[:limit]
        until = at + timedelta(seconds=lease_seconds)
        out = []
        for r in due:
            taken = replace(
                r, status="sending", lease_owner=owner, lease_until=until, attempts=r.attempts + 1
            )
            self._rows[r.notice.id] = taken
            out.append(Claimed(r.notice, taken.attempts))
        return out

    def _mine(self, notice_id: str, owner: str) -> _Row | None:
        row = self._rows.get(notice_id)
        return row if row is not None and row.claimed_by(owner) else None

    async def sent(self, notice_id: str, owner: str, at: datetime, channel: str) -> bool:
        row = self._mine(notice_id, owner)
        if row is None:
            return False
        self._rows[notice_id] = replace(
            row, status="sent", lease_owner=None, lease_until=None, last_error=None
        )
        return True

    async def failed(
        self, notice_id: str, owner: str, reason: str, retry_at: datetime | None
    ) -> None:
        row = self._mine(notice_id, owner)
        if row is None:
            return
        self._rows[notice_id] = replace(
            row,
            status="pending" if retry_at is not None else "dead",
            next_attempt_at=retry_at or row.next_attempt_at,
            last_error=reason[:500],
            lease_owner=None,
            lease_until=None,
        )

    async def hold(self, notice_id: str, owner: str) -> None:
        row = self._mine(notice_id, owner)
        if row is not None:
            self._rows[notice_id] = replace(
                row, status="held", lease_owner=None, lease_until=None, attempts=0
            )

    async def held(self, recipient: str) -> list[Notice]:
        held = [
            r.notice
            for r in self._rows.values()
            if r.status == "held" and r.notice.recipient == recipient
        ]
        return sorted(held, key=_by_due)

    async def held_recipients(self) -> list[str]:
        return sorted({r.notice.recipient for r in self._rows.values() if r.status == "held"})

    async def digested(self, digest_notice: Notice, items: Sequence[str], at: datetime) -> int:
        if digest_notice.id in self._rows:
            return 0
        digest = replace(digest_notice, kind="digest")  # type: ignore[arg-type]  # as stored
        self._rows[digest.id] = _Row(digest, "pending", 0, at)
        for notice_id in items:
            row = self._rows.get(notice_id)
            if row is not None and row.status == "held":
                self._rows[notice_id] = replace(row, status="digested", digest_id=digest_notice.id)
        return len(items)

    async def digest_items(self, digest_id: str) -> list[Notice]:
        items = [r.notice for r in self._rows.values() if r.digest_id == digest_id]
        return sorted(items, key=_by_due)

    async def revive(self, notice_id: str, at: datetime) -> bool:
        row = self._rows.get(notice_id)
        if row is None or row.status != "dead":
            return False
        self._rows[notice_id] = replace(
            row, status="pending", attempts=0, next_attempt_at=at, last_error=None
        )
        return True

    async def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self._rows.values():
            counts[r.status] = counts.get(r.status, 0) + 1
        return dict(sorted(counts.items()))

    async def preference(self, recipient: str) -> Preference | None:
        return self._prefs.get(recipient)

    async def set_preference(self, pref: Preference, at: datetime) -> None:
        self._prefs[pref.recipient] = pref

    async def webhook(self, agency: str) -> tuple[str, str] | None:
        return self._hooks.get(agency)

    async def set_webhook(self, agency: str, url: str, secret: str, at: datetime) -> None:
        self._hooks[agency] = (url, secret)

    async def webhook_agencies(self) -> list[str]:
        return sorted(self._hooks)
