"""Notifications: what the hub tells people and agency systems, in domain words.

`hub.notify.model` is the notice (what it is about, for whom, by when, the page it links
to), its deterministic id and its privacy-safe wording; `hub.notify.ports` the delivery
and outbox ports. Deriving notices from the log and the caseload, and sending them, are
the service layer's (`hub.service_layer.notify`); the outbox table is the store's, the
delivery channels the adapters' (`hub.adapters.delivery`). Nothing here touches SQL, HTTP
or SMTP.
"""

from hub.notify.model import (
    KINDS,
    Channel,
    Notice,
    NoticeKind,
    Preference,
    digest_id,
    make_notice,
    notice_id,
    render,
    render_digest,
    webhook_body,
)

__all__ = [
    "KINDS",
    "Channel",
    "Notice",
    "NoticeKind",
    "Preference",
    "digest_id",
    "make_notice",
    "notice_id",
    "render",
    "render_digest",
    "webhook_body",
]
