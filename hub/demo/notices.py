"""The demo's notifications: the notifier run once over the loaded cohort, into the local
mailbox in the data directory (`<data_dir>/mailbox`, one `.eml` file per message)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hub.settings import Settings


@dataclass(frozen=True)
class DemoNotices:
    sent: int
    mailbox: Path
    overdue_advice: Path | None
    """The demo coordinator's overdue-advice notification, as written."""


async def send_demo_notices(settings: Settings, coordinator: str) -> DemoNotices:
    from hub.bootstrap import build_notifier, open_hub

    the_hub = await open_hub(settings)
    try:
        _, _, report = await build_notifier(the_hub).once()
        row = await the_hub.store.fetchone(
            "SELECT notice_id FROM notify_outbox WHERE kind = 'advice_overdue'"
            " AND recipient = ? AND status = 'sent' AND channel = 'mailbox'"
            " ORDER BY due_on, notice_id LIMIT 1",
            (f"coordinator:{coordinator}",),
        )
    finally:
        await the_hub.close()
    box = settings.mailbox_dir.resolve()
    return DemoNotices(
        sent=report.sent,
        mailbox=box,
        overdue_advice=None if row is None else box / f"{row[0]}.eml",
    )
