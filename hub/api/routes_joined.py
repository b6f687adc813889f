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

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.api.auth import AUTH_RESPONSES, Principal, require_roles
from hub.api.deps import hub_of
from hub.api.routes_record import require_on_caseload
from hub.bootstrap import Hub
from hub.consent.audit_trail import AuditEntry
from hub.consent.authority import capacity_applies, young_person_decides_from
from hub.consent.decision import Fact, decide_sharing
from hub.consent.sealing import ErasedPayload
from hub.consent.state import GRANTOR_WORDS, ConsentState
from hub.events import Envelope
from hub.plans.clock import Se7Stage
from hub.projections.caseload_view import (
    ClockFact,
    Deadline,
    FactKey,
    PlanStanding,
    PlanSummary,
    load_clock_facts,
    plan_children,
    split_plans,
    standing_from_facts,
    standing_on,
)
from hub.projections.plan_timeline import TimelineView, build_timeline, load_plan_facts
from hub.projections.team_around_child import (
    NAMING_FIELDS,
    SealedFact,
    TeamView,
    WhoDecidesOut,
    fold_team,
    hidden_practitioners,
    load_naming_facts,
    load_team_facts,
    name_after,
)

router = APIRouter()
Coordinator = Annotated[Principal, Depends(require_roles("coordinator"))]
AsOf = Annotated[
    date | None,
    Query(
        description="The day the statutory clock is read on (default: today, UTC). "
        "Consent is always judged as of now."
    ),
]

PROBLEM = "application/problem+json"
NOT_ON_CASELOAD: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "Not on your caseload, or no such child or plan (the same answer)",
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
_NIL = uuid.UUID(int=0)
DECISIONS_KEPT = 100_000


# --------------------------------------------------------------------------- helpers


class Viewer:
    """View-time consent decisions for one caller at one instant. A decision depends on
    the fact's category, source, purposes and claimed basis and on the consents in force,
    never on the fact's content, so it is made once per (consents in force, key, role,
    agency) and kept for later reads in `Hub.view_decisions`."""

    def __init__(self, the_hub: Hub, principal: Principal, now: datetime) -> None:
        self.the_hub = the_hub
        self.role = principal.role.value
        self.agency = principal.agency
        self.now = now
        self.states: dict[str, ConsentState] = {}
        self._signatures: dict[str, object] = {}
        self._cache = the_hub.view_decisions  # shared by every read of this process
        self._policy = the_hub.policy.digest

    async def load(self, children: Iterable[str], *, fresh: bool = True) -> None:
        wanted = [c for c in children if c not in self.states]
        if wanted:
            self.states.update(await self.the_hub.views.consent_states(wanted, fresh=fresh))

    def _signature(self, child_id: str) -> object:
        """What of a child's consents in force can change a decision: each one's decision,
        scope and exceptions in order (not its id, grantor or dates), so children whose
        consents say the same share their decisions."""
        sig = self._signatures.get(child_id)
        if sig is None:
            records = self.states[child_id].effective(self.now)
            sig = tuple(
                r.consent.model_dump_json(include={"decision", "scope", "exceptions"})
                for r in records
            )
            self._signatures[child_id] = sig
        return sig

    def sees_key(self, child_id: str, key: FactKey) -> bool:
        cache_key = (
            self._policy,
            self._signature(child_id),
            key,
            self.role,
            self.agency,
        )
        seen = self._cache.get(cache_key)
        if seen is None:
            category, agency, organisation, purposes, basis = key
            try:
                fact = Fact(
                    event_id=_NIL,
                    child_id=child_id,
                    category=category,
                    source_agency=agency,
                    source_organisation=organisation,
                    purposes=tuple(purposes.split(",")),
                    occurred_at=self.now,
                    basis_claimed=basis,
                )
            except ValidationError:
                seen = False  # fail closed on a fact the policy cannot judge
            else:
                decision = decide_sharing(
                    fact, self.states[child_id], self.the_hub.policy, at=self.now
                )
                seen = decision.allows(self.role, self.agency)
            if len(self._cache) >= DECISIONS_KEPT:
                self._cache.clear()
            self._cache[cache_key] = seen
        return seen

    def sees(self, fact: SealedFact) -> bool:
        return self.sees_key(
            fact.child_id,
            (
                fact.category,
                fact.agency,
                fact.organisation,
                ",".join(fact.purposes),
                fact.basis_claimed,
            ),
        )


async def open_facts(
    the_hub: Hub, facts: Sequence[SealedFact]
) -> list[tuple[SealedFact, Envelope]]:
    """Open (decrypt) the facts; what cannot be read any more (erased) is left out."""
    opened = await the_hub.opener.open_values([f.body for f in facts])
    return [
        (f, env)
        for f, env in zip(facts, opened, strict=True)
        if isinstance(env, Envelope) and not isinstance(env.payload, ErasedPayload)
    ]


async def catch_up_everywhere(the_hub: Hub, names: Sequence[str]) -> None:
    """Bring projections up to date on every partition (for reads across children)."""
    await the_hub.views.catch_up_partitions(names)


async def plan_on_caseload(
    the_hub: Hub, principal: Principal, plan_id: str, *, also: Sequence[str] = ()
) -> str:
    """The child of a plan on the caller's caseload, else 404 (as for a missing plan);
    `also`: projections caught up on the child's partition with the caseload."""
    children = await plan_children(the_hub.store, plan_id)
    if not children:
        await catch_up_everywhere(the_hub, ["caseload_view"])
        children = await plan_children(the_hub.store, plan_id)
    for child in children:
        try:
            await require_on_caseload(the_hub, principal, child, also=also)
        except HTTPException:
            continue
        return child
    raise HTTPException(404, "no such plan on your caseload")


def today_or(as_of: date | None, now: datetime) -> date:
    return as_of or now.date()


async def audit_reads(
    the_hub: Hub,
    principal: Principal,
    route: str,
    now: datetime,
    shown: Sequence[tuple[str, Sequence[str], dict[str, Any]]],
) -> None:
    """One audited read per child: (child id, ids of the facts shown, extra details)."""
    if not shown:
        return
    await the_hub.trail.append(
        [
            AuditEntry(
                kind="read",
                actor=f"{principal.role}:{principal.name}",
                child_id=child,
                at=now,
                details={
                    "route": route,
                    "event_ids": list(ids),
                    "agency": principal.agency,
                    "outcome": "shown",
                    **extra,
                },
            )
            for child, ids, extra in shown
        ]
    )


def standings(
    viewer: Viewer,
    child_id: str,
    summaries: Sequence[tuple[str, PlanSummary]],
    facts: list[ClockFact] | None,
    today: date,
) -> list[PlanStanding]:
    """Where each of a child's plans stands for the caller on `today`: from the stored
    summary when every fact it rests on is visible and no exception moves its dates,
    otherwise recomputed from the visible stored facts (`facts`: the child's stored
    clock facts, which the caller loads when `fast_path` fails for any plan)."""
    out: list[PlanStanding] = []
    plans: dict[str, list[ClockFact]] = {}
    dob: ClockFact | None = None
    if facts is not None:
        visible = [f for f in facts if viewer.sees_key(child_id, f.key)]
        plans, dob = split_plans(visible)
    for plan_id, summary in summaries:
        if fast_path(viewer, child_id, summary):
            out.append(standing_on(plan_id, summary, today))
        elif plans.get(plan_id):
            out.append(standing_from_facts(plan_id, plans[plan_id], dob, today))
    return out


def fast_path(viewer: Viewer, child_id: str, summary: PlanSummary) -> bool:
    return not summary.has_exceptions and all(viewer.sees_key(child_id, k) for k in summary.keys)


async def who_decides(
    the_hub: Hub, child_id: str, state: ConsentState, now: datetime
) -> WhoDecidesOut:
    """Who decides about sharing now, in plain words (no dates: they would identify)."""
    given = list(
        dict.fromkeys(
            f"{GRANTOR_WORDS[r.consent.grantor.capacity]} ({r.consent.grantor.reference})"
            for r in state.effective(now)
        )
    )
    dob = await the_hub.persons.date_of_birth(child_id)
    today = now.date()
    if dob is None:
        return WhoDecidesOut(
            decides="unknown",
            consents_given_by=given,
            summary="the hub does not know the child's date of birth, so it cannot say "
            "whether a parent or the young person decides",
        )
    if today < young_person_decides_from(dob):
        return WhoDecidesOut(
            decides="parent_with_pr",
            consents_given_by=given,
            summary="a parent with parental responsibility decides: the child is below the "
            "end of compulsory school age",
        )
    capacity = state.capacity_at(today)
    if capacity is not None and capacity_applies(capacity, today) and capacity.acting_capacity:
        acting = capacity.acting_capacity
        return WhoDecidesOut(
            decides=acting,
            consents_given_by=given,
            summary=f"the young person lacks capacity for information-sharing decisions "
            f"(assessment {capacity.assessment_id}), so {GRANTOR_WORDS[acting]} "
            "decides for them",
        )
    return WhoDecidesOut(
        decides="young_person",
        consents_given_by=given,
        summary="the young person decides for themself: they are over compulsory school age",
    )


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
    "practitioner by agency, open actions and consent (coordinator, caseload; audited)",
    response_model=TeamView,
    responses={
        **AUTH_RESPONSES,
        **NOT_ON_CASELOAD,
        **BAD_QUERY,
        200: {"content": {"application/json": {"example": TEAM_EXAMPLE}}},
    },
)
async def team(
    request: Request, child_id: str, principal: Coordinator, as_of: AsOf = None
) -> TeamView:
    the_hub = hub_of(request)
    await require_on_caseload(
        the_hub, principal, child_id, also=("team_around_child", "consent_state")
    )
    now = datetime.now(UTC)
    viewer = Viewer(the_hub, principal, now)
    await viewer.load([child_id], fresh=False)
    facts = await load_team_facts(the_hub.store, child_id)
    hidden = hidden_practitioners(facts, viewer.sees)
    opened = await open_facts(the_hub, [f for f in facts if viewer.sees(f)])
    state = viewer.states[child_id]
    roles = {
        code: (spec.description, spec.agency)
        for code, spec in the_hub.policy.roles.items()
        if spec.kind == "practitioner"
    }
    view = fold_team(
        child_id,
        opened,
        today=today_or(as_of, now),
        hidden=hidden,
        roles=roles,
        who_decides=await who_decides(the_hub, child_id, state, now),
        consent=state.describe(now),
    )
    await audit_reads(
        the_hub, principal, "GET /children/{id}/team", now, [(child_id, view.facts_shown, {})]
    )
    return view


# --------------------------------------------------------------------------- plans


class ChildPlans(BaseModel):
    model_config = ConfigDict(frozen=True)

    child_id: str
    as_of: date
    plans: list[PlanStanding]


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
    "deadline (coordinator, caseload; audited)",
    response_model=ChildPlans,
    responses={
        **AUTH_RESPONSES,
        **NOT_ON_CASELOAD,
        **BAD_QUERY,
        200: {"content": {"application/json": {"example": PLANS_EXAMPLE}}},
    },
)
async def child_plans(
    request: Request, child_id: str, principal: Coordinator, as_of: AsOf = None
) -> ChildPlans:
    the_hub = hub_of(request)
    await require_on_caseload(the_hub, principal, child_id, also=("caseload_view", "consent_state"))
    now = datetime.now(UTC)
    today = today_or(as_of, now)
    viewer = Viewer(the_hub, principal, now)
    await viewer.load([child_id], fresh=False)
    rows = await the_hub.store.fetchall(
        "SELECT plan_id, summary FROM caseload_plan WHERE child_id = ?"
        " ORDER BY received_on, plan_id",
        (child_id,),
    )
    summaries = [(str(p), PlanSummary.model_validate_json(s)) for p, s in rows]
    facts = None
    if not all(fast_path(viewer, child_id, s) for _, s in summaries):
        facts = (await load_clock_facts(the_hub.store, [child_id]))[child_id]
    plans = standings(viewer, child_id, summaries, facts, today)
    await audit_reads(
        the_hub,
        principal,
        "GET /children/{id}/plans",
        now,
        [
            (
                child_id,
                sorted({i for p in plans for i in p.event_ids}),
                {"plan_ids": [p.plan_id for p in plans]},
            )
        ],
    )
    return ChildPlans(child_id=child_id, as_of=today, plans=plans)


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
    "provision, meeting actions (coordinator, caseload; audited)",
    response_model=TimelineView,
    responses={
        **AUTH_RESPONSES,
        **NOT_ON_CASELOAD,
        **BAD_QUERY,
        200: {"content": {"application/json": {"example": TIMELINE_EXAMPLE}}},
    },
)
async def timeline(
    request: Request, plan_id: str, principal: Coordinator, as_of: AsOf = None
) -> TimelineView:
    the_hub = hub_of(request)
    child_id = await plan_on_caseload(
        the_hub, principal, plan_id, also=("plan_timeline", "team_around_child", "consent_state")
    )
    now = datetime.now(UTC)
    viewer = Viewer(the_hub, principal, now)
    await viewer.load([child_id], fresh=False)
    facts = await load_plan_facts(the_hub.store, child_id, plan_id)
    visible = [f for f in facts if viewer.sees(f)]
    if not any(f.plan_id == plan_id for f in visible):
        raise HTTPException(404, "no such plan on your caseload")
    hidden = hidden_practitioners(
        (
            f
            for f in await load_team_facts(the_hub.store, child_id)
            if f.event_type == "team.practitioner_joined"
        ),
        viewer.sees,
    )
    view = build_timeline(
        plan_id,
        child_id,
        await open_facts(the_hub, visible),
        today=today_or(as_of, now),
        hidden=hidden,
    )
    await audit_reads(
        the_hub,
        principal,
        "GET /plans/{id}/timeline",
        now,
        [(child_id, view.facts_shown, {"plan_id": plan_id})],
    )
    return view


# --------------------------------------------------------------------------- caseload


class CaseloadDeadline(Deadline):
    plan_id: str


class CaseloadEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    child_id: str
    name: str | None = Field(
        default=None,
        description="The child's name as the caller may see it: the school's pupil record, "
        "else health's patient record; none when neither is visible",
    )
    plan_count: int
    plan_id: str | None = Field(default=None, description="The current plan (latest request)")
    status: str | None = None
    stage: Se7Stage | None = None
    next_deadline: CaseloadDeadline | None = None
    overdue_count: int = 0
    days_to_20_week_date: int | None = Field(
        default=None,
        description="Days to the final-plan due date of the current request "
        "(20 weeks; 14 weeks from a decision to re-assess); negative once passed; none "
        "once the plan is issued",
    )


class CaseloadView(BaseModel):
    model_config = ConfigDict(frozen=True)

    coordinator: str
    as_of: date
    total: int = Field(description="Children matching the filters")
    children: list[CaseloadEntry]


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
        }
    ],
}


def _entry(child_id: str, plans: list[PlanStanding]) -> CaseloadEntry:
    if not plans:
        return CaseloadEntry(child_id=child_id, plan_count=0)
    current = max(plans, key=lambda p: (p.received_on or date.min, p.plan_id))
    deadlines = [(p.next_due, p.plan_id) for p in plans if p.next_due is not None]
    first = min(deadlines, key=lambda d: (d[0].due_on, d[0].key), default=None)
    return CaseloadEntry(
        child_id=child_id,
        plan_count=len(plans),
        plan_id=current.plan_id,
        status=current.status,
        stage=current.stage,
        next_deadline=None
        if first is None
        else CaseloadDeadline(plan_id=first[1], **first[0].model_dump()),
        overdue_count=sum(p.overdue_count for p in plans),
        days_to_20_week_date=current.days_to_final_due,
    )


def _urgency(e: CaseloadEntry) -> tuple[int, date, str]:
    due = e.next_deadline.due_on if e.next_deadline else date.max
    return (0 if e.overdue_count else 1, due, e.child_id)


@router.get(
    "/caseload",
    tags=["joined view"],
    summary="The caller's children, most urgent first: overdue first, then the nearest "
    "deadline; each with stage, next deadline, overdue count and days to the "
    "20-week date (coordinator; audited)",
    response_model=CaseloadView,
    responses={
        **AUTH_RESPONSES,
        **BAD_QUERY,
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
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> CaseloadView:
    the_hub = hub_of(request)
    await catch_up_everywhere(the_hub, ["caseload", "caseload_view"])
    now = datetime.now(UTC)
    today = today_or(as_of, now)
    rows = await the_hub.store.fetchall(
        "SELECT c.child_id, p.plan_id, p.summary FROM caseload c"
        " LEFT JOIN caseload_plan p ON p.child_id = c.child_id"
        " WHERE c.coordinator = ? ORDER BY c.child_id, p.received_on, p.plan_id",
        (principal.name,),
    )
    by_child: dict[str, list[tuple[str, PlanSummary]]] = {}
    for child, plan_id, summary in rows:
        plans = by_child.setdefault(str(child), [])
        if plan_id is not None:
            plans.append((str(plan_id), PlanSummary.model_validate_json(summary)))
    viewer = Viewer(the_hub, principal, now)
    await viewer.load(by_child)
    slow = [c for c, ps in by_child.items() if not all(fast_path(viewer, c, s) for _, s in ps)]
    facts = await load_clock_facts(the_hub.store, slow) if slow else {}
    entries: list[tuple[CaseloadEntry, list[PlanStanding]]] = []
    for child, summaries in by_child.items():
        standing = standings(viewer, child, summaries, facts.get(child), today)
        entry = _entry(child, standing)
        if stage is not None and entry.stage != stage:
            continue
        if overdue is not None and (entry.overdue_count > 0) != overdue:
            continue
        entries.append((entry, standing))
    entries.sort(key=lambda e: _urgency(e[0]))
    shown = entries[:limit]
    names = await child_names(the_hub, viewer, [e.child_id for e, _ in shown])
    await audit_reads(
        the_hub,
        principal,
        "GET /caseload",
        now,
        [
            (
                e.child_id,
                sorted({i for p in plans for i in p.event_ids} | set(names[e.child_id][1])),
                {"plan_ids": [p.plan_id for p in plans]},
            )
            for e, plans in shown
        ],
    )
    return CaseloadView(
        coordinator=principal.name,
        as_of=today,
        total=len(entries),
        children=[e.model_copy(update={"name": names[e.child_id][0]}) for e, _ in shown],
    )


async def child_names(
    the_hub: Hub, viewer: Viewer, children: Sequence[str]
) -> dict[str, tuple[str | None, list[str]]]:
    """Each child's name as the caller may see it, with the id of the fact it came from
    (shown, so audited). As in the team view, the school's latest pupil record names the
    child, else health's first patient record; so only the best visible candidate of each
    child is opened, and the next only where it names no one; and of it only the name
    fields are decrypted (`EnvelopeOpener.open_fields`)."""
    facts = await load_naming_facts(the_hub.store, children)
    queue: dict[str, list[SealedFact]] = {}
    for child, fs in facts.items():
        seen = [f for f in fs if viewer.sees(f)]
        pupils = [f for f in seen if f.event_type == "education.pupil_identified"]
        patients = [f for f in seen if f.event_type == "health.patient_identified"]
        if pupils or patients:
            queue[child] = [*reversed(pupils), *patients]
    out: dict[str, tuple[str | None, list[str]]] = {c: (None, []) for c in children}
    while queue:
        firsts = [q[0] for q in queue.values()]
        opened = await the_hub.opener.open_fields([f.body for f in firsts], NAMING_FIELDS)
        fields = {f.event_id: o for f, o in zip(firsts, opened, strict=True)}
        after: dict[str, list[SealedFact]] = {}
        for child, (first, *rest) in queue.items():
            got = fields.get(first.event_id)
            name = None if got is None else name_after(first.event_type, got, None)
            if name:
                out[child] = (name, [first.event_id])
            elif rest:
                after[child] = rest
        queue = after
    return out
