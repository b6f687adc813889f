"""Small builders of valid events, log records and identifiers for tests."""

from __future__ import annotations

from datetime import UTC, date, datetime

from stdnum.gb import upn as stdnum_upn

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


def nhs_number(n: int) -> str:
    """The `n`th valid NHS number of a test range (modulus 11: bodies whose check digit
    would be 10 are skipped), distinct for each `n`."""
    body, seen = 943476000, -1
    while True:
        digits = f"{body:09d}"
        check = 11 - sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check != 10:
            seen += 1
            if seen == n:
                return digits + str(check % 11)
        body += 1


def upn(n: int) -> str:
    """The `n`th valid UPN of a test range (LA 801, check letter computed)."""
    body = f"8012000{n:05d}"
    return stdnum_upn.calc_check_digit(body) + body
