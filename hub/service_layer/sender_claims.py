"""Submit as a sender: what an agency claims about its facts is checked before the gate.

Every path an agency's facts enter by comes through here, each naming its sender from
what the hub holds, never from the message: the HTTP ingest routes (the credential), the
Kafka consumer (the topic's configured sender), `hub ingest --as KEY` (the key), and the
hub's own routes (the local authority).

Each fact's category, claimed statutory basis and organisation code are judged against
the policy and the sender's credential (`hub.consent.senders.judge_claims`). A fact whose
claims do not hold is refused, with the rule, the field and the reason, and the refusal
is audited (on the chain of the child its identifiers already name, else the hub's own
chain; the entry names the rule and field, never a value). The rest go through
`SubmitFacts`, a bounded batch at a time (`HUB_INGEST_BATCH_FACTS`), so one big file
does not hold the write side from every other request; the answers come back in the order
of the facts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import structlog

from hub.consent.audit_trail import AuditEntry, AuditTrail
from hub.consent.policy import SharingPolicy
from hub.consent.senders import ClaimRefusal, Sender, judge_claims
from hub.identity.match_queue import strong_identifiers
from hub.identity.person_index import PersonIndex
from hub.ingest.model import FactOutcome, InboundFact
from hub.service_layer.submit_facts import SubmitFacts

log = structlog.get_logger(__name__)


class SubmitAsSender:
    def __init__(
        self,
        *,
        submit: SubmitFacts,
        policy: SharingPolicy,
        trail: AuditTrail,
        persons: PersonIndex,
        batch_facts: int = 1000,
    ) -> None:
        self.batch_facts = batch_facts
        self.submit = submit
        self.policy = policy
        self.trail = trail
        self.persons = persons

    async def __call__(
        self,
        facts: Sequence[InboundFact],
        *,
        sender: Sender,
        actor: str,
        now: datetime | None = None,
        batch_facts: int | None = None,
    ) -> list[FactOutcome]:
        """Each fact's outcome, in order. `batch_facts` overrides the batch size (the CLI
        sends batches it cut itself, never splitting one subject's facts)."""
        now = now or datetime.now(UTC)
        refused: dict[int, ClaimRefusal] = {}
        for i, fact in enumerate(facts):
            refusal = judge_claims(
                self.policy,
                sender,
                event_type=fact.payload.event_type,
                type_category=type(fact.payload).category,
                category=fact.category,
                statutory_basis=fact.statutory_basis,
                organisation_code=fact.source.organisation_code,
            )
            if refusal is not None:
                refused[i] = refusal
        if refused:
            await self._audit(facts, refused, sender, actor, now)
            log.info(
                "ingest.claims_refused",
                agency=sender.agency,
                facts=len(refused),
                rules=sorted({r.rule for r in refused.values()}),
            )
        taken = await self._in_batches(
            [f for i, f in enumerate(facts) if i not in refused],
            actor,
            batch_facts or self.batch_facts,
        )
        answers = iter(taken)
        return [
            _refused(fact, refused[i]) if i in refused else next(answers)
            for i, fact in enumerate(facts)
        ]

    async def _in_batches(
        self, facts: Sequence[InboundFact], actor: str, size: int
    ) -> list[FactOutcome]:
        """Submit `size` facts at a time: a 50,000-episode return does not hold the
        write side (one submit at a time per process) while other requests wait; between
        batches the event loop lets them take their turn (the submit lock is first come,
        first served)."""
        out: list[FactOutcome] = []
        for start in range(0, len(facts), size):
            if start:
                await asyncio.sleep(0)  # a turn for whoever waits on the write side
            out += await self.submit(facts[start : start + size], actor=actor)
        return out

    async def _audit(
        self,
        facts: Sequence[InboundFact],
        refused: dict[int, ClaimRefusal],
        sender: Sender,
        actor: str,
        now: datetime,
    ) -> None:
        entries = []
        for i, refusal in refused.items():
            fact = facts[i]
            entries.append(
                AuditEntry(
                    kind="decision",
                    actor=actor,
                    child_id=await self._child_of(fact),
                    at=now,
                    details={
                        "event_type": fact.payload.event_type,
                        "agency": sender.agency,
                        "ref": fact.ref,
                        "outcome": "refused",
                        "rule": refusal.rule,
                        "field": refusal.field,
                        "reason": refusal.reason,
                    },
                )
            )
        await self.trail.append(entries)

    async def _child_of(self, fact: InboundFact) -> str | None:
        """The child the fact's strong identifiers already name (one), else None."""
        if fact.subject.hub_child_id:
            return None  # not an agency's way to name a child; never trusted here
        good, _ = strong_identifiers(fact.subject)
        if not good:
            return None
        owners, _ = await self.persons.known(good)
        held = set(owners.values())
        return held.pop() if len(held) == 1 else None


def _refused(fact: InboundFact, refusal: ClaimRefusal) -> FactOutcome:
    return FactOutcome(
        fact.ref,
        "rejected",
        fact.payload.event_type,
        reason=refusal.reason,
        field=refusal.field,
        rule=refusal.rule,
    )
