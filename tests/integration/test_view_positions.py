"""`GateViews.catch_up` says where the projections stand on the partitions asked about
when it found them current, and None when it had to apply something: so a query may keep
what it read from a projection under those positions (the same positions, the same rows),
and a new fact, or a rebuild, moves them. On Kafka the log is asked from where the
projections stood last time beside the store: a record appended since is still seen."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.bootstrap import Hub, open_hub
from hub.log import LogName, partition_for
from hub.settings import Settings
from tests.support.factories import joined, record_of
from tests.support.stores import backend_options

COMBOS = [("sqlite", "sqlite"), ("kafka", "postgres")]


@pytest.fixture(params=COMBOS, ids=[f"{a}-log+{b}-store" for a, b in COMBOS])
async def hub(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Hub]:
    options = backend_options(request, *request.param)
    the_hub = await open_hub(Settings(data_dir=tmp_path / "data", _env_file=None, **options))
    try:
        yield the_hub
    finally:
        await the_hub.close()


async def test_positions_move_with_every_apply_and_with_a_rebuild(hub: Hub) -> None:
    child = "hc-positions-1"
    views = hub.views
    await hub.log.append(LogName.EVENTS, [record_of(joined(child, "p1"))])
    assert await views.catch_up(["team_around_child"], [child]) is None  # applied now
    first = await views.catch_up(["team_around_child"], [child])
    assert first is not None and first == await views.catch_up(["team_around_child"], [child])
    assert {(p[0], p[1]) for p in first} == {("team_around_child", LogName.EVENTS.value)}

    for practitioner in ("p2", "p3"):  # each new record is seen by the next catch-up
        await hub.log.append(LogName.EVENTS, [record_of(joined(child, practitioner))])
        assert await views.catch_up(["team_around_child"], [child]) is None
    second = await views.catch_up(["team_around_child"], [child])
    assert second is not None and second != first
    rows = await hub.store.fetchall(
        "SELECT subject_ref FROM tac_fact WHERE child_id = ? ORDER BY log_offset", (child,)
    )
    assert [r[0] for r in rows] == ["p1", "p2", "p3"]

    runner = next(r for r in hub.runners if r.name == "team_around_child")
    await runner.rebuild()
    rebuilt = await views.catch_up(["team_around_child"], [child])
    if rebuilt is None:  # the rebuild left the replay to the catch-up
        rebuilt = await views.catch_up(["team_around_child"], [child])
    assert rebuilt is not None and rebuilt != second  # the same offsets, a new generation
    assert [p[4] for p in rebuilt] == [p[4] for p in second]

    # only the partitions asked about
    n = hub.log.partitions(LogName.EVENTS)
    assert {p[2] for p in rebuilt} == {partition_for(child, n)}
    other = next(
        c
        for c in (f"hc-positions-{i}" for i in range(2, 100))
        if partition_for(c, n) != partition_for(child, n)
    )
    theirs = await views.catch_up(["team_around_child"], [other])
    assert theirs is not None and all(p[2] == partition_for(other, n) for p in theirs)
