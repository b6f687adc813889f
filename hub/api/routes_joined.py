"""The joined view a coordinator opens every morning: the team around a child, the child's
plans and each plan's timeline, and the caseload sorted by what is most urgent.

Every route is for the `coordinator` role and only for children on the caller's caseload
(anything else answers 404, like a child that does not exist). Nothing is decided in the
projections: each stored fact is re-decided for the caller now (`decide_sharing`, as the
shared record does), so a withdrawn consent hides at once what it covered, and only the
facts the caller may see are opened (decrypted) and used — for the statutory clock too.
`?as_of=YYYY-MM-DD` moves the clock's day (to look ahead or back); consent is always
judged as of now. Every call appends one audited read per child shown: who, which child,
which route, and the ids of the facts the answer rests on. Errors are RFC 9457 problem
details.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BeforeValidator

from hub.api.auth import AUTH_RESPONSES, Principal, require_roles
from hub.api.deps import reads_of
from hub.plans.clock import Se7Stage
from hub.projections.plan_timeline import TimelineView
from hub.projections.team_around_child import TeamView
from hub.queries.joined import (
    CASELOAD_LIMIT,
    CASELOAD_MAX_LIMIT,
    CaseloadView,
    ChildPlans,
    caseload_view,
    child_plans_view,
    team_view_json,
    timeline_view,
)
from hub.queries.search import ChildSearch, SearchResults, find_children

router = APIRouter()
Coordinator = Annotated[Principal, Depends(require_roles("coordinator"))]
Reader = Annotated[Principal, Depends(require_roles("coordinator", "practitioner", "family"))]
"""Who reads a child's joined view: the coordinator (caseload), a practitioner on the
child's team now, the family (their own child); each sees what the policy lets them."""


def _iso_day(value: Any) -> Any:
    """A query's day is written YYYY-MM-DD (pydantic alone would read `0` as 1970-01-01)."""
    if isinstance(value, str) and not _ISO_DAY.fullmatch(value):
        raise ValueError("Input should be a valid date or datetime (YYYY-MM-DD)")
    return value


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
AsOf = Annotated[
    date | None,
    BeforeValidator(_iso_day),
    Query(
        description="The day the statutory clock is read on (default: today, UTC). "
        "Consent is always judged as of now."
    ),
]

PROBLEM = "application/problem+json"
NOT_ON_CASELOAD: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "Not in your reach (caseload, team, own child), or no such child or "
        "plan (the same answer)",
        "content": {
            PROBLEM: {
                "example": {
                    "type": "about:blank",
                    "title": "Not Found",
                    "status": 404,
                    "detail": "no such child on your caseload",
                }
            }
        },
    }
}
BAD_QUERY: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "A query parameter is not valid (problem details naming it)",
        "content": {
            PROBLEM: {
                "example": {
                    "type": "about:blank",
                    "title": "Unprocessable Content",
                    "status": 422,
                    "detail": "query.as_of: Input should be a valid date or datetime",
                    "errors": [
                        {
                            "field": "query.as_of",
                            "reason": "Input should be a valid date or datetime",
                        }
                    ],
                }
            }
        },
    }
}
PageCursor = Annotated[
    str | None,
    Query(
        max_length=512,
        description="The `next_cursor` of the previous page (opaque); none for the first",
    ),
]
BAD_CURSOR: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "A query parameter is not valid, or the cursor is not one this "
        "listing issued (problem details naming it)",
        "content": {
            PROBLEM: {
                "example": {
                    "type": "about:blank",
                    "title": "Unprocessable Content",
                    "status": 422,
                    "detail": "query.cursor: not a cursor this hub issued",
                    "field": "query.cursor",
                    "rule": "cursor.malformed",
                    "errors": [{"field": "query.cursor", "reason": "not a cursor this hub issued"}],
                }
            }
        },
    }
}


# --------------------------------------------------------------------------- the team

TEAM_EXAMPLE: dict[str, Any] = {
    "child_id": "hc-7f3a9c2e41d8",
    "as_of": "2025-03-03",
    "child": {
        "child_id": "hc-7f3a9c2e41d8",
        "name": "Sam Example",
        "preferred_name": None,
        "date_of_birth": "2015-03-02",
        "identifiers": [{"system": "upn", "value": "H801200001001", "source_agency": "oak-school"}],
        "current_setting": {
            "school_name": "Oak Primary",
            "urn": "100001",
            "la_code": "801",
            "estab": "2000",
            "phase": "primary",
            "provision_type": "mainstream",
            "nc_year": "4",
            "since": "2019-09-04",
        },
        "sen_status": {
            "provision": "K",
            "provision_label": "SEN support",
            "needs": [{"type": "SLCN", "rank": 1}],
            "since": "2024-09-01",
            "source_agency": "oak-school",
        },
    },
    "family": {
        "members": [
            {
                "name": "Alex Example",
                "relationships": ["mother"],
                "parental_responsibility": True,
                "lives_with_child": True,
                "priority": 1,
                "contacts": [{"system": "phone", "value": "07700 900123", "use": "mobile"}],
                "sources": ["oak-school"],
            }
        ],
        "who_decides": {
            "decides": "parent_with_pr",
            "consents_given_by": ["a parent with parental responsibility (parent-1)"],
            "summary": "a parent with parental responsibility decides: the child "
            "is below the end of compulsory school age",
        },
    },
    "key_worker": {
        "practitioner_id": "kw-1",
        "role": "key_worker",
        "role_label": "Key worker (single point of contact)",
        "organisation_code": "801",
        "contact": None,
        "model": "single_person",
        "functions": ["single_point_of_contact", "coordinating_practitioners"],
        "assigned_on": "2024-10-01",
    },
    "key_working_model": "single_person",
    "member_count": 2,
    "current_member_count": 2,
    "agencies": [
        {
            "agency": "health",
            "count": 1,
            "current": 1,
            "members": [
                {
                    "practitioner_id": "salt-42",
                    "role": "speech_and_language_therapist",
                    "role_label": "Speech and language therapist",
                    "in_vocabulary": True,
                    "organisation_code": "RR8",
                    "contact": None,
                    "since": "2024-09-03",
                    "until": None,
                    "current": True,
                    "last_contribution": {
                        "kind": "advice",
                        "on": "2024-11-20",
                        "event_id": "0192f0e2-...",
                        "plan_id": "plan-1",
                    },
                    "key_working_functions": [],
                }
            ],
        }
    ],
    "open_actions": [
        {
            "action_id": "a-1",
            "meeting_id": "m-1",
            "held_on": "2025-01-10",
            "text": "Book a sensory assessment",
            "owner_id": "ot-3",
            "owner_role": "occupational_therapist",
            "due_on": "2025-02-07",
            "overdue": True,
        }
    ],
    "consent": [
        "Consent c-1: a parent with parental responsibility permits sharing health, "
        "education for ehc assessment, plan delivery with coordinator — in force"
    ],
    "facts_shown": ["0192f0e2-..."],
}


@router.get(
    "/children/{child_id}/team",
    tags=["joined view"],
    summary="The team around the child: the child, the family, the key worker, every "
    "practitioner by agency, open actions and consent (coordinator, practitioner on the "
    "team, family; audited)",
    response_model=TeamView,
    responses={
        **AUTH_RESPONSES,
        **NOT_ON_CASELOAD,
        **BAD_QUERY,
        200: {"content": {"application/json": {"example": TEAM_EXAMPLE}}},
    },
)
async def team(request: Request, child_id: str, principal: Reader, as_of: AsOf = None) -> Response:
    # the view as `response_model` writes it, written once per folded view (the schema is
    # the decorator's)
    body = await team_view_json(reads_of(request), principal, child_id, as_of=as_of)
    return Response(body, media_type="application/json")


# --------------------------------------------------------------------------- plans


PLANS_EXAMPLE: dict[str, Any] = {
    "child_id": "hc-7f3a9c2e41d8",
    "as_of": "2024-03-01",
    "plans": [
        {
            "plan_id": "0192f0e2-7c1d-7e3a-9d2b-5f1e2a3b4c5d",
            "status": "assessing",
            "stage": "listen_and_understand",
            "received_on": "2024-01-18",
            "next_due": {
                "key": "advice:adv-ep",
                "rule": "advice",
                "title": "Advice from ep-9 (psychological advice)",
                "due_on": "2024-03-14",
                "state": "due",
                "days_remaining": 13,
            },
            "overdue_count": 0,
            "days_to_final_due": 98,
            "event_ids": ["0192f0e2-..."],
        }
    ],
}


@router.get(
    "/children/{child_id}/plans",
    tags=["joined view"],
    summary="The child's EHC plans, each with its stage, statutory status and next "
    "deadline (coordinator, practitioner on the team, family; audited)",
    response_model=ChildPlans,
    responses={
        **AUTH_RESPONSES,
        **NOT_ON_CASELOAD,
        **BAD_QUERY,
        200: {"content": {"application/json": {"example": PLANS_EXAMPLE}}},
    },
)
async def child_plans(
    request: Request, child_id: str, principal: Reader, as_of: AsOf = None
) -> ChildPlans:
    return await child_plans_view(reads_of(request), principal, child_id, as_of=as_of)


TIMELINE_EXAMPLE: dict[str, Any] = {
    "plan_id": "0192f0e2-7c1d-7e3a-9d2b-5f1e2a3b4c5d",
    "child_id": "hc-7f3a9c2e41d8",
    "as_of": "2024-03-01",
    "status": "assessing",
    "stage": "listen_and_understand",
    "reassessment": False,
    "received_on": "2024-01-18",
    "days_elapsed": 43,
    "weeks_elapsed": 6,
    "paused": False,
    "next_due": {
        "key": "advice:adv-ep",
        "rule": "advice",
        "title": "Advice from ep-9 (psychological advice)",
        "source": "SEND Regulations 2014 reg 8(1)",
        "kind": "statutory",
        "subject_id": "adv-ep",
        "starts_on": "2024-02-01",
        "due_on": "2024-03-14",
        "due_without_exceptions": "2024-03-14",
        "paused_days": 0,
        "exception_ids": [],
        "state": "due",
        "days_remaining": 13,
    },
    "overdue_count": 0,
    "milestones": [
        {
            "key": "assessment_decision:2024-01-18",
            "rule": "assessment_decision",
            "title": "Decision whether to assess",
            "source": "SEND Regulations 2014 reg 5(1)",
            "kind": "statutory",
            "starts_on": "2024-01-18",
            "due_on": "2024-02-29",
            "due_without_exceptions": "2024-02-29",
            "paused_days": 0,
            "exception_ids": [],
            "state": "met",
            "met_on": "2024-02-01",
            "days_late": 0,
        }
    ],
    "steps": [
        {
            "on": "2024-01-18",
            "event_type": "plan.assessment_requested",
            "text": "Request for an EHC needs assessment received from a parent",
            "event_id": "0192f0e2-...",
        }
    ],
    "exceptions": [],
    "contributions": [
        {
            "kind": "advice",
            "on": "2024-02-01",
            "advice_request_id": "adv-ep",
            "reg6_category": "educational_psychologist",
            "practitioner_id": "ep-9",
            "agency": "education",
            "requested_on": "2024-02-01",
            "due_on": "2024-03-14",
            "state": "outstanding",
            "milestone_state": "due",
            "event_ids": ["0192f0e2-..."],
        }
    ],
    "unlinked_provision": [],
    "facts_shown": ["0192f0e2-..."],
}


@router.get(
    "/plans/{plan_id}/timeline",
    tags=["joined view"],
    summary="One plan's statutory clock and every contribution in order: milestones with "
    "their due dates and states, advice, family views, documents, outcomes and "
    "provision, meeting actions (coordinator, practitioner on the team, family; audited)",
    response_model=TimelineView,
    responses={
        **AUTH_RESPONSES,
        **NOT_ON_CASELOAD,
        **BAD_QUERY,
        200: {"content": {"application/json": {"example": TIMELINE_EXAMPLE}}},
    },
)
async def timeline(
    request: Request, plan_id: str, principal: Reader, as_of: AsOf = None
) -> TimelineView:
    return await timeline_view(reads_of(request), principal, plan_id, as_of=as_of)


# --------------------------------------------------------------------------- caseload


CASELOAD_EXAMPLE: dict[str, Any] = {
    "coordinator": "casey",
    "as_of": "2024-04-02",
    "total": 1,
    "children": [
        {
            "child_id": "hc-7f3a9c2e41d8",
            "name": "Ava Thompson",
            "plan_count": 1,
            "plan_id": "0192f0e2-7c1d-7e3a-9d2b-5f1e2a3b4c5d",
            "status": "assessing",
            "stage": "listen_and_understand",
            "next_deadline": {
                "plan_id": "0192f0e2-7c1d-7e3a-9d2b-5f1e2a3b4c5d",
                "key": "advice:adv-ep",
                "rule": "advice",
                "title": "Advice from ep-9 (psychological advice)",
                "due_on": "2024-03-14",
                "state": "overdue",
                "days_remaining": -19,
            },
            "overdue_count": 1,
            "days_to_20_week_date": 65,
            "consent_status": "consent given; refused for health",
        }
    ],
    "next_cursor": None,
}


@router.get(
    "/caseload",
    tags=["joined view"],
    summary="The caller's children, most urgent first: overdue first, then the nearest "
    "deadline; each with stage, next deadline, overdue count, days to the "
    "20-week date and consent status; a page at a time (coordinator; audited)",
    description="Pages: `limit` children a page (default 100, at most 1000); pass the "
    "answer's `next_cursor` as `cursor` for the next page, with the same filters "
    "(the cursor keeps the first page's `as_of`, so the order holds across pages). "
    "`next_cursor` is null on the last page; `total` counts every page.",
    response_model=CaseloadView,
    responses={
        **AUTH_RESPONSES,
        **BAD_CURSOR,
        200: {"content": {"application/json": {"example": CASELOAD_EXAMPLE}}},
    },
)
async def caseload(
    request: Request,
    principal: Coordinator,
    as_of: AsOf = None,
    stage: Annotated[Se7Stage | None, Query(description="Only children at this SE7 stage")] = None,
    overdue: Annotated[
        bool | None,
        Query(
            description="true: only children with something overdue; false: only those with nothing"
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=CASELOAD_MAX_LIMIT, description="Children on this page")
    ] = CASELOAD_LIMIT,
    cursor: PageCursor = None,
) -> CaseloadView:
    return await caseload_view(
        reads_of(request), principal,
        as_of=as_of, stage=stage, overdue=overdue, limit=limit, cursor=cursor,
    )  # fmt: skip


# --------------------------------------------------------------------------- search

SEARCH_EXAMPLE: dict[str, Any] = {
    "key": "nhs_number",
    "count": 1,
    "children": [{"child_id": "hc-7f3a9c2e41d8", "name": "Ava Thompson"}],
}


@router.post(
    "/children/search",
    tags=["joined view"],
    summary="Find a child in your reach by NHS number, UPN, LA child id, or name and "
    "date of birth (coordinator, practitioner, family; audited without the value)",
    description="The key goes in the JSON body, never the URL. Give exactly one of: "
    "`nhs_number`; `upn`; `la_code` with `la_child_id`; `given_name` with `family_name` and "
    "`date_of_birth`. Identifiers are checked first (an NHS number's check digit, a UPN's "
    "check letter, an LA code): a broken one is a 422 naming the field and the rule. The "
    "answer lists only children in your reach (a coordinator's caseload, the teams a "
    "practitioner is on, a family member's own children): any other child is not in it, "
    "exactly as for one the hub does not know. A name and date of birth match the "
    "fingerprints of records already linked to a child (never a guess). The audit trail "
    "records the kind of key and the children found, never the value searched.",
    response_model=SearchResults,
    responses={
        **AUTH_RESPONSES,
        200: {"content": {"application/json": {"example": SEARCH_EXAMPLE}}},
        422: {
            "description": "Not exactly one whole key, or an identifier that breaks its "
            "rule (problem details naming the field and the rule, never the value)",
            "content": {
                PROBLEM: {
                    "example": {
                        "type": "about:blank",
                        "title": "Unprocessable Content",
                        "status": 422,
                        "detail": "nhs_number: the NHS number's modulus-11 check digit does "
                        "not match",
                        "field": "nhs_number",
                        "rule": "nhs_number.check_digit",
                        "errors": [
                            {
                                "field": "nhs_number",
                                "reason": "the NHS number's modulus-11 check digit does not match",
                            }
                        ],
                    }
                }
            },
        },
    },
)
async def search_children(request: Request, body: ChildSearch, principal: Reader) -> SearchResults:
    return await find_children(reads_of(request), principal, body)
