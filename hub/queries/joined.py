"""The joined view: the team around a child, the child's plans, each plan's timeline and
the caseload by urgency, as one viewer may see them now.

Nothing is decided in the projections: each stored fact is re-decided for the viewer now
(`hub.consent.viewer`), so a withdrawn consent hides at once what it covered, and only
the facts the viewer may see are opened (decrypted) and used — for the statutory clock
too. `as_of` moves the clock's day; consent is always judged as of now. Every query
appends one audited read per child shown: who, which child, which route, and the ids of
the facts the answer rests on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from hub.auth.principal import Principal
from hub.consent.authority import capacity_applies, young_person_decides_from
from hub.consent.state import GRANTOR_WORDS, ConsentState, summarise_consent
from hub.consent.viewer import Viewer
from hub.errors import InvalidQuery, NotFound
from hub.events.envelope import Envelope
from hub.ingest.natural_keys import current_versions, fact_key, version_rank
from hub.plans.clock import Se7Stage
from hub.projections.caseload_view import (
    ClockFact,
    Deadline,
    PlanStanding,
    PlanSummary,
    load_clock_facts,
    split_plans,
    standing_from_facts,
    standing_on,
)
from hub.projections.plan_timeline import TimelineView, build_timeline, load_plan_facts
from hub.projections.team_around_child import (
    NAMING_FIELDS,
    PRACTITIONER_NAMING_FIELDS,
    PractitionerNaming,
    RoleVocabulary,
    SealedFact,
    TeamView,
    WhoDecidesOut,
    fold_team,
    hidden_practitioners,
    load_key_working_facts,
    load_naming_facts,
    load_team_facts,
    name_after,
    practitioner_names,
    single_point_of_contact,
)
from hub.queries.context import (
    Reads,
    audit_reads,
    open_facts,
    plan_in_reach,
    require_in_reach,
    viewer_for,
)
from hub.queries.paging import CURSOR_FIELD, decode_cursor, encode_cursor, malformed_cursor
from hub.service_layer.views import Positions


class ChildPlans(BaseModel):
    model_config = ConfigDict(frozen=True)

    child_id: str
    as_of: date
    plans: list[PlanStanding]


class CaseloadDeadline(Deadline):
    plan_id: str


class CaseloadWarning(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: Literal["no_single_point_of_contact"]
    message: str


NO_SPOC = CaseloadWarning(
    code="no_single_point_of_contact",
    message="the plan is in progress and no one you can see is the family's single point "
    "of contact: record a key worker",
)

IN_PROGRESS: frozenset[str] = frozenset({"requested", "assessing", "drafting"})
"""A plan in the 20-week process: requested, not yet issued, not refused."""


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
    warnings: list[CaseloadWarning] = Field(
        default=[],
        description="`no_single_point_of_contact`: the current plan is in the 20-week process "
        "and no current key worker the caller may see holds the single point of contact",
    )
    consent_status: str = Field(
        default="no consent recorded",
        description="The child's consent in force now, in a few words: 'consent given', "
        "'consent given for education', 'refused for health', 'consent given; refused for "
        "social care', 'no consent recorded', or how the last one stopped ('withdrawn', "
        "'expired', 'ended', 'not yet in force'); only categories the caller may see are named",
    )


class CaseloadView(BaseModel):
    model_config = ConfigDict(frozen=True)

    coordinator: str
    as_of: date
    total: int = Field(description="Children matching the filters (on every page)")
    children: list[CaseloadEntry]
    next_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` for the next page (it keeps this page's `as_of`); "
        "none on the last page",
    )


CASELOAD_LIMIT = 100
"""Children on one page of the caseload unless the caller asks for another number."""
CASELOAD_MAX_LIMIT = 1000
CASELOAD_CURSOR = "caseload"


# --------------------------------------------------------------------------- queries


def current_only(opened: list[tuple[SealedFact, Envelope]]) -> list[tuple[SealedFact, Envelope]]:
    """The opened facts without the versions a newer one supersedes by the source's own
    versions (a FHIR resource re-sent at a later versionId): the views fold facts in log
    order, and an older version that arrived late must not overwrite the current one
    (`hub.ingest.natural_keys.current_versions`)."""
    return current_versions(
        opened,
        lambda o: fact_key(o[1].source, o[1].payload),
        lambda o: version_rank(o[1].source),
    )


async def team_view(
    reads: Reads,
    caller: Principal,
    child_id: str,
    *,
    as_of: date | None = None,
    route: str = "GET /children/{id}/team",
) -> TeamView:
    """The team around the child: the child, the family, the key worker, every
    practitioner by agency, open actions and consent, as the caller may see them
    (audited as a read through `route`)."""
    reach = require_in_reach(reads, caller, child_id, also=("team_around_child", "consent_state"))
    if reads.store.dialect == "postgres":  # two round trips: overlapped (dob is not shown
        # unless the caller reaches the child, and is read from the person index, not a
        # projection the catch-up moves)
        got = await asyncio.gather(
            reach, reads.persons.date_of_birth(child_id), return_exceptions=True
        )
        for outcome in got:
            if isinstance(outcome, BaseException):
                raise outcome
        positions, dob = cast("tuple[Positions | None, date | None]", tuple(got))
    else:
        positions = await reach
        dob = await reads.persons.date_of_birth(child_id)
    now = datetime.now(UTC)
    viewer = await viewer_for(reads, caller, now, [child_id], fresh=False, positions=positions)
    facts = await team_facts(reads, child_id, positions)
    hidden = hidden_practitioners(facts, viewer.sees)
    opened = current_only(await open_facts(reads, [f for f in facts if viewer.sees(f)]))
    state = viewer.states[child_id]
    today = as_of or now.date()
    deciding = who_decides(state, now, dob)
    consent = state.describe(now)
    key = (
        child_id,
        "team",
        tuple(f.event_id for f, _ in opened),
        today,
        hidden,
        reads.policy.digest,
        deciding.decides,
        deciding.summary,
        tuple(deciding.consents_given_by),
        tuple(consent),
    )
    view = reads.opened.view(key)
    if not isinstance(view, TeamView):
        view = fold_team(
            child_id,
            opened,
            today=today,
            hidden=hidden,
            roles=practitioner_roles(reads),
            who_decides=deciding,
            consent=consent,
        )
        reads.opened.keep_view(key, view)
    await audit_reads(reads, caller, route, now, [(child_id, view.facts_shown, {})])
    return view


async def team_view_json(
    reads: Reads,
    caller: Principal,
    child_id: str,
    *,
    as_of: date | None = None,
    route: str = "GET /children/{id}/team",
) -> bytes:
    """`team_view` as JSON, as the API answers it; a view kept in the memo (folded before
    from the same facts for the same inputs) is written out once, not on every read."""
    view = await team_view(reads, caller, child_id, as_of=as_of, route=route)
    return reads.opened.json_of(child_id, view)


async def child_plans_view(
    reads: Reads, caller: Principal, child_id: str, *, as_of: date | None = None
) -> ChildPlans:
    """The child's EHC plans, each with its stage, statutory status and next deadline."""
    await require_in_reach(reads, caller, child_id, also=("caseload_view", "consent_state"))
    now = datetime.now(UTC)
    today = as_of or now.date()
    viewer = await viewer_for(reads, caller, now, [child_id], fresh=False)
    rows = await reads.store.fetchall(
        "SELECT plan_id, summary FROM caseload_plan WHERE child_id = ?"
        " ORDER BY received_on, plan_id",
        (child_id,),
    )
    summaries = [(str(p), PlanSummary.model_validate_json(s)) for p, s in rows]
    facts = None
    if not all(fast_path(viewer, child_id, s) for _, s in summaries):
        facts = (await load_clock_facts(reads.store, [child_id]))[child_id]
    plans = standings(viewer, child_id, summaries, facts, today)
    await audit_reads(
        reads,
        caller,
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


async def timeline_view(
    reads: Reads,
    caller: Principal,
    plan_id: str,
    *,
    as_of: date | None = None,
    route: str = "GET /plans/{id}/timeline",
) -> TimelineView:
    """One plan's statutory clock and every contribution in order (audited through
    `route`)."""
    child_id = await plan_in_reach(
        reads, caller, plan_id, also=("plan_timeline", "team_around_child", "consent_state")
    )
    now = datetime.now(UTC)
    viewer = await viewer_for(reads, caller, now, [child_id], fresh=False)
    facts = await load_plan_facts(reads.store, child_id, plan_id)
    visible = [f for f in facts if viewer.sees(f)]
    if not any(f.plan_id == plan_id for f in visible):
        raise NotFound("no such plan on your caseload")
    joined = [
        f
        for f in await load_team_facts(reads.store, child_id)
        if f.event_type == "team.practitioner_joined"
    ]
    hidden = hidden_practitioners(joined, viewer.sees)
    view = build_timeline(
        plan_id,
        child_id,
        current_only(await open_facts(reads, visible)),
        today=as_of or now.date(),
        hidden=hidden,
        people=await named_practitioners(reads, [f for f in joined if viewer.sees(f)], hidden),
        roles=practitioner_roles(reads),
    )
    await audit_reads(
        reads,
        caller,
        route,
        now,
        [(child_id, view.facts_shown, {"plan_id": plan_id})],
    )
    return view


async def caseload_view(
    reads: Reads,
    caller: Principal,
    *,
    as_of: date | None = None,
    stage: Se7Stage | None = None,
    overdue: bool | None = None,
    limit: int = CASELOAD_LIMIT,
    cursor: str | None = None,
) -> CaseloadView:
    """The caller's children, most urgent first: overdue first, then the nearest deadline,
    then by child id; `limit` of them after `cursor` (a page's `next_cursor`, which keeps
    the first page's `as_of` so that the order is the same on every page). Each row says
    the child's consent in force in a few words."""
    after = None
    if cursor is not None:
        day, after = _caseload_after(cursor)
        if as_of is not None and as_of != day:
            raise InvalidQuery(
                CURSOR_FIELD, "cursor.other_day", "the cursor pages the caseload on another as_of"
            )
        as_of = day
    await reads.views.catch_up_partitions(["caseload", "caseload_view", "team_around_child"])
    now = datetime.now(UTC)
    today = as_of or now.date()
    rows = await reads.store.fetchall(
        "SELECT c.child_id, p.plan_id, p.summary FROM caseload c"
        " LEFT JOIN caseload_plan p ON p.child_id = c.child_id"
        " WHERE c.coordinator = ? ORDER BY c.child_id, p.received_on, p.plan_id",
        (caller.name,),
    )
    by_child: dict[str, list[tuple[str, PlanSummary]]] = {}
    for child, plan_id, summary in rows:
        plans = by_child.setdefault(str(child), [])
        if plan_id is not None:
            plans.append((str(plan_id), PlanSummary.model_validate_json(summary)))
    viewer = await viewer_for(reads, caller, now, by_child, fresh=True)
    slow = [c for c, ps in by_child.items() if not all(fast_path(viewer, c, s) for _, s in ps)]
    facts = await load_clock_facts(reads.store, slow) if slow else {}
    entries: list[tuple[CaseloadEntry, list[PlanStanding]]] = []
    role = caller.viewer_role

    def may_see(category: str) -> bool:
        spec = reads.policy.category(category)
        return spec is not None and role in spec.visible_to

    for child, summaries in by_child.items():
        standing = standings(viewer, child, summaries, facts.get(child), today)
        entry = _entry(child, standing).model_copy(
            update={"consent_status": summarise_consent(viewer.states[child], now, may_see=may_see)}
        )
        if stage is not None and entry.stage != stage:
            continue
        if overdue is not None and (entry.overdue_count > 0) != overdue:
            continue
        entries.append((entry, standing))
    entries.sort(key=lambda e: _urgency(e[0]))
    rest = entries if after is None else [e for e in entries if _urgency(e[0]) > after]
    shown = rest[:limit]
    next_cursor = None
    if len(rest) > limit:
        flag, due, last = _urgency(shown[-1][0])
        next_cursor = encode_cursor(
            CASELOAD_CURSOR, [today.isoformat(), flag, due.isoformat(), last]
        )
    names = await child_names(reads, viewer, [e.child_id for e, _ in shown])
    in_progress = [e.child_id for e, _ in shown if e.status in IN_PROGRESS]
    contacts = await single_points_of_contact(reads, viewer, in_progress, today)
    await audit_reads(
        reads,
        caller,
        "GET /caseload",
        now,
        [
            (
                e.child_id,
                sorted(
                    {i for p in plans for i in p.event_ids}
                    | set(names[e.child_id][1])
                    | set(contacts.get(e.child_id, (None, []))[1])
                ),
                {"plan_ids": [p.plan_id for p in plans]},
            )
            for e, plans in shown
        ],
    )
    return CaseloadView(
        coordinator=caller.name,
        as_of=today,
        total=len(entries),
        children=[
            e.model_copy(
                update={
                    "name": names[e.child_id][0],
                    "warnings": [NO_SPOC]
                    if e.child_id in contacts and contacts[e.child_id][0] is None
                    else [],
                }
            )
            for e, _ in shown
        ],
        next_cursor=next_cursor,
    )


def _caseload_after(cursor: str) -> tuple[date, tuple[int, date, str]]:
    """The day a caseload cursor pages on, and the urgency of the last row it showed."""
    day, flag, due, child = decode_cursor(CASELOAD_CURSOR, cursor, (str, int, str, str))
    try:
        return date.fromisoformat(day), (flag, date.fromisoformat(due), child)
    except ValueError:
        raise malformed_cursor() from None


# --------------------------------------------------------------------------- helpers


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


async def team_facts(reads: Reads, child_id: str, positions: Positions | None) -> list[SealedFact]:
    """The child's stored team facts (`load_team_facts`); those read before at the same
    `positions` (which `team_around_child` was caught up to) are taken from the memo."""
    if positions is None:
        return await load_team_facts(reads.store, child_id)
    key = (child_id, "team_facts", positions)
    kept = reads.opened.row(key)
    if isinstance(kept, tuple):
        return list(kept)
    facts = await load_team_facts(reads.store, child_id)
    reads.opened.keep_row(key, tuple(facts))
    return facts


def fast_path(viewer: Viewer, child_id: str, summary: PlanSummary) -> bool:
    return not summary.has_exceptions and all(viewer.sees_key(child_id, k) for k in summary.keys)


def who_decides(state: ConsentState, now: datetime, dob: date | None) -> WhoDecidesOut:
    """Who decides about sharing now, in plain words (no dates: they would identify), from
    the child's consent state and date of birth (`PersonIndex.date_of_birth`)."""
    given = list(
        dict.fromkeys(
            f"{GRANTOR_WORDS[r.consent.grantor.capacity]} ({r.consent.grantor.reference})"
            for r in state.effective(now)
        )
    )
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


def practitioner_roles(reads: Reads) -> RoleVocabulary:
    """The policy's practitioner roles: code -> (description, agency)."""
    return {
        code: (spec.description, spec.agency)
        for code, spec in reads.policy.roles.items()
        if spec.kind == "practitioner"
    }


async def named_practitioners(
    reads: Reads, joined: Sequence[SealedFact], hidden: frozenset[str]
) -> dict[str, PractitionerNaming]:
    """The practitioners the caller may see named, from the joining facts they may see
    (`joined`, log order): of each only the naming fields are decrypted."""
    opened = await reads.opener.open_fields([f.body for f in joined], PRACTITIONER_NAMING_FIELDS)
    return practitioner_names(
        ((f.event_id, o) for f, o in zip(joined, opened, strict=True) if o is not None), hidden
    )


async def child_names(
    reads: Reads, viewer: Viewer, children: Sequence[str]
) -> dict[str, tuple[str | None, list[str]]]:
    """Each child's name as the caller may see it, with the id of the fact it came from
    (shown, so audited). As in the team view, the school's latest pupil record names the
    child, else health's first patient record; so only the best visible candidate of each
    child is opened, and the next only where it names no one; and of it only the name
    fields are decrypted (`EnvelopeOpener.open_fields`)."""
    facts = await load_naming_facts(reads.store, children)
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
        opened = await reads.opener.open_fields([f.body for f in firsts], NAMING_FIELDS)
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


async def single_points_of_contact(
    reads: Reads, viewer: Viewer, children: Sequence[str], today: date
) -> dict[str, tuple[str | None, list[str]]]:
    """Each child's current single point of contact (a key worker id, or None) as the
    caller may see it — as the team view would name it — with the ids of the facts it was
    read from (shown, so audited). Only the leaving and key working facts are opened."""
    facts = await load_key_working_facts(reads.store, children)
    visible = {c: [f for f in fs if viewer.sees(f)] for c, fs in facts.items()}
    to_open = [
        f for fs in visible.values() for f in fs if f.event_type != "team.practitioner_joined"
    ]
    opened = {f.event_id: env for f, env in await open_facts(reads, to_open)}
    out: dict[str, tuple[str | None, list[str]]] = {}
    for child, fs in visible.items():
        hidden = hidden_practitioners(facts[child], viewer.sees)
        spoc = single_point_of_contact(fs, opened, hidden=hidden, today=today)
        out[child] = (spoc, [f.event_id for f in fs if f.event_id in opened])
    return out
