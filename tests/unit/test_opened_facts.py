"""The read side's memo of opened facts (`hub.queries.opened`, used by `open_facts`): a
fact opened before is given back only with the same body and the same data key, so a
deleted key (erasure, retention) hides it on the very next read; `forget_child` drops
everything kept of one child; the memo is bounded. And a SQLite read on the loop's
thread never waits for a lock (`inline_read`): it says so, and the store reads on its
reader thread instead."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from hub.consent.crypto import MasterKey, MemoryKeyStore
from hub.consent.opener import EnvelopeOpener, data_key_id
from hub.consent.sealing import seal_envelope
from hub.errors import PermanentError
from hub.events import Envelope, Source, encode
from hub.events.education import PupilIdentified
from hub.events.envelope import EventPayload
from hub.events.team import PractitionerJoined
from hub.projections.team_around_child import SealedFact
from hub.queries.context import Reads, open_facts
from hub.queries.opened import OpenedFacts
from hub.sqlite_support import connect, connect_inline, inline_read

AT = datetime(2024, 9, 2, 9, tzinfo=UTC)
PUPIL = PupilIdentified(upn="H801200001001", forename="Sam", surname="Example", gender="M")
JOINED = PractitionerJoined(
    practitioner_id="p-1", role="orthotist", agency="health", since=date(2024, 1, 10)
)


class CountingOpener(EnvelopeOpener):
    """The real opener, counting the records it is asked to open."""

    opened = 0

    async def open_values(self, values: Sequence[bytes]) -> list[Envelope | PermanentError]:
        self.opened += len(values)
        return await super().open_values(values)


async def fact(keys: MemoryKeyStore, payload: EventPayload, child: str) -> SealedFact:
    env = Envelope.wrap(payload, child_id=child, source=Source(agency="oak"), occurred_at=AT)
    key = await keys.create(data_key_id(child, env.category))
    body = orjson.dumps(seal_envelope(orjson.loads(encode(env)), key))
    return SealedFact(
        event_id=str(env.event_id),
        child_id=child,
        event_type=env.event_type,
        category=env.category,
        agency="oak",
        organisation=None,
        occurred_at=AT.isoformat(),
        purposes=("plan_delivery",),
        basis_claimed=None,
        body=body,
    )


def reads_with(opener: EnvelopeOpener, memo: OpenedFacts) -> Reads:
    """`open_facts` reads through the opener and the memo only."""
    unused: dict[str, Any] = dict.fromkeys(
        ("store", "views", "persons", "trail", "policy", "matches")
    )
    return Reads(opener=opener, opened=memo, **unused)


async def test_a_fact_opened_before_comes_from_the_memo_until_its_key_is_deleted() -> None:
    keys = MemoryKeyStore(MasterKey(bytes(range(32))))
    opener = CountingOpener(keys)
    reads = reads_with(opener, OpenedFacts())
    facts = [await fact(keys, PUPIL, "hc-1"), await fact(keys, JOINED, "hc-2")]

    first = await open_facts(reads, facts)
    again = await open_facts(reads, facts)

    assert [e for _, e in again] == [e for _, e in first]
    assert [e.payload for _, e in first] == [PUPIL, JOINED]
    assert opener.opened == 2  # the second read opened nothing
    await keys.delete(data_key_id("hc-1", PUPIL.category))
    after = await open_facts(reads, facts)
    assert [e.payload for _, e in after] == [JOINED]  # hc-1's erased facts are gone at once
    assert opener.opened == 3


async def test_another_body_under_the_same_fact_id_is_opened_again() -> None:
    keys = MemoryKeyStore(MasterKey(bytes(range(32))))
    opener = CountingOpener(keys)
    reads = reads_with(opener, OpenedFacts())
    pupil = await fact(keys, PUPIL, "hc-1")
    await open_facts(reads, [pupil])
    other = await fact(keys, PUPIL.model_copy(update={"forename": "Alex"}), "hc-1")
    swapped = SealedFact(**{**_fields(pupil), "body": other.body})

    [(_, env)] = await open_facts(reads, [swapped])

    assert env.payload.forename == "Alex"  # type: ignore[attr-defined]
    assert opener.opened == 2


def _fields(f: SealedFact) -> dict[str, Any]:
    return {name: getattr(f, name) for name in SealedFact.__slots__}


async def test_forget_child_drops_the_childs_facts_and_views_only() -> None:
    keys = MemoryKeyStore(MasterKey(bytes(range(32))))
    memo = OpenedFacts()
    reads = reads_with(CountingOpener(keys), memo)
    await open_facts(reads, [await fact(keys, PUPIL, "hc-1"), await fact(keys, PUPIL, "hc-2")])
    memo.keep_view(("hc-1", "team"), "a view of hc-1")
    memo.keep_view(("hc-2", "team"), "a view of hc-2")
    memo.keep_row(("hc-1", "team_facts", ()), ("a row of hc-1",))
    memo.keep_row(("hc-2", "team_facts", ()), ("a row of hc-2",))

    memo.forget_child("hc-1")

    assert len(memo) == 1
    assert memo.view(("hc-1", "team")) is None
    assert memo.view(("hc-2", "team")) == "a view of hc-2"
    assert memo.row(("hc-1", "team_facts", ())) is None
    assert memo.row(("hc-2", "team_facts", ())) == ("a row of hc-2",)


async def test_the_memo_is_bounded() -> None:
    keys = MemoryKeyStore(MasterKey(bytes(range(32))))
    memo = OpenedFacts(size=2, views_size=1, rows_size=1)
    reads = reads_with(CountingOpener(keys), memo)
    await open_facts(reads, [await fact(keys, PUPIL, f"hc-{i}") for i in range(5)])
    memo.keep_view(("hc-1", "team"), 1)
    memo.keep_view(("hc-2", "team"), 2)
    memo.keep_row(("hc-1", "in_reach"), True)
    memo.keep_row(("hc-2", "in_reach"), False)

    assert len(memo) == 2
    assert memo.view(("hc-1", "team")) is None and memo.view(("hc-2", "team")) == 2
    assert memo.row(("hc-1", "in_reach")) is None and memo.row(("hc-2", "in_reach")) is False


def test_a_read_on_the_loop_thread_never_waits_for_a_lock(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    writer = connect(path, "NORMAL")
    writer.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    writer.execute("INSERT INTO t VALUES ('a')")
    writer.close()
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO t VALUES ('b')")  # holds the database exclusively
    inline = connect_inline(path)

    assert inline_read(inline, "SELECT k FROM t", ()) is None  # would wait: hand it off

    holder.execute("COMMIT")
    holder.close()
    assert inline_read(inline, "SELECT k FROM t ORDER BY k", ()) == [("a",), ("b",)]
    assert inline_read(inline, "SELECT k FROM t ORDER BY k", (), one=True) == [("a",)]
    try:
        inline.execute("INSERT INTO t VALUES ('c')")
    except sqlite3.OperationalError as exc:
        assert "readonly" in str(exc).lower()
    else:
        raise AssertionError("the loop thread's connection wrote")


def test_a_kept_view_is_written_as_json_once_as_fastapi_would_write_it() -> None:
    from pydantic import BaseModel, Field, TypeAdapter

    class View(BaseModel):
        child_id: str
        shown: int = Field(alias="facts_shown")

    memo = OpenedFacts()
    view = View(child_id="hc-1", facts_shown=2)
    body = memo.json_of("hc-1", view)

    assert body == TypeAdapter(View).dump_json(view, by_alias=True)  # a response_model's bytes
    assert memo.json_of("hc-1", view) is body  # the same view: not written again
    other = View(child_id="hc-1", facts_shown=3)
    assert memo.json_of("hc-1", other) != body
    memo.forget_child("hc-1")
    assert memo.json_of("hc-1", view) is not body
