"""The daily consent housekeeping (`hub consent review`)."""

from __future__ import annotations

from datetime import UTC, datetime

from hub.consent.authority import lapsed_consents
from hub.events import Source
from hub.events.consent import ConsentExpired
from hub.identity.person_index import PersonIndex
from hub.ingest.model import InboundFact, Subject
from hub.projections.gate_views import children_with_consents, children_with_withheld
from hub.service_layer.reconsider import ReconsiderWithheld
from hub.service_layer.submit_facts import SubmitFacts
from hub.service_layer.views import GateViews
from hub.store import ReadStore


class ReviewConsents:
    def __init__(
        self,
        *,
        store: ReadStore,
        persons: PersonIndex,
        views: GateViews,
        submit: SubmitFacts,
        reconsider: ReconsiderWithheld,
    ) -> None:
        self.store = store
        self.persons = persons
        self.views = views
        self.submit = submit
        self.reconsider = reconsider

    async def __call__(
        self, *, at: datetime | None = None, actor: str = "system:consent-review"
    ) -> dict[str, int]:
        """Record `consent.expired` for every consent whose period has ended
        (`period_ended`) or whose grantor may no longer give it — a parent's once the young
        person is over compulsory school age (`grantor_authority_ended`) — and re-decide
        every child's withheld facts, so a consent whose period has just begun releases
        what it covers. Expiries are audited as consent changes, and the facts they stop
        covering as redactions."""
        at = at or datetime.now(UTC)
        children = await children_with_consents(self.store)
        states = await self.views.consent_states(children)
        facts: list[InboundFact] = []
        for child in children:
            state = states[child]
            ended: dict[str, str] = {}
            for record in state.records:
                if record.ended_by is None and record.status_at(at) == "period_ended":
                    ended[record.consent_id] = "period_ended"
            dob = await self.persons.date_of_birth(child)
            if dob is not None:
                for consent_id in lapsed_consents(state, dob, at):
                    ended.setdefault(consent_id, "grantor_authority_ended")
            for consent_id, reason in sorted(ended.items()):
                facts.append(
                    InboundFact(
                        subject=Subject(hub_child_id=child),
                        payload=ConsentExpired(consent_id=consent_id, reason=reason),
                        occurred_at=at,
                        source=Source(agency="local_authority", system="tac-hub"),
                        ref=f"expire:{child}:{consent_id}",
                    )
                )
        outcomes = await self.submit(facts, actor=actor, now=at) if facts else []
        expired = sum(1 for o in outcomes if o.status == "appended")
        for child in await children_with_withheld(self.store):
            await self.reconsider(child, actor, at)
        return {"expired": expired, "children_reviewed": len(children)}
