"""An independent oracle for what the consent gate should let a viewer see.

The oracle never reads the hub's tables or logs: it folds the consent payloads a test
itself sent into a `ConsentState` (with the times the test observed) and keeps the facts
the test ingested as `Fact`s, then asks the pure `decide_sharing` about them. Tests
compare what the hub actually shows or releases with these answers.

Times: the hub stamps consent changes and decisions with its own clock, somewhere inside
the request. The oracle stamps a change with the time just *before* the request, which
is never later than the hub's stamp, so any question asked after the response (at a
later time) gets the same answer from both. `bracket()` evaluates a question at the
times just before and just after a request: when they agree, the hub must agree too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from hub.consent.decision import Fact, decide_sharing
from hub.consent.policy import SharingPolicy
from hub.consent.state import ConsentState
from hub.events.consent import ConsentRecorded, ConsentWithdrawn

T = TypeVar("T")


@dataclass
class OracleFact:
    fact: Fact
    withheld: bool
    released: bool = False
    event_type: str = "?"

    @property
    def event_id(self) -> str:
        return str(self.fact.event_id)


@dataclass
class ConsentOracle:
    policy: SharingPolicy
    states: dict[str, ConsentState] = field(default_factory=dict)
    facts: dict[str, list[OracleFact]] = field(default_factory=dict)
    consent_child: dict[str, str] = field(default_factory=dict)
    withdrawn: set[str] = field(default_factory=set)

    def state(self, child_id: str) -> ConsentState:
        return self.states.get(child_id) or ConsentState(child_id)

    # -- what the test did --------------------------------------------------------------
    def recorded(self, child_id: str, payload: ConsentRecorded, at: datetime) -> None:
        self.states[child_id] = self.state(child_id).apply(payload, at=at, event_id=uuid.uuid4())
        self.consent_child[payload.consent_id] = child_id

    def withdrawn_now(self, payload: ConsentWithdrawn, at: datetime) -> None:
        child_id = self.consent_child[payload.consent_id]
        self.states[child_id] = self.state(child_id).apply(payload, at=at, event_id=uuid.uuid4())
        self.withdrawn.add(payload.consent_id)

    def ingested(self, fact: Fact, *, withheld: bool, event_type: str = "?") -> None:
        self.facts.setdefault(fact.child_id, []).append(
            OracleFact(fact, withheld, event_type=event_type)
        )

    # -- questions ------------------------------------------------------------------------
    def permitted(self, fact: Fact, at: datetime) -> bool:
        """Whether the gate may share the fact at all at `at` (some viewer may see it)."""
        return decide_sharing(fact, self.state(fact.child_id), self.policy, at=at).permitted

    def visible(self, child_id: str, at: datetime, role: str, agency: str | None) -> set[str]:
        """Event ids of every ingested fact of the child that `role` in `agency` may see
        at `at`, whatever log it went to."""
        state = self.state(child_id)
        return {
            f.event_id
            for f in self.facts.get(child_id, [])
            if decide_sharing(f.fact, state, self.policy, at=at).allows(role, agency)
        }

    def describe(self, event_ids: set[str]) -> list[tuple[str, str, str, bool, bool]]:
        """(id, category, event type, withheld, released) of these facts: for messages."""
        return [
            (f.event_id, f.fact.category, f.event_type, f.withheld, f.released)
            for facts in self.facts.values()
            for f in facts
            if f.event_id in event_ids
        ]

    def family_visible(
        self, child_id: str, categories: frozenset[str], event_types: frozenset[str]
    ) -> set[str]:
        """Event ids of the child's facts the hub holds (appended, or withheld and since
        released) in `categories` and of `event_types` (what the view asked for is made
        of): what a family member's own right of access shows them, whatever the consents
        say now."""
        return {
            f.event_id
            for f in self.facts.get(child_id, [])
            if (not f.withheld or f.released)
            and f.fact.category in categories
            and f.event_type in event_types
        }

    def releasable(self, child_id: str, at: datetime) -> list[str]:
        """Withheld, not yet released facts of the child the gate may now share, in the
        order they were withheld."""
        return [
            f.event_id
            for f in self.facts.get(child_id, [])
            if f.withheld and not f.released and self.permitted(f.fact, at)
        ]

    def mark_released(self, event_ids: Iterable[str]) -> None:
        ids = set(event_ids)
        for facts in self.facts.values():
            for f in facts:
                if f.event_id in ids:
                    f.released = True


@dataclass(frozen=True)
class Bracket(Generic[T]):
    """One question asked at the time before and the time after a request."""

    before: T
    after: T

    @property
    def settled(self) -> bool:
        return self.before == self.after


def bracket(question: Callable[[datetime], T], before: datetime, after: datetime) -> Bracket[T]:
    return Bracket(question(before), question(after))
