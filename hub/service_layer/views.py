"""The projections the write side consults, brought up to date before it reads them.

A handler that decides from the consent state or the withheld index first asks
`GateViews` to catch those projections up on the children's partitions: one query reads
all their stored offsets, one log read per partition shows whether anything is new, and
only then does a runner apply what it missed. Consent states are folded from the
`consent_event` view (opened with the children's keys).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from hub.consent.opener import EnvelopeOpener
from hub.consent.state import ConsentState
from hub.errors import PermanentError
from hub.log import EventLog, LogName, partition_for
from hub.projections.gate_views import consent_bodies
from hub.projections.runner import ProjectionRunner, stored_offsets
from hub.store import ReadStore


class GateViews:
    def __init__(
        self,
        log: EventLog,
        store: ReadStore,
        opener: EnvelopeOpener,
        runners: dict[str, ProjectionRunner],
    ) -> None:
        self.log = log
        self.store = store
        self.opener = opener
        self.runners = runners

    async def catch_up(self, names: Iterable[str], children: Iterable[str]) -> None:
        """Bring the named projections up to date on the children's partitions."""
        n = self.log.partitions(LogName.EVENTS)
        parts = sorted({partition_for(c, n) for c in children})
        if parts:
            await self.catch_up_partitions(names, parts)

    async def catch_up_partitions(
        self, names: Iterable[str], parts: Sequence[int] | None = None
    ) -> None:
        """Bring the named projections up to date on `parts` (None: every partition of
        every log they read). Usually they are current: one query reads all their stored
        offsets and one log read per partition (from the lowest of them, all at once)
        shows there is nothing new; only then does each runner catch up itself."""
        runners = [self.runners[name] for name in dict.fromkeys(names)]
        if not runners:
            return
        stored = await stored_offsets(self.store, [r.name for r in runners])
        checks: list[tuple[LogName, int, list[ProjectionRunner]]] = []
        for log_name in dict.fromkeys(lg for r in runners for lg in r.projection.logs):
            readers = [r for r in runners if log_name in r.projection.logs]
            for part in range(self.log.partitions(log_name)) if parts is None else parts:
                checks.append((log_name, part, readers))

        async def behind(log_name: LogName, part: int, readers: list[ProjectionRunner]) -> bool:
            lowest = min(stored.get((r.name, log_name.value, part), -1) for r in readers)
            return bool(await self.log.read(log_name, part, lowest + 1, 1))

        found = await asyncio.gather(*(behind(*check) for check in checks))
        for (log_name, part, readers), new in zip(checks, found, strict=True):
            if new:  # else every one of them has applied all there is
                for runner in readers:
                    await runner.catch_up(log_name, part)

    async def consent_state(self, child_id: str, *, fresh: bool = True) -> ConsentState:
        return (await self.consent_states([child_id], fresh=fresh))[child_id]

    async def consent_states(
        self, child_ids: Iterable[str], *, fresh: bool = True
    ) -> dict[str, ConsentState]:
        """Consent states of several children, with one catch-up per partition and one
        query per 500 children."""
        wanted = sorted(set(child_ids))
        if fresh:
            await self.catch_up(["consent_state"], wanted)
        out: dict[str, ConsentState] = {}
        for child, values in (await consent_bodies(self.store, wanted)).items():
            opened = await self.opener.open_values(values)
            out[child] = ConsentState.fold(
                child, [e for e in opened if not isinstance(e, PermanentError)]
            )
        return out
