"""The local authority's steps on an EHC plan (request, decision, advice requests, draft,
final, exceptions, reviews, meetings, key working: assignment, handover, cover and its
end), as domain events through the gate.

Each step is checked against the plan's history on the write side (no date in the future;
`check_transition` against the plan's recorded steps), then submitted. The check and the
append are held under one lock per child across processes, so two coordinators' steps on
one plan are decided one after the other. A call retried with the same idempotency key
returns the first call's events and records nothing again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from hub.events import Source
from hub.events.envelope import EventPayload
from hub.events.plan import (
    AdviceRequested,
    AssessmentDecided,
    AssessmentRequested,
    DraftIssued,
    Finalised,
    InformalSupportRecorded,
    NoPlanDecided,
    OutcomeAgreed,
    OutcomeProgressRecorded,
    OutcomeRevised,
    PersonalBudgetAgreed,
    PersonalBudgetAudited,
    PersonalBudgetIndicated,
    PersonalBudgetRequested,
    ProvisionAgreed,
    ReviewConcluded,
    ReviewDecided,
    ReviewMeetingHeld,
    ReviewReportSent,
)
from hub.events.team import (
    KeyWorkerAssigned,
    KeyWorkerCoverArranged,
    KeyWorkerHandoverStarted,
    KeyWorkingEnded,
    MeetingHeld,
)
from hub.ingest.claims import IngestClaims
from hub.ingest.model import FactOutcome, InboundFact, Subject
from hub.plans.transitions import check_transition
from hub.projections.caseload_view import load_clock_facts
from hub.service_layer.submit_facts import SubmitFacts
from hub.service_layer.views import GateViews
from hub.store import ReadStore

LA_AGENCY = "local_authority"
PLAN_RECORD_BASIS = "ehc_statutory_record"
"""The LA's own record of the EHC process it must run (contracts/consent-policy.yaml)."""
ADVICE_BASIS = "reg6_ehc_advice"

_HAPPENED_ON: dict[type[EventPayload], tuple[str, ...]] = {
    AssessmentRequested: ("requested_on", "received_on"),
    AssessmentDecided: ("decided_on",),
    NoPlanDecided: ("decided_on",),
    AdviceRequested: ("requested_on",),
    DraftIssued: ("issued_on",),
    Finalised: ("finalised_on",),
    ReviewMeetingHeld: ("held_on",),
    ReviewReportSent: ("sent_on",),
    ReviewDecided: ("decided_on",),
    ReviewConcluded: ("concluded_on",),
    OutcomeAgreed: ("agreed_on",),
    OutcomeProgressRecorded: ("recorded_on",),
    OutcomeRevised: ("revised_on",),
    ProvisionAgreed: ("agreed_on",),
    InformalSupportRecorded: ("recorded_on",),
    PersonalBudgetRequested: ("requested_on",),
    PersonalBudgetIndicated: ("indicated_on",),
    PersonalBudgetAgreed: ("agreed_on",),
    PersonalBudgetAudited: ("audited_on",),
    MeetingHeld: ("held_on",),
    KeyWorkerAssigned: ("assigned_on", "family_agreed_on"),
    KeyWorkerHandoverStarted: ("handed_over_on",),
    KeyWorkerCoverArranged: ("arranged_on",),
    KeyWorkingEnded: ("ended_on",),
}
"""The fields that say when something happened: never later than today."""

_PURPOSES: dict[type[EventPayload], tuple[str, ...]] = {
    ReviewMeetingHeld: ("review",),
    ReviewReportSent: ("review",),
    ReviewDecided: ("review",),
    ReviewConcluded: ("review",),
    OutcomeProgressRecorded: ("plan_delivery", "review"),
    OutcomeRevised: ("plan_delivery", "review"),
    PersonalBudgetAudited: ("review",),
    MeetingHeld: ("plan_delivery", "review"),
    KeyWorkerAssigned: ("plan_delivery",),
    KeyWorkerHandoverStarted: ("plan_delivery",),
    KeyWorkerCoverArranged: ("plan_delivery",),
    KeyWorkingEnded: ("plan_delivery",),
}


class StepRefused(Exception):
    """A step the plan's state forbids (`conflict`) or that is not valid, with the rule."""

    def __init__(self, rule: str, field: str | None, message: str, *, conflict: bool) -> None:
        super().__init__(message)
        self.rule = rule
        self.field = field
        self.message = message
        self.conflict = conflict


@dataclass(frozen=True)
class StepsRecorded:
    status: Literal["recorded", "withheld", "duplicate"]
    """`recorded` (on the shared log), `withheld` (kept back until a consent covers it) or
    `duplicate` (a retry of an earlier call)."""
    outcomes: list[FactOutcome]


def step_category(payload: EventPayload) -> str:
    data_category = getattr(payload, "data_category", None)
    return str(data_category()) if callable(data_category) else type(payload).category


def _basis(payload: EventPayload, category: str) -> str | None:
    if category == "education":
        return PLAN_RECORD_BASIS
    if isinstance(payload, AdviceRequested) and category in ("health", "social_care"):
        return ADVICE_BASIS
    return None


def _in_the_future(payloads: Sequence[EventPayload], today: date) -> StepRefused | None:
    latest = today + timedelta(days=1)  # a day's grace across time zones
    for p in payloads:
        for name in _HAPPENED_ON.get(type(p), ()):
            day = getattr(p, name, None)
            if isinstance(day, date) and day > latest:
                return StepRefused(
                    "date_in_the_future",
                    name,
                    f"{name} {day.isoformat()} is in the future",
                    conflict=False,
                )
    return None


class RecordPlanSteps:
    def __init__(
        self,
        *,
        store: ReadStore,
        views: GateViews,
        claims: IngestClaims,
        submit: SubmitFacts,
    ) -> None:
        self.store = store
        self.views = views
        self.claims = claims
        self.submit = submit

    async def __call__(
        self,
        payloads: Sequence[EventPayload],
        *,
        actor: str,
        caller: str,
        child_id: str,
        plan_id: str | None,
        route: str,
        idempotency_key: str | None,
        check: bool = True,
    ) -> StepsRecorded:
        """Check each step, then submit them together; raises `StepRefused`."""
        now = datetime.now(UTC)
        message_id = f"{caller}:{idempotency_key}" if idempotency_key else uuid.uuid4().hex
        refs = [f"{child_id}:{plan_id or '-'}:{route}:{i}" for i in range(len(payloads))]
        async with self.store.held(f"plan-steps:{child_id}"):  # across processes
            if idempotency_key:
                earlier = await self._earlier(payloads, refs, message_id)
                if earlier is not None:
                    return StepsRecorded("duplicate", earlier)
            refused = _in_the_future(payloads, now.date())
            if refused is None and check and plan_id is not None:
                refused = await self._against_history(child_id, plan_id, payloads)
            if refused is not None:
                raise refused
            facts = [
                InboundFact(
                    subject=Subject(hub_child_id=child_id),
                    payload=p,
                    occurred_at=now,
                    source=Source(agency=LA_AGENCY, system="tac-hub", message_id=message_id),
                    ref=ref,
                    plan_id=plan_id,
                    category=(category := step_category(p)),
                    purposes=_PURPOSES.get(type(p), ("ehc_assessment",)),
                    statutory_basis=_basis(p, category),
                )
                for p, ref in zip(payloads, refs, strict=True)
            ]
            outcomes = await self.submit(facts, actor=actor)
        rejected = next((o for o in outcomes if o.status == "rejected"), None)
        if rejected is not None:
            raise StepRefused(
                rejected.rule or "rejected",
                rejected.field,
                rejected.reason or "not recorded",
                conflict=False,
            )
        if all(o.status == "duplicate" for o in outcomes):
            return StepsRecorded("duplicate", outcomes)
        if any(o.status == "withheld" for o in outcomes):
            return StepsRecorded("withheld", outcomes)
        return StepsRecorded("recorded", outcomes)

    async def _earlier(
        self, payloads: Sequence[EventPayload], refs: Sequence[str], message_id: str
    ) -> list[FactOutcome] | None:
        """The events a retried call recorded, if every one of its steps was recorded."""
        keys = [f"{LA_AGENCY}|{message_id}|{ref}" for ref in refs]
        held = await self.claims.holders(keys)
        if not all(k in held and held[k].appended for k in keys):
            return None
        return [
            FactOutcome(
                ref,
                "duplicate",
                p.event_type,
                event_id=held[k].event_id,
                reason="recorded by an earlier call",
            )
            for p, ref, k in zip(payloads, refs, keys, strict=True)
        ]

    async def _against_history(
        self, child_id: str, plan_id: str, payloads: Sequence[EventPayload]
    ) -> StepRefused | None:
        await self.views.catch_up(["caseload_view"], [child_id])
        facts = (await load_clock_facts(self.store, [child_id]))[child_id]
        history = [f.payload() for f in facts if f.plan_id == plan_id]
        for p in payloads:
            v = check_transition(history, p)
            if v is not None:
                return StepRefused(v.rule, v.field, v.message, conflict=v.conflict)
            history.append(p)
        return None
