"""The outbox on each read store: a notice kept once by id, claimed by one claimant at a
time under a lease, marked only by its claimant, retried when due, dead when told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from hub.notify.model import Preference, make_notice
from hub.store.notify_outbox import SqlOutbox
from tests.support.stores import started_store

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlOutbox]:
    async with started_store(request.param, request, tmp_path) as store:
        yield SqlOutbox(store)


def _notices(n: int) -> list:
    return [
        make_notice(
            "milestone_overdue",
            "coordinator:a",
            f"hc-{i}",
            f"k{i}",
            plan_id=f"p-{i}",
            due_on=date(2026, 11, 1),
        )
        for i in range(n)
    ]


async def test_a_notice_is_kept_once_however_often_it_is_added(outbox: SqlOutbox) -> None:
    notices = _notices(5)
    assert await outbox.add(notices, T0) == 5
    assert await outbox.add([*notices, *notices], T0) == 0
    assert await outbox.counts() == {"pending": 5}


async def test_concurrent_claimants_never_share_a_notice(outbox: SqlOutbox) -> None:
    await outbox.add(_notices(40), T0)
    claims = await asyncio.gather(*(outbox.claim(f"o{i}", T0, 60, 7) for i in range(8)))
    ids = [c.notice.id for batch in claims for c in batch]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert await outbox.claim("late", T0, 60, 10) == []


async def test_a_lapsed_lease_is_claimed_again_and_the_old_claimant_cannot_mark_it(
    outbox: SqlOutbox,
) -> None:
    [n] = _notices(1)
    await outbox.add([n], T0)
    [first] = await outbox.claim("a", T0, 30, 10)
    assert first.attempts == 1
    assert await outbox.claim("b", T0 + timedelta(seconds=29), 30, 10) == []
    [again] = await outbox.claim("b", T0 + timedelta(seconds=31), 30, 10)
    assert again.notice == n and again.attempts == 2
    assert await outbox.sent(n.id, "a", T0, "email") is False
    assert await outbox.sent(n.id, "b", T0, "email") is True
    assert await outbox.counts() == {"sent": 1}


async def test_a_failure_waits_for_its_next_attempt_or_is_dead(outbox: SqlOutbox) -> None:
    a, b = _notices(2)
    await outbox.add([a, b], T0)
    await outbox.claim("o", T0, 30, 10)
    await outbox.failed(a.id, "o", "smtp: down", T0 + timedelta(minutes=5))
    await outbox.failed(b.id, "o", "no address", None)
    assert await outbox.claim("o", T0 + timedelta(minutes=4), 30, 10) == []
    [retry] = await outbox.claim("o", T0 + timedelta(minutes=5), 30, 10)
    assert retry.notice == a and retry.attempts == 2
    assert (await outbox.counts())["dead"] == 1


async def test_preferences_are_kept_per_recipient(outbox: SqlOutbox) -> None:
    assert await outbox.preference("coordinator:a") is None
    await outbox.set_preference(Preference("coordinator:a", "email", "a@x.org"), T0)
    await outbox.set_preference(Preference("coordinator:a", "mailbox", None, True), T0)
    assert await outbox.preference("coordinator:a") == Preference(
        "coordinator:a", "mailbox", None, True
    )
