"""`hub consent review`: consents whose period ended, or whose grantor may no longer give
them, are recorded as expired and their facts stop being shared (audited); a consent whose
period has begun releases the facts withheld for want of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import pytest

from hub.bootstrap import Hub, open_hub
from hub.events import Source
from hub.events.consent import ConsentRecorded
from hub.events.team import PractitionerJoined
from hub.ingest.model import InboundFact, Subject
from hub.log import LogName
from hub.settings import Settings


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    the_hub = await open_hub(Settings(data_dir=tmp_path, _env_file=None))  # type: ignore[call-arg]
    try:
        yield the_hub
    finally:
        await the_hub.close()


def consent(
    cid: str, start: str, end: str | None = None, given_on: str | None = None
) -> ConsentRecorded:
    return ConsentRecorded.model_validate(
        {
            "consent_id": cid,
            "decision": "permit",
            "grantor": {"reference": "parent-1", "capacity": "parent_with_pr"},
            "given_on": given_on or start,
            "scope": {
                "categories": ["health"],
                "purposes": ["ehc_assessment"],
                "roles": ["coordinator"],
            },
            "period": {"start": start, "end": end},
            "capture_method": "form",
            "recorded_by": "casey",
        }
    )


def fact(payload: object, child: Subject, ref: str, when: datetime) -> InboundFact:
    return InboundFact(
        subject=child,
        payload=payload,  # type: ignore[arg-type]
        occurred_at=when,
        source=Source(agency="city-health", message_id=ref),
        ref=ref,
        category="health",
        purposes=("ehc_assessment",),
    )


async def audit_kinds(hub: Hub, child: str) -> list[tuple[str, str | None]]:
    out = []
    for part in range(hub.log.partitions(LogName.AUDIT)):
        offset = 0
        while batch := await hub.log.read(LogName.AUDIT, part, offset, 500):
            for rec in batch:
                body = orjson.loads(rec.value)
                if body.get("child_id") == child:
                    out.append((body["kind"], body["details"].get("outcome")))
            offset = batch[-1].offset + 1
    return out


async def test_a_parents_consent_lapses_when_the_young_person_comes_of_age(hub: Hub) -> None:
    born = date(2008, 10, 1)  # over compulsory school age from the last Friday of June 2025
    subject = Subject(nhs_number="9434765919", date_of_birth=born)
    t0 = datetime(2024, 9, 1, 9, tzinfo=UTC)
    joined = PractitionerJoined(
        practitioner_id="salt-1",
        role="speech_and_language_therapist",
        agency="health",
        since=date(2024, 9, 1),
    )
    [out] = await hub.handlers.submit_facts([fact(joined, subject, "f1", t0)], actor="t", now=t0)
    child = out.child_id
    assert out.status == "withheld" and child
    t1 = datetime(2024, 9, 2, 9, tzinfo=UTC)
    [c] = await hub.handlers.submit_facts(
        [
            InboundFact(
                subject=Subject(hub_child_id=child),
                payload=consent("c1", "2024-09-02"),
                occurred_at=t1,
                source=Source(agency="local_authority"),
                ref="consent:c1",
            )
        ],
        actor="t",
        now=t1,
    )
    assert c.status == "appended"
    kinds = await audit_kinds(hub, child)
    assert ("release", "permit") in kinds

    before = await hub.handlers.review_consents(at=datetime(2025, 1, 10, tzinfo=UTC))
    assert before["expired"] == 0
    after = await hub.handlers.review_consents(at=datetime(2025, 7, 1, tzinfo=UTC))
    assert after["expired"] == 1
    state = await hub.views.consent_state(child)
    [record] = state.records
    assert record.ended_by == "expired"
    kinds = await audit_kinds(hub, child)
    assert kinds[-2:] == [("consent_change", "recorded"), ("redaction", "hidden")]
    assert await hub.handlers.review_consents(at=datetime(2025, 7, 2, tzinfo=UTC)) == {
        "expired": 0,
        "children_reviewed": 1,
    }


async def test_a_consent_whose_period_begins_later_releases_on_review(hub: Hub) -> None:
    subject = Subject(nhs_number="9434765919", date_of_birth=date(2015, 3, 2))
    t0 = datetime(2024, 9, 1, 9, tzinfo=UTC)
    joined = PractitionerJoined(
        practitioner_id="ot-1",
        role="occupational_therapist",
        agency="health",
        since=date(2024, 9, 1),
    )
    [out] = await hub.handlers.submit_facts([fact(joined, subject, "f1", t0)], actor="t", now=t0)
    child = out.child_id
    assert child
    await hub.handlers.submit_facts(
        [
            InboundFact(
                subject=Subject(hub_child_id=child),
                payload=consent("c2", "2024-10-01", end="2024-12-31", given_on="2024-09-01"),
                occurred_at=t0,
                source=Source(agency="local_authority"),
                ref="consent:c2",
            )
        ],
        actor="t",
        now=t0,
    )
    assert ("release", "permit") not in await audit_kinds(hub, child)  # not yet in force
    await hub.handlers.review_consents(at=datetime(2024, 10, 1, 12, tzinfo=UTC))
    assert ("release", "permit") in await audit_kinds(hub, child)
    result = await hub.handlers.review_consents(at=datetime(2025, 1, 2, tzinfo=UTC))
    assert result["expired"] == 1  # its period ended
