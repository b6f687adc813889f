"""Where every plan stands, kept ready for the coordinator's caseload.

The projection (`caseload_view`) keeps, per plan, the plan's events (opened with the
child's keys) with their free text and documents (`narrative_fields`) left out
(`caseload_plan_fact`: dates, ids and codes — everything the statutory clock reads,
nothing it does not; the rows are dropped on erasure) and, recomputed with
`hub.plans.clock` each time one of the plan's events (or the child's date of birth)
arrives, a summary (`caseload_plan`):
status, stage, the milestones still open with their due dates, and the consent-policy
keys and event ids of the facts it rests on. Milestone due dates do not depend on the
day they are looked at unless an exception to the time limits was recorded, so the
summary is computed against a far horizon and `standing_on(summary, today)` applies
`today` at query time only, for the states (due, due soon, overdue) and the phase
transfer reviews whose window has opened. A plan with a recorded exception, or one
resting on a fact the caller may not see now, is recomputed from its visible stored facts
instead (`standing_from_facts`), so the caseload never counts what the caller cannot see.
The write routes read the same stored facts as a plan's history for `check_transition`.
Rows are dropped on erasure tombstones (a category's facts on `identity.category_erased`,
with the child's plans recomputed).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, create_model

from hub.events.envelope import EventPayload
from hub.events.identity import CategoryErased, ChildErased
from hub.events.plan import ExceptionRecorded, PlanEvent
from hub.events.registry import registry
from hub.log import LogName
from hub.plans.clock import (
    DUE_SOON_DAYS,
    MilestoneState,
    PlanClock,
    Se7Stage,
    StatutoryStatus,
    compute_clock,
)
from hub.projections.base import Applied, sharing_columns
from hub.projections.team_around_child import DOB_EVENT_TYPES
from hub.store import Tx

HORIZON = date(9000, 1, 1)
"""The `today` a summary is computed for: every milestone's due date is then known, and
the query applies the real day."""

FactKey = tuple[str, str, str | None, str, str | None]
"""What a view-time consent decision depends on: category, source agency, source
organisation, purposes (comma-joined) and the claimed statutory basis."""


@dataclass(frozen=True, slots=True)
class ClockFact:
    """One stored plan event (or date-of-birth fact) without its free text and documents."""

    event_id: str
    child_id: str
    plan_id: str | None
    event_type: str
    key: FactKey
    facts: str
    """The stored fields, as JSON."""

    def payload(self) -> EventPayload:
        return revive(self.event_type, self.facts)

    @property
    def date_of_birth(self) -> date | None:
        if self.plan_id is not None:
            return None
        value = orjson.loads(self.facts).get("date_of_birth")
        return date.fromisoformat(value) if isinstance(value, str) else None


@functools.cache
def _stored_model(cls: type[EventPayload]) -> type[EventPayload]:
    """The payload class with its narrative fields optional (they are not stored): its
    instances are instances of `cls`, validated as `cls` validates everything else."""
    text = [n for n in (getattr(cls, "narrative_fields", ()) or ()) if n in cls.model_fields]
    if not text:
        return cls
    optional: dict[str, Any] = {name: (Any, None) for name in text}
    model: type[EventPayload] = create_model(
        f"Stored{cls.__name__}", __base__=cls, __module__=__name__, **optional
    )
    return model


def revive(event_type: str, facts: str) -> EventPayload:
    """A payload rebuilt from its stored fields (the narrative ones are None:
    nothing that reads a plan's clock or checks its transitions uses them)."""
    return _stored_model(registry.payload_class(event_type)).model_validate_json(facts)


def _stripped(a: Applied) -> dict[str, Any] | None:
    env = a.envelope
    payload = env.payload
    if env.event_type in DOB_EVENT_TYPES:
        dob = getattr(payload, "date_of_birth", None)
        return None if not isinstance(dob, date) else {"date_of_birth": dob.isoformat()}
    if not isinstance(payload, PlanEvent) or env.plan_id is None:
        return None
    return payload.model_dump(mode="json", exclude=set(type(payload).narrative_fields))


def _key_of(a: Applied) -> FactKey:
    env = a.envelope
    purposes, basis = sharing_columns(env)
    return (env.category, env.source.agency, env.source.organisation_code, purposes, basis)


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


class CaseloadViewProjection:
    name = "caseload_view"
    logs: tuple[LogName, ...] = (LogName.EVENTS,)
    tables: tuple[str, ...] = ("caseload_plan_fact", "caseload_plan")

    async def apply(self, tx: Tx, events: Sequence[Applied]) -> None:
        rows: list[tuple[Any, ...]] = []
        touched: set[str] = set()
        for a in events:
            env = a.envelope
            if isinstance(env.payload, ChildErased | CategoryErased):
                await self._insert(tx, rows)
                rows = []
                if isinstance(env.payload, ChildErased):
                    for table in self.tables:
                        await tx.execute(
                            f"DELETE FROM {table} WHERE child_id = ?",  # noqa: S608 - own tables
                            (env.child_id,),
                        )
                    touched.discard(env.child_id)
                else:
                    await tx.execute(
                        "DELETE FROM caseload_plan_fact WHERE child_id = ? AND category = ?",
                        (env.child_id, env.payload.erased_category),
                    )
                    touched.add(env.child_id)
                continue
            facts = _stripped(a)
            if facts is None:
                continue
            key = _key_of(a)
            rows.append(
                (
                    str(env.event_id),
                    env.child_id,
                    env.plan_id,
                    a.position.partition,
                    a.position.offset,
                    env.event_type,
                    key[0],
                    key[1],
                    key[2],
                    key[3],
                    key[4],
                    _dumps(facts),
                )
            )
            touched.add(env.child_id)
        await self._insert(tx, rows)
        if touched:
            await self._recompute(tx, sorted(touched))

    @staticmethod
    async def _insert(tx: Tx, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            await tx.executemany(
                "INSERT INTO caseload_plan_fact (event_id, child_id, plan_id, part, log_offset,"
                " event_type, category, agency, organisation, purposes, basis_claimed, facts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
                rows,
            )

    async def _recompute(self, tx: Tx, children: Sequence[str]) -> None:
        """Recompute every plan of these children (a child's plans are few; a date of
        birth or an erased category touches them all)."""
        for i in range(0, len(children), 500):
            chunk = children[i : i + 500]
            facts = await _fetch_facts(tx, chunk)
            by_child: dict[str, list[ClockFact]] = {c: [] for c in chunk}
            for f in facts:
                by_child[f.child_id].append(f)
            upserts: list[tuple[Any, ...]] = []
            marks = ", ".join("?" for _ in chunk)
            await tx.execute(
                f"DELETE FROM caseload_plan WHERE child_id IN ({marks})",  # noqa: S608 - placeholders only
                tuple(chunk),
            )
            for child in chunk:
                plans = summarise_child(by_child[child])
                upserts.extend(
                    (
                        child,
                        plan_id,
                        s.status,
                        s.stage,
                        s.received_on.isoformat() if s.received_on else None,
                        s.model_dump_json(),
                    )
                    for plan_id, s in sorted(plans.items())
                )
            await tx.executemany(
                "INSERT INTO caseload_plan (child_id, plan_id, status, stage, received_on,"
                " summary) VALUES (?, ?, ?, ?, ?, ?)",
                upserts,
            )


_FACT_SELECT = (
    "SELECT event_id, child_id, plan_id, event_type, category, agency, organisation,"
    " purposes, basis_claimed, facts FROM caseload_plan_fact"
)


def _fact(row: Sequence[Any]) -> ClockFact:
    return ClockFact(
        event_id=str(row[0]),
        child_id=str(row[1]),
        plan_id=None if row[2] is None else str(row[2]),
        event_type=str(row[3]),
        key=(
            str(row[4]),
            str(row[5]),
            None if row[6] is None else str(row[6]),
            str(row[7]),
            None if row[8] is None else str(row[8]),
        ),
        facts=str(row[9]),
    )


async def _fetch_facts(source: Any, children: Sequence[str]) -> list[ClockFact]:
    marks = ", ".join("?" for _ in children)
    rows = await source.fetchall(
        f"{_FACT_SELECT} WHERE child_id IN ({marks}) ORDER BY part, log_offset",
        tuple(children),
    )
    return [_fact(r) for r in rows]


async def load_clock_facts(store: Any, children: Sequence[str]) -> dict[str, list[ClockFact]]:
    """The stored plan and date-of-birth facts of these children, in log order."""
    out: dict[str, list[ClockFact]] = {c: [] for c in children}
    unique = sorted(set(children))
    for i in range(0, len(unique), 500):
        for f in await _fetch_facts(store, unique[i : i + 500]):
            out[f.child_id].append(f)
    return out


async def plan_children(store: Any, plan_id: str) -> list[str]:
    """The children a plan id is recorded for (normally one)."""
    rows = await store.fetchall(
        "SELECT child_id FROM caseload_plan WHERE plan_id = ? ORDER BY child_id", (plan_id,)
    )
    return [str(r[0]) for r in rows]


# --------------------------------------------------------------------------- summaries


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class OpenMilestone(_Model):
    key: str
    rule: str
    kind: str
    title: str
    starts_on: date
    due_on: date


class PlanSummary(_Model):
    """A plan as the projection keeps it: computed against `HORIZON`."""

    status: StatutoryStatus | None
    stage: Se7Stage
    received_on: date | None = None
    reassessment: bool = False
    has_exceptions: bool = False
    open: tuple[OpenMilestone, ...] = ()
    final_key: str | None = None
    keys: tuple[FactKey, ...] = ()
    event_ids: tuple[str, ...] = ()


class Deadline(_Model):
    key: str
    rule: str
    title: str
    due_on: date
    state: MilestoneState
    days_remaining: int


class PlanStanding(_Model):
    """Where a plan stands on a given day."""

    plan_id: str
    status: StatutoryStatus | None
    stage: Se7Stage
    received_on: date | None = None
    next_due: Deadline | None = None
    overdue_count: int = 0
    days_to_final_due: int | None = None
    event_ids: tuple[str, ...] = ()


def _final_key(clock: PlanClock) -> str | None:
    if clock.received_on is None:
        return None
    rule = "reassessment_final" if clock.reassessment else "final_plan"
    return f"{rule}:{clock.received_on.isoformat()}"


def split_plans(facts: Iterable[ClockFact]) -> tuple[dict[str, list[ClockFact]], ClockFact | None]:
    """A child's facts by plan (log order), and the latest fact carrying a date of birth."""
    plans: dict[str, list[ClockFact]] = {}
    dob: ClockFact | None = None
    for f in facts:
        if f.plan_id is None:
            if f.date_of_birth is not None:
                dob = f
        else:
            plans.setdefault(f.plan_id, []).append(f)
    return plans, dob


def summarise(plan_facts: Sequence[ClockFact], dob: ClockFact | None) -> PlanSummary:
    """One plan's summary against the horizon (or, with an exception recorded, against
    its last event's day: it is recomputed at query time then)."""
    payloads = [f.payload() for f in plan_facts]
    has_exceptions = any(isinstance(p, ExceptionRecorded) for p in payloads)
    if has_exceptions:
        days = [d for d in (_day_of(p) for p in payloads) if d is not None]
        day = max(days, default=date(2000, 1, 1))
    else:
        day = HORIZON
    clock = compute_clock(payloads, today=day, date_of_birth=dob.date_of_birth if dob else None)
    used = [*plan_facts, *([dob] if dob is not None else [])]
    return PlanSummary(
        status=clock.status,
        stage=clock.stage,
        received_on=clock.received_on,
        reassessment=clock.reassessment,
        has_exceptions=has_exceptions,
        open=tuple(
            OpenMilestone(
                key=m.key,
                rule=m.rule,
                kind=m.kind,
                title=m.title,
                starts_on=m.starts_on,
                due_on=m.due_on,
            )
            for m in clock.milestones
            if m.state not in ("met", "not_applicable")
        ),
        final_key=_final_key(clock),
        keys=tuple(sorted({f.key for f in used}, key=repr)),
        event_ids=tuple(f.event_id for f in used),
    )


def _day_of(p: EventPayload) -> date | None:
    days = [v for v in p.__dict__.values() if isinstance(v, date)]
    return max(days) if days else None


def summarise_child(facts: Iterable[ClockFact]) -> dict[str, PlanSummary]:
    plans, dob = split_plans(facts)
    return {plan_id: summarise(pf, dob) for plan_id, pf in plans.items()}


def state_on(kind: str, due: date, today: date) -> MilestoneState:
    if kind == "family_period":
        return "period_open" if today <= due else "period_ended"
    if kind in ("practice", "advised"):
        return "expected" if today <= due else "past_expected"
    if today > due:
        return "overdue"
    return "due_soon" if (due - today).days <= DUE_SOON_DAYS else "due"


def standing_on(plan_id: str, summary: PlanSummary, today: date) -> PlanStanding:
    """Where a plan without recorded exceptions stands on `today`, from its summary:
    the same answer `compute_clock(..., today=today)` gives."""
    open_now = [m for m in summary.open if not (m.rule == "phase_transfer" and today < m.starts_on)]
    statutory = sorted(
        (m for m in open_now if m.kind == "statutory"), key=lambda m: (m.due_on, m.key)
    )
    first = statutory[0] if statutory else None
    final = next((m for m in open_now if m.key == summary.final_key), None)
    return PlanStanding(
        plan_id=plan_id,
        status=summary.status,
        stage=summary.stage,
        received_on=summary.received_on,
        next_due=None
        if first is None
        else Deadline(
            key=first.key,
            rule=first.rule,
            title=first.title,
            due_on=first.due_on,
            state=state_on(first.kind, first.due_on, today),
            days_remaining=(first.due_on - today).days,
        ),
        overdue_count=sum(1 for m in open_now if state_on(m.kind, m.due_on, today) == "overdue"),
        days_to_final_due=None if final is None else (final.due_on - today).days,
        event_ids=summary.event_ids,
    )


def standing_from_facts(
    plan_id: str, plan_facts: Sequence[ClockFact], dob: ClockFact | None, today: date
) -> PlanStanding:
    """Where a plan stands on `today`, computed from (the caller's visible) stored facts."""
    clock = compute_clock(
        [f.payload() for f in plan_facts],
        today=today,
        date_of_birth=dob.date_of_birth if dob else None,
    )
    n = clock.next_due
    final_key = _final_key(clock)
    final = next(
        (
            m
            for m in clock.milestones
            if m.key == final_key and m.state not in ("met", "not_applicable")
        ),
        None,
    )
    return PlanStanding(
        plan_id=plan_id,
        status=clock.status,
        stage=clock.stage,
        received_on=clock.received_on,
        next_due=None
        if n is None
        else Deadline(
            key=n.key,
            rule=n.rule,
            title=n.title,
            due_on=n.due_on,
            state=n.state,
            days_remaining=(n.due_on - today).days,
        ),
        overdue_count=clock.overdue_count,
        days_to_final_due=None if final is None else (final.due_on - today).days,
        event_ids=tuple(f.event_id for f in [*plan_facts, *([dob] if dob else [])]),
    )
