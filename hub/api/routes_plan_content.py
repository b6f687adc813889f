"""Coordinator routes for what a plan holds and how it is reviewed and learnt from:
outcomes (with priority and horizon), provision, informal and community support, the
personal budget from request to audit, progress against each outcome, revised outcomes, a
review's conclusions with the next review date agreed with the family, and completing a
meeting's actions.

Like the plan steps (`hub.api.routes_plans`), each is for the `coordinator` role and a
child on the caller's caseload (404 otherwise), checked against the plan's history on the
write side (`hub.plans.transitions`: progress for an outcome the plan does not hold, an
indicative amount for a budget nobody asked for, a second conclusion of one review answer
409 or 422 naming the rule and the field) and recorded through `RecordPlanSteps`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field, WithJsonSchema

from hub.api.deps import hub_of
from hub.api.routes_plans import (
    _EXAMPLE_PLAN_ID,
    Coordinator,
    IdempotencyKey,
    Recorded,
    Ref,
    Steps,
    _build,
    _In,
    _on_plan,
    _responses,
    _Route,
    _run,
)
from hub.events.envelope import EventPayload
from hub.events.plan import (
    AmountUnit,
    BudgetArea,
    BudgetFinding,
    BudgetPeriod,
    BudgetRequester,
    Frequency,
    InformalSupportRecorded,
    NeedSection,
    OutcomeAgreed,
    OutcomeArea,
    OutcomeHorizon,
    OutcomeProgressRecorded,
    OutcomeRevised,
    PersonalBudgetAgreed,
    PersonalBudgetAudited,
    PersonalBudgetIndicated,
    PersonalBudgetRequested,
    Progress,
    Provider,
    ProvisionAgreed,
    ProvisionSection,
    ReviewConcluded,
    SupportKind,
)
from hub.events.team import MeetingActionCompleted
from hub.queries.actions import open_action_ids
from hub.queries.context import require_in_reach
from hub.service_layer.plan_steps import StepRefused

router = APIRouter()

_POSITIVE = r"^([1-9][0-9]{0,7}(\.[0-9]{1,2})?|0\.([1-9][0-9]?|0[1-9]))$"
_NOT_NEGATIVE = r"^[0-9]{1,8}(\.[0-9]{1,2})?$"
_MOST = 99_999_999

# Decimal amounts are sent as a string of digits with up to 2 decimal places, or as whole
# units: their schemas say exactly what the models take.
Positive = Annotated[
    Decimal,
    Field(gt=0, max_digits=10, decimal_places=2),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _POSITIVE},
                {"type": "integer", "minimum": 1, "maximum": _MOST},
            ]
        }
    ),
]
"""More than zero: an amount of money."""
Quantity = Annotated[
    Decimal,
    Field(gt=0, max_digits=8, decimal_places=2),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "pattern": r"^([1-9][0-9]{0,5}(\.[0-9]{1,2})?|0\.([1-9][0-9]?|0[1-9]))$",
                },
                {"type": "integer", "minimum": 1, "maximum": 999_999},
            ]
        }
    ),
]
"""More than zero, up to 6 digits before the point (provision's quantity)."""
NotNegative = Annotated[
    Decimal,
    Field(ge=0, max_digits=10, decimal_places=2),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _NOT_NEGATIVE},
                {"type": "integer", "minimum": 0, "maximum": _MOST},
            ]
        }
    ),
]

Text = Field(min_length=1, max_length=4000)


def _step(
    path: str, event_type: str, *, summary: str, plan: bool = True
) -> Callable[[_Route], _Route]:
    return router.post(
        path,
        tags=["plan contents" if plan else "team"],
        summary=summary,
        status_code=201,
        response_model=Recorded,
        responses=_responses(_EXAMPLE_PLAN_ID if plan else None, event_type),
    )


def _new(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def _record(
    request: Request,
    response: Response,
    principal: Coordinator,
    plan_id: str,
    build: Callable[[], list[EventPayload]],
    route: str,
    key: str | None,
) -> Recorded | JSONResponse:
    return await _on_plan(
        request, response, principal, plan_id, lambda: Steps(build(), route), key=key
    )


async def _one(
    request: Request,
    response: Response,
    principal: Coordinator,
    plan_id: str,
    step: tuple[type[EventPayload], dict[str, Any]],
    route: str,
    key: str | None,
) -> Recorded | JSONResponse:
    """Record one step (its payload class and data) on the plan."""
    cls, data = step
    return await _record(
        request, response, principal, plan_id, lambda: [_build(cls, data)], route, key
    )


# --------------------------------------------------------------------------- outcomes


class OutcomeIn(_In):
    outcome_id: Ref | None = Field(default=None, description="Generated when absent")
    need_section: NeedSection
    area: OutcomeArea | None = None
    what: str = Text
    by_when: date
    how_measured: str = Text
    agreed_on: date
    priority: int | None = Field(default=None, ge=1, le=20)
    horizon: OutcomeHorizon | None = None


@_step(
    "/plans/{plan_id}/outcomes",
    "plan.outcome_agreed",
    summary="Agree a SMART outcome for section E, with its priority and horizon "
    "(coordinator, caseload)",
)
async def record_outcome(
    request: Request,
    response: Response,
    plan_id: str,
    principal: Coordinator,
    body: OutcomeIn,
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    return await _on_plan(
        request, response, principal, plan_id, lambda: outcome_steps(body), key=idempotency_key
    )


def outcome_steps(body: OutcomeIn) -> Steps:
    data = {**body.model_dump(), "outcome_id": body.outcome_id or _new("out")}
    return Steps([_build(OutcomeAgreed, data)], "outcome")


class ProgressIn(_In):
    review_id: Ref | None = Field(default=None, description="The review that found it")
    recorded_on: date
    progress: Progress
    evidence: str | None = Field(default=None, min_length=1, max_length=4000)


@_step(
    "/plans/{plan_id}/outcomes/{outcome_id}/progress",
    "plan.outcome_progress_recorded",
    summary="Record progress towards an outcome: achieved, partly or not yet, with the "
    "evidence (coordinator, caseload)",
)
async def record_progress(
    request: Request,
    response: Response,
    plan_id: str,
    outcome_id: str,
    principal: Coordinator,
    body: ProgressIn,
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    return await _on_plan(
        request,
        response,
        principal,
        plan_id,
        lambda: progress_steps(outcome_id, body),
        key=idempotency_key,
    )


def progress_steps(outcome_id: str, body: ProgressIn) -> Steps:
    data = {**body.model_dump(exclude={"outcome_id"}), "outcome_id": outcome_id}
    return Steps([_build(OutcomeProgressRecorded, data)], "outcome-progress")


class RevisionIn(_In):
    review_id: Ref | None = None
    revised_on: date
    what: str = Text
    by_when: date
    how_measured: str = Text
    priority: int | None = Field(default=None, ge=1, le=20)
    horizon: OutcomeHorizon | None = None
    reason: str | None = Field(default=None, min_length=1, max_length=4000)


@_step(
    "/plans/{plan_id}/outcomes/{outcome_id}/revision",
    "plan.outcome_revised",
    summary="Revise an outcome (usually at a review); the old wording stays in its history "
    "(coordinator, caseload)",
)
async def record_revision(
    request: Request,
    response: Response,
    plan_id: str,
    outcome_id: str,
    principal: Coordinator,
    body: RevisionIn,
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    data = {**body.model_dump(), "outcome_id": outcome_id}
    return await _one(
        request,
        response,
        principal,
        plan_id,
        (OutcomeRevised, data),
        "outcome-revision",
        idempotency_key,
    )


# --------------------------------------------------------------------------- provision, support


class AmountIn(_In):
    """How much: a quantity (more than zero, up to 2 decimal places) of a unit at a
    frequency."""

    quantity: Quantity
    unit: AmountUnit
    frequency: Frequency


class ProvisionIn(_In):
    provision_id: Ref | None = Field(default=None, description="Generated when absent")
    section: ProvisionSection
    description: str = Text
    provider: Provider
    amount: AmountIn | None = None
    outcome_ids: list[Ref] = Field(min_length=1)
    agreed_on: date
    starts_on: date | None = None
    ends_on: date | None = None


@_step(
    "/plans/{plan_id}/provision",
    "plan.provision_agreed",
    summary="Agree provision for section F, G, H1 or H2 serving named outcomes "
    "(coordinator, caseload)",
)
async def record_provision(
    request: Request,
    response: Response,
    plan_id: str,
    principal: Coordinator,
    body: ProvisionIn,
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    return await _on_plan(
        request, response, principal, plan_id, lambda: provision_steps(body), key=idempotency_key
    )


def provision_steps(body: ProvisionIn) -> Steps:
    data = {**body.model_dump(), "provision_id": body.provision_id or _new("prov")}
    return Steps([_build(ProvisionAgreed, data)], "provision")


class SupportIn(_In):
    support_id: Ref | None = Field(default=None, description="Generated when absent")
    kind: SupportKind
    description: str = Text
    recorded_on: date
    outcome_ids: list[Ref] = Field(default_factory=list)


@_step(
    "/plans/{plan_id}/informal-support",
    "plan.informal_support_recorded",
    summary="Record informal or community support the plan relies on (coordinator, caseload)",
)
async def record_support(
    request: Request,
    response: Response,
    plan_id: str,
    principal: Coordinator,
    body: SupportIn,
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    data = {**body.model_dump(), "support_id": body.support_id or _new("sup")}
    return await _one(
        request,
        response,
        principal,
        plan_id,
        (InformalSupportRecorded, data),
        "informal-support",
        idempotency_key,
    )


# --------------------------------------------------------------------------- personal budget


class BudgetRequestIn(_In):
    requested_on: date
    requested_by: BudgetRequester
    covers: list[BudgetArea] = Field(min_length=1)


class BudgetIndicationIn(_In):
    indicated_on: date
    amount: Positive
    period: BudgetPeriod


class BudgetAgreementIn(_In):
    agreed_on: date
    amount: Positive
    period: BudgetPeriod
    direct_payment: bool
    covers: list[BudgetArea] = Field(min_length=1)
    starts_on: date | None = None
    ends_on: date | None = None
    description: str | None = Field(default=None, min_length=1, max_length=4000)


class BudgetAuditIn(_In):
    review_id: Ref | None = None
    audited_on: date
    spent: NotNegative
    finding: BudgetFinding
    notes: str | None = Field(default=None, min_length=1, max_length=4000)


class BudgetIn(_In):
    budget_id: Ref | None = Field(
        default=None, description="Generated for a new request; name it for the later stages"
    )
    request: BudgetRequestIn | None = None
    indication: BudgetIndicationIn | None = None
    agreement: BudgetAgreementIn | None = None
    audit: BudgetAuditIn | None = None


_BUDGET_STAGES: tuple[tuple[str, type[EventPayload]], ...] = (
    ("request", PersonalBudgetRequested),
    ("indication", PersonalBudgetIndicated),
    ("agreement", PersonalBudgetAgreed),
    ("audit", PersonalBudgetAudited),
)


@_step(
    "/plans/{plan_id}/personal-budget",
    "plan.personal_budget_requested",
    summary="Record a personal budget's stages: the family's request, the indicative "
    "amount, the agreement, the audit at a review (any of them, in one call or later by "
    "budget_id) (coordinator, caseload)",
)
async def record_budget(
    request: Request,
    response: Response,
    plan_id: str,
    principal: Coordinator,
    body: BudgetIn,
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    def build() -> list[EventPayload]:
        given = [(name, cls) for name, cls in _BUDGET_STAGES if getattr(body, name) is not None]
        if not given:
            raise StepRefused(
                "budget_needs_a_stage",
                "request",
                "give the request, the indication, the agreement or the audit",
                conflict=False,
            )
        if body.budget_id is None and given[0][0] != "request":
            raise StepRefused(
                "budget_needs_id",
                "budget_id",
                "name the budget this stage belongs to",
                conflict=False,
            )
        budget_id = body.budget_id or _new("pb")
        return [
            _build(cls, {"budget_id": budget_id, **getattr(body, name).model_dump()}, name + ".")
            for name, cls in given
        ]

    return await _record(
        request, response, principal, plan_id, build, "personal-budget", idempotency_key
    )


# --------------------------------------------------------------------------- review conclusions


class ConclusionIn(_In):
    concluded_on: date
    what_worked: list[str] = Field(default=[], max_length=50)
    what_did_not_work: list[str] = Field(default=[], max_length=50)
    next_review_on: date = Field(description="Agreed with the family; within 12 months")
    agreed_with_family: bool = False


@_step(
    "/plans/{plan_id}/reviews/{review_id}/conclusion",
    "plan.review_concluded",
    summary="Record what a review concluded: what worked, what did not, and the next "
    "review date agreed with the family (coordinator, caseload)",
)
async def record_conclusion(
    request: Request,
    response: Response,
    plan_id: str,
    review_id: str,
    principal: Coordinator,
    body: ConclusionIn,
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    return await _on_plan(
        request,
        response,
        principal,
        plan_id,
        lambda: conclusion_steps(review_id, body),
        key=idempotency_key,
    )


def conclusion_steps(review_id: str, body: ConclusionIn) -> Steps:
    data: dict[str, Any] = {**body.model_dump(exclude={"review_id"}), "review_id": review_id}
    return Steps([_build(ReviewConcluded, data)], "review-conclusion")


# --------------------------------------------------------------------------- actions


class CompletionIn(_In):
    completed_on: date
    completed_by: Ref | None = Field(default=None, description="Who completed it, if not its owner")


@_step(
    "/children/{child_id}/actions/{action_id}/completion",
    "team.meeting_action_completed",
    summary="Record that an open action from a team meeting was completed (coordinator, caseload)",
    plan=False,
)
async def record_completion(
    request: Request,
    response: Response,
    child_id: str,
    action_id: str,
    principal: Coordinator,
    body: CompletionIn,
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    the_hub = hub_of(request)
    await require_in_reach(the_hub.reads, principal, child_id)
    if action_id not in await open_action_ids(the_hub.reads, child_id):
        raise HTTPException(404, "no such open action for this child")
    return await _run(
        request,
        response,
        principal,
        child_id,
        None,
        lambda: completion_steps(action_id, body),
        idempotency_key=idempotency_key,
    )


def completion_steps(action_id: str, body: CompletionIn) -> Steps:
    data = {**body.model_dump(), "action_id": action_id}
    return Steps([_build(MeetingActionCompleted, data)], "action-completion", check=False)
