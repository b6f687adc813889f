"""What notices are derived from, kept from the log (`notify_outbox` projection).

- `notify_source`: each event a notice is told of: a key worker handover started
  (`team.key_worker_handover_started`), consent recorded or withdrawn.
- `notify_child`: every child the log names, with each agency that published about it
  and the day it was first seen (a child no coordinator holds is told to coordinators;
  an agency's webhook hears of the children it publishes about).

Reads envelopes only (`metadata_only`): ids, types, sources and dates, never a sealed
field. The notices themselves are derived from these tables and the caseload by the
notifier (`hub.service_layer.notify`) into `notify_outbox`, which is not this
projection's: a rebuild must not send anything again. An erasure tombstone drops the
child's rows here and its notices not yet sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hub.events.identity import ChildErased
from hub.log import LogName
from hub.projections.base import Applied
from hub.store import Tx

SOURCE_KINDS = {
    "team.key_worker_handover_started": "key_worker_handover",
    "consent.recorded": "consent_changed",
    "consent.withdrawn": "consent_changed",
}


class NotifyOutboxProjection:
    metadata_only = True
    name = "notify_outbox"
    logs: tuple[LogName, ...] = (LogName.EVENTS,)
    tables: tuple[str, ...] = ("notify_source", "notify_child")

    async def apply(self, tx: Tx, events: Sequence[Applied]) -> None:
        sources: list[tuple[Any, ...]] = []
        children: dict[tuple[str, str], str] = {}
        for a in events:
            env = a.envelope
            if isinstance(env.payload, ChildErased):
                await self._flush(tx, sources, children)
                sources, children = [], {}
                await self._erase(tx, env.child_id)
                continue
            day = env.recorded_at.date().isoformat()
            children.setdefault((env.child_id, env.source.agency), day)
            kind = SOURCE_KINDS.get(env.event_type)
            if kind is not None:
                sources.append((str(env.event_id), env.child_id, kind, day))
        await self._flush(tx, sources, children)

    @staticmethod
    async def _flush(
        tx: Tx, sources: list[tuple[Any, ...]], children: dict[tuple[str, str], str]
    ) -> None:
        await tx.executemany(
            "INSERT INTO notify_source (event_id, child_id, kind, occurred_on)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            sources,
        )
        await tx.executemany(
            "INSERT INTO notify_child (child_id, agency, first_seen) VALUES (?, ?, ?)"
            " ON CONFLICT (child_id, agency) DO NOTHING",
            [(c, ag, day) for (c, ag), day in children.items()],
        )

    @staticmethod
    async def _erase(tx: Tx, child_id: str) -> None:
        for sql in (
            "DELETE FROM notify_source WHERE child_id = ?",
            "DELETE FROM notify_child WHERE child_id = ?",
            "DELETE FROM notify_outbox WHERE child_id = ? AND status <> 'sent'",
        ):
            await tx.execute(sql, (child_id,))
