"""The GOV.UK Notify channel through its official client, against a real local HTTP
server process; and a recipient's daily digest, on a real SQLite store."""

from __future__ import annotations

import asyncio
import email
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

from hub.adapters.delivery import MailboxDelivery, NotifyDelivery
from hub.consent.audit_trail import MemoryAuditTrail
from hub.log.sqlite import SqliteEventLog
from hub.notify.model import Preference, make_notice, render
from hub.notify.ports import Message
from hub.notify.secret_box import SecretBox
from hub.service_layer.notify import NotifyConfig, SendNotices
from hub.store.notify_outbox import SqlOutbox
from hub.store.sqlite import SqliteReadStore
from tests.support.mail import requests, webhook_receiver


def test_notify_sends_the_subject_body_and_reference_to_the_notify_api(tmp_path: Path) -> None:
    out = tmp_path / "notify.jsonl"
    n = make_notice("advice_overdue", "coordinator:a", "hc-1", "advice:1", plan_id="p-1",
                    due_on=date(2026, 11, 1))  # fmt: skip
    subject, body = render(n, "https://hub.example.org")
    template = str(uuid.uuid4())
    key = f"hub-test-{uuid.uuid4()}-{uuid.uuid4()}"
    with webhook_receiver(out, tmp_path / "notify.log", status=204) as port:
        delivery = NotifyDelivery(key, template, base_url=f"http://127.0.0.1:{port}")
        link = {"link": "https://hub.example.org/plan/p-1"}
        asyncio.run(delivery.send(Message(n.id, "a@la.example.org", subject, body, link)))
    [req] = requests(out)
    assert req["path"] == "/v2/notifications/email"
    assert req["headers"]["Authorization"].startswith("Bearer ")  # the client's JWT
    import json

    sent = json.loads(req["body"])
    assert sent["template_id"] == template and sent["reference"] == n.id
    assert sent["email_address"] == "a@la.example.org"
    assert sent["personalisation"] == {"subject": subject, "body": body, **link}


async def test_a_digest_recipient_gets_one_message_a_day_listing_what_is_due(
    tmp_path: Path,
) -> None:
    store = SqliteReadStore(tmp_path / "store.db")
    log = SqliteEventLog(tmp_path / "log.db", partitions=1)
    await store.start()
    await log.start()
    try:
        outbox = SqlOutbox(store, SecretBox(bytes(range(32))))
        now = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
        await outbox.set_preference(Preference("coordinator:a", "mailbox", None, True), now)
        notices = [
            make_notice(
                "milestone_due_soon",
                "coordinator:a",
                f"hc-{i}",
                f"k{i}",
                plan_id=f"p-{i}",
                due_on=date(2026, 12, 5 + i),
            )
            for i in range(3)
        ]
        await outbox.add(notices, now)
        box = MailboxDelivery(tmp_path / "mailbox", "hub@localhost")
        trail = MemoryAuditTrail()
        send = SendNotices(outbox=outbox, log=log, trail=trail, config=NotifyConfig(),
                           channels={"mailbox": box}, clock=lambda: now)  # fmt: skip
        first = await send.run_once()
        assert first.held == 3 and first.sent == 0
        assert await send.make_digests(now.date()) == 1
        assert (await send.run_once()).sent == 1
        [path] = list((tmp_path / "mailbox").glob("*.eml"))
        mail = email.message_from_bytes(path.read_bytes())
        text = mail.get_payload(decode=True).decode()
        assert "3 item(s)" in mail["Subject"]
        assert all(f"/plan/p-{i}" in text for i in range(3))
        # the same day again: nothing new to digest, nothing sent
        assert await send.make_digests(now.date()) == 0
        assert (await send.run_once()).sent == 0
        assert await outbox.counts() == {"digested": 3, "sent": 1}
    finally:
        await log.close()
        await store.close()
