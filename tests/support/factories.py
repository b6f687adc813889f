"""Small builders of valid events and log records for tests."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hub.events import Envelope, Source, encode
from hub.events.education import SenStatusRecorded
from hub.events.team import PractitionerJoined
from hub.log import NewRecord


def sen_status(child: str, provision: str = "K", **fields: object) -> Envelope:
    return Envelope.wrap(
        SenStatusRecorded(sen_provision=provision, start_date=date(2024, 9, 1)),  # type: ignore[arg-type]
        child_id=child,
        source=Source(agency="school-a", organisation_code="123456", system="test"),
        occurred_at=datetime(2024, 9, 2, 9, 0, tzinfo=UTC),
        **fields,
    )


def joined(child: str, practitioner: str = "p1") -> Envelope:
    return Envelope.wrap(
        PractitionerJoined(
            practitioner_id=practitioner, role="senco", agency="education", since=date(2024, 9, 1)
        ),
        child_id=child,
        source=Source(agency="school-a"),
        occurred_at=datetime(2024, 9, 2, 9, 0, tzinfo=UTC),
    )


def record_of(envelope: Envelope) -> NewRecord:
    return NewRecord(key=envelope.child_id, value=encode(envelope))


def mixed_events(children: int, per_child: int) -> list[Envelope]:
    out: list[Envelope] = []
    for i in range(per_child):
        for c in range(children):
            child = f"child-{c:04d}"
            out.append(sen_status(child) if (i + c) % 3 else joined(child, f"p{i}"))
    return out
