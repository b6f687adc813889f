"""A family member gives, refuses or withdraws consent themself, and adds their views.

The grantor is always the caller: their opaque reference and the capacity their
credential carries (a parent with parental responsibility, or the young person). Who may
decide is checked on the day — below the end of compulsory school age a parent decides,
from it the young person does (unless a recorded assessment says they lack capacity and
names who acts) — for a withdrawal as for a grant, since taking a decision back is the
same decision. The facts go through `SubmitFacts` like any other, so the gate's own
checks (policy codes, unique consent ids, one take per message) hold as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from hub.auth.principal import Principal
from hub.consent.authority import ConsentAuthorityError, check_grantor_authority
from hub.errors import NotFound, PermanentError
from hub.events.consent import ConsentRecorded, ConsentWithdrawn
from hub.events.envelope import EventPayload, Source
from hub.events.family import ViewsRecorded
from hub.events.plan import CommentsReceived
from hub.identity.person_index import PersonIndex
from hub.identity.subject import Subject
from hub.ingest.model import FactOutcome, InboundFact
from hub.service_layer.plan_steps import RecordPlanSteps, StepsRecorded
from hub.service_layer.submit_facts import SubmitFacts
from hub.service_layer.views import GateViews

FAMILY_SOURCE = Source(agency="family", system="tac-hub")
"""Facts a family member records in the hub themself."""

WHOSE_VIEWS = {"parent_with_pr": "parent", "young_person": "young_person"}


class FamilyRefused(PermanentError):
    """What the family member asked for cannot be recorded (the reason names the field)."""


def _first_error(exc: ValidationError, prefix: str) -> FamilyRefused:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"])
    return FamilyRefused(str(err["msg"]), field=f"{prefix}{where}")


@dataclass
class FamilyConsent:
    submit: SubmitFacts
    persons: PersonIndex
    views: GateViews

    async def _authority(self, caller: Principal, child_id: str, on: date) -> None:
        if not caller.acts_for(child_id) or not caller.capacity:
            raise NotFound("no such child in your reach")
        dob = await self.persons.date_of_birth(child_id)
        if dob is None:
            raise FamilyRefused(
                "the child's date of birth is not known to the hub, so who may decide cannot "
                "be checked; ask the coordinator to record it"
            )
        state = await self.views.consent_state(child_id)
        try:
            check_grantor_authority(
                dob, on, caller.capacity, state.capacity_at(on), grantor_reference=caller.name
            )
        except ConsentAuthorityError as exc:
            raise FamilyRefused(str(exc), field="grantor") from None

    async def _submit(
        self, caller: Principal, child_id: str, payload: EventPayload, ref: str
    ) -> FactOutcome:
        [outcome] = await self.submit(
            [
                InboundFact(
                    subject=Subject(hub_child_id=child_id),
                    payload=payload,
                    occurred_at=datetime.now(UTC),
                    source=FAMILY_SOURCE,
                    ref=ref,
                )
            ],
            actor=caller.actor,
        )
        return outcome

    async def record(
        self, caller: Principal, child_id: str, consent: Mapping[str, Any]
    ) -> FactOutcome:
        """Record the caller's own grant or refusal (`consent`: a `consent.recorded`
        payload without grantor, capture method or recorder, which the hub sets)."""
        for own in ("grantor", "recorded_by", "capture_method", "witness"):
            if own in consent:
                raise FamilyRefused(
                    "set by the hub for a family member's own decision", field=f"consent.{own}"
                )
        try:
            payload = ConsentRecorded.model_validate(
                {
                    **consent,
                    "grantor": {"reference": caller.name, "capacity": caller.capacity},
                    "capture_method": "form",
                    "recorded_by": caller.name,
                }
            )
        except ValidationError as exc:
            raise _first_error(exc, "consent.") from None
        await self._authority(caller, child_id, payload.given_on)
        return await self._submit(
            caller, child_id, payload, f"consent:{child_id}:{payload.consent_id}"
        )

    async def withdraw(self, caller: Principal, child_id: str, consent_id: str) -> FactOutcome:
        """Withdraw one of the child's consents, if the caller may decide for the child now."""
        await self._authority(caller, child_id, datetime.now(UTC).date())
        payload = ConsentWithdrawn(
            consent_id=consent_id,
            withdrawn_by={"reference": caller.name, "capacity": caller.capacity},
            reason="family_request",
            recorded_by=caller.name,
        )
        return await self._submit(caller, child_id, payload, f"withdraw:{child_id}:{consent_id}")

    async def add_views(
        self, caller: Principal, child_id: str, views: Mapping[str, Any]
    ) -> FactOutcome:
        """The family's own views, interests and aspirations for section A."""
        if not caller.acts_for(child_id) or not caller.capacity:
            raise NotFound("no such child in your reach")
        for own in ("whose", "contributor_ref", "recorded_by"):
            if own in views:
                raise FamilyRefused("set by the hub from who you are", field=own)
        try:
            payload = ViewsRecorded.model_validate(
                {
                    "recorded_on": datetime.now(UTC).date().isoformat(),
                    **views,
                    "whose": WHOSE_VIEWS[caller.capacity],
                    "contributor_ref": caller.name,
                    "recorded_by": caller.name,
                }
            )
        except ValidationError as exc:
            raise _first_error(exc, "") from None
        return await self._submit(
            caller, child_id, payload, f"views:{caller.name}:{datetime.now(UTC).isoformat()}"
        )


async def comment_on_draft(
    steps: RecordPlanSteps,
    caller: Principal,
    child_id: str,
    plan_id: str,
    comments: Mapping[str, Any],
    *,
    route: str,
) -> StepsRecorded:
    """The family member's own comments on the draft plan (or proposed amendments):
    `comments` holds `summary`, and optionally `requested_placement` and `amendment_id`.
    `FamilyRefused` naming the field when they are not valid; the plan step's own
    `StepRefused` when the plan has no draft to comment on."""
    if not caller.acts_for(child_id) or not caller.capacity:
        raise NotFound("no such child in your reach")
    for own in ("by", "received_on"):
        if own in comments:
            raise FamilyRefused("set by the hub from who you are", field=own)
    try:
        payload = CommentsReceived(
            received_on=datetime.now(UTC).date(),
            by=WHOSE_VIEWS[caller.capacity],
            **comments,
        )
    except ValidationError as exc:
        raise _first_error(exc, "") from None
    except TypeError as exc:
        raise FamilyRefused(str(exc)) from None
    return await steps(
        [payload],
        actor=caller.actor,
        caller=caller.name,
        child_id=child_id,
        plan_id=plan_id,
        route=route,
        idempotency_key=None,
    )
