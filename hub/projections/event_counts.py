"""The event-counts projection: how many events of each type each child has.

Small on purpose: it proves the runner (exactly-once effects, rebuild equals live) before
the team-around-the-child and plan-timeline projections arrive.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from hub.events.identity import ChildErased
from hub.log import LogName
from hub.projections.base import Applied
from hub.store import Tx


class EventCountsProjection:
    name = "event_counts"
    logs: tuple[LogName, ...] = (LogName.EVENTS,)
    tables: tuple[str, ...] = ("event_counts",)

    async def apply(self, tx: Tx, events: Sequence[Applied]) -> None:
        counts: Counter[tuple[str, str]] = Counter()
        for a in events:
            child = a.envelope.child_id
            if isinstance(a.envelope.payload, ChildErased):
                # an erasure tombstone drops the child's counts (even those of this batch)
                await tx.execute("DELETE FROM event_counts WHERE child_id = ?", (child,))
                counts = Counter({k: n for k, n in counts.items() if k[0] != child})
                continue
            counts[(child, a.envelope.event_type)] += 1
        await tx.executemany(
            "INSERT INTO event_counts (child_id, event_type, n) VALUES (?, ?, ?)"
            " ON CONFLICT (child_id, event_type) DO UPDATE SET n = event_counts.n + excluded.n",
            [(c, t, n) for (c, t), n in counts.items()],
        )
