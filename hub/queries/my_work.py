"""A practitioner's own work across the children whose team they are on now: the meeting
actions they own that are still open, and the statutory advice they were asked for that
is not in yet, soonest due first.

It rests on the same views as every other read (the team around each child, each plan's
timeline), as the policy lets the practitioner see them, so an action or an advice
request on a plan the family's consent does not share with them is not listed; each
child's views are audited as reads through `GET /me/work`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from pydantic import BaseModel, ConfigDict, Field

from hub.auth.principal import Principal, Role
from hub.errors import NotFound
from hub.projections.plan_timeline import AdviceOut
from hub.queries.context import Reads, teams_of
from hub.queries.joined import team_view, timeline_view

ROUTE = "GET /me/work"
OPEN_ADVICE = frozenset({"outstanding", "overdue", "paused"})


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ActionDue(_Out):
    child_id: str
    child_name: str | None = Field(default=None, description="As the caller may see it")
    action_id: str
    meeting_id: str
    agreed_on: date = Field(description="When the meeting that agreed it was held")
    text: str
    due_on: date
    overdue: bool


class AdviceDue(_Out):
    child_id: str
    child_name: str | None = None
    plan_id: str
    advice_request_id: str | None
    reg6_category: str | None = None
    requested_on: date | None = None
    due_on: date | None = Field(description="Six weeks after the request, moved by exceptions")
    state: str = Field(description="outstanding, overdue or paused")
    days_late: int | None = None


class MyWork(_Out):
    practitioner_id: str
    as_of: date
    children: int = Field(description="How many children's teams the practitioner is on now")
    actions: list[ActionDue]
    advice: list[AdviceDue]


def _advice_due(child_id: str, name: str | None, plan_id: str, a: AdviceOut) -> AdviceDue:
    return AdviceDue(
        child_id=child_id,
        child_name=name,
        plan_id=plan_id,
        advice_request_id=a.advice_request_id,
        reg6_category=a.reg6_category,
        requested_on=a.requested_on,
        due_on=a.due_on,
        state=a.state,
        days_late=a.days_late,
    )


async def my_work(reads: Reads, caller: Principal) -> MyWork:
    """The caller's open actions and advice due (a practitioner's; empty for others)."""
    today = datetime.now(UTC).date()
    if caller.role is not Role.PRACTITIONER or not caller.practitioner_id:
        return MyWork(practitioner_id="", as_of=today, children=0, actions=[], advice=[])
    me = caller.practitioner_id
    children = await teams_of(reads, me)
    actions: list[ActionDue] = []
    advice: list[AdviceDue] = []
    for child_id in children:
        try:
            team = await team_view(reads, caller, child_id, route=ROUTE)
        except NotFound:
            continue  # left the team since
        name = team.child.preferred_name or team.child.name
        actions += [
            ActionDue(
                child_id=child_id,
                child_name=name,
                action_id=a.action_id,
                meeting_id=a.meeting_id,
                agreed_on=a.held_on,
                text=a.text,
                due_on=a.due_on,
                overdue=a.overdue,
            )
            for a in team.open_actions
            if a.owner_id == me
        ]
        rows = await reads.store.fetchall(
            "SELECT plan_id FROM caseload_plan WHERE child_id = ? ORDER BY received_on, plan_id",
            (child_id,),
        )
        for (plan_id,) in rows:
            try:
                timeline = await timeline_view(reads, caller, str(plan_id), route=ROUTE)
            except NotFound:
                continue  # not shared with this practitioner
            advice += [
                _advice_due(child_id, name, str(plan_id), c)
                for c in timeline.contributions
                if isinstance(c, AdviceOut) and c.practitioner_id == me and c.state in OPEN_ADVICE
            ]
    actions.sort(key=lambda a: (a.due_on, a.child_id, a.action_id))
    advice.sort(key=lambda a: (a.due_on or date.max, a.child_id, a.advice_request_id or ""))
    return MyWork(
        practitioner_id=me, as_of=today, children=len(children), actions=actions, advice=advice
    )
