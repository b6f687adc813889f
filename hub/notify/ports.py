"""The notification ports: a delivery channel, and the outbox notices wait in.

A `Delivery` sends one message and raises `DeliveryFailed` when it could not (`permanent`
when trying again cannot help, e.g. no address). The outbox keeps each notice once by
its id; a sender claims due notices under a lease before it sends, marks each sent after,
and on a failure either schedules the next attempt or dead-letters it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from hub.notify.model import Notice, Preference


@dataclass(frozen=True, slots=True)
class Message:
    """One message to one address: the notice id is its Message-ID / idempotency key."""

    message_id: str
    to: str
    subject: str
    body: str
    data: dict[str, object] = field(default_factory=dict)
    """The structured form (webhooks, GOV.UK Notify personalisation)."""


class DeliveryFailed(Exception):
    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Delivery(Protocol):
    """One channel (SMTP email, GOV.UK Notify, a signed webhook, the local mailbox)."""

    async def send(self, message: Message) -> None: ...


@dataclass(frozen=True, slots=True)
class Claimed:
    notice: Notice
    attempts: int
    """Attempts so far, this one included."""


class Outbox(Protocol):
    """Where notices wait to be sent, with each recipient's preference and each agency's
    webhook: `hub.notify.memory.MemoryOutbox`, `hub.store.notify_outbox.SqlOutbox`
    (SQLite and PostgreSQL), one contract suite (tests/contract/test_notify_outbox.py)."""

    async def add(self, notices: Sequence[Notice], at: datetime) -> int:
        """Keep the notices not kept before (by id); returns how many were new."""
        ...

    async def claim(
        self, owner: str, at: datetime, lease_seconds: float, limit: int
    ) -> list[Claimed]:
        """Claim up to `limit` due notices (pending and due, or leased and lapsed) for
        `owner` until `at + lease_seconds`: no other claimant gets them meanwhile."""
        ...

    async def sent(self, notice_id: str, owner: str, at: datetime, channel: str) -> bool:
        """Mark a claimed notice sent (False: the claim had lapsed and been taken)."""
        ...

    async def failed(
        self, notice_id: str, owner: str, reason: str, retry_at: datetime | None
    ) -> None:
        """Schedule the next attempt at `retry_at`, or (None) mark the notice dead."""
        ...

    async def hold(self, notice_id: str, owner: str) -> None:
        """Keep a claimed notice for its recipient's daily digest."""
        ...

    async def held(self, recipient: str) -> list[Notice]:
        """The recipient's notices held for their digest, by due date."""
        ...

    async def held_recipients(self) -> list[str]: ...

    async def digested(self, digest_notice: Notice, items: Sequence[str], at: datetime) -> int:
        """Add the day's digest notice and mark its held items as in it, at once
        (0: that day's digest was made already)."""
        ...

    async def digest_items(self, digest_id: str) -> list[Notice]: ...

    async def revive(self, notice_id: str, at: datetime) -> bool:
        """Queue a dead notice to be sent again (False: it is not dead)."""
        ...

    async def counts(self) -> dict[str, int]:
        """How many notices are in each state (pending, sending, sent, held, …)."""
        ...

    async def preference(self, recipient: str) -> Preference | None: ...

    async def set_preference(self, pref: Preference, at: datetime) -> None: ...

    async def webhook(self, agency: str) -> tuple[str, str] | None:
        """The agency's webhook (url, signing secret), or None."""
        ...

    async def set_webhook(self, agency: str, url: str, secret: str, at: datetime) -> None:
        """Set the agency's webhook; the secret is kept sealed where it is stored."""
        ...

    async def webhook_agencies(self) -> list[str]: ...
