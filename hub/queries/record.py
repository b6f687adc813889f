"""A child's shared record and consent state, as the caller may see them now (audited)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from hub.auth.principal import Principal
from hub.consent.audit_trail import AuditEntry
from hub.consent.decision import Fact, decide_sharing
from hub.consent.sealing import ErasedPayload
from hub.consent.state import ConsentRecord
from hub.consent.viewer import SharingKey
from hub.errors import NotFound, PermanentError
from hub.ingest.natural_keys import fact_key, group_versions, version_rank
from hub.projections.gate_views import consent_children
from hub.queries.context import (
    Reads,
    audit_reads,
    children_in_reach,
    require_in_reach,
    viewer_for,
)
from hub.service_layer.reconsider import sharing_context, stored_fact


def sharing_key(fact: Fact) -> SharingKey:
    """What a view-time decision about `fact` depends on (see `hub.consent.viewer`)."""
    return (
        fact.category,
        fact.source_agency,
        fact.source_organisation,
        ",".join(fact.purposes),
        fact.basis_claimed,
    )


async def shared_record_view(reads: Reads, caller: Principal, child_id: str) -> dict[str, Any]:
    """The facts about a child the caller may see now, grouped by agency, each with the
    basis it is shared on."""
    await require_in_reach(reads, caller, child_id, also=("shared_record", "consent_state"))
    now = datetime.now(UTC)
    viewer = await viewer_for(reads, caller, now, [child_id], fresh=False)
    state = viewer.states[child_id]
    rows = await reads.store.fetchall(
        "SELECT event_id, body, purposes, basis_claimed FROM shared_fact WHERE child_id = ?"
        " ORDER BY occurred_at, part, log_offset",
        (child_id,),
    )
    by_agency: dict[str, list[dict[str, Any]]] = {}
    keys: dict[int, str | None] = {}
    ranks: dict[int, tuple[float, float]] = {}
    shown: list[str] = []
    for _event_id, body, purposes, basis in rows:
        data = orjson.loads(bytes(body))
        fact = stored_fact(data, *sharing_context(purposes, basis))
        if not viewer.sees_key(child_id, sharing_key(fact)):
            continue
        ground = (
            None
            if viewer.family_categories is not None  # the family's own right of access
            else decide_sharing(fact, state, reads.policy, at=now).ground_for(
                caller.viewer_role, caller.agency
            )
        )
        try:
            env = await reads.opener.open_value(bytes(body))
        except PermanentError:
            continue
        payload: dict[str, Any]
        if isinstance(env.payload, ErasedPayload):
            payload = {"erased": True}
        else:
            payload = env.payload.model_dump(mode="json")
        entry = {
            "event_id": str(env.event_id),
            "event_type": env.event_type,
            "category": env.category,
            "occurred_at": env.occurred_at.isoformat(),
            "recorded_at": env.recorded_at.isoformat(),
            "source": env.source.model_dump(mode="json"),
            "basis": None if ground is None else ground.model_dump(mode="json"),
            "payload": payload,
        }
        erased = isinstance(env.payload, ErasedPayload)
        keys[id(entry)] = None if erased else fact_key(env.source, env.payload)
        ranks[id(entry)] = version_rank(env.source)
        by_agency.setdefault(env.source.agency, []).append(entry)
        shown.append(str(env.event_id))
    for agency, entries in by_agency.items():
        by_agency[agency] = with_history(entries, keys, ranks)
    await audit_reads(reads, caller, "GET /children/{id}/record", now, [(child_id, shown, {})])
    return {
        "child_id": child_id,
        "as_of": now.isoformat(),
        "agencies": by_agency,
        "facts_shown": len(shown),
    }


def with_history(
    entries: list[dict[str, Any]],
    keys: dict[int, str | None],
    ranks: dict[int, tuple[float, float]] | None = None,
) -> list[dict[str, Any]]:
    """One entry per fact: versions of one fact (the same natural key, `hub.ingest.
    natural_keys`: a correction a later message made) show as the current one — the
    newest by the source's own versions (a FHIR resource's versionId, then lastUpdated),
    else the latest recorded — with the earlier ones under `history` (oldest first)."""
    ordered = sorted(entries, key=lambda e: e["recorded_at"])
    rank_of = None if ranks is None else (lambda e: ranks[id(e)])
    current = {
        id(now): [
            {k: v[k] for k in ("event_id", "occurred_at", "recorded_at", "source", "payload")}
            for v in earlier
        ]
        for now, earlier in group_versions(ordered, lambda e: keys[id(e)], rank_of)
    }
    return [{**e, "history": current[id(e)]} for e in entries if id(e) in current]


async def consent_records(
    reads: Reads, caller: Principal, child_id: str, *, route: str
) -> tuple[list[ConsentRecord], datetime]:
    """The child's recorded consents and refusals (one audited read through `route`)."""
    await require_in_reach(reads, caller, child_id)
    state = await reads.views.consent_state(child_id)
    now = datetime.now(UTC)
    await reads.trail.append(
        [
            AuditEntry(
                kind="read",
                actor=caller.actor,
                child_id=child_id,
                at=now,
                details={
                    "route": route,
                    "outcome": "shown",
                    "consent_ids": [r.consent_id for r in state.records],
                },
            )
        ]
    )
    return list(state.records), now


async def consents_view(reads: Reads, caller: Principal, child_id: str) -> dict[str, Any]:
    """The child's consent state in plain words."""
    records, now = await consent_records(
        reads, caller, child_id, route="GET /children/{id}/consents"
    )
    state = await reads.views.consent_state(child_id)
    rows = [
        {
            "consent_id": r.consent_id,
            "decision": r.decision,
            "status": r.status_at(now),
            "categories": list(r.consent.scope.categories),
            "purposes": list(r.consent.scope.purposes),
            "roles": list(r.consent.scope.roles),
            "period": r.consent.period.model_dump(mode="json"),
            "grantor_capacity": r.consent.grantor.capacity,
        }
        for r in records
    ]
    return {
        "child_id": child_id,
        "as_of": now.isoformat(),
        "summary": state.describe(now),
        "consents": rows,
    }


async def require_consent_in_reach(
    reads: Reads, caller: Principal, child_id: str, consent_id: str
) -> None:
    """`NotFound` unless the child is in the caller's reach and its consent state holds a
    consent of this id (what a family member may withdraw)."""
    await require_in_reach(reads, caller, child_id, also=("consent_state",))
    state = await reads.views.consent_state(child_id)
    if consent_id not in {r.consent_id for r in state.records}:
        raise NotFound("no such consent for this child")


async def child_has_consent(
    reads: Reads, caller: Principal, child_id: str, consent_id: str
) -> bool:
    """Whether the child holds a consent of this id as the consents index has it;
    `NotFound` for a child out of the caller's reach."""
    await require_in_reach(reads, caller, child_id)
    return child_id in await consent_children(reads.store, consent_id)


async def consent_children_in_reach(reads: Reads, caller: Principal, consent_id: str) -> list[str]:
    """The children in the caller's reach holding a consent of this id (consent ids are
    per child: another child's consent of this id is not looked at)."""
    return await children_in_reach(reads, caller, await consent_children(reads.store, consent_id))
