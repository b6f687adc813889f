"""The signed-in coordinator's notification preference: how they are told of what is due.

Reads go through the query layer (`hub.queries.notify`); a change is kept in the outbox's
preference table and applies from the next send.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from hub.api.auth import AUTH_RESPONSES, Principal, require_roles
from hub.api.deps import hub_of
from hub.notify.model import Preference
from hub.queries.notify import (
    ADDRESS,
    NotificationPreference,
    my_notification_preference,
    recipient_of,
)

router = APIRouter()

Coordinator = Annotated[Principal, Depends(require_roles("coordinator"))]

REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"description": "Not valid (the detail names the field and rule)"}
}


class PreferenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Literal["email", "notify", "mailbox", "none"]
    address: str | None = Field(
        default=None, max_length=254, pattern=ADDRESS, description="Email address"
    )
    digest: StrictBool = Field(default=False, description="One message a day instead of each")


def _default_channel(request: Request) -> str:
    s = hub_of(request).settings
    return s.notify_default_channel or ("email" if s.notify_smtp_host else "mailbox")


@router.get(
    "/me/notification-preferences",
    tags=["notifications"],
    summary="How you are told of advice and time limits due, and of changes (coordinator)",
    response_model=NotificationPreference,
    responses=AUTH_RESPONSES,
)
async def get_preferences(request: Request, principal: Coordinator) -> NotificationPreference:
    outbox = hub_of(request).outbox
    return await my_notification_preference(outbox, principal, _default_channel(request))


@router.put(
    "/me/notification-preferences",
    tags=["notifications"],
    summary="Set how you are told: email, GOV.UK Notify, the local mailbox or not at all, "
    "each notice or a daily digest (coordinator)",
    response_model=NotificationPreference,
    responses={**AUTH_RESPONSES, **REFUSED},
)
async def put_preferences(
    request: Request, body: PreferenceIn, principal: Coordinator
) -> NotificationPreference:
    if body.channel in ("email", "notify") and not body.address:
        raise HTTPException(422, f"address: required for the {body.channel} channel")
    outbox = hub_of(request).outbox
    pref = Preference(recipient_of(principal), body.channel, body.address, body.digest)
    await outbox.set_preference(pref, datetime.now(UTC))
    return await my_notification_preference(outbox, principal, _default_channel(request))
