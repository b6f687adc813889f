"""The `MatchQueue` contract: one suite, run unchanged against memory, SQLite and
PostgreSQL. An item holds a record a person must match: its subject sealed with the
provisional child's key (unreadable once that key is shredded or the item decided), the
facts it holds (each fact held by one item, counted once), the candidates; demographic
fingerprints are keyed hashes, the same for every queue on one key store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from hub.consent.crypto import KeyStore, MasterKey, MemoryKeyStore
from hub.consent.opener import data_key_id
from hub.identity.match_queue import (
    ITEM_PREFIX,
    PROVISIONAL_PREFIX,
    MatchQueue,
    MemoryMatchQueue,
    QueueItem,
    Unlinked,
)
from hub.identity.subject import Subject
from hub.store import ReadStore
from tests.support.stores import started_store

MASTER = MasterKey(bytes(range(32)))
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SUBJECT = Subject(
    given_name="Zoë", family_name="Quillfeather", date_of_birth=date(2015, 3, 2), postcode="AB1 2CD"
)


class Queues:
    """A queue, its key store, and a way to build another queue over the same storage
    (a second process, or a restart)."""

    def __init__(self, queue: MatchQueue, keys: KeyStore, store: ReadStore | None) -> None:
        self.queue, self.keys, self._store = queue, keys, store

    def another(self) -> MatchQueue:
        if self._store is None:
            return MemoryMatchQueue(self.keys)
        from hub.store.match_queue import SqlMatchQueue

        return SqlMatchQueue(self._store, self.keys)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def queues(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Queues]:
    if request.param == "memory":
        keys = MemoryKeyStore(MASTER)
        yield Queues(MemoryMatchQueue(keys), keys, None)
        return
    from hub.store.keystore import SqlKeyStore
    from hub.store.match_queue import SqlMatchQueue

    async with started_store(request.param, request, tmp_path) as store:
        sql_keys = SqlKeyStore(store, MASTER)
        yield Queues(SqlMatchQueue(store, sql_keys), sql_keys, store)


@pytest.fixture
def queue(queues: Queues) -> MatchQueue:
    return queues.queue


async def enqueue(
    queue: MatchQueue,
    keys: list[str],
    *,
    now: datetime = NOW,
    subject: Subject = SUBJECT,
    types: dict[str, int] | None = None,
) -> QueueItem:
    item, _ = await queue.enqueue(
        subject,
        Unlinked("identity_conflict", ("hc-a", "hc-b")),
        agency="city-health",
        message_id="bundle-1",
        dedupe_keys=keys,
        held_types=types or {"education.sen_status_recorded": len(set(keys))},
        now=now,
    )
    return item


async def test_an_enqueued_record_is_a_pending_item_with_a_provisional_child(
    queue: MatchQueue,
) -> None:
    item = await enqueue(queue, ["k1", "k2", "k2"])
    assert item.item_id.startswith(ITEM_PREFIX)
    assert item.provisional_child_id.startswith(PROVISIONAL_PREFIX)
    assert item.item_id.removeprefix(ITEM_PREFIX) == item.provisional_child_id.removeprefix(
        PROVISIONAL_PREFIX
    )
    assert (item.status, item.reason, item.rule, item.candidates) == (
        "pending",
        "identity_conflict",
        None,
        ("hc-a", "hc-b"),
    )
    assert (item.agency, item.message_id, item.created_at) == (
        "city-health",
        "bundle-1",
        NOW.isoformat(),
    )
    assert (item.facts_held, item.held_types) == (2, {"education.sen_status_recorded": 2})
    assert item.decision is None and item.resolved_child_id is None
    assert await queue.get(item.item_id) == item
    assert await queue.items() == [item]
    assert await queue.get("mq-nope") is None


async def test_the_subject_is_sealed_with_the_provisional_childs_key(queues: Queues) -> None:
    item = await enqueue(queues.queue, ["k1"])
    assert b"Quillfeather" not in item.sealed_subject
    assert await queues.queue.open_subject(item) == SUBJECT
    assert await queues.another().open_subject(item) == SUBJECT
    await queues.keys.delete(data_key_id(item.provisional_child_id, "identity"))
    assert await queues.queue.open_subject(item) is None


async def test_a_fact_belongs_to_the_first_item_that_holds_it(queue: MatchQueue) -> None:
    first = await enqueue(queue, ["k1", "k2"])
    second = await enqueue(queue, ["k3"], now=NOW + timedelta(seconds=1))
    assert (await queue.item_for_keys(["k2"])) == first
    assert (await queue.item_for_keys(["k3"])) == second
    # facts of two items: the one of lower id answers (ids are time-ordered to the ms)
    lower = min(first, second, key=lambda i: i.item_id)
    assert (await queue.item_for_keys(["zz", "k3", "k1"])) == lower
    assert await queue.item_for_keys(["zz"]) is None
    assert await queue.item_for_keys([]) is None


async def test_queueing_facts_another_item_holds_gives_that_item(queue: MatchQueue) -> None:
    first = await enqueue(queue, ["k1", "k2"])
    again, created = await queue.enqueue(
        SUBJECT, Unlinked("no_identifier", ()), agency="city-health", message_id="bundle-1",
        dedupe_keys=["k2", "k9"], held_types={"education.sen_status_recorded": 2}, now=NOW,
    )  # fmt: skip
    assert (again.item_id, created) == (first.item_id, False)
    assert len(await queue.items()) == 1


async def test_more_facts_of_an_item_are_counted_once(queue: MatchQueue) -> None:
    item = await enqueue(queue, ["k1"], types={"a": 1})
    other = await enqueue(queue, ["k9"], types={"a": 1})
    await queue.add_facts(item.item_id, ["k1", "k2", "k3", "k9"], {"a": 1, "b": 2})
    grown = await queue.get(item.item_id)
    assert grown is not None
    assert (grown.facts_held, grown.held_types) == (3, {"a": 2, "b": 2})
    await queue.add_facts(item.item_id, ["k1", "k2"], {"a": 5})
    assert await queue.get(item.item_id) == grown  # nothing new
    assert await queue.item_for_keys(["k9"]) == other


async def test_items_are_listed_in_the_order_they_were_queued(queue: MatchQueue) -> None:
    late = await enqueue(queue, ["k3"], now=NOW + timedelta(minutes=2))
    early = await enqueue(queue, ["k1"], now=NOW)
    middle = await enqueue(queue, ["k2"], now=NOW + timedelta(minutes=1))
    assert [i.item_id for i in await queue.items()] == [
        early.item_id,
        middle.item_id,
        late.item_id,
    ]
    assert [i.item_id for i in await queue.items(limit=2)] == [early.item_id, middle.item_id]
    await queue.mark_resolved(
        middle.item_id, decision="link", child_id="hc-a", actor="coordinator:casey", now=NOW
    )
    assert [i.item_id for i in await queue.items()] == [early.item_id, late.item_id]
    assert [i.item_id for i in await queue.items(status="resolved")] == [middle.item_id]
    assert len(await queue.items(status=None)) == 3


async def test_items_after_a_position_page_through_the_queue_once_each(
    queue: MatchQueue,
) -> None:
    # two items queued at the same instant are told apart by their ids
    queued = [
        await enqueue(queue, [f"k{i}"], now=NOW + timedelta(minutes=i // 2)) for i in range(5)
    ]
    order = sorted(queued, key=lambda i: (i.created_at, i.item_id))
    seen: list[str] = []
    after: tuple[str, str] | None = None
    while True:
        page = await queue.items(limit=2, after=after)
        if not page:
            break
        seen += [i.item_id for i in page]
        after = (page[-1].created_at, page[-1].item_id)
    assert seen == [i.item_id for i in order]
    await queue.mark_resolved(
        order[1].item_id, decision="link", child_id="hc-a", actor="coordinator:casey", now=NOW
    )
    first = (order[0].created_at, order[0].item_id)
    assert [i.item_id for i in await queue.items(after=first)] == [i.item_id for i in order[2:]]
    assert [i.item_id for i in await queue.items(status="resolved", after=first)] == [
        order[1].item_id
    ]


async def test_a_decision_is_recorded_and_the_sealed_subject_dropped(queue: MatchQueue) -> None:
    item = await enqueue(queue, ["k1"])
    later = NOW + timedelta(hours=1)
    await queue.mark_resolved(
        item.item_id, decision="keep_separate", child_id="hc-new", actor="x" * 300, now=later
    )
    done = await queue.get(item.item_id)
    assert done is not None
    assert (done.status, done.decision, done.resolved_child_id) == (
        "resolved",
        "keep_separate",
        "hc-new",
    )
    assert (done.resolved_by, done.resolved_at) == ("x" * 256, later.isoformat())
    assert await queue.open_subject(done) is None  # even though its key is still there
    assert await queue.item_for_keys(["k1"]) == done


async def test_a_fingerprint_is_a_keyed_hash_of_the_normalised_name_and_date_of_birth(
    queues: Queues,
) -> None:
    queue = queues.queue
    fingerprint = await queue.fingerprint(SUBJECT)
    assert fingerprint is not None and len(fingerprint) == 64
    assert "quillfeather" not in fingerprint.lower()
    same = SUBJECT.model_copy(update={"given_name": " ZOE ", "family_name": "Quill-Feather"})
    assert await queue.fingerprint(same) == fingerprint
    assert await queues.another().fingerprint(SUBJECT) == fingerprint  # one secret per hub
    born_later = SUBJECT.model_copy(update={"date_of_birth": date(2015, 3, 3)})
    assert await queue.fingerprint(born_later) != fingerprint
    other_keys = MemoryMatchQueue(MemoryKeyStore(MASTER))
    assert await other_keys.fingerprint(SUBJECT) != fingerprint
    for missing in ("given_name", "family_name", "date_of_birth"):
        assert await queue.fingerprint(SUBJECT.model_copy(update={missing: None})) is None
    assert await queue.fingerprint(SUBJECT.model_copy(update={"given_name": "--"})) is None


async def test_children_seen_with_a_fingerprint_are_remembered(queue: MatchQueue) -> None:
    fingerprint = await queue.fingerprint(SUBJECT)
    assert fingerprint is not None
    assert await queue.children_with(fingerprint) == ()
    await queue.remember([(fingerprint, "hc-2"), (fingerprint, "hc-1"), (fingerprint, "hc-1")])
    await queue.remember([("f" * 64, "hc-3")])
    await queue.remember([])
    assert await queue.children_with(fingerprint) == ("hc-1", "hc-2")
    assert await queue.children_with(None) == ()


async def test_an_erased_childs_fingerprints_are_forgotten(queue: MatchQueue) -> None:
    fingerprint = await queue.fingerprint(SUBJECT)
    assert fingerprint is not None
    await queue.remember([(fingerprint, "hc-1"), (fingerprint, "hc-2"), ("f" * 64, "hc-1")])
    await queue.forget("hc-1")
    assert await queue.children_with(fingerprint) == ("hc-2",)
    assert await queue.children_with("f" * 64) == ()
