"""The projections the write side consults, brought up to date before it reads them.

A handler that decides from the consent state or the withheld index first asks
`GateViews` to catch those projections up on the children's partitions: one query reads
all their stored offsets, one log read per partition shows whether anything is new, and
only then does a runner apply what it missed. Consent states are folded from the
`consent_event` view (opened with the children's keys).

A catch-up that found nothing new says where the projections stand on the partitions it
was asked about (`Positions`: each one's generation and applied offset there). A
projection writes its rows and its offset in one transaction and its offset only grows
(a rebuild bumps the generation), so the same positions mean the same rows on those
partitions: a query may key what it read from them on the positions (`hub.queries`).
Where a log read is a round trip (Kafka: `reads_are_round_trips`), the log is asked from
where the projections stood at the last catch-up while the store is asked where they
stand now, and asked again only if they moved.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from hub.consent.opener import EnvelopeOpener
from hub.consent.state import ConsentState
from hub.errors import PermanentError
from hub.log import EventLog, LogName, StoredRecord, partition_for
from hub.projections.gate_views import consent_bodies
from hub.projections.runner import ProjectionRunner
from hub.store import ReadStore

Positions = tuple[tuple[str, str, int, int, int], ...]
"""(projection, log, partition, generation, applied offset), sorted, of each projection a
catch-up found current, on the partitions it was asked about (none applied yet: absent)."""


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
        self._lowest: dict[tuple[tuple[str, ...], LogName, int], int] = {}
        """Where the projections of each catch-up stood on each log partition last time."""

    async def catch_up(self, names: Iterable[str], children: Iterable[str]) -> Positions | None:
        """Bring the named projections up to date on the children's partitions; where
        they stand there when they were current already (else None)."""
        n = self.log.partitions(LogName.EVENTS)
        parts = sorted({partition_for(c, n) for c in children})
        if parts:
            return await self.catch_up_partitions(names, parts)
        return ()

    async def catch_up_partitions(
        self, names: Iterable[str], parts: Sequence[int] | None = None
    ) -> Positions | None:
        """Bring the named projections up to date on `parts` (None: every partition of
        every log they read). Usually they are current: one query reads all their stored
        offsets and one log read per partition (from the lowest of them, all at once)
        shows there is nothing new; only then does each runner catch up itself. Returns
        the projections' `Positions` on `parts` when nothing was new, else None."""
        runners = [self.runners[name] for name in dict.fromkeys(names)]
        if not runners:
            return ()
        who = tuple(r.name for r in runners)
        checks: list[tuple[LogName, int, list[ProjectionRunner]]] = []
        for log_name in dict.fromkeys(lg for r in runners for lg in r.projection.logs):
            readers = [r for r in runners if log_name in r.projection.logs]
            for part in range(self.log.partitions(log_name)) if parts is None else parts:
                checks.append((log_name, part, readers))
        guesses = [self._lowest.get((who, lg, part)) for lg, part, _ in checks]
        early: list[list[StoredRecord]] = []
        if getattr(self.log, "reads_are_round_trips", False) and None not in guesses:
            # a log read is a round trip (Kafka): ask the log from where the projections
            # stood last time while the store says where they stand now; a guess that
            # proves right saves a round trip, a wrong one is asked again below
            reads = asyncio.gather(
                *(
                    self.log.read(lg, part, guess + 1, 1)
                    for (lg, part, _), guess in zip(checks, guesses, strict=True)
                    if guess is not None
                )
            )
            (stored, generations), early = await asyncio.gather(
                _stored_positions(self.store, list(who)), reads
            )
        else:
            stored, generations = await _stored_positions(self.store, list(who))

        def lowest_of(log_name: LogName, part: int, readers: list[ProjectionRunner]) -> int:
            return min(stored.get((r.name, log_name.value, part), -1) for r in readers)

        async def behind(
            i: int, log_name: LogName, part: int, readers: list[ProjectionRunner]
        ) -> bool:
            lowest = lowest_of(log_name, part, readers)
            self._lowest[(who, log_name, part)] = lowest
            if early and guesses[i] == lowest:
                return bool(early[i])
            return bool(await self.log.read(log_name, part, lowest + 1, 1))

        if len(checks) == 1:  # one log partition (the usual read): no task to gather
            found = [await behind(0, *checks[0])]
        else:
            found = list(
                await asyncio.gather(*(behind(i, *check) for i, check in enumerate(checks)))
            )
        for (log_name, part, readers), new in zip(checks, found, strict=True):
            if new:  # else every one of them has applied all there is
                for runner in readers:
                    await runner.catch_up(log_name, part)
        if any(found):
            return None
        wanted = None if parts is None else set(parts)
        return tuple(
            sorted(
                (name, log_name, part, generations.get(name, 0), offset)
                for (name, log_name, part), offset in stored.items()
                if wanted is None or part in wanted
            )
        )

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


async def _stored_positions(
    store: ReadStore, names: Sequence[str]
) -> tuple[dict[tuple[str, str, int], int], dict[str, int]]:
    """Applied offset per (projection, log, partition) of the named projections, and each
    one's generation, in one query."""
    marks = ", ".join("?" for _ in names)
    rows = await store.fetchall(
        "SELECT o.projection, o.log, o.part, o.applied_offset, s.generation"  # noqa: S608 - placeholders only
        " FROM projection_offset o LEFT JOIN projection_state s ON s.projection = o.projection"
        f" WHERE o.projection IN ({marks})",
        list(names),
    )
    offsets = {(str(p), str(lg), int(pt)): int(o) for p, lg, pt, o, _ in rows}
    generations = {str(p): int(g) for p, _, _, _, g in rows if g is not None}
    return offsets, generations
