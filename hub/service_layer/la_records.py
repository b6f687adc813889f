"""What the local authority records about a child itself, through its staff: a consent
decision as the coordinator captured it, its withdrawal, a change of coordinator.

These facts are the council's own, sent as the local authority (`LA_SENDER`) through
`SubmitAsSender`, so the sender checks that hold for every agency hold for it too. The
child's date of birth a coordinator brings with a first consent (to check who may
decide) is recorded here, not by the route.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from hub.auth.principal import Principal
from hub.consent.senders import Sender
from hub.errors import PermanentError
from hub.events.consent import ConsentRecorded
from hub.events.envelope import EventPayload, Source
from hub.identity.person_index import PersonIndex
from hub.identity.subject import Subject
from hub.ingest.model import FactOutcome, InboundFact
from hub.service_layer.sender_claims import SubmitAsSender

HUB_SOURCE = Source(agency="local_authority", system="tac-hub")
"""Facts the local authority records in the hub itself."""
LA_SENDER = Sender(HUB_SOURCE.agency, "local_authority")


class LaRefused(PermanentError):
    """What the coordinator sent cannot be recorded (`field` names what is wrong)."""


def _first_error(exc: ValidationError, prefix: str) -> LaRefused:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"])
    msg = str(err["msg"])
    if not loc and ": " in msg:  # a rule across fields names its field first
        loc, msg = msg.removeprefix("Value error, ").split(": ", 1)
    return LaRefused(msg, field=f"{prefix}{loc}")


@dataclass
class RecordAsLocalAuthority:
    submit: SubmitAsSender
    persons: PersonIndex

    async def record(
        self, caller: Principal, child_id: str, payload: EventPayload, *, ref: str
    ) -> FactOutcome:
        """Record one fact about the child as the local authority."""
        fact = InboundFact(
            subject=Subject(hub_child_id=child_id),
            payload=payload,
            occurred_at=datetime.now(UTC),
            source=HUB_SOURCE,
            ref=ref,
        )
        [outcome] = await self.submit([fact], sender=LA_SENDER, actor=caller.actor)
        return outcome

    async def record_consent(
        self,
        caller: Principal,
        child_id: str,
        consent: Mapping[str, Any],
        *,
        child_date_of_birth: date | None = None,
    ) -> tuple[ConsentRecorded, FactOutcome]:
        """Record the family's decision as the coordinator captured it (`consent`: a
        `consent.recorded` payload without `recorded_by`, the caller); the child's date
        of birth, when given and not known yet, first."""
        try:
            payload = ConsentRecorded.model_validate({**consent, "recorded_by": caller.name})
        except ValidationError as exc:
            raise _first_error(exc, "consent.") from None
        if child_date_of_birth is not None and await self.persons.date_of_birth(child_id) is None:
            await self.persons.set_date_of_birth(child_id, child_date_of_birth)
        ref = f"consent:{child_id}:{payload.consent_id}"  # consent ids are per child
        return payload, await self.record(caller, child_id, payload, ref=ref)
