"""A person's decision on a match-queue item (`POST /match-queue/{id}/resolve`,
`hub match resolve`): link the queued record to a child, or keep it separate as a new one,
and release the facts held for it through the gate for the chosen child."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from hub.consent.audit_trail import AuditEntry, AuditTrail
from hub.consent.sealing import ErasedPayload
from hub.errors import PermanentError
from hub.events import Sharing, Source, upcast_envelope
from hub.events.identity import IdentifierLinked, MatchResolved
from hub.identity.identifiers import Identifier
from hub.identity.match_queue import (
    ITEM_PREFIX,
    PROVISIONAL_PREFIX,
    Decision,
    MatchError,
    MatchQueue,
    strong_identifiers,
)
from hub.identity.person_index import PersonIndex
from hub.identity.subject import Subject
from hub.ingest.model import FactOutcome, InboundFact
from hub.projections.gate_views import withheld_rows
from hub.service_layer.erasure import EraseChild
from hub.service_layer.submit_facts import SubmitFacts
from hub.service_layer.views import GateViews
from hub.store import ReadStore


@dataclass(frozen=True)
class MatchOutcome:
    item_id: str
    decision: Decision
    child_id: str
    identifiers_linked: tuple[str, ...]
    released: list[FactOutcome]
    event_id: str | None


class ResolveMatch:
    def __init__(
        self,
        *,
        store: ReadStore,
        matches: MatchQueue,
        persons: PersonIndex,
        trail: AuditTrail,
        views: GateViews,
        submit: SubmitFacts,
        erase: EraseChild,
    ) -> None:
        self.store = store
        self.matches = matches
        self.persons = persons
        self.trail = trail
        self.views = views
        self.submit = submit
        self.erase = erase

    async def __call__(
        self, item_id: str, *, decision: Decision, child_id: str | None, actor: str
    ) -> MatchOutcome:
        """Carry out a person's decision on a queued record: link it to `child_id`, or
        keep it separate as a new child. Links the record's identifiers no child holds yet,
        sets the date of birth where none is recorded, releases the held facts through the
        gate for the chosen child, crypto-shreds the provisional copies, appends
        `identity.match_resolved` and audits the decision. Raises `MatchError` (no such
        item or child, decided already, or an impossible decision). One decision per item
        at a time, across processes."""
        async with self.store.held(f"match-item:{item_id}"):
            return await self._decide(item_id, decision=decision, child_id=child_id, actor=actor)

    async def release_held(
        self, provisional_child_id: str, child_id: str, *, actor: str
    ) -> list[FactOutcome]:
        """Submit the facts held under a provisional child again, for `child_id`: opened
        with the provisional keys, decided and sealed for the chosen child (in the order
        they were held). Idempotent: each release is keyed by the held fact's event id."""
        await self.views.catch_up(["withheld_index"], [provisional_child_id])
        facts: list[InboundFact] = []
        for row in await withheld_rows(self.store, provisional_child_id):
            try:
                env = await self.views.opener.open_value(row.body)
            except PermanentError:
                continue
            if isinstance(env.payload, ErasedPayload):
                continue  # released before, and its provisional copy shredded
            sharing = upcast_envelope(env, row.headers).sharing or Sharing()
            facts.append(
                InboundFact(
                    subject=Subject(hub_child_id=child_id),
                    payload=env.payload,
                    occurred_at=env.occurred_at,
                    source=env.source,
                    ref=f"released:{row.event_id}",
                    plan_id=env.plan_id,
                    category=env.category,
                    purposes=sharing.purposes,
                    statutory_basis=sharing.basis_claimed,
                )
            )
        return await self.submit(facts, actor=actor) if facts else []

    async def _decide(
        self, item_id: str, *, decision: Decision, child_id: str | None, actor: str
    ) -> MatchOutcome:
        queue = self.matches
        item = await queue.get(item_id)
        if item is None:
            raise MatchError(f"no match queue item {item_id}", problem="no_such_item")
        if item.status != "pending":
            raise MatchError(
                f"item {item_id} was decided already ({item.decision} to {item.resolved_child_id})",
                problem="decided_already",
            )
        if decision == "link":
            if not child_id:
                raise MatchError("a link decision names the child (child_id)")
            if child_id.startswith(PROVISIONAL_PREFIX) or not await self.persons.exists(child_id):
                raise MatchError(f"no child {child_id} to link to", problem="no_such_child")
            target = child_id
        else:
            if child_id:
                raise MatchError("keep_separate makes a new child: send no child_id")
            # derived from the item, so a decision retried after a crash makes the same child
            target = "hc-" + item.item_id.removeprefix(ITEM_PREFIX)
            await self.persons.ensure(target)
        subject = await queue.open_subject(item)
        linked: list[Identifier] = []
        if subject is not None:
            good, _ = strong_identifiers(subject)
            linked = await self.persons.link(good, target)
            if subject.date_of_birth and await self.persons.date_of_birth(target) is None:
                await self.persons.set_date_of_birth(target, subject.date_of_birth)
            fingerprint = await queue.fingerprint(subject)
            if fingerprint:
                await queue.remember([(fingerprint, target)])
        released = await self.release_held(item.provisional_child_id, target, actor=actor)
        now = datetime.now(UTC)
        payload = MatchResolved(
            item_id=item.item_id,
            decision=decision,
            provisional_child_id=item.provisional_child_id,
            resolved_by=actor[:256],
            identifiers_linked=tuple(i.system.value for i in linked),
            facts_released=sum(1 for o in released if o.status in ("appended", "withheld")),
        )
        source = Source(agency="hub", system="tac-hub", message_id=item.item_id)
        links = [
            InboundFact(
                subject=Subject(hub_child_id=target),
                occurred_at=now,
                source=source,
                payload=IdentifierLinked(
                    system=i.system.value, reason="linked by a person's decision in the match queue"
                ),
                ref=f"match_linked:{i.system.value}:{n}",
            )
            for n, i in enumerate(linked)
        ]
        *_, recorded = await self.submit(
            [
                *links,
                InboundFact(
                    subject=Subject(hub_child_id=target),
                    payload=payload,
                    occurred_at=now,
                    source=source,
                    ref="match_resolved",
                ),
            ],
            actor=actor,
        )
        await self.trail.append(
            [
                AuditEntry(
                    kind="decision",
                    actor=actor,
                    child_id=target,
                    at=now,
                    details={
                        "item_id": item.item_id,
                        "decision": decision,
                        "outcome": "match_resolved",
                        "provisional_child_id": item.provisional_child_id,
                        "event_id": recorded.event_id,
                        "released": [o.event_id for o in released if o.event_id],
                        "identifiers_linked": [i.system.value for i in linked],
                    },
                )
            ]
        )
        await self.erase.shred(
            item.provisional_child_id,
            actor=actor,
            reason=f"match queue item {item.item_id} resolved: held facts re-keyed to the "
            "chosen child",
        )
        await queue.mark_resolved(
            item.item_id, decision=decision, child_id=target, actor=actor, now=now
        )
        return MatchOutcome(
            item_id=item.item_id,
            decision=decision,
            child_id=target,
            identifiers_linked=tuple(i.system.value for i in linked),
            released=released,
            event_id=recorded.event_id,
        )
