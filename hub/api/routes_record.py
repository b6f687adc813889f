"""Ingest of canonical events, the shared record of a child, caseload assignment and the
family's consent decisions.

`POST /ingest/events` (agency, as its own agency) takes events in the contract form of
`contracts/inbound/events.schema.json` — a domain event naming its child by a strong
identifier — and answers per event: appended, withheld, duplicate or rejected, with the
reason. `GET /children/{id}/record` (a coordinator on whose caseload the child is, or a
practitioner on the child's team now) shows the facts the caller may see now, grouped by
agency, each with its source and basis; every call is an audited read. A child out of
the caller's reach answers 404, exactly like a child that does not exist.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.api.auth import AUTH_RESPONSES, Principal, require_roles, sender_of
from hub.api.deps import hub_of, reads_of
from hub.bootstrap import Hub
from hub.errors import NotFound, PermanentError
from hub.events import Source, registry
from hub.events.casework import CoordinatorAssigned, CoordinatorUnassigned
from hub.events.consent import ConsentWithdrawn, Grantor
from hub.events.envelope import EventPayload
from hub.ingest.contract import InboundEvent
from hub.ingest.model import FactOutcome, InboundFact
from hub.queries.context import require_in_reach
from hub.queries.record import (
    child_has_consent,
    consent_children_in_reach,
    consents_view,
    shared_record_view,
)
from hub.service_layer.la_records import LaRefused

router = APIRouter()
Agency = Annotated[Principal, Depends(require_roles("agency"))]
Coordinator = Annotated[Principal, Depends(require_roles("coordinator"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
RecordReader = Annotated[Principal, Depends(require_roles("coordinator", "practitioner"))]
ConsentReader = Annotated[Principal, Depends(require_roles("coordinator", "family"))]

"""Who a fact recorded by the hub's own routes (a coordinator's casework, a consent as the
coordinator took it) is sent by: the local authority, as the policy's `local_authority`
sender. The route makes the payload; the fact claims no category, basis or code of its
own, and is judged as every agency's is."""
_P = TypeVar("_P", bound=EventPayload)


# -- ingest -----------------------------------------------------------------------------
class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[dict[str, Any]] = Field(min_length=1, max_length=5000)


class IngestOutcome(BaseModel):
    index: int
    status: str
    event_type: str | None = None
    event_id: str | None = None
    child_id: str | None = None
    reason: str | None = None
    field: str | None = None
    rule: str | None = None


class IngestResponse(BaseModel):
    results: list[IngestOutcome]
    summary: dict[str, int]


INGEST_EXAMPLE = {
    "events": [
        {
            "event_type": "education.sen_status_recorded",
            "schema_version": 2,
            "subject": {"upn": "H801200001001", "date_of_birth": "2015-03-02"},
            "source": {
                "agency": "oak-school",
                "organisation_code": "8881234",
                "system": "SIMS",
                "message_id": "sen-2024-0001",
            },
            "occurred_at": "2024-09-02T09:00:00Z",
            "payload": {
                "sen_provision": "K",
                "start_date": "2024-09-01",
                "needs": [{"type": "SLCN", "rank": 1}],
            },
        }
    ]
}


def _to_fact(i: int, raw: dict[str, Any], principal: Principal) -> InboundFact | IngestOutcome:
    try:
        ev = InboundEvent.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        return IngestOutcome(
            index=i,
            status="rejected",
            event_type=raw.get("event_type") if isinstance(raw.get("event_type"), str) else None,
            reason=err["msg"],
            field=".".join(str(p) for p in err["loc"]),
        )
    if ev.source.agency != principal.agency:
        return IngestOutcome(
            index=i,
            status="rejected",
            event_type=ev.event_type,
            field="source.agency",
            reason="an agency may publish only as itself",
            rule="own_agency",
        )
    if ev.occurred_at.tzinfo is None:
        return IngestOutcome(
            index=i,
            status="rejected",
            event_type=ev.event_type,
            field="occurred_at",
            reason="must carry a timezone",
        )
    if ev.event_type.startswith(("consent.", "casework.", "identity.")):
        return IngestOutcome(
            index=i,
            status="rejected",
            event_type=ev.event_type,
            field="event_type",
            reason="consent, casework and identity events are recorded through their own routes",
            rule="governance_route",
        )
    try:
        cls = registry.payload_class(ev.event_type)
        payload = cls.model_validate(registry.upcast(ev.event_type, ev.schema_version, ev.payload))
    except PermanentError as exc:
        return IngestOutcome(
            index=i, status="rejected", event_type=ev.event_type, reason=exc.reason, field=exc.field
        )
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        return IngestOutcome(
            index=i,
            status="rejected",
            event_type=ev.event_type,
            reason=err["msg"],
            field="payload." + ".".join(str(p) for p in err["loc"]),
        )
    message_id = (
        ev.source.message_id
        or "sha256:" + hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)).hexdigest()
    )
    return InboundFact(
        subject=ev.subject,
        payload=payload,
        occurred_at=ev.occurred_at.astimezone(UTC),
        source=Source(
            agency=ev.source.agency,
            organisation_code=ev.source.organisation_code,
            system=ev.source.system,
            message_id=message_id,
        ),
        ref="event",
        plan_id=ev.plan_id,
        category=ev.category,
        purposes=tuple(ev.purposes),
        statutory_basis=ev.statutory_basis,
    )


def _out(i: int, o: FactOutcome) -> IngestOutcome:
    return IngestOutcome(
        index=i,
        status=o.status,
        event_type=o.event_type,
        event_id=o.event_id,
        child_id=o.child_id,
        reason=o.reason,
        field=o.field,
        rule=o.rule,
    )


@router.post(
    "/ingest/events",
    tags=["ingest"],
    summary="Publish domain events (agency, as itself); answered per event",
    response_model=IngestResponse,
    responses=AUTH_RESPONSES,
)
async def ingest_events(
    request: Request,
    principal: Agency,
    body: Annotated[
        IngestRequest, Body(openapi_examples={"one SEN status": {"value": INGEST_EXAMPLE}})
    ],
) -> IngestResponse:
    the_hub = hub_of(request)
    sender = await sender_of(request, principal)  # a token that may not publish: 403
    results: list[IngestOutcome | None] = [None] * len(body.events)
    facts: list[tuple[int, InboundFact]] = []
    for i, raw in enumerate(body.events):
        parsed = (
            _to_fact(i, raw, principal)
            if isinstance(raw, dict)
            else IngestOutcome(index=i, status="rejected", reason="an event must be a JSON object")
        )
        if isinstance(parsed, IngestOutcome):
            results[i] = parsed
        else:
            facts.append((i, parsed))
    outcomes = await the_hub.handlers.submit_as_sender(
        [f for _, f in facts], sender=sender, actor=principal.actor
    )
    for (i, _), outcome in zip(facts, outcomes, strict=True):
        results[i] = _out(i, outcome)
    final = [r for r in results if r is not None]
    summary: dict[str, int] = {}
    for r in final:
        summary[r.status] = summary.get(r.status, 0) + 1
    return IngestResponse(results=final, summary=summary)


# -- caseload and the record -----------------------------------------------------------------
def _validated(cls: type[_P], data: dict[str, Any], *, prefix: str = "") -> _P:
    """The payload, or a 422 naming the first invalid field (after `prefix`)."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        raise HTTPException(
            422, f"{prefix}{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
        ) from None


async def _record_one(
    the_hub: Hub,
    principal: Principal,
    child_id: str,
    payload: EventPayload,
    *,
    ref: str,
    duplicate: str | None = None,
) -> str | None:
    """Record one fact as the local authority and answer its event id: 409 with
    `duplicate` when it was recorded before (if given), 422 when it was not appended."""
    outcome = await the_hub.handlers.la_records.record(principal, child_id, payload, ref=ref)
    return _answer(outcome, duplicate)


def _answer(outcome: FactOutcome, duplicate: str | None = None) -> str | None:
    if outcome.rule == "unknown_child":
        raise HTTPException(404, "no such child")
    if duplicate is not None and outcome.status == "duplicate":
        raise HTTPException(409, duplicate)
    if outcome.status != "appended":
        raise HTTPException(422, outcome.reason or "not recorded")
    return outcome.event_id


class CoordinatorChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    coordinator: str = Field(
        min_length=1, max_length=128, description="The coordinator's principal name"
    )
    action: Literal["assign", "unassign"] = "assign"


@router.post(
    "/children/{child_id}/coordinators",
    tags=["casework"],
    summary="Assign or unassign a coordinator (admin)",
    responses=AUTH_RESPONSES,
)
async def change_coordinator(
    request: Request, child_id: str, body: CoordinatorChange, principal: Admin
) -> dict[str, Any]:
    the_hub = hub_of(request)
    payload = (CoordinatorAssigned if body.action == "assign" else CoordinatorUnassigned)(
        coordinator=body.coordinator
    )
    event_id = await _record_one(
        the_hub, principal, child_id, payload, ref=f"casework:{datetime.now(UTC).isoformat()}"
    )
    return {"status": "recorded", "event_id": event_id, "action": body.action}


@router.get(
    "/children/{child_id}/record",
    tags=["record"],
    summary="The facts about a child the caller may see now, grouped by agency (audited)",
    responses={**AUTH_RESPONSES, 404: {"description": "Not in your reach (or no such child)"}},
)
async def child_record(request: Request, child_id: str, principal: RecordReader) -> dict[str, Any]:
    return await shared_record_view(reads_of(request), principal, child_id)


# -- consents ---------------------------------------------------------------------------
class ConsentIn(BaseModel):
    """A consent decision as a coordinator records it from the family."""

    model_config = ConfigDict(extra="forbid")

    consent: dict[str, Any] = Field(
        description="A `consent.recorded` payload (contracts/events/consent.recorded.schema.json);"
        " `recorded_by` is set to the caller"
    )
    child_date_of_birth: date | None = Field(
        default=None, description="Needed once, to check who may consent"
    )


@router.post(
    "/children/{child_id}/consents",
    tags=["consent"],
    summary="Record what the family decided: a grant or a refusal (coordinator, caseload)",
    responses={
        **AUTH_RESPONSES,
        404: {"description": "Not on your caseload"},
        422: {"description": "Not a valid consent, or given by someone who may not give it"},
    },
)
async def record_consent(
    request: Request, child_id: str, body: ConsentIn, principal: Coordinator
) -> dict[str, Any]:
    try:
        consent_id, event_id = await record_consent_of(hub_of(request), principal, child_id, body)
    except ConsentNotRecorded as exc:
        raise HTTPException(exc.status, exc.detail) from None
    return {"status": "recorded", "consent_id": consent_id, "event_id": event_id}


class ConsentNotRecorded(Exception):
    """Why a consent was not recorded: 404 (no such child), 409 (recorded before) or 422
    (`field`, when one is to blame, and the reason)."""

    def __init__(self, status: int, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field

    @property
    def detail(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


async def record_consent_of(
    the_hub: Hub, principal: Principal, child_id: str, body: ConsentIn
) -> tuple[str, str | None]:
    """Record the family's decision as the coordinator captured it (`POST
    /children/{id}/consents` and the web consent form): its consent id and event id."""
    await require_in_reach(the_hub.reads, principal, child_id)  # else NotFound
    try:
        payload, outcome = await the_hub.handlers.la_records.record_consent(
            principal, child_id, body.consent, child_date_of_birth=body.child_date_of_birth
        )
    except LaRefused as exc:
        raise ConsentNotRecorded(422, exc.reason, exc.field) from None
    try:
        event_id = _answer(outcome, f"consent {payload.consent_id} was recorded before")
    except HTTPException as exc:
        raise ConsentNotRecorded(exc.status_code, str(exc.detail)) from None
    return payload.consent_id, event_id


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    withdrawn_by: Grantor = Field(description="Who withdrew it (reference and capacity)")
    reason: Literal["family_request", "grantor_authority_ended", "recorded_in_error"] = (
        "family_request"
    )


NO_SUCH_CONSENT = "no such consent on your caseload"
"""The one answer for a consent id that does not exist and one of a child out of reach."""


@router.post(
    "/children/{child_id}/consents/{consent_id}/withdraw",
    tags=["consent"],
    summary="Record that one of the child's consents was withdrawn (coordinator, caseload)",
    responses={**AUTH_RESPONSES, 404: {"description": "No such consent on your caseload"}},
)
async def withdraw_childs_consent(
    request: Request, child_id: str, consent_id: str, body: WithdrawIn, principal: Coordinator
) -> dict[str, Any]:
    the_hub = hub_of(request)
    try:
        held = await child_has_consent(the_hub.reads, principal, child_id, consent_id)
    except NotFound:
        raise HTTPException(404, NO_SUCH_CONSENT) from None
    if not held:
        raise HTTPException(404, NO_SUCH_CONSENT)
    return await _withdraw(the_hub, principal, child_id, consent_id, body)


@router.post(
    "/consents/{consent_id}/withdraw",
    tags=["consent"],
    summary="Record that a consent was withdrawn, when one child on your caseload has a "
    "consent of this id (coordinator, caseload); else use the child's own route",
    responses={**AUTH_RESPONSES, 404: {"description": "No such consent on your caseload"}},
)
async def withdraw_consent(
    request: Request, consent_id: str, body: WithdrawIn, principal: Coordinator
) -> dict[str, Any]:
    the_hub = hub_of(request)
    # consent ids are per child: only the caller's own children's consents are looked at,
    # so another child's consent of this id answers exactly as one that does not exist
    reached = await consent_children_in_reach(the_hub.reads, principal, consent_id)
    if len(reached) != 1:
        raise HTTPException(404, NO_SUCH_CONSENT)
    return await _withdraw(the_hub, principal, reached[0], consent_id, body)


async def _withdraw(
    the_hub: Hub, principal: Principal, child_id: str, consent_id: str, body: WithdrawIn
) -> dict[str, Any]:
    payload = _validated(
        ConsentWithdrawn,
        {
            "consent_id": consent_id,
            "withdrawn_by": body.withdrawn_by.model_dump(),
            "reason": body.reason,
            "recorded_by": principal.name,
        },
    )
    event_id = await _record_one(
        the_hub,
        principal,
        child_id,
        payload,
        ref=f"withdraw:{child_id}:{consent_id}",
        duplicate=f"consent {consent_id} was withdrawn before",
    )
    return {"status": "withdrawn", "consent_id": consent_id, "event_id": event_id}


@router.get(
    "/children/{child_id}/consents",
    tags=["consent"],
    summary="The child's consent state in plain words (coordinator on caseload, family)",
    responses={**AUTH_RESPONSES, 404: {"description": "Not in your reach"}},
)
async def consents(request: Request, child_id: str, principal: ConsentReader) -> dict[str, Any]:
    return await consents_view(reads_of(request), principal, child_id)
