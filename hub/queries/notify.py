"""A signed-in coordinator's notification preference, as the API shows it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from hub.auth import Principal
from hub.notify.ports import Outbox

ADDRESS = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class NotificationPreference(BaseModel):
    channel: Literal["email", "notify", "mailbox", "none"] = Field(
        description="email (SMTP), notify (GOV.UK Notify), mailbox (the hub's local "
        "mailbox) or none"
    )
    address: str | None = Field(
        default=None,
        max_length=254,
        pattern=ADDRESS,
        description="Email address for email and notify",
    )
    digest: bool = Field(default=False, description="One message a day instead of each")
    default: bool = Field(default=False, description="True: none set, the hub's default applies")


def recipient_of(principal: Principal) -> str:
    return f"coordinator:{principal.name}"


async def my_notification_preference(
    outbox: Outbox, principal: Principal, default_channel: str
) -> NotificationPreference:
    pref = await outbox.preference(recipient_of(principal))
    if pref is None:
        return NotificationPreference(channel=default_channel, default=True)
    return NotificationPreference(
        channel=pref.channel,
        address=pref.address,
        digest=pref.digest,
    )
