"""What every query needs: the read-side ports (`Reads`), the caller, the caseload check,
opening facts, and the audited read.

A child (or plan) the caller may not reach answers `NotFound`, the same as one that does
not exist, so a check never reveals that a child is known; the API maps it to 404.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.auth.principal import Principal
from hub.consent.audit_trail import AuditEntry, AuditTrail
from hub.consent.opener import EnvelopeOpener
from hub.consent.policy import SharingPolicy
from hub.consent.sealing import ErasedPayload
from hub.consent.viewer import DecisionCache, Viewer
from hub.errors import NotFound
from hub.events import Envelope
from hub.identity.person_index import PersonIndex
from hub.projections.caseload_view import plan_children
from hub.projections.team_around_child import SealedFact
from hub.service_layer.views import GateViews
from hub.store import ReadStore


@dataclass(frozen=True)
class Reads:
    """The ports the query layer reads through, built once by the composition root."""

    store: ReadStore
    views: GateViews
    opener: EnvelopeOpener
    persons: PersonIndex
    trail: AuditTrail
    policy: SharingPolicy
    decisions: DecisionCache = field(default_factory=dict)
    """View-time decisions kept across reads (see `hub.consent.viewer`)."""


async def viewer_for(
    reads: Reads, caller: Principal, now: datetime, children: Iterable[str], *, fresh: bool
) -> Viewer:
    """The caller as a viewer, with the children's consent states loaded (`fresh`: caught
    up first; else the caller has caught `consent_state` up already)."""
    viewer = Viewer(
        reads.policy, reads.decisions, role=caller.role.value, agency=caller.agency, now=now
    )
    wanted = sorted(set(children))
    if wanted:
        viewer.add(await reads.views.consent_states(wanted, fresh=fresh))
    return viewer


async def require_on_caseload(
    reads: Reads, caller: Principal, child_id: str, *, also: Sequence[str] = ()
) -> None:
    """`NotFound` unless the child exists and is on the caller's caseload. The caseload
    and the projections named in `also` (which the query reads next) are caught up on the
    child's partition first, together."""
    await reads.views.catch_up(["caseload", *also], [child_id])
    row = await reads.store.fetchone(
        "SELECT 1 FROM caseload WHERE coordinator = ? AND child_id = ?", (caller.name, child_id)
    )
    if row is None:
        raise NotFound("no such child on your caseload")


async def plan_on_caseload(
    reads: Reads, caller: Principal, plan_id: str, *, also: Sequence[str] = ()
) -> str:
    """The child of a plan on the caller's caseload, else `NotFound` (as for a missing
    plan); `also`: projections caught up on the child's partition with the caseload."""
    children = await plan_children(reads.store, plan_id)
    if not children:
        await reads.views.catch_up_partitions(["caseload_view"])
        children = await plan_children(reads.store, plan_id)
    for child in children:
        try:
            await require_on_caseload(reads, caller, child, also=also)
        except NotFound:
            continue
        return child
    raise NotFound("no such plan on your caseload")


async def open_facts(
    reads: Reads, facts: Sequence[SealedFact]
) -> list[tuple[SealedFact, Envelope]]:
    """Open (decrypt) the facts; what cannot be read any more (erased) is left out."""
    opened = await reads.opener.open_values([f.body for f in facts])
    return [
        (f, env)
        for f, env in zip(facts, opened, strict=True)
        if isinstance(env, Envelope) and not isinstance(env.payload, ErasedPayload)
    ]


async def audit_reads(
    reads: Reads,
    caller: Principal,
    route: str,
    now: datetime,
    shown: Sequence[tuple[str, Sequence[str], dict[str, Any]]],
) -> None:
    """One audited read per child: (child id, ids of the facts shown, extra details)."""
    if not shown:
        return
    await reads.trail.append(
        [
            AuditEntry(
                kind="read",
                actor=f"{caller.role}:{caller.name}",
                child_id=child,
                at=now,
                details={
                    "route": route,
                    "event_ids": list(ids),
                    "agency": caller.agency,
                    "outcome": "shown",
                    **extra,
                },
            )
            for child, ids, extra in shown
        ]
    )
