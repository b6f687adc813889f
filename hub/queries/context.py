"""What every query needs: the read-side ports (`Reads`), the caller, the reach check,
opening facts, and the audited read.

Who reaches which child: a coordinator the children on their caseload; a practitioner
the children whose team they are on now (their last `team.practitioner_joined` not
followed by `team.practitioner_left`, as the team projection holds them); a family member
the one child their credential is bound to. Nobody else reaches any child's record. A
child (or plan) the caller may not reach answers `NotFound`, the same as one that does
not exist, so a check never reveals that a child is known; the API maps it to 404.

What a query reads from a projection on a child's partition is the same as long as the
projection stands where it stood (`hub.service_layer.views.Positions`): so the reach, the
consent state and the team's stored facts are kept in the memo (`Reads.opened`) under the
positions that `require_in_reach` caught up to, and read again only when one of them
moved. Decisions are still made now, for this caller, on every read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.auth.principal import Principal, Role
from hub.consent.audit_trail import AuditEntry, AuditTrail
from hub.consent.opener import SEALED_MARK, EnvelopeOpener
from hub.consent.policy import SharingPolicy
from hub.consent.sealing import ErasedPayload
from hub.consent.state import ConsentState
from hub.consent.viewer import DecisionCache, Viewer
from hub.errors import NotFound
from hub.events import Envelope
from hub.events.consent import ConsentRecorded
from hub.identity.match_queue import MatchQueue
from hub.identity.person_index import PersonIndex
from hub.projections.caseload_view import plan_children
from hub.projections.gate_views import consent_bodies
from hub.projections.team_around_child import SealedFact
from hub.queries.opened import OpenedFacts
from hub.service_layer.views import GateViews, Positions
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
    matches: MatchQueue
    """The match queue (what people decide from, and the name and date-of-birth search)."""
    decisions: DecisionCache = field(default_factory=dict)
    """View-time decisions kept across reads (see `hub.consent.viewer`)."""
    opened: OpenedFacts = field(default_factory=OpenedFacts)
    """Facts opened before, by fact id, body and key (see `hub.queries.opened`)."""


async def viewer_for(
    reads: Reads,
    caller: Principal,
    now: datetime,
    children: Iterable[str],
    *,
    fresh: bool,
    positions: Positions | None = None,
) -> Viewer:
    """The caller as a viewer, with the children's consent states loaded (`fresh`: caught
    up first; else the caller has caught `consent_state` up already, to `positions` when
    it says so). A practitioner is judged in their policy role; a family member by the
    policy's family access."""
    viewer = Viewer(
        reads.policy,
        reads.decisions,
        role=caller.viewer_role,
        agency=caller.agency,
        now=now,
        family_role=caller.viewer_role if caller.role is Role.FAMILY else None,
    )
    wanted = sorted(set(children))
    if wanted:
        viewer.add(await consent_states(reads, wanted, fresh=fresh, positions=positions))
    return viewer


CONSENT_CATEGORY = ConsentRecorded.category
"""The data category consent events are filed and sealed under (every consent type's)."""


async def consent_states(
    reads: Reads, children: Sequence[str], *, fresh: bool, positions: Positions | None = None
) -> dict[str, ConsentState]:
    """The children's consent states (`fresh`: caught up first), as `GateViews` folds
    them; a state folded before from exactly the same stored consent events, opened with
    the same data key (sealed ones: the child's `identity` key, which erasure deletes), is
    taken from the memo, without reading them again when the caller caught
    `consent_state` up to `positions` itself (not `fresh`) and the state was kept at those."""
    if fresh:  # (a caseload's many children: the memo by positions is for one child's read)
        await reads.views.catch_up(["consent_state"], children)
        positions = None
    out: dict[str, ConsentState] = {}
    at = {c: (c, "consent_state_at", positions) for c in children} if positions else {}
    for child, key in at.items():
        kept = reads.opened.row(key)
        if isinstance(kept, ConsentState):
            out[child] = kept
    missing = [c for c in children if c not in out]
    if not missing:
        return out
    for child, values in (await consent_bodies(reads.store, missing)).items():
        sealed = any(SEALED_MARK in v for v in values)
        data_key = await reads.opener.data_key(child, CONSENT_CATEGORY) if sealed else None
        by_values = (child, "consent_state", data_key, *values)
        kept = reads.opened.view(by_values)
        if isinstance(kept, ConsentState):
            state = kept
        else:
            opened = await reads.opener.open_values(values)
            state = ConsentState.fold(child, [e for e in opened if isinstance(e, Envelope)])
            if sealed and data_key is None:  # the key is gone (erased): nothing is kept
                out[child] = state
                continue
            reads.opened.keep_view(by_values, state)
        if child in at:
            reads.opened.keep_row(at[child], state)
        out[child] = state
    return out


MEMBERSHIP_EVENTS = ("team.practitioner_joined", "team.practitioner_left")


async def _on_team(reads: Reads, practitioner_id: str, child_id: str) -> bool:
    row = await reads.store.fetchone(
        "SELECT event_type FROM tac_fact WHERE subject_ref = ? AND child_id = ?"
        " AND event_type IN (?, ?) ORDER BY part DESC, log_offset DESC LIMIT 1",
        (practitioner_id, child_id, *MEMBERSHIP_EVENTS),
    )
    return row is not None and row[0] == MEMBERSHIP_EVENTS[0]


async def teams_of(reads: Reads, practitioner_id: str) -> list[str]:
    """The children whose team the practitioner is on now (the team projection caught up
    on every partition first), in child id order."""
    await reads.views.catch_up_partitions(["team_around_child"])
    rows = await reads.store.fetchall(
        "SELECT child_id, event_type FROM tac_fact WHERE subject_ref = ? AND event_type IN"
        " (?, ?) ORDER BY child_id, part, log_offset",
        (practitioner_id, *MEMBERSHIP_EVENTS),
    )
    last: dict[str, str] = {}
    for child, event_type in rows:
        last[str(child)] = str(event_type)
    return sorted(c for c, t in last.items() if t == MEMBERSHIP_EVENTS[0])


async def in_reach(
    reads: Reads, caller: Principal, child_id: str, positions: Positions | None = None
) -> bool:
    """Whether the caller reaches the child now (the projections it rests on caught up,
    to `positions` when the caller says so: an answer kept at those is taken again)."""
    key = (child_id, "in_reach", caller.role, caller.name, caller.practitioner_id, positions)
    if positions is not None and caller.role is not Role.FAMILY:
        kept = reads.opened.row(key)
        if isinstance(kept, bool):
            return kept
        reached = await in_reach(reads, caller, child_id)
        reads.opened.keep_row(key, reached)
        return reached
    if caller.role is Role.COORDINATOR:
        row = await reads.store.fetchone(
            "SELECT 1 FROM caseload WHERE coordinator = ? AND child_id = ?",
            (caller.name, child_id),
        )
        return row is not None
    if caller.role is Role.PRACTITIONER and caller.practitioner_id:
        return await _on_team(reads, caller.practitioner_id, child_id)
    if caller.role is Role.FAMILY:
        return caller.acts_for(child_id) and await reads.persons.exists(child_id)
    return False


async def children_in_reach(
    reads: Reads, caller: Principal, candidates: Sequence[str]
) -> list[str]:
    """Those of the candidates the caller reaches now, in child id order (the projection
    each role's reach rests on caught up first): a coordinator's caseload in batches of
    500, the teams a practitioner is on, a family member's own children that exist."""
    unique = sorted(set(candidates))
    if not unique:
        return []
    if caller.role is Role.COORDINATOR:
        await reads.views.catch_up(["caseload"], unique)
        reached: set[str] = set()
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = await reads.store.fetchall(
                f"SELECT child_id FROM caseload WHERE coordinator = ? AND child_id IN ({marks})",  # noqa: S608 - placeholders
                (caller.name, *chunk),
            )
            reached.update(str(r[0]) for r in rows)
        return sorted(reached)
    if caller.role is Role.PRACTITIONER and caller.practitioner_id:
        teams = set(await teams_of(reads, caller.practitioner_id))
        return [c for c in unique if c in teams]
    if caller.role is Role.FAMILY:
        own = [c for c in unique if caller.acts_for(c)]
        return sorted(await reads.persons.existing(own)) if own else []
    return []


REACH_VIEWS: dict[Role, str] = {
    Role.COORDINATOR: "caseload",
    Role.PRACTITIONER: "team_around_child",
}
"""The projection each role's reach is read from (a family's is its credential)."""


async def require_in_reach(
    reads: Reads, caller: Principal, child_id: str, *, also: Sequence[str] = ()
) -> Positions | None:
    """`NotFound` unless the caller reaches the child (see the module's docstring). The
    projection the reach rests on and those named in `also` (which the query reads next)
    are caught up on the child's partition first, together; returns where they stand
    there (None when the catch-up applied something: then nothing is kept under it)."""
    reach_view = REACH_VIEWS.get(caller.role)
    names = list(dict.fromkeys([*([reach_view] if reach_view else []), *also]))
    positions = await reads.views.catch_up(names, [child_id]) if names else None
    if not await in_reach(reads, caller, child_id, positions):
        raise NotFound("no such child in your reach")
    return positions


async def plan_in_reach(
    reads: Reads, caller: Principal, plan_id: str, *, also: Sequence[str] = ()
) -> str:
    """The child of a plan the caller reaches, else `NotFound` (as for a missing plan)."""
    children = await plan_children(reads.store, plan_id)
    if not children:
        await reads.views.catch_up_partitions(["caseload_view"])
        children = await plan_children(reads.store, plan_id)
    for child in children:
        try:
            await require_in_reach(reads, caller, child, also=also)
        except NotFound:
            continue
        return child
    raise NotFound("no such plan in your reach")


async def open_facts(
    reads: Reads, facts: Sequence[SealedFact]
) -> list[tuple[SealedFact, Envelope]]:
    """Open (decrypt) the facts; what cannot be read any more (erased) is left out. A fact
    opened before with the same body and the same data key is taken from the memo."""
    keys: dict[tuple[str, str], bytes | None] = {}
    found: list[Envelope | None] = []
    for f in facts:
        key = None
        if SEALED_MARK in f.body:
            kid = (f.child_id, f.category)
            if kid not in keys:
                keys[kid] = await reads.opener.data_key(*kid)
            key = keys[kid]
        found.append(reads.opened.get(f.event_id, f.body, key))
    missed = [i for i, env in enumerate(found) if env is None]
    if missed:
        opened = await reads.opener.open_values([facts[i].body for i in missed])
        for i, env in zip(missed, opened, strict=True):
            if isinstance(env, Envelope) and not isinstance(env.payload, ErasedPayload):
                f = facts[i]
                key = keys.get((f.child_id, f.category)) if SEALED_MARK in f.body else None
                reads.opened.put(f.event_id, f.child_id, f.body, key, env)
                found[i] = env
    return [(f, env) for f, env in zip(facts, found, strict=True) if env is not None]


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
                actor=caller.actor,
                child_id=child,
                at=now,
                details={
                    "route": route,
                    "event_ids": list(ids),
                    "agency": caller.agency,
                    **({"as": caller.viewer_role} if caller.viewer_role != caller.role else {}),
                    "outcome": "shown",
                    **extra,
                },
            )
            for child, ids, extra in shown
        ]
    )
