"""The `IngestClaims` contract: one suite, run unchanged against memory, SQLite and
PostgreSQL. Two takers of one key: the first claim holds, the second is told whose it is;
a claim its taker never marked appended may be taken over after the lease."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.ingest.claims import LEASE, Claim, IngestClaims, MemoryIngestClaims, ours
from tests.support.stores import started_store

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def claims(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IngestClaims]:
    if request.param == "memory":
        yield MemoryIngestClaims()
        return
    from hub.store.claims import SqlIngestClaims

    async with started_store(request.param, request, tmp_path) as store:
        yield SqlIngestClaims(store)


def claim(key: str, event_id: str, at: datetime = NOW) -> Claim:
    return Claim(key, event_id, "hc-1", at)


async def test_the_first_claim_of_a_key_holds_and_the_second_learns_its_holder(
    claims: IngestClaims,
) -> None:
    first = await claims.claim([claim("school|m1|f1", "e1"), claim("school|m1|f2", "e2")])
    assert ours([claim("school|m1|f1", "e1"), claim("school|m1|f2", "e2")], first) == {
        "school|m1|f1",
        "school|m1|f2",
    }
    again = [claim("school|m1|f1", "e9"), claim("school|m1|f3", "e3")]
    second = await claims.claim(again)
    assert second["school|m1|f1"].event_id == "e1"
    assert ours(again, second) == {"school|m1|f3"}
    held = await claims.holders(["school|m1|f1", "school|m1|f2", "school|m1|f3", "nope"])
    assert {k: c.event_id for k, c in held.items()} == {
        "school|m1|f1": "e1",
        "school|m1|f2": "e2",
        "school|m1|f3": "e3",
    }


async def test_concurrent_claims_of_one_key_give_it_to_exactly_one(claims: IngestClaims) -> None:
    results = await asyncio.gather(
        *(claims.claim([claim("fhir|b1|Patient/1", f"e{i}")]) for i in range(8))
    )
    holders = {r["fhir|b1|Patient/1"].event_id for r in results}
    assert len(holders) == 1
    winners = [i for i, r in enumerate(results) if r["fhir|b1|Patient/1"].event_id == f"e{i}"]
    assert len(winners) == 1


async def test_a_marked_claim_holds_for_good_and_is_not_released(claims: IngestClaims) -> None:
    await claims.claim([claim("k", "e1")])
    await claims.mark_appended(["k"], ["e1"])
    await claims.release(["k"], ["e1"])
    late = await claims.claim([claim("k", "e2", NOW + LEASE * 10)])
    assert late["k"].event_id == "e1"
    assert late["k"].appended


async def test_a_released_claim_can_be_claimed_again(claims: IngestClaims) -> None:
    await claims.claim([claim("k", "e1")])
    await claims.release(["k"], ["e1"])
    assert await claims.holders(["k"]) == {}
    assert (await claims.claim([claim("k", "e2")]))["k"].event_id == "e2"


async def test_only_the_holder_can_mark_or_release_a_claim(claims: IngestClaims) -> None:
    await claims.claim([claim("k", "e1")])
    await claims.mark_appended(["k"], ["e2"])
    await claims.release(["k"], ["e2"])
    held = (await claims.holders(["k"]))["k"]
    assert (held.event_id, held.appended) == ("e1", False)


async def test_an_unmarked_claim_is_taken_over_only_after_the_lease(claims: IngestClaims) -> None:
    await claims.claim([claim("k", "e1")])
    early = await claims.claim([claim("k", "e2", NOW + LEASE - timedelta(seconds=1))])
    assert early["k"].event_id == "e1"
    assert not early["k"].stale(NOW + LEASE - timedelta(seconds=1))
    assert early["k"].stale(NOW + LEASE + timedelta(seconds=1))
    late = await claims.claim([claim("k", "e3", NOW + LEASE + timedelta(seconds=1))])
    assert late["k"].event_id == "e3"


async def test_a_consent_id_is_scoped_to_its_child(claims: IngestClaims) -> None:
    assert await claims.claim_consent_id("consent-7", "hc-1") == "hc-1"
    assert await claims.claim_consent_id("consent-7", "hc-1") == "hc-1"
    # another child's consent of the same id is its own: not refused, not revealed
    assert await claims.claim_consent_id("consent-7", "hc-2") == "hc-2"
    both = await asyncio.gather(
        claims.claim_consent_id("consent-8", "hc-3"), claims.claim_consent_id("consent-8", "hc-4")
    )
    assert both == ["hc-3", "hc-4"]


async def test_a_claim_racing_the_holders_marks_and_releases_never_deadlocks(
    claims: IngestClaims,
) -> None:
    """A taker's claim locks every key it meets, held or not; the holder marking or
    releasing the same keys in another order must wait, not deadlock (PostgreSQL: two
    API processes sent one message; CI once answered 500 "deadlock detected")."""
    for r in range(12):
        keys = [f"fhir|m{r}|Observation/{i:03d}" for i in range(60)]
        mine = [claim(k, f"b{r}-{i}") for i, k in enumerate(keys)]
        await claims.claim(mine)  # held by "b", not yet appended
        half = len(keys) // 2
        backwards = list(reversed(keys))  # the holder's facts in their own order
        ids = {c.dedupe_key: c.event_id for c in mine}
        theirs = [claim(k, f"a{r}-{i}") for i, k in enumerate(keys)]
        await asyncio.gather(
            claims.claim(theirs),
            claims.mark_appended(backwards[:half], [ids[k] for k in backwards[:half]]),
            claims.release(backwards[half:], [ids[k] for k in backwards[half:]]),
        )
        held = await claims.holders(keys)
        for k in backwards[:half]:  # marked: held by "b" for good
            assert held[k].event_id == ids[k] and held[k].appended
        for i, k in enumerate(keys):
            if k in backwards[half:]:  # released: free, or "a"'s if released before its claim
                assert k not in held or held[k].event_id == f"a{r}-{i}"
