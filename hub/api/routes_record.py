"""Ingest of canonical events, the shared record of a child, caseload assignment and the
family's consent decisions.

`POST /ingest/events` (agency, as its own agency) takes events in the contract form of
`contracts/inbound/events.schema.json` — a domain event naming its child by a strong
identifier — and answers per event: appended, withheld, duplicate or rejected, with the
reason. `GET /children/{id}/record` (coordinator, caseload only) shows the facts the
caller may see now, grouped by agency, each with its source and basis; every call is an
audited read. A child not on the caller's caseload answers 404, exactly like a child
that does not exist.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.api.auth import AUTH_RESPONSES, Principal, require_roles
from hub.api.deps import hub_of
from hub.bootstrap import Hub
from hub.consent.audit_trail import AuditEntry
from hub.consent.decision import Fact, decide_sharing
from hub.consent.sealing import ErasedPayload
from hub.errors import PermanentError
from hub.events import Source, registry
from hub.events.casework import CoordinatorAssigned, CoordinatorUnassigned
from hub.events.consent import ConsentRecorded, ConsentWithdrawn, Grantor
from hub.events.envelope import EventPayload
from hub.ingest.contract import InboundEvent
from hub.ingest.model import FactOutcome, InboundFact, Subject
from hub.service_layer.reconsider import DEFAULT_PURPOSES

router = APIRouter()
Agency = Annotated[Principal, Depends(require_roles("agency"))]
Coordinator = Annotated[Principal, Depends(require_roles("coordinator"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]

HUB_SOURCE = Source(agency="local_authority", system="tac-hub")
_P = TypeVar("_P", bound=EventPayload)


# -- ingest -----------------------------------------------------------------------------
class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[dict[str, Any]] = Field(min_length=1, max_length=5000)


class OutcomeOut(BaseModel):
    index: int
    status: str
    event_type: str | None = None
    event_id: str | None = None
    child_id: str | None = None
    reason: str | None = None
    field: str | None = None
    rule: str | None = None


class IngestResponse(BaseModel):
    results: list[OutcomeOut]
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


def _to_fact(i: int, raw: dict[str, Any], principal: Principal) -> InboundFact | OutcomeOut:
    try:
        ev = InboundEvent.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        return OutcomeOut(
            index=i,
            status="rejected",
            event_type=raw.get("event_type") if isinstance(raw.get("event_type"), str) else None,
            reason=err["msg"],
            field=".".join(str(p) for p in err["loc"]),
        )
    if ev.source.agency != principal.agency:
        return OutcomeOut(
            index=i,
            status="rejected",
            event_type=ev.event_type,
            field="source.agency",
            reason="an agency may publish only as itself",
            rule="own_agency",
        )
    if ev.occurred_at.tzinfo is None:
        return OutcomeOut(
            index=i,
            status="rejected",
            event_type=ev.event_type,
            field="occurred_at",
            reason="must carry a timezone",
        )
    if ev.event_type.startswith(("consent.", "casework.", "identity.")):
        return OutcomeOut(
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
        return OutcomeOut(
            index=i, status="rejected", event_type=ev.event_type, reason=exc.reason, field=exc.field
        )
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        return OutcomeOut(
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


def _out(i: int, o: FactOutcome) -> OutcomeOut:
    return OutcomeOut(
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
    results: list[OutcomeOut | None] = [None] * len(body.events)
    facts: list[tuple[int, InboundFact]] = []
    for i, raw in enumerate(body.events):
        parsed = (
            _to_fact(i, raw, principal)
            if isinstance(raw, dict)
            else OutcomeOut(index=i, status="rejected", reason="an event must be a JSON object")
        )
        if isinstance(parsed, OutcomeOut):
            results[i] = parsed
        else:
            facts.append((i, parsed))
    outcomes = await the_hub.handlers.submit_facts(
        [f for _, f in facts], actor=f"{principal.role}:{principal.name}"
    )
    for (i, _), outcome in zip(facts, outcomes, strict=True):
        results[i] = _out(i, outcome)
    final = [r for r in results if r is not None]
    summary: dict[str, int] = {}
    for r in final:
        summary[r.status] = summary.get(r.status, 0) + 1
    return IngestResponse(results=final, summary=summary)


# -- caseload and the record -----------------------------------------------------------------
async def require_on_caseload(
    the_hub: Hub, principal: Principal, child_id: str, *, also: Sequence[str] = ()
) -> None:
    """404 unless the child exists and is on the caller's caseload (the same answer for
    both, so a caseload check never reveals that a child is known). The caseload and the
    projections named in `also` (which the route reads next) are caught up on the
    child's partition first, together."""
    await the_hub.views.catch_up(["caseload", *also], [child_id])
    row = await the_hub.store.fetchone(
        "SELECT 1 FROM caseload WHERE coordinator = ? AND child_id = ?", (principal.name, child_id)
    )
    if row is None:
        raise HTTPException(404, "no such child on your caseload")


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
    """Append one hub-recorded fact through the gate and answer its event id: 409 with
    `duplicate` when it was recorded before (if given), 422 when it was not appended."""
    [outcome] = await the_hub.handlers.submit_facts(
        [
            InboundFact(
                subject=Subject(hub_child_id=child_id),
                payload=payload,
                occurred_at=datetime.now(UTC),
                source=HUB_SOURCE,
                ref=ref,
            )
        ],
        actor=f"{principal.role}:{principal.name}",
    )
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
    if not await the_hub.persons.exists(child_id):
        raise HTTPException(404, "no such child")
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
    responses={**AUTH_RESPONSES, 404: {"description": "Not on your caseload (or no such child)"}},
)
async def child_record(request: Request, child_id: str, principal: Coordinator) -> dict[str, Any]:
    the_hub = hub_of(request)
    await require_on_caseload(the_hub, principal, child_id, also=("shared_record", "consent_state"))
    state = await the_hub.views.consent_state(child_id, fresh=False)
    now = datetime.now(UTC)
    rows = await the_hub.store.fetchall(
        "SELECT event_id, body, purposes, basis_claimed FROM shared_fact WHERE child_id = ?"
        " ORDER BY occurred_at, part, log_offset",
        (child_id,),
    )
    by_agency: dict[str, list[dict[str, Any]]] = {}
    shown: list[str] = []
    for _event_id, body, purposes, basis in rows:
        data = orjson.loads(bytes(body))
        fact = Fact(
            event_id=data["event_id"],
            child_id=child_id,
            category=data["category"],
            source_agency=data["source"]["agency"],
            source_organisation=data["source"].get("organisation_code"),
            purposes=tuple((purposes or ",".join(DEFAULT_PURPOSES)).split(",")),
            occurred_at=data["occurred_at"],
            basis_claimed=basis,
        )
        decision = decide_sharing(fact, state, the_hub.policy, at=now)
        if not decision.allows(principal.role, principal.agency):
            continue
        ground = decision.ground_for(principal.role, principal.agency)
        try:
            env = await the_hub.opener.open_value(bytes(body))
        except PermanentError:
            continue
        payload: dict[str, Any]
        if isinstance(env.payload, ErasedPayload):
            payload = {"erased": True}
        else:
            payload = env.payload.model_dump(mode="json")
        by_agency.setdefault(env.source.agency, []).append(
            {
                "event_id": str(env.event_id),
                "event_type": env.event_type,
                "category": env.category,
                "occurred_at": env.occurred_at.isoformat(),
                "source": env.source.model_dump(mode="json"),
                "basis": None if ground is None else ground.model_dump(mode="json"),
                "payload": payload,
            }
        )
        shown.append(str(env.event_id))
    await the_hub.trail.append(
        [
            AuditEntry(
                kind="read",
                actor=f"{principal.role}:{principal.name}",
                child_id=child_id,
                at=now,
                details={
                    "route": "GET /children/{id}/record",
                    "event_ids": shown,
                    "agency": principal.agency,
                    "outcome": "shown",
                },
            )
        ]
    )
    return {
        "child_id": child_id,
        "as_of": now.isoformat(),
        "agencies": by_agency,
        "facts_shown": len(shown),
    }


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
    the_hub = hub_of(request)
    await require_on_caseload(the_hub, principal, child_id)
    if (
        body.child_date_of_birth is not None
        and await the_hub.persons.date_of_birth(child_id) is None
    ):
        await the_hub.persons.set_date_of_birth(child_id, body.child_date_of_birth)
    payload = _validated(
        ConsentRecorded, {**body.consent, "recorded_by": principal.name}, prefix="consent."
    )
    event_id = await _record_one(
        the_hub,
        principal,
        child_id,
        payload,
        ref=f"consent:{payload.consent_id}",
        duplicate=f"consent {payload.consent_id} was recorded before",
    )
    return {"status": "recorded", "consent_id": payload.consent_id, "event_id": event_id}


class WithdrawIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    withdrawn_by: Grantor = Field(description="Who withdrew it (reference and capacity)")
    reason: Literal["family_request", "grantor_authority_ended", "recorded_in_error"] = (
        "family_request"
    )


@router.post(
    "/consents/{consent_id}/withdraw",
    tags=["consent"],
    summary="Record that a consent was withdrawn (coordinator, caseload)",
    responses={**AUTH_RESPONSES, 404: {"description": "No such consent on your caseload"}},
)
async def withdraw_consent(
    request: Request, consent_id: str, body: WithdrawIn, principal: Coordinator
) -> dict[str, Any]:
    the_hub = hub_of(request)
    row = await the_hub.store.fetchone(
        "SELECT child_id FROM consent_event WHERE consent_id = ?", (consent_id,)
    )
    if row is None:
        raise HTTPException(404, "no such consent on your caseload")
    child_id = str(row[0])
    await require_on_caseload(the_hub, principal, child_id)
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
        ref=f"withdraw:{consent_id}",
        duplicate=f"consent {consent_id} was withdrawn before",
    )
    return {"status": "withdrawn", "consent_id": consent_id, "event_id": event_id}


@router.get(
    "/children/{child_id}/consents",
    tags=["consent"],
    summary="The child's consent state in plain words (coordinator, caseload)",
    responses={**AUTH_RESPONSES, 404: {"description": "Not on your caseload"}},
)
async def consents(request: Request, child_id: str, principal: Coordinator) -> dict[str, Any]:
    the_hub = hub_of(request)
    await require_on_caseload(the_hub, principal, child_id)
    state = await the_hub.views.consent_state(child_id)
    now = datetime.now(UTC)
    records = [
        {
            "consent_id": r.consent_id,
            "decision": r.decision,
            "status": r.status_at(now),
            "categories": list(r.consent.scope.categories),
            "purposes": list(r.consent.scope.purposes),
            "roles": list(r.consent.scope.roles),
            "period": r.consent.period.model_dump(mode="json"),
            "grantor_capacity": r.consent.grantor.capacity,
        }
        for r in state.records
    ]
    await the_hub.trail.append(
        [
            AuditEntry(
                kind="read",
                actor=f"{principal.role}:{principal.name}",
                child_id=child_id,
                at=now,
                details={
                    "route": "GET /children/{id}/consents",
                    "outcome": "shown",
                    "consent_ids": [r["consent_id"] for r in records],
                },
            )
        ]
    )
    return {
        "child_id": child_id,
        "as_of": now.isoformat(),
        "summary": state.describe(now),
        "consents": records,
    }
