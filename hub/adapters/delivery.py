"""The delivery channels of notifications (`hub.notify.ports.Delivery`).

- `SmtpDelivery`: email over SMTP with aiosmtplib; the Message-ID is the notice id, so a
  receiver can drop a second copy (a notifier stopped between the server's acceptance
  and its own record of it sends the notice again when its lease lapses).
- `NotifyDelivery`: GOV.UK Notify through its official client, one template whose
  personalisation is the subject, body and link; the notice id is the reference.
- `WebhookDelivery`: an HTTP POST of the notice as JSON to an agency's URL, signed with
  HMAC-SHA256 over `<timestamp>.<body>` with the agency's secret
  (`X-Hub-Signature: t=<timestamp>,v1=<hex>`), the notice id as `Idempotency-Key`.
- `MailboxDelivery`: an `.eml` file per message in a local directory (the embedded
  default and the demo), named by the notice id, written atomically.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

import orjson

from hub.notify.ports import DeliveryFailed, Message

SIGNATURE_HEADER = "X-Hub-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def email_message(message: Message, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = message.to
    msg["Subject"] = message.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = f"<{message.message_id}@tac-hub>"
    msg.set_content(message.body)
    return msg


class MailboxDelivery:
    def __init__(self, directory: Path, sender: str) -> None:
        self.directory = directory
        self.sender = sender

    def path_of(self, message_id: str) -> Path:
        return self.directory / f"{message_id}.eml"

    async def send(self, message: Message) -> None:
        await asyncio.to_thread(self._write, message)

    def _write(self, message: Message) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.path_of(message.message_id)
        tmp = final.with_suffix(".tmp")
        tmp.write_bytes(bytes(email_message(message, self.sender)))
        os.replace(tmp, final)


class SmtpDelivery:
    def __init__(
        self, host: str, port: int, sender: str, *, timeout: float = 30, starttls: bool = False
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.timeout, self.starttls = timeout, starttls

    async def send(self, message: Message) -> None:
        import aiosmtplib

        try:
            await aiosmtplib.send(
                email_message(message, self.sender),
                hostname=self.host,
                port=self.port,
                timeout=self.timeout,
                start_tls=self.starttls,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise DeliveryFailed("smtp: recipient refused", permanent=True) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"smtp: {type(exc).__name__}") from exc


class NotifyDelivery:
    def __init__(self, api_key: str, template_id: str, *, base_url: str | None = None) -> None:
        from notifications_python_client.notifications import NotificationsAPIClient

        kwargs = {"base_url": base_url} if base_url else {}
        self.client = NotificationsAPIClient(api_key, **kwargs)  # type: ignore[no-untyped-call]
        self.template_id = template_id

    async def send(self, message: Message) -> None:
        await asyncio.to_thread(self._send, message)

    def _send(self, message: Message) -> None:
        from notifications_python_client.errors import HTTPError

        try:
            self.client.send_email_notification(  # type: ignore[no-untyped-call]
                email_address=message.to,
                template_id=self.template_id,
                personalisation={
                    "subject": message.subject,
                    "body": message.body,
                    "link": str(message.data.get("link", "")),
                },
                reference=message.message_id,
            )
        except HTTPError as exc:
            status = int(getattr(exc, "status_code", 0) or 0)
            permanent = 400 <= status < 500 and status != 429
            raise DeliveryFailed(f"notify: HTTP {status}", permanent=permanent) from exc
        except OSError as exc:
            raise DeliveryFailed(f"notify: {type(exc).__name__}") from exc
        except Exception as exc:  # requests' connection errors are not OSErrors
            raise DeliveryFailed(f"notify: {type(exc).__name__}") from exc


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The webhook signature: hex HMAC-SHA256 over `<timestamp>.<body>`."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


class WebhookDelivery:
    def __init__(self, url: str, secret: str, *, timeout: float = 10) -> None:
        self.url, self.secret, self.timeout = url, secret, timeout

    async def send(self, message: Message) -> None:
        import httpx

        body = orjson.dumps(message.data)
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: f"t={stamp},v1={sign(self.secret, stamp, body)}",
            IDEMPOTENCY_HEADER: message.message_id,
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"webhook: {type(exc).__name__}") from exc
        if response.status_code >= 300:
            code = response.status_code
            permanent = 400 <= code < 500 and code not in (408, 409, 429)
            raise DeliveryFailed(f"webhook: HTTP {code}", permanent=permanent)
