"""One child's consent state: a pure fold of their consent events, with full history.

`ConsentState` is immutable: `apply()` returns a new state whose `version` is the number
of consent events folded so far. It answers "which consent records were effective at
time T" for any T — a grant or refusal is effective from the start of its period's first
day until the end of its last day (UTC), and not from the moment it is withdrawn or
expires — and `at_version(n)` rebuilds the state as the hub knew it after n events, so an
audit can replay exactly what a past decision saw. Events that make no sense (a second
recording of the same consent id, a withdrawal of an unknown one) change nothing and are
listed in `anomalies`, because a fold over an immutable log must never fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from uuid import UUID

from hub.events.consent import (
    CapacityAssessed,
    ConsentEvent,
    ConsentExpired,
    ConsentRecorded,
    ConsentWithdrawn,
)
from hub.events.envelope import Envelope

EndedBy = Literal["withdrawn", "expired"]
RecordStatus = Literal["effective", "not_yet_started", "period_ended", "withdrawn", "expired"]


def utc(at: datetime) -> datetime:
    """`at` in UTC; a naive datetime is a programming error."""
    if at.tzinfo is None:
        raise ValueError("a consent time must carry a timezone")
    return at.astimezone(UTC)


def start_of_day(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """A recorded grant or refusal and, once known, when and how it stopped applying."""

    consent: ConsentRecorded
    recorded_at: datetime
    seq: int
    event_id: UUID | None = None
    ended_at: datetime | None = None
    ended_by: EndedBy | None = None
    end_event_id: UUID | None = None

    @property
    def consent_id(self) -> str:
        return self.consent.consent_id

    @property
    def decision(self) -> str:
        return self.consent.decision

    @property
    def starts_at(self) -> datetime:
        return start_of_day(self.consent.period.start)

    @property
    def period_ends_at(self) -> datetime | None:
        """The first instant after the period (its end day is inclusive)."""
        end = self.consent.period.end
        return None if end is None else start_of_day(end + timedelta(days=1))

    def status_at(self, at: datetime) -> RecordStatus:
        at = utc(at)
        if self.ended_at is not None and at >= self.ended_at and self.ended_by is not None:
            return self.ended_by
        if at < self.starts_at:
            return "not_yet_started"
        ends = self.period_ends_at
        if ends is not None and at >= ends:
            return "period_ended"
        return "effective"

    def effective_at(self, at: datetime) -> bool:
        return self.status_at(at) == "effective"


@dataclass(frozen=True, slots=True)
class AppliedEvent:
    """One consent event as folded: its position, payload, time and id."""

    seq: int
    payload: ConsentEvent
    at: datetime
    event_id: UUID | None


@dataclass(frozen=True, slots=True)
class CapacityEntry:
    assessment: CapacityAssessed
    seq: int
    at: datetime


class ConsentState:
    """The consent records of one child as of `version` folded events. Immutable."""

    __slots__ = ("_anomalies", "_capacity", "_events", "_records", "child_id")

    def __init__(self, child_id: str) -> None:
        self.child_id = child_id
        self._events: tuple[AppliedEvent, ...] = ()
        self._records: dict[str, ConsentRecord] = {}
        self._capacity: tuple[CapacityEntry, ...] = ()
        self._anomalies: tuple[str, ...] = ()

    # ------------------------------------------------------------------ building
    @classmethod
    def fold(cls, child_id: str, envelopes: Iterable[Envelope]) -> ConsentState:
        """Fold a child's envelopes in log order; non-consent events are skipped."""
        state = cls(child_id)
        for env in envelopes:
            state = state.apply_envelope(env)
        return state

    def apply_envelope(self, envelope: Envelope) -> ConsentState:
        """Fold one envelope (at its `occurred_at`); other children's events are an error,
        non-consent payloads are skipped."""
        if envelope.child_id != self.child_id:
            raise ValueError(
                f"event {envelope.event_id} is for another child than this consent state"
            )
        payload = envelope.payload
        if not isinstance(
            payload, ConsentRecorded | ConsentWithdrawn | ConsentExpired | CapacityAssessed
        ):
            return self
        return self.apply(payload, at=envelope.occurred_at, event_id=envelope.event_id)

    def apply(
        self, payload: ConsentEvent, *, at: datetime, event_id: UUID | None = None
    ) -> ConsentState:
        """A new state with `payload` (which happened at `at`) folded in."""
        at = utc(at)
        seq = len(self._events) + 1
        new = self._copy()
        new._events = (*self._events, AppliedEvent(seq, payload, at, event_id))
        if isinstance(payload, ConsentRecorded):
            if payload.consent_id in self._records:
                new._anomalies = (
                    *self._anomalies,
                    f"event {seq}: consent {payload.consent_id} recorded again; the first "
                    "recording stands",
                )
            else:
                new._records = {
                    **self._records,
                    payload.consent_id: ConsentRecord(payload, at, seq, event_id),
                }
        elif isinstance(payload, ConsentWithdrawn | ConsentExpired):
            ended_by: EndedBy = "withdrawn" if isinstance(payload, ConsentWithdrawn) else "expired"
            record = self._records.get(payload.consent_id)
            if record is None:
                new._anomalies = (
                    *self._anomalies,
                    f"event {seq}: consent {payload.consent_id} {ended_by} but never recorded",
                )
            elif record.ended_at is not None and record.ended_at <= at:
                new._anomalies = (
                    *self._anomalies,
                    f"event {seq}: consent {payload.consent_id} {ended_by} after it had "
                    f"already been {record.ended_by}",
                )
            else:
                new._records = {
                    **self._records,
                    payload.consent_id: replace(
                        record, ended_at=at, ended_by=ended_by, end_event_id=event_id
                    ),
                }
        else:
            new._capacity = (*self._capacity, CapacityEntry(payload, seq, at))
        return new

    def _copy(self) -> ConsentState:
        new = ConsentState(self.child_id)
        new._events = self._events
        new._records = self._records
        new._capacity = self._capacity
        new._anomalies = self._anomalies
        return new

    # ------------------------------------------------------------------ queries
    @property
    def version(self) -> int:
        """How many consent events this state has folded (0 for none)."""
        return len(self._events)

    @property
    def events(self) -> tuple[AppliedEvent, ...]:
        return self._events

    @property
    def anomalies(self) -> tuple[str, ...]:
        return self._anomalies

    @property
    def records(self) -> tuple[ConsentRecord, ...]:
        """Every recorded grant and refusal, in the order they were recorded."""
        return tuple(sorted(self._records.values(), key=lambda r: r.seq))

    def record(self, consent_id: str) -> ConsentRecord | None:
        return self._records.get(consent_id)

    def effective(self, at: datetime) -> tuple[ConsentRecord, ...]:
        """The grants and refusals in force at `at`, in the order they were recorded."""
        return tuple(r for r in self.records if r.effective_at(at))

    def capacity_at(self, on: date) -> CapacityAssessed | None:
        """The latest capacity assessment made on or before `on` (ties: the later event)."""
        best: CapacityEntry | None = None
        for entry in self._capacity:
            if entry.assessment.assessed_on > on:
                continue
            if best is None or (entry.assessment.assessed_on, entry.seq) >= (
                best.assessment.assessed_on,
                best.seq,
            ):
                best = entry
        return None if best is None else best.assessment

    def at_version(self, version: int) -> ConsentState:
        """The state as it was after the first `version` events (for replaying a past
        decision exactly)."""
        if not 0 <= version <= self.version:
            raise ValueError(f"version {version} is outside 0..{self.version}")
        state = ConsentState(self.child_id)
        for applied in self._events[:version]:
            state = state.apply(applied.payload, at=applied.at, event_id=applied.event_id)
        return state

    def describe(self, at: datetime) -> tuple[str, ...]:
        """One plain-English line per recorded grant or refusal, as it stands at `at`."""
        return tuple(describe_record(r, at) for r in self.records)

    def __repr__(self) -> str:
        return (
            f"ConsentState(child_id={self.child_id!r}, version={self.version}, "
            f"records={len(self._records)})"
        )


_STATUS_WORDS: dict[RecordStatus, str] = {
    "effective": "in force",
    "not_yet_started": "not yet in force",
    "period_ended": "ended (its period is over)",
    "withdrawn": "withdrawn",
    "expired": "expired",
}

GRANTOR_WORDS: dict[str, str] = {
    "parent_with_pr": "a parent with parental responsibility",
    "young_person": "the young person",
    "deputy": "a deputy",
    "representative": "a representative",
}


def _axis(values: tuple[str, ...], anything: str) -> str:
    return ", ".join(v.replace("_", " ") for v in values) if values else anything


def describe_record(record: ConsentRecord, at: datetime) -> str:
    """E.g. "Consent c-1: a parent with parental responsibility permits sharing health for
    ehc assessment with coordinator — in force"."""
    c = record.consent
    verb = "permits" if c.decision == "permit" else "refuses"
    text = (
        f"Consent {c.consent_id}: {GRANTOR_WORDS[c.grantor.capacity]} {verb} sharing "
        f"{_axis(c.scope.categories, 'any data')} for "
        f"{_axis(c.scope.purposes, 'any purpose')} with "
        f"{_axis(c.scope.roles, 'any role')}"
    )
    if c.scope.agencies:
        text += f" in {_axis(c.scope.agencies, '')}"
    if c.scope.organisations:
        text += f" at {', '.join(c.scope.organisations)}"
    if c.exceptions:
        n = len(c.exceptions)
        text += f", with {n} exception{'s' if n > 1 else ''}"
    return f"{text} — {_STATUS_WORDS[record.status_at(at)]}"


_ENDED_WORDS: dict[RecordStatus, str] = {
    "not_yet_started": "not yet in force",
    "period_ended": "ended",
    "withdrawn": "withdrawn",
    "expired": "expired",
}


def summarise_consent(
    state: ConsentState, at: datetime, *, may_see: Callable[[str], bool] = lambda _: True
) -> str:
    """The child's consent at `at` in a few words, for one row of a list: "consent
    given", "consent given for education", "refused for health", "consent given; refused
    for social care", "no consent recorded", or — when nothing is in force — how the last
    recorded one stopped ("withdrawn", "expired", "ended", "not yet in force"). Only
    categories the viewer may ever see (`may_see`) are named: a grant or refusal that
    names only others is left out, as if it were not there."""
    shown = [
        r for r in state.records if not r.consent.scope.categories or any(
            may_see(c) for c in r.consent.scope.categories
        )
    ]  # fmt: skip
    if not shown:
        return "no consent recorded"
    in_force = [r for r in shown if r.effective_at(at)]
    if not in_force:
        return _ENDED_WORDS.get(shown[-1].status_at(at), "not in force")
    parts = []
    for decision, verb in (("permit", "consent given"), ("deny", "refused")):
        chosen = [r for r in in_force if r.decision == decision]
        if not chosen:
            continue
        if any(not r.consent.scope.categories for r in chosen):
            parts.append(verb)
            continue
        named = dict.fromkeys(c for r in chosen for c in r.consent.scope.categories if may_see(c))
        parts.append(f"{verb} for {_axis(tuple(named), 'any data')}")
    return "; ".join(parts)
