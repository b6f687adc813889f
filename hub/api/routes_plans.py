"""Coordinator write routes: record the steps of an EHC plan, team meetings and the key
worker, each as a domain event through the consent the_hub.

Every route is for the `coordinator` role and a child on the caller's caseload (404
otherwise). A step is checked against the plan's history first (`check_transition`): a
final plan before a decision to assess, a date before the request and the like answer
409 (the plan's state forbids it) or 422 (the content contradicts the plan), as RFC 9457
problem details naming the rule and the field. Dates on which something happened may
not lie in the future. The event is then appended through `SubmitFacts` as the
local authority's own record (source agency `local_authority`, category from the
payload's `data_category()`), which audits the decision: the LA's own steps claim the
`ehc_statutory_record` basis, requests for health or social care advice `reg6_ehc_advice`;
a step no basis or consent covers (advice from CAMHS without a consent naming mental
health) is kept back on `hub.withheld` and the answer says so (202). An `Idempotency-Key`
header makes a retry answer the first call's events instead of recording twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.api.auth import AUTH_RESPONSES, Principal, require_roles
from hub.api.deps import hub_of
from hub.api.problems import problem
from hub.events.envelope import EventPayload, new_event_id
from hub.events.plan import (
    AdviceCategory,
    AdviceDataCategory,
    AdviceRequested,
    AssessmentDecided,
    AssessmentRequested,
    DocumentRef,
    DraftIssued,
    ExceptionKind,
    ExceptionRecorded,
    Finalised,
    NoPlanDecided,
    PhaseTransferKind,
    RequestedBy,
    ReviewDecided,
    ReviewDecision,
    ReviewKind,
    ReviewMeetingHeld,
    ReviewReportSent,
)
from hub.events.team import (
    KEY_WORKING_FUNCTIONS,
    FamilyKeyWorker,
    KeyWorkerAssigned,
    KeyWorkerCoverArranged,
    KeyWorkerHandoverStarted,
    KeyWorkingEnded,
    KeyWorkingFunction,
    KeyWorkingLevel,
    KeyWorkingModel,
    MeetingHeld,
    MeetingKind,
    key_worker_id,
)
from hub.queries.context import plan_in_reach, require_in_reach
from hub.service_layer.plan_steps import StepRefused

router = APIRouter()
Coordinator = Annotated[Principal, Depends(require_roles("coordinator"))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=128,
        description="Any unique string; a retry with the same key records nothing twice",
    ),
]

TRANSITION_PROBLEM = "https://tac-hub.example/problems/plan-transition"
INVALID_PROBLEM = "https://tac-hub.example/problems/invalid-step"

Ref = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/|-]{0,127}$")]


# --------------------------------------------------------------------------- responses


class RecordedEvent(BaseModel):
    event_type: str
    event_id: str | None
    status: Literal["appended", "withheld", "duplicate"]
    reason: str | None = None


class Recorded(BaseModel):
    """What was recorded: `recorded` (on the shared log), `withheld` (kept back until a
    consent covers it), or `duplicate` (a retry of an earlier call)."""

    status: Literal["recorded", "withheld", "duplicate"]
    child_id: str
    plan_id: str | None = None
    events: list[RecordedEvent]


_PROBLEM = "application/problem+json"
_Route = Callable[..., Coroutine[Any, Any, Recorded | JSONResponse]]


def _example(plan_id: str | None, event_type: str) -> dict[str, Any]:
    return {
        "status": "recorded",
        "child_id": "hc-7f3a9c2e41d8",
        "plan_id": plan_id,
        "events": [
            {
                "event_type": event_type,
                "event_id": "0192f0e2-7c1d-7e3a-9d2b-5f1e2a3b4c5d",
                "status": "appended",
                "reason": None,
            }
        ],
    }


def _responses(
    plan_id: str | None, event_type: str, *, transitions: bool = True
) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {
        **AUTH_RESPONSES,
        201: {
            "description": "Recorded on the shared log",
            "content": {"application/json": {"example": _example(plan_id, event_type)}},
        },
        200: {
            "model": Recorded,
            "description": "A retry with the same Idempotency-Key: the first call's events",
        },
        202: {
            "model": Recorded,
            "description": "Kept back on hub.withheld: no consent or basis covers it yet",
        },
        404: {
            "description": "Not on your caseload (or no such child or plan)",
            "content": {
                _PROBLEM: {
                    "example": {
                        "type": "about:blank",
                        "title": "Not Found",
                        "status": 404,
                        "detail": "no such plan on your caseload",
                    }
                }
            },
        },
        409: {
            "description": "The plan's state forbids this step (the rule is named)",
            "content": {
                _PROBLEM: {
                    "example": {
                        "type": TRANSITION_PROBLEM,
                        "title": "Conflict",
                        "status": 409,
                        "detail": "a final plan follows a decision to assess",
                        "rule": "final_needs_decision_to_assess",
                        "field": None,
                    }
                }
            },
        },
        422: {
            "description": "The step contradicts the plan or is not valid (rule and field)",
            "content": {
                _PROBLEM: {
                    "example": {
                        "type": INVALID_PROBLEM,
                        "title": "Unprocessable Content",
                        "status": 422,
                        "detail": "decided_on 2024-01-10 is before the request (2024-01-18)",
                        "rule": "decided_on_before_request",
                        "field": "decided_on",
                    }
                }
            },
        },
    }
    if not transitions:
        del out[409]
    return out


# --------------------------------------------------------------------------- appending


def _invalid(rule: str, field: str | None, detail: str) -> JSONResponse:
    return problem(
        422, "Unprocessable Content", detail, type_=INVALID_PROBLEM, rule=rule, field=field
    )


def build_payload(cls: type[EventPayload], data: dict[str, Any], prefix: str = "") -> EventPayload:
    """The payload, or `StepRefused` naming the field and the rule (`invalid_<payload>`)."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not loc and ": " in msg:  # a rule across fields names its field first
            loc, msg = msg.split(": ", 1)
        raise StepRefused(
            "invalid_" + cls.__name__.lower(),
            prefix + loc or None,
            f"{prefix}{loc}: {msg}" if loc else msg,
            conflict=False,
        ) from None


_build = build_payload


@dataclass(frozen=True)
class Steps:
    """What one call records: the payloads (built from the request body, ids generated
    where absent), the route name its idempotency refs carry, and whether each step is
    checked against the plan's history. The API routes and the web forms both build
    their steps with the `*_steps` functions below."""

    payloads: list[EventPayload]
    route: str
    check: bool = True


async def append_steps(
    request: Request,
    response: Response,
    principal: Principal,
    child_id: str,
    plan_id: str | None,
    payloads: Sequence[EventPayload],
    *,
    route: str,
    idempotency_key: str | None,
    check: bool = True,
) -> Recorded | JSONResponse:
    """Record the steps (`RecordPlanSteps`) and answer in HTTP: 201 recorded, 202
    withheld, 200 a retry's first events, 409/422 a refused step with its rule."""
    try:
        done = await hub_of(request).handlers.record_plan_steps(
            payloads,
            actor=principal.actor,
            caller=principal.name,
            child_id=child_id,
            plan_id=plan_id,
            route=route,
            idempotency_key=idempotency_key,
            check=check,
        )
    except StepRefused as refused:
        if refused.conflict:
            return problem(
                409,
                "Conflict",
                refused.message,
                type_=TRANSITION_PROBLEM,
                rule=refused.rule,
                field=refused.field,
            )
        return _invalid(refused.rule, refused.field, refused.message)
    response.status_code = {"duplicate": 200, "withheld": 202, "recorded": 201}[done.status]
    events = [
        RecordedEvent(
            event_type=o.event_type or "",
            event_id=o.event_id,
            status=o.status,
            reason=o.reason,
        )
        for o in done.outcomes
    ]
    return Recorded(status=done.status, child_id=child_id, plan_id=plan_id, events=events)


async def _run(
    request: Request,
    response: Response,
    principal: Principal,
    child_id: str,
    plan_id: str | None,
    build: Callable[[], Steps],
    *,
    idempotency_key: str | None,
) -> Recorded | JSONResponse:
    try:
        steps = build()
    except StepRefused as refused:
        return _invalid(refused.rule, refused.field, refused.message)
    return await append_steps(
        request,
        response,
        principal,
        child_id,
        plan_id,
        steps.payloads,
        route=steps.route,
        idempotency_key=idempotency_key,
        check=steps.check,
    )


async def _on_plan(
    request: Request,
    response: Response,
    principal: Principal,
    plan_id: str,
    build: Callable[[], Steps],
    *,
    key: str | None,
) -> Recorded | JSONResponse:
    """Record the steps `build` makes on a plan of a child on the caller's caseload."""
    child_id = await plan_in_reach(hub_of(request).reads, principal, plan_id)
    return await _run(request, response, principal, child_id, plan_id, build, idempotency_key=key)


_EXAMPLE_PLAN_ID = "0192f0e2-7c1d-7e3a-9d2b-5f1e2a3b4c5d"


def _plan_step(path: str, event_type: str, *, summary: str) -> Callable[[_Route], _Route]:
    """The route of a step on a plan (tag `plan steps`)."""
    return router.post(
        path,
        tags=["plan steps"],
        summary=summary,
        status_code=201,
        response_model=Recorded,
        responses=_responses(_EXAMPLE_PLAN_ID, event_type),
    )


def _team_step(path: str, event_type: str, *, summary: str) -> Callable[[_Route], _Route]:
    """The route of a child's team record (tag `team`): no plan, no transitions."""
    return router.post(
        path,
        tags=["team"],
        summary=summary,
        status_code=201,
        response_model=Recorded,
        responses=_responses(None, event_type, transitions=False),
    )


# --------------------------------------------------------------------------- the request


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanRequestIn(_In):
    requested_on: date = Field(description="The date on the request")
    received_on: date = Field(description="The day the LA received it: day 0 of the clock")
    requested_by: RequestedBy
    reassessment: bool = False
    plan_id: str | None = Field(
        default=None, max_length=64, description="For a re-assessment: the plan re-assessed"
    )


@_plan_step(
    "/children/{child_id}/plans",
    "plan.assessment_requested",
    summary="Record a request for an EHC needs assessment (a new plan) or a re-assessment "
    "(coordinator, caseload)",
)
async def record_request(
    request: Request,
    response: Response,
    child_id: str,
    principal: Coordinator,
    body: Annotated[
        PlanRequestIn,
        Body(
            openapi_examples={
                "a parent's request": {
                    "value": {
                        "requested_on": "2024-01-15",
                        "received_on": "2024-01-18",
                        "requested_by": "parent",
                    }
                }
            }
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    the_hub = hub_of(request)
    await require_in_reach(the_hub.reads, principal, child_id)
    if body.reassessment:
        if body.plan_id is None:
            return _invalid(
                "reassessment_needs_plan",
                "plan_id",
                "a re-assessment names the plan it re-assesses",
            )
        if child_id != await plan_in_reach(the_hub.reads, principal, body.plan_id):
            raise HTTPException(404, "no such plan on your caseload")
        plan_id = body.plan_id
    elif body.plan_id is not None:
        return _invalid(
            "new_plan_id_is_generated",
            "plan_id",
            "a new request starts a new plan: its id is generated",
        )
    else:
        plan_id = str(new_event_id())
    return await _run(
        request,
        response,
        principal,
        child_id,
        plan_id,
        lambda: Steps(
            [_build(AssessmentRequested, body.model_dump(exclude={"plan_id"}))], "request"
        ),
        idempotency_key=idempotency_key,
    )


# --------------------------------------------------------------------------- plan steps


class DecisionIn(_In):
    decision: Literal["assess", "refuse", "no_plan"] = Field(
        description="Whether to assess (reg 4), or — after the assessment — not to issue a "
        "plan (reg 10)"
    )
    decided_on: date
    letter: DocumentRef | None = None


@_plan_step(
    "/plans/{plan_id}/decision",
    "plan.assessment_decided",
    summary="Record the LA's decision whether to assess, or not to issue a plan after the "
    "assessment (coordinator, caseload)",
)
async def record_decision(
    request: Request,
    response: Response,
    plan_id: str,
    principal: Coordinator,
    body: Annotated[
        DecisionIn,
        Body(
            openapi_examples={
                "assess": {"value": {"decision": "assess", "decided_on": "2024-02-01"}}
            }
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    return await _on_plan(
        request, response, principal, plan_id, lambda: decision_steps(body), key=idempotency_key
    )


def decision_steps(body: DecisionIn) -> Steps:
    if body.decision == "no_plan":
        payload = _build(NoPlanDecided, {"decided_on": body.decided_on, "letter": body.letter})
    else:
        payload = _build(AssessmentDecided, body.model_dump())
    return Steps([payload], "decision")


class AdviceRequestIn(_In):
    advice_request_id: Ref | None = Field(default=None, description="Generated when absent")
    reg6_category: AdviceCategory
    practitioner_id: Ref | None = None
    agency: str | None = Field(default=None, max_length=64)
    organisation_code: str | None = Field(default=None, max_length=32)
    requested_on: date
    advice_category: AdviceDataCategory | None = Field(
        default=None,
        description="Consent category of the adviser's involvement "
        "(e.g. mental_health for CAMHS); defaults from reg6_category",
    )


@_plan_step(
    "/plans/{plan_id}/advice-requests",
    "plan.advice_requested",
    summary="Record a request for advice under reg 6: due 6 weeks later (coordinator, caseload)",
)
async def record_advice_request(
    request: Request,
    response: Response,
    plan_id: str,
    principal: Coordinator,
    body: Annotated[
        AdviceRequestIn,
        Body(
            openapi_examples={
                "an educational psychologist": {
                    "value": {
                        "advice_request_id": "adv-ep",
                        "reg6_category": "educational_psychologist",
                        "practitioner_id": "ep-9",
                        "agency": "education",
                        "requested_on": "2024-02-01",
                    }
                }
            }
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    return await _on_plan(
        request,
        response,
        principal,
        plan_id,
        lambda: advice_request_steps(body),
        key=idempotency_key,
    )


def advice_request_steps(body: AdviceRequestIn) -> Steps:
    data = body.model_dump()
    data["advice_request_id"] = body.advice_request_id or f"adv-{uuid.uuid4().hex[:12]}"
    return Steps([_build(AdviceRequested, data)], "advice-request")


class DraftIn(_In):
    issued_on: date
    comments_by: date | None = Field(default=None, description="At least 15 days on")
    document: DocumentRef | None = None


@_plan_step(
    "/plans/{plan_id}/draft",
    "plan.draft_issued",
    summary="Record that the draft plan was issued: the family has 15 days to comment "
    "(coordinator, caseload)",
)
async def record_draft(
    request: Request,
    response: Response,
    plan_id: str,
    principal: Coordinator,
    body: Annotated[
        DraftIn,
        Body(
            openapi_examples={
                "draft": {"value": {"issued_on": "2024-04-25", "comments_by": "2024-05-10"}}
            }
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    return await _on_plan(
        request, response, principal, plan_id, lambda: draft_steps(body), key=idempotency_key
    )


def draft_steps(body: DraftIn) -> Steps:
    return Steps([_build(DraftIssued, body.model_dump())], "draft")


class FinalIn(_In):
    finalised_on: date
    placement: str | None = Field(
        default=None, max_length=32, description="Section I: URN or UKPRN of the named institution"
    )
    document: DocumentRef | None = None


@_plan_step(
    "/plans/{plan_id}/final",
    "plan.finalised",
    summary="Record that the final plan was issued (coordinator, caseload)",
)
async def record_final(
    request: Request,
    response: Response,
    plan_id: str,
    principal: Coordinator,
    body: Annotated[
        FinalIn,
        Body(
            openapi_examples={
                "final": {"value": {"finalised_on": "2024-05-30", "placement": "100001"}}
            }
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    return await _on_plan(
        request, response, principal, plan_id, lambda: final_steps(body), key=idempotency_key
    )


def final_steps(body: FinalIn) -> Steps:
    return Steps([_build(Finalised, body.model_dump())], "final")


class ExceptionIn(_In):
    exception_id: Ref | None = Field(
        default=None,
        description="Generated when absent; the same id again replaces the record (to add its end)",
    )
    kind: ExceptionKind
    starts_on: date
    ends_on: date | None = None
    advice_request_ids: list[Ref] = Field(
        default=[],
        description="Only these advisers' 6 weeks (reg 8(2)); none: every clock it pauses",
    )
    details: str | None = Field(default=None, max_length=4000)


@_plan_step(
    "/plans/{plan_id}/exceptions",
    "plan.exception_recorded",
    summary="Record an exception to the time limits (regs 5(4), 8(2), 10(4), 13(3)) "
    "(coordinator, caseload)",
)
async def record_exception(
    request: Request,
    response: Response,
    plan_id: str,
    principal: Coordinator,
    body: Annotated[
        ExceptionIn,
        Body(
            openapi_examples={
                "family away": {
                    "value": {
                        "exception_id": "exc-1",
                        "kind": "family_absent",
                        "starts_on": "2024-03-01",
                        "ends_on": "2024-03-31",
                    }
                }
            }
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    return await _on_plan(
        request, response, principal, plan_id, lambda: exception_steps(body), key=idempotency_key
    )


def exception_steps(body: ExceptionIn) -> Steps:
    data = body.model_dump()
    data["exception_id"] = body.exception_id or f"exc-{uuid.uuid4().hex[:12]}"
    return Steps([_build(ExceptionRecorded, data)], "exception")


class ReviewDecisionIn(_In):
    decision: ReviewDecision
    decided_on: date
    phase_transfer: PhaseTransferKind | None = None


class ReviewIn(_In):
    review_id: Ref | None = Field(
        default=None,
        description="Generated for a new meeting; name it to add the report or the decision later",
    )
    held_on: date | None = Field(default=None, description="The meeting (a new review)")
    kind: ReviewKind = "annual"
    attendee_ids: list[Ref] = []
    family_attended: bool = False
    report_sent_on: date | None = None
    report: DocumentRef | None = None
    decision: ReviewDecisionIn | None = None


@_plan_step(
    "/plans/{plan_id}/reviews",
    "plan.review_meeting_held",
    summary="Record a review: the meeting, its report, and the LA's decision (any of them, "
    "in one call or later by review_id) (coordinator, caseload)",
)
async def record_review(
    request: Request,
    response: Response,
    plan_id: str,
    principal: Coordinator,
    body: Annotated[
        ReviewIn,
        Body(
            openapi_examples={
                "annual review": {
                    "value": {
                        "review_id": "rev-2025",
                        "held_on": "2025-05-12",
                        "kind": "annual",
                        "family_attended": True,
                        "report_sent_on": "2025-05-20",
                        "decision": {"decision": "maintain", "decided_on": "2025-06-02"},
                    }
                }
            }
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    return await _on_plan(
        request, response, principal, plan_id, lambda: review_steps(body), key=idempotency_key
    )


def review_steps(body: ReviewIn) -> Steps:
    if body.held_on is None and body.report_sent_on is None and body.decision is None:
        raise StepRefused(
            "review_needs_a_step",
            "held_on",
            "give the meeting (held_on), the report (report_sent_on) or the decision",
            conflict=False,
        )
    if body.held_on is None and body.review_id is None:
        raise StepRefused(
            "review_needs_id",
            "review_id",
            "name the review the report or decision belongs to",
            conflict=False,
        )
    review_id = body.review_id or f"rev-{uuid.uuid4().hex[:12]}"
    out: list[EventPayload] = []
    if body.held_on is not None:
        meeting = {
            "review_id": review_id,
            "held_on": body.held_on,
            "kind": body.kind,
            "attendee_ids": body.attendee_ids,
            "family_attended": body.family_attended,
        }
        out.append(_build(ReviewMeetingHeld, meeting))
    if body.report_sent_on is not None:
        report = {"review_id": review_id, "sent_on": body.report_sent_on, "document": body.report}
        out.append(_build(ReviewReportSent, report))
    if body.decision is not None:
        decided = {"review_id": review_id, **body.decision.model_dump()}
        out.append(_build(ReviewDecided, decided, "decision."))
    return Steps(out, "review")


# --------------------------------------------------------------------------- the team


class ActionIn(_In):
    action_id: Ref | None = Field(default=None, description="Generated when absent")
    text: str = Field(min_length=1, max_length=2000)
    owner_id: Ref = Field(description="The practitioner who owns it")
    due_on: date


class MeetingIn(_In):
    meeting_id: Ref | None = Field(default=None, description="Generated when absent")
    plan_id: str | None = Field(
        default=None, max_length=64, description="The plan the meeting was about, if one"
    )
    held_on: date
    kind: MeetingKind
    attendee_ids: list[Ref] = []
    family_attended: bool = False
    decisions: list[str] = []
    actions: list[ActionIn] = []


@_team_step(
    "/children/{child_id}/meetings",
    "team.meeting_held",
    summary="Record a team meeting: attendees, decisions, actions with owner and due date "
    "(coordinator, caseload)",
)
async def record_meeting(
    request: Request,
    response: Response,
    child_id: str,
    principal: Coordinator,
    body: Annotated[
        MeetingIn,
        Body(
            openapi_examples={
                "TAC meeting": {
                    "value": {
                        "held_on": "2024-03-05",
                        "kind": "tac",
                        "attendee_ids": ["salt-42", "ep-9"],
                        "family_attended": True,
                        "decisions": ["Refer for a sensory assessment"],
                        "actions": [
                            {
                                "text": "Book the sensory assessment",
                                "owner_id": "ot-3",
                                "due_on": "2024-04-02",
                            }
                        ],
                    }
                }
            }
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    the_hub = hub_of(request)
    await require_in_reach(the_hub.reads, principal, child_id)
    if body.plan_id is not None and child_id != await plan_in_reach(
        the_hub.reads, principal, body.plan_id
    ):
        raise HTTPException(404, "no such plan on your caseload")
    return await _run(
        request,
        response,
        principal,
        child_id,
        body.plan_id,
        lambda: meeting_steps(body),
        idempotency_key=idempotency_key,
    )


def meeting_steps(body: MeetingIn) -> Steps:
    data = body.model_dump(exclude={"plan_id"})
    data["meeting_id"] = body.meeting_id or f"mtg-{uuid.uuid4().hex[:12]}"
    data["actions"] = [
        {**a, "action_id": a["action_id"] or f"act-{uuid.uuid4().hex[:12]}"}
        for a in data["actions"]
    ]
    return Steps([_build(MeetingHeld, data)], "meeting", check=False)


class KeyWorkerIn(_In):
    practitioner_id: Ref | None = Field(
        default=None, description="The practitioner (else family_member)"
    )
    family_member: FamilyKeyWorker | None = Field(
        default=None, description="A parent or the young person as their own key worker"
    )
    family_member_ref: Ref | None = Field(
        default=None,
        description="Which parent or carer: the family fact's related_person_ref, never a name",
    )
    model: KeyWorkingModel
    functions: list[KeyWorkingFunction] = Field(
        default=list(KEY_WORKING_FUNCTIONS),
        description="The key working functions this person holds (all ten in the "
        "single-person model)",
    )
    assigned_on: date
    level: KeyWorkingLevel | None = None
    family_agreed_on: date | None = Field(
        default=None, description="When the family agreed to this key worker"
    )
    choice_reason: str | None = Field(
        default=None, max_length=2000, description="Why this key worker (personal: sealed)"
    )


@_team_step(
    "/children/{child_id}/key-worker",
    "team.key_worker_assigned",
    summary="Record who holds which key working functions (single- or multi-person model) "
    "(coordinator, caseload)",
)
async def record_key_worker(
    request: Request,
    response: Response,
    child_id: str,
    principal: Coordinator,
    body: Annotated[
        KeyWorkerIn,
        Body(
            openapi_examples={
                "single key worker": {
                    "value": {
                        "practitioner_id": "kw-1",
                        "model": "single_person",
                        "assigned_on": "2024-02-05",
                    }
                }
            }
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    the_hub = hub_of(request)
    await require_in_reach(the_hub.reads, principal, child_id)
    return await _run(
        request,
        response,
        principal,
        child_id,
        None,
        lambda: key_worker_steps(body),
        idempotency_key=idempotency_key,
    )


def key_worker_steps(body: KeyWorkerIn) -> Steps:
    who = key_worker_id(body.practitioner_id, body.family_member, body.family_member_ref)
    return Steps([_build(KeyWorkerAssigned, body.model_dump())], f"key-worker:{who}", check=False)


class IncomingKeyWorkerIn(_In):
    """The incoming key worker: as for an assignment, from the handover's first day."""

    practitioner_id: Ref | None = None
    family_member: FamilyKeyWorker | None = None
    family_member_ref: Ref | None = None
    model: KeyWorkingModel
    functions: list[KeyWorkingFunction] = Field(default=list(KEY_WORKING_FUNCTIONS))
    level: KeyWorkingLevel | None = None
    family_agreed_on: date | None = None
    choice_reason: str | None = Field(default=None, max_length=2000)


class HandoverIn(_In):
    outgoing_id: Ref = Field(description="The key worker handing over (their key_worker_id)")
    incoming: IncomingKeyWorkerIn
    handed_over_on: date = Field(description="The incoming key worker's first day")
    overlap_until: date = Field(description="The outgoing key worker's last day")
    reason: str | None = Field(default=None, max_length=2000, description="Personal: sealed")


@_team_step(
    "/children/{child_id}/key-worker/handover",
    "team.key_worker_handover_started",
    summary="Record a handover from one key worker to the next, with the overlap in which "
    "both hold key working (coordinator, caseload)",
)
async def record_key_worker_handover(
    request: Request,
    response: Response,
    child_id: str,
    principal: Coordinator,
    body: Annotated[
        HandoverIn,
        Body(
            openapi_examples={
                "handover with a two-week overlap": {
                    "value": {
                        "outgoing_id": "kw-1",
                        "incoming": {
                            "practitioner_id": "kw-2",
                            "model": "single_person",
                            "level": "high",
                            "family_agreed_on": "2024-03-28",
                        },
                        "handed_over_on": "2024-04-01",
                        "overlap_until": "2024-04-14",
                        "reason": "Moving to the 0-5 team",
                    }
                }
            }
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    """Two events: the incoming key worker's assignment from `handed_over_on`, and the
    handover that ends the outgoing one's period on `overlap_until`."""
    the_hub = hub_of(request)
    await require_in_reach(the_hub.reads, principal, child_id)
    return await _run(
        request,
        response,
        principal,
        child_id,
        None,
        lambda: handover_steps(body),
        idempotency_key=idempotency_key,
    )


def handover_steps(body: HandoverIn) -> Steps:
    incoming = body.incoming
    incoming_id = key_worker_id(
        incoming.practitioner_id, incoming.family_member, incoming.family_member_ref
    )
    assignment = {**incoming.model_dump(), "assigned_on": body.handed_over_on}
    handover = {
        "outgoing_id": body.outgoing_id,
        "incoming_id": incoming_id,
        "handed_over_on": body.handed_over_on,
        "overlap_until": body.overlap_until,
        "reason": body.reason,
    }
    return Steps(
        [
            _build(KeyWorkerAssigned, assignment, "incoming."),
            _build(KeyWorkerHandoverStarted, handover),
        ],
        f"key-worker-handover:{body.outgoing_id}:{incoming_id}",
        check=False,
    )


class CoverIn(_In):
    key_worker_id: Ref = Field(description="The key worker covered (their key_worker_id)")
    cover_practitioner_id: Ref | None = Field(
        default=None, description="A practitioner on the team who covers"
    )
    cover_contact: str | None = Field(
        default=None, max_length=200, description="A work contact for absence"
    )
    arranged_on: date
    until: date | None = None


@_team_step(
    "/children/{child_id}/key-worker/cover",
    "team.key_worker_cover_arranged",
    summary="Record who covers a key worker's absence: a practitioner on the team or a work "
    "contact (coordinator, caseload)",
)
async def record_key_worker_cover(
    request: Request,
    response: Response,
    child_id: str,
    principal: Coordinator,
    body: Annotated[
        CoverIn,
        Body(
            openapi_examples={
                "a colleague covers": {
                    "value": {
                        "key_worker_id": "kw-2",
                        "cover_practitioner_id": "senco-1",
                        "cover_contact": "SEN duty line 01632 960999",
                        "arranged_on": "2024-04-02",
                    }
                }
            }
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    the_hub = hub_of(request)
    await require_in_reach(the_hub.reads, principal, child_id)
    return await _run(
        request,
        response,
        principal,
        child_id,
        None,
        lambda: cover_steps(body),
        idempotency_key=idempotency_key,
    )


def cover_steps(body: CoverIn) -> Steps:
    return Steps(
        [_build(KeyWorkerCoverArranged, body.model_dump())],
        f"key-worker-cover:{body.key_worker_id}",
        check=False,
    )


class KeyWorkingEndIn(_In):
    key_worker_id: Ref | None = Field(
        default=None, description="The key worker whose period ends (none: every one)"
    )
    ended_on: date = Field(description="The last day of key working")
    reason: str = Field(min_length=1, max_length=2000, description="Personal: sealed")


@_team_step(
    "/children/{child_id}/key-worker/end",
    "team.key_working_ended",
    summary="Record that key working ended, for one key worker or for the child, with the "
    "date and the reason (coordinator, caseload)",
)
async def record_key_working_end(
    request: Request,
    response: Response,
    child_id: str,
    principal: Coordinator,
    body: Annotated[
        KeyWorkingEndIn,
        Body(
            openapi_examples={
                "key working no longer needed": {
                    "value": {"ended_on": "2024-07-19", "reason": "Needs met at SEN support"}
                }
            }
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> Recorded | JSONResponse:
    the_hub = hub_of(request)
    await require_in_reach(the_hub.reads, principal, child_id)
    return await _run(
        request,
        response,
        principal,
        child_id,
        None,
        lambda: key_working_end_steps(body),
        idempotency_key=idempotency_key,
    )


def key_working_end_steps(body: KeyWorkingEndIn) -> Steps:
    return Steps(
        [_build(KeyWorkingEnded, body.model_dump())],
        f"key-working-end:{body.key_worker_id or '-'}",
        check=False,
    )
