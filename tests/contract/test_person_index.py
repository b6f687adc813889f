"""The `PersonIndex` contract: one suite, run unchanged against memory, SQLite and
PostgreSQL. A strong identifier names one child: the first sight creates the child and
every later one finds it; identifiers of two children are a conflict, never a merge; a
person's link gives a child only identifiers nobody holds; erasure forgets a child's
identifiers and date of birth and remembers that they were erased. Two writers seeing
one new NHS number at once make one child — on PostgreSQL, two separate stores (two
pools, as two processes would have)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest

from hub.identity.identifiers import Identifier, check_nhs_number, check_upn
from hub.identity.person_index import MemoryPersonIndex, PersonIndex
from tests.support.factories import nhs_number, upn
from tests.support.stores import started_store

SECRET = b"person-index-contract"


def nhs(n: int) -> Identifier:
    return check_nhs_number(nhs_number(n))


def pupil(n: int) -> Identifier:
    return check_upn(upn(n))


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def indexes(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[PersonIndex, PersonIndex]]:
    """Two views of one index: on PostgreSQL two separate stores (as two processes
    have); on memory and SQLite (one writing process) the same instance twice."""
    if request.param == "memory":
        index = MemoryPersonIndex(SECRET)
        yield index, index
        return
    from hub.store.person_index import SqlPersonIndex

    async with started_store(request.param, request, tmp_path) as store:
        if request.param != "postgres":
            index = SqlPersonIndex(store, SECRET)
            yield index, index
            return
        async with started_store(request.param, request, tmp_path) as other:
            yield SqlPersonIndex(store, SECRET), SqlPersonIndex(other, SECRET)


@pytest.fixture
def index(indexes: tuple[PersonIndex, PersonIndex]) -> PersonIndex:
    return indexes[0]


async def test_a_new_identifier_creates_a_child_once_and_then_finds_it(
    index: PersonIndex,
) -> None:
    first = await index.resolve([nhs(1)])
    assert first.created and first.child_id is not None and first.conflict is None
    assert first.child_id.startswith("hc-")
    assert first.linked == [nhs(1)]
    assert await index.exists(first.child_id)
    assert await index.lookup(nhs(1)) == first.child_id

    again = await index.resolve([nhs(1)])
    assert (again.child_id, again.created, again.linked) == (first.child_id, False, [])


async def test_a_new_identifier_beside_a_known_one_is_linked_to_that_child(
    index: PersonIndex,
) -> None:
    child = (await index.resolve([nhs(1)])).child_id
    both = await index.resolve([nhs(1), pupil(1)])
    assert (both.child_id, both.created, both.linked) == (child, False, [pupil(1)])
    assert await index.lookup(pupil(1)) == child
    assert (await index.resolve([pupil(1)])).child_id == child


async def test_identifiers_of_two_children_conflict_and_link_nothing(index: PersonIndex) -> None:
    a = (await index.resolve([nhs(1)])).child_id
    b = (await index.resolve([pupil(2)])).child_id
    assert a != b
    clash = await index.resolve([nhs(1), pupil(2), nhs(3)])
    assert clash.child_id is None and not clash.created and clash.conflict
    assert await index.lookup(nhs(3)) is None
    assert (await index.lookup(nhs(1)), await index.lookup(pupil(2))) == (a, b)


async def test_resolving_without_create_finds_but_never_makes_a_child(index: PersonIndex) -> None:
    nothing = await index.resolve([nhs(5)], create=False)
    assert (nothing.child_id, nothing.created, nothing.conflict) == (None, False, None)
    assert await index.lookup(nhs(5)) is None
    child = (await index.resolve([nhs(5)])).child_id
    assert (await index.resolve([nhs(5)], create=False)).child_id == child


async def test_no_identifier_resolves_to_no_child(index: PersonIndex) -> None:
    none = await index.resolve([])
    assert none.child_id is None and not none.created and none.conflict


async def test_a_link_gives_a_child_only_the_identifiers_nobody_holds(index: PersonIndex) -> None:
    a = (await index.resolve([nhs(1)])).child_id
    await index.ensure("hc-by-decision")
    linked = await index.link([nhs(1), nhs(2), pupil(3)], "hc-by-decision")
    assert linked == [nhs(2), pupil(3)]
    assert await index.lookup(nhs(1)) == a
    assert await index.lookup(nhs(2)) == "hc-by-decision"
    assert await index.link([nhs(2)], "hc-by-decision") == []
    assert (await index.resolve([pupil(3)])).child_id == "hc-by-decision"


async def test_ensure_makes_a_child_known_once(index: PersonIndex) -> None:
    assert not await index.exists("hc-new")
    await index.ensure("hc-new")
    await index.ensure("hc-new")
    assert await index.exists("hc-new")
    assert await index.date_of_birth("hc-new") is None


async def test_a_date_of_birth_is_recorded_for_a_known_child_only(index: PersonIndex) -> None:
    child = (await index.resolve([nhs(1)])).child_id
    other = (await index.resolve([nhs(2)])).child_id
    assert child is not None and other is not None
    assert await index.date_of_birth(child) is None
    await index.set_date_of_birth(child, date(2015, 3, 2))
    await index.set_date_of_birth(child, date(2015, 3, 3))
    await index.set_date_of_birth("hc-unknown", date(2016, 1, 1))
    assert await index.date_of_birth(child) == date(2015, 3, 3)
    assert await index.date_of_birth("hc-unknown") is None
    assert not await index.exists("hc-unknown")
    assert await index.children_with_dob() == [(child, date(2015, 3, 3))]


async def test_erasure_forgets_the_child_and_suppresses_its_identifiers(
    index: PersonIndex,
) -> None:
    child = (await index.resolve([nhs(1), pupil(1)])).child_id
    kept = (await index.resolve([nhs(2)])).child_id
    assert child is not None and kept is not None
    await index.set_date_of_birth(child, date(2015, 3, 2))
    await index.set_date_of_birth(kept, date(2016, 4, 5))
    assert not await index.suppressed([nhs(1)])

    await index.erase(child)

    assert not await index.exists(child)
    assert await index.lookup(nhs(1)) is None and await index.lookup(pupil(1)) is None
    assert await index.date_of_birth(child) is None
    assert await index.children_with_dob() == [(kept, date(2016, 4, 5))]
    assert await index.suppressed([nhs(1)])
    assert await index.suppressed([nhs(9), pupil(1)])
    assert not await index.suppressed([nhs(2)])
    assert not await index.suppressed([])
    assert await index.exists(kept) and await index.lookup(nhs(2)) == kept
    # the index never links an erased child again (the gate refuses suppressed ones first)
    assert (await index.resolve([nhs(1)])).child_id != child


async def test_two_writers_seeing_one_new_identifier_at_once_make_one_child(
    indexes: tuple[PersonIndex, PersonIndex],
) -> None:
    one, other = indexes
    for n in range(20):
        if n % 2:  # two identifiers, named in opposite orders by the two writers
            a, b = await asyncio.gather(
                one.resolve([nhs(100 + n), pupil(100 + n)]),
                other.resolve([pupil(100 + n), nhs(100 + n)]),
            )
        else:
            a, b = await asyncio.gather(one.resolve([nhs(100 + n)]), other.resolve([nhs(100 + n)]))
        assert a.child_id is not None and a.child_id == b.child_id, n
        assert [a.created, b.created].count(True) == 1, n
        assert await one.lookup(nhs(100 + n)) == await other.lookup(nhs(100 + n)) == a.child_id
