"""Team access over HTTP: family invitations, "my children", who can see a child and
why, the access log, and the family's own consent decisions and views.

Routes map HTTP to the query layer (`hub.queries.team_access`) and to the family's
handler (`hub.service_layer.family_consent`); a child out of the caller's reach is a
404, as one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from hub.api.auth import AUTH_RESPONSES, Principal, require_roles
from hub.api.deps import hub_of, reads_of
from hub.auth.invitations import DEFAULT_DAYS, MAX_DAYS, FamilyInvitations, InvitationError
from hub.auth.principal import AuthError
from hub.ingest.model import FactOutcome
from hub.queries.context import plan_in_reach, require_in_reach
from hub.queries.my_work import MyWork, my_work
from hub.queries.record import require_consent_in_reach
from hub.queries.team_access import AccessLog, MyChildren, WhoCanSee, access_log, my_children
from hub.queries.team_access import who_can_see as who_can_see_query
from hub.service_layer.family_consent import FamilyRefused, comment_on_draft
from hub.service_layer.plan_steps import StepRefused

router = APIRouter()

Coordinator = Annotated[Principal, Depends(require_roles("coordinator"))]
Family = Annotated[Principal, Depends(require_roles("family"))]
Practitioner = Annotated[Principal, Depends(require_roles("practitioner"))]
Reader = Annotated[Principal, Depends(require_roles("coordinator", "practitioner", "family"))]
AccessReader = Annotated[
    Principal, Depends(require_roles("coordinator", "family", "ig_auditor", "admin"))
]
LogReader = Annotated[Principal, Depends(require_roles("coordinator", "family"))]

NOT_IN_REACH: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such child in your reach (answered alike when it does not exist)"}
}
REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"description": "Not valid, or not yours to decide (the detail names the field and rule)"}
}


def _invitations(request: Request) -> FamilyInvitations:
    return hub_of(request).invitations


def _answer(outcome: FactOutcome, what: str) -> dict[str, Any]:
    if outcome.status == "duplicate":
        raise HTTPException(409, f"{what} was recorded before")
    if outcome.status not in ("appended", "withheld"):
        raise HTTPException(422, outcome.reason or f"{what} was not recorded")
    return {"status": outcome.status, "event_id": outcome.event_id, "reason": outcome.reason}


# --------------------------------------------------------------------------- invitations


class InvitationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    capacity: Literal["parent_with_pr", "young_person"] = Field(
        description="A parent with parental responsibility, or the young person themself"
    )
    days: int = Field(default=DEFAULT_DAYS, ge=1, le=MAX_DAYS, description="Valid for")


class InvitationOut(BaseModel):
    invitation_id: str
    code: str = Field(description="Shown once: give it to the family member, not by email")
    child_id: str
    capacity: str
    expires_at: datetime


@router.post(
    "/children/{child_id}/invitations",
    tags=["team access"],
    summary="Invite a parent or the young person: a one-time code for a family key "
    "(coordinator, caseload)",
    response_model=InvitationOut,
    status_code=201,
    responses={**AUTH_RESPONSES, **NOT_IN_REACH},
)
async def invite(
    request: Request, child_id: str, body: InvitationIn, principal: Coordinator
) -> InvitationOut:
    await require_in_reach(reads_of(request), principal, child_id)
    invitation = await _invitations(request).issue(
        child_id, body.capacity, invited_by=principal.actor, days=body.days
    )
    return InvitationOut(
        invitation_id=invitation.invitation_id,
        code=invitation.code,
        child_id=child_id,
        capacity=invitation.capacity,
        expires_at=invitation.expires_at,
    )


class RedeemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=8, max_length=64, description="The invitation code")


class RedeemOut(BaseModel):
    token: str | None = Field(
        default=None, description="The family member's API key, shown once (none when "
        "the code was redeemed while signed in: the sign-in now acts for the child)",
    )  # fmt: skip
    key_id: str | None = None
    child_id: str
    capacity: str


@router.post(
    "/invitations/redeem",
    tags=["team access"],
    summary="Exchange a family invitation code for the family member's key, or link it "
    "to your sign-in when you send your identity provider's token",
    response_model=RedeemOut,
    responses={
        400: {"description": "The code is unknown, used or expired"},
        401: {"description": "A token was sent, but it is not a valid family sign-in"},
    },
)
async def redeem(request: Request, body: RedeemIn) -> RedeemOut:
    authorization = request.headers.get("authorization")
    try:
        if authorization:
            try:
                issuer, subject = await request.app.state.auth.family_subject(authorization)
            except AuthError as exc:
                raise HTTPException(
                    exc.status, exc.reason, headers={"WWW-Authenticate": "Bearer"}
                ) from None
            child_id, capacity = await _invitations(request).redeem_for_sign_in(
                body.code, issuer=issuer, subject=subject
            )
            return RedeemOut(child_id=child_id, capacity=capacity)
        redeemed = await _invitations(request).redeem(body.code)
    except InvitationError as exc:
        raise HTTPException(400, str(exc)) from None
    return RedeemOut(
        token=redeemed.token,
        key_id=redeemed.key_id,
        child_id=redeemed.child_id,
        capacity=redeemed.capacity,
    )


# --------------------------------------------------------------------------- reach


@router.get(
    "/me/children",
    tags=["team access"],
    summary="The children you reach: your caseload, the teams you are on, or your own "
    "child (audited)",
    response_model=MyChildren,
    responses=AUTH_RESPONSES,
)
async def me_children(request: Request, principal: Reader) -> MyChildren:
    return await my_children(reads_of(request), principal)


@router.get(
    "/me/work",
    tags=["team access"],
    summary="Your open meeting actions and the advice you were asked for that is not in "
    "yet, across the children whose team you are on (practitioner; audited)",
    response_model=MyWork,
    responses=AUTH_RESPONSES,
)
async def me_work(request: Request, principal: Practitioner) -> MyWork:
    return await my_work(reads_of(request), principal)


@router.get(
    "/children/{child_id}/access",
    tags=["team access"],
    summary="Who can see the child now, why, and what of the record each sees "
    "(coordinator on caseload, the family, IG, admin; audited)",
    response_model=WhoCanSee,
    responses={**AUTH_RESPONSES, **NOT_IN_REACH},
)
async def who_can_see(request: Request, child_id: str, principal: AccessReader) -> WhoCanSee:
    return await who_can_see_query(reads_of(request), principal, child_id)


@router.get(
    "/children/{child_id}/access-log",
    tags=["team access"],
    summary="Who looked at the child's record, in plain words (the family, coordinator; audited)",
    response_model=AccessLog,
    responses={**AUTH_RESPONSES, **NOT_IN_REACH},
)
async def child_access_log(request: Request, child_id: str, principal: LogReader) -> AccessLog:
    return await access_log(reads_of(request), principal, child_id)


# --------------------------------------------------------------------------- family


class FamilyConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    consent: dict[str, Any] = Field(
        description="A `consent.recorded` payload without `grantor`, `capture_method`, "
        "`witness` and `recorded_by`: the hub records you as the grantor"
    )


@router.post(
    "/family/children/{child_id}/consents",
    tags=["team access"],
    summary="Give or refuse consent yourself (family; who may decide is checked)",
    status_code=201,
    responses={**AUTH_RESPONSES, **NOT_IN_REACH, **REFUSED, 409: {"description": "Seen before"}},
)
async def family_consent(
    request: Request, child_id: str, body: FamilyConsentIn, principal: Family
) -> dict[str, Any]:
    try:
        outcome = await hub_of(request).handlers.family_consent.record(
            principal, child_id, body.consent
        )
    except FamilyRefused as exc:
        raise HTTPException(422, str(exc)) from None
    return {"consent_id": body.consent.get("consent_id"), **_answer(outcome, "this consent")}


@router.post(
    "/family/children/{child_id}/consents/{consent_id}/withdraw",
    tags=["team access"],
    summary="Withdraw a consent yourself (family; who may decide is checked)",
    responses={**AUTH_RESPONSES, **NOT_IN_REACH, **REFUSED, 409: {"description": "Seen before"}},
)
async def family_withdraw(
    request: Request, child_id: str, consent_id: str, principal: Family
) -> dict[str, Any]:
    the_hub = hub_of(request)
    await require_consent_in_reach(the_hub.reads, principal, child_id, consent_id)
    try:
        outcome = await the_hub.handlers.family_consent.withdraw(principal, child_id, consent_id)
    except FamilyRefused as exc:
        raise HTTPException(422, str(exc)) from None
    return {"consent_id": consent_id, **_answer(outcome, "this withdrawal")}


class ViewsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    views: str = Field(min_length=1, max_length=20000, description="In your own words")
    interests: list[str] = Field(default_factory=list, max_length=50)
    aspirations: list[str] = Field(default_factory=list, max_length=50)


@router.post(
    "/family/children/{child_id}/views",
    tags=["team access"],
    summary="Add your views, interests and aspirations (plan section A; family)",
    status_code=201,
    responses={**AUTH_RESPONSES, **NOT_IN_REACH, **REFUSED},
)
async def family_views(
    request: Request, child_id: str, body: ViewsIn, principal: Family
) -> dict[str, Any]:
    the_hub = hub_of(request)
    await require_in_reach(the_hub.reads, principal, child_id)
    try:
        outcome = await the_hub.handlers.family_consent.add_views(
            principal, child_id, body.model_dump()
        )
    except FamilyRefused as exc:
        raise HTTPException(422, str(exc)) from None
    return _answer(outcome, "these views")


class CommentsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    summary: str = Field(min_length=1, max_length=20000, description="Your comments")
    requested_placement: str | None = Field(
        default=None, description="URN or UKPRN of a school or college you ask for"
    )
    amendment_id: str | None = Field(default=None, description="Comments on these amendments")


@router.post(
    "/family/plans/{plan_id}/comments",
    tags=["team access"],
    summary="Comment on the draft plan (or proposed amendments) yourself (family)",
    status_code=201,
    responses={
        **AUTH_RESPONSES,
        **NOT_IN_REACH,
        **REFUSED,
        409: {"description": "The plan has no draft (or amendments) to comment on"},
    },
)
async def family_comments(
    request: Request, plan_id: str, body: CommentsIn, principal: Family
) -> dict[str, Any]:
    the_hub = hub_of(request)
    child_id = await plan_in_reach(the_hub.reads, principal, plan_id)
    try:
        recorded = await comment_on_draft(
            the_hub.handlers.record_plan_steps,
            principal,
            child_id,
            plan_id,
            body.model_dump(),
            route="POST /family/plans/{id}/comments",
        )
    except FamilyRefused as exc:
        raise HTTPException(422, str(exc)) from None
    except StepRefused as exc:
        where = f"{exc.field}: " if exc.field else ""
        raise HTTPException(409 if exc.conflict else 422, f"{where}{exc.message}") from None
    return {"status": recorded.status, "event_ids": [o.event_id for o in recorded.outcomes]}
