"""The withheld index reads two logs, which are followed independently when live and one
after the other in a rebuild: whichever comes first, a release marks its fact released and
an erasure drops what was recorded up to it, never what was recorded after it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.events import Envelope, Source, encode
from hub.events.education import SenStatusRecorded
from hub.events.identity import CategoryErased, ChildErased
from hub.events.team import PractitionerJoined
from hub.log import LogName, Position
from hub.projections.base import Applied
from hub.projections.gate_views import RELEASED_HEADER, WithheldIndexProjection
from hub.store import ReadStore
from tests.support.stores import started_store

T0 = datetime(2025, 3, 1, 9, tzinfo=UTC)
SRC = Source(agency="oak-school")


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ReadStore]:
    async with started_store(request.param, request, tmp_path) as s:
        yield s


def envelope(payload: Any, child: str, recorded: datetime, **fields: Any) -> Envelope:
    return Envelope.wrap(
        payload, child_id=child, source=SRC, occurred_at=T0, recorded_at=recorded, **fields
    )


def sen(child: str, recorded: datetime) -> Envelope:
    return envelope(
        SenStatusRecorded(sen_provision="K", start_date=date(2024, 9, 1)), child, recorded
    )


def member(child: str, recorded: datetime) -> Envelope:
    joined = PractitionerJoined.model_validate(
        {
            "practitioner_id": "p-1",
            "role": "paediatrician",
            "agency": "community-trust",
            "since": "2024-09-01",
        }
    )
    return envelope(joined, child, recorded, category="health")


def applied(log: LogName, offset: int, env: Envelope, *headers: tuple[str, bytes]) -> Applied:
    return Applied(env, log, Position(0, offset), encode(env), headers)


def stories() -> tuple[list[Applied], list[Applied]]:
    """hub.withheld and hub.events for two children: `a` has a health fact released and an
    education fact recorded before an education erasure and one after it; `b` is erased."""
    held_health = member("a", T0)
    held_before = sen("a", T0 + timedelta(hours=1))
    held_after = sen("a", T0 + timedelta(hours=3))
    held_b = sen("b", T0)
    withheld = [
        applied(LogName.WITHHELD, i, e)
        for i, e in enumerate([held_health, held_before, held_b, held_after])
    ]
    released = held_health.model_copy()  # the release re-appends the same fact
    erase_education = envelope(
        CategoryErased(erased_category="education", rule="retention"),
        "a",
        T0 + timedelta(hours=2),
    )
    erase_b = envelope(
        ChildErased(reason="request", requested_by="ig"), "b", T0 + timedelta(hours=2)
    )
    events = [
        applied(LogName.EVENTS, 0, released, (RELEASED_HEADER, b"hub.withheld/0:0")),
        applied(LogName.EVENTS, 1, erase_education),
        applied(LogName.EVENTS, 2, erase_b),
    ]
    return withheld, events


async def rows(store: ReadStore) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table in WithheldIndexProjection.tables:
        got = await store.fetchall(f"SELECT * FROM {table}")  # noqa: S608 - the test's own names
        out[table] = sorted(
            (tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in got), key=repr
        )
    return out


async def apply_in(store: ReadStore, batches: list[list[Applied]]) -> dict[str, list[Any]]:
    projection = WithheldIndexProjection()
    async with store.transaction() as tx:
        for table in projection.tables:
            await tx.execute(f"DELETE FROM {table}")  # noqa: S608 - the projection's own tables
    for batch in batches:
        async with store.transaction() as tx:
            await projection.apply(tx, batch)
    return await rows(store)


async def test_the_order_of_the_two_logs_does_not_matter(store: ReadStore) -> None:
    withheld, events = stories()
    held_first = await apply_in(store, [withheld, events])
    events_first = await apply_in(store, [events, withheld])
    interleaved = await apply_in(store, [[withheld[0]], events[:1], withheld[1:], events[1:]])
    assert held_first == events_first == interleaved

    facts = {(r[1], r[0]): r[-1] for r in held_first["withheld_fact"]}  # (child, id) -> released
    health, before, _, after = (str(a.envelope.event_id) for a in withheld)
    assert facts == {("a", health): 1, ("a", after): 0}, facts  # `before` and all of b are gone
    assert before not in {r[0] for r in held_first["withheld_fact"]}
