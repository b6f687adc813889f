"""Who is looking, and what they may see of each fact now: view-time consent decisions.

A decision depends on the fact's category, source, purposes and claimed basis and on the
consents in force, never on the fact's content, so it is made once per (policy digest,
consents in force, sharing key, role, agency) and kept in a cache the process shares
across reads (bounded; cleared when full). Pure: the caller loads the consent states.

A family member (`family_role` parent or young_person) is not judged by the sharing
decision at all: what they see of their own child's record is their right of access, so
they see every fact the hub holds of the categories the policy's `family_access` lists
for their role, whatever the consents say (withheld facts are never held, so never seen).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from pydantic import ValidationError

from hub.consent.decision import Fact, decide_sharing
from hub.consent.policy import SharingPolicy
from hub.consent.state import ConsentState

SharingKey = tuple[str, str, str | None, str, str | None]
"""(category, source agency, source organisation, purposes joined by commas, claimed basis)."""
DecisionCache = dict[tuple[object, ...], bool]
DECISIONS_KEPT = 100_000
_NIL = uuid.UUID(int=0)


class SharedFact(Protocol):
    """What a stored fact says about how it may be shared (never its content)."""

    @property
    def child_id(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def agency(self) -> str: ...
    @property
    def organisation(self) -> str | None: ...
    @property
    def purposes(self) -> tuple[str, ...]: ...
    @property
    def basis_claimed(self) -> str | None: ...


class Viewer:
    """View-time consent decisions for one viewer (role, agency) at one instant."""

    def __init__(
        self,
        policy: SharingPolicy,
        cache: DecisionCache,
        *,
        role: str,
        agency: str | None,
        now: datetime,
        family_role: str | None = None,
    ) -> None:
        self.policy = policy
        self.role = role
        self.agency = agency
        self.now = now
        self.family_categories: frozenset[str] | None = None
        if family_role is not None:
            access = policy.family_access
            self.family_categories = (
                access.categories_for(family_role) if access is not None else frozenset()
            )
        self.states: dict[str, ConsentState] = {}
        self._signatures: dict[str, object] = {}
        self._cache = cache
        self._digest = policy.digest

    def add(self, states: Mapping[str, ConsentState]) -> None:
        self.states.update(states)

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

    def sees_key(self, child_id: str, key: SharingKey) -> bool:
        if self.family_categories is not None:
            return key[0] in self.family_categories
        cache_key = (self._digest, self._signature(child_id), key, self.role, self.agency)
        seen = self._cache.get(cache_key)
        if seen is None:
            seen = self._decide(child_id, key)
            if len(self._cache) >= DECISIONS_KEPT:
                self._cache.clear()
            self._cache[cache_key] = seen
        return seen

    def _decide(self, child_id: str, key: SharingKey) -> bool:
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
            return False  # fail closed on a fact the policy cannot judge
        decision = decide_sharing(fact, self.states[child_id], self.policy, at=self.now)
        return decision.allows(self.role, self.agency)

    def sees(self, fact: SharedFact) -> bool:
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
