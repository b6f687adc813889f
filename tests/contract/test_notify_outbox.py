"""The `Outbox` contract: one suite, run unchanged against memory, SQLite and PostgreSQL.
A notice is kept once by id, claimed by one claimant at a time under a lease, marked only
by its claimant, retried when due, dead when told, held for a digest and digested once;
preferences are per recipient; a webhook's secret is kept sealed where it is stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from hub.notify.memory import MemoryOutbox
from hub.notify.model import Notice, Preference, digest_id, make_notice
from hub.notify.ports import Outbox
from hub.notify.secret_box import SecretBox, SecretUnreadable
from hub.store import ReadStore
from hub.store.notify_outbox import SqlOutbox
from tests.support.stores import started_store

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
BOX = SecretBox(bytes(range(32)))
SECRET = "whsec-a-signing-secret-of-the-agency"


class Outboxes:
    """An outbox and its storage (None in memory), to look beneath it."""

    def __init__(self, outbox: Outbox, store: ReadStore | None) -> None:
        self.outbox, self.store = outbox, store


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def boxes(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Outboxes]:
    if request.param == "memory":
        yield Outboxes(MemoryOutbox(), None)
        return
    async with started_store(request.param, request, tmp_path) as store:
        yield Outboxes(SqlOutbox(store, BOX), store)


@pytest.fixture
def outbox(boxes: Outboxes) -> Outbox:
    return boxes.outbox


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def stored(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Outboxes]:
    """The SQL outboxes alone: what they keep at rest."""
    async with started_store(request.param, request, tmp_path) as store:
        yield Outboxes(SqlOutbox(store, BOX), store)


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


async def test_a_notice_is_kept_once_however_often_it_is_added(outbox: Outbox) -> None:
    notices = _notices(5)
    assert await outbox.add(notices, T0) == 5
    assert await outbox.add([*notices, *notices], T0) == 0
    assert await outbox.counts() == {"pending": 5}


async def test_concurrent_claimants_never_share_a_notice(outbox: Outbox) -> None:
    await outbox.add(_notices(40), T0)
    claims = await asyncio.gather(*(outbox.claim(f"o{i}", T0, 60, 7) for i in range(8)))
    ids = [c.notice.id for batch in claims for c in batch]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert await outbox.claim("late", T0, 60, 10) == []


async def test_a_lapsed_lease_is_claimed_again_and_the_old_claimant_cannot_mark_it(
    outbox: Outbox,
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


async def test_a_failure_waits_for_its_next_attempt_or_is_dead(outbox: Outbox) -> None:
    a, b = _notices(2)
    await outbox.add([a, b], T0)
    await outbox.claim("o", T0, 30, 10)
    await outbox.failed(a.id, "o", "smtp: down", T0 + timedelta(minutes=5))
    await outbox.failed(b.id, "o", "no address", None)
    assert await outbox.claim("o", T0 + timedelta(minutes=4), 30, 10) == []
    [retry] = await outbox.claim("o", T0 + timedelta(minutes=5), 30, 10)
    assert retry.notice == a and retry.attempts == 2
    assert (await outbox.counts())["dead"] == 1


async def test_preferences_are_kept_per_recipient(outbox: Outbox) -> None:
    assert await outbox.preference("coordinator:a") is None
    await outbox.set_preference(Preference("coordinator:a", "email", "a@x.org"), T0)
    await outbox.set_preference(Preference("coordinator:a", "mailbox", None, True), T0)
    assert await outbox.preference("coordinator:a") == Preference(
        "coordinator:a", "mailbox", None, True
    )


async def test_held_notices_go_into_one_digest_a_day(outbox: Outbox) -> None:
    a, b, c = _notices(3)
    await outbox.add([a, b, c], T0)
    for claimed in await outbox.claim("o", T0, 30, 10):
        await outbox.hold(claimed.notice.id, "o")
    assert await outbox.held_recipients() == ["coordinator:a"]
    assert {n.id for n in await outbox.held("coordinator:a")} == {a.id, b.id, c.id}
    digest = Notice(
        id=digest_id("coordinator:a", T0.date()), kind="advice_due_soon",
        recipient="coordinator:a", child_id="-", plan_id=None, about=T0.date().isoformat(),
        due_on=None, link="/",
    )  # fmt: skip
    assert await outbox.digested(digest, [a.id, b.id, c.id], T0) == 3
    assert await outbox.digested(digest, [a.id, b.id, c.id], T0) == 0  # once a day
    assert {n.id for n in await outbox.digest_items(digest.id)} == {a.id, b.id, c.id}
    assert await outbox.held("coordinator:a") == [] and await outbox.held_recipients() == []
    assert await outbox.counts() == {"digested": 3, "pending": 1}
    [sending] = await outbox.claim("o", T0, 30, 10)  # the digest itself is then sent
    assert sending.notice.id == digest.id and sending.notice.kind == "digest"


async def test_a_dead_notice_can_be_revived_once(outbox: Outbox) -> None:
    [n] = _notices(1)
    await outbox.add([n], T0)
    await outbox.claim("o", T0, 30, 10)
    await outbox.failed(n.id, "o", "no address", None)
    assert await outbox.revive(n.id, T0) is True
    assert await outbox.revive(n.id, T0) is False  # not dead any more
    [again] = await outbox.claim("o", T0, 30, 10)
    assert again.attempts == 1  # counted afresh


async def test_only_the_claimant_marks_a_notice(outbox: Outbox) -> None:
    [n] = _notices(1)
    await outbox.add([n], T0)
    await outbox.claim("a", T0, 30, 10)
    await outbox.failed(n.id, "b", "not mine", None)
    await outbox.hold(n.id, "b")
    assert await outbox.counts() == {"sending": 1}
    assert await outbox.sent(n.id, "a", T0, "email") is True


async def test_a_webhook_is_kept_per_agency_with_its_secret(outbox: Outbox) -> None:
    assert await outbox.webhook("city-health") is None
    await outbox.set_webhook("city-health", "https://hooks.example.org/a", SECRET, T0)
    await outbox.set_webhook("oak-school", "https://hooks.example.org/b", SECRET + "2", T0)
    await outbox.set_webhook("city-health", "https://hooks.example.org/c", SECRET + "3", T0)
    assert await outbox.webhook("city-health") == ("https://hooks.example.org/c", SECRET + "3")
    assert await outbox.webhook_agencies() == ["city-health", "oak-school"]


async def test_a_webhook_secret_is_sealed_where_it_is_stored(stored: Outboxes) -> None:
    boxes = stored
    assert boxes.store is not None
    await boxes.outbox.set_webhook("city-health", "https://hooks.example.org/a", SECRET, T0)
    [(stored,)] = await boxes.store.fetchall("SELECT secret FROM notify_webhook")
    assert SECRET not in str(stored) and str(stored).startswith("sealed:v1:")
    # another master key cannot read it, nor can an outbox without one
    other = SqlOutbox(boxes.store, SecretBox(bytes(32)))
    with pytest.raises(SecretUnreadable):
        await other.webhook("city-health")
    with pytest.raises(SecretUnreadable):
        await SqlOutbox(boxes.store).webhook("city-health")
    # moved onto another agency's row, it does not open there
    await boxes.outbox.set_webhook("oak-school", "https://hooks.example.org/b", "x" * 20, T0)
    async with boxes.store.transaction() as tx:
        await tx.execute(
            "UPDATE notify_webhook SET secret = ? WHERE agency = 'oak-school'", (str(stored),)
        )
    with pytest.raises(SecretUnreadable):
        await boxes.outbox.webhook("oak-school")


async def test_a_secret_stored_before_sealing_still_reads(stored: Outboxes) -> None:
    boxes = stored
    assert boxes.store is not None
    async with boxes.store.transaction() as tx:
        await tx.execute(
            "INSERT INTO notify_webhook (agency, url, secret, updated_at) VALUES (?, ?, ?, ?)",
            ("county-sc", "https://hooks.example.org/s", SECRET, T0.isoformat()),
        )
    assert await boxes.outbox.webhook("county-sc") == ("https://hooks.example.org/s", SECRET)
