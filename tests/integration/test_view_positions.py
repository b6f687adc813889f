"""`GateViews.catch_up` says where the projections stand on the partitions asked about
when it found them current, and None when it had to apply something: so a query may keep
what it read from a projection under those positions (the same positions, the same rows),
and a new fact, or a rebuild, moves them."""

from __future__ import annotations

from pathlib import Path

from hub.log import LogName, partition_for
from tests.support.api import embedded, running_api
from tests.support.factories import joined, record_of


async def test_positions_move_with_every_apply_and_with_a_rebuild(tmp_path: Path) -> None:
    child = "hc-positions-1"
    async with running_api(embedded(tmp_path)) as api:
        views = api.hub.views
        await api.hub.log.append(LogName.EVENTS, [record_of(joined(child, "p1"))])
        assert await views.catch_up(["team_around_child"], [child]) is None  # applied now
        first = await views.catch_up(["team_around_child"], [child])
        assert first is not None and first == await views.catch_up(["team_around_child"], [child])
        assert {(p[0], p[1]) for p in first} == {("team_around_child", LogName.EVENTS.value)}

        await api.hub.log.append(LogName.EVENTS, [record_of(joined(child, "p2"))])
        assert await views.catch_up(["team_around_child"], [child]) is None
        second = await views.catch_up(["team_around_child"], [child])
        assert second is not None and second != first

        runner = next(r for r in api.hub.runners if r.name == "team_around_child")
        await runner.rebuild()
        rebuilt = await views.catch_up(["team_around_child"], [child])
        assert rebuilt is not None and rebuilt != second  # same offsets, a new generation
        assert [p[4] for p in rebuilt] == [p[4] for p in second]

        # only the partitions asked about
        n = api.hub.log.partitions(LogName.EVENTS)
        assert {p[2] for p in rebuilt} == {partition_for(child, n)}
        other = next(
            c
            for c in (f"hc-positions-{i}" for i in range(2, 100))
            if partition_for(c, n) != partition_for(child, n)
        )
        theirs = await views.catch_up(["team_around_child"], [other])
        assert theirs is not None and all(p[2] == partition_for(other, n) for p in theirs)
