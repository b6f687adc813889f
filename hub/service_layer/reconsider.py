"""After a consent change: release the withheld facts a consent now covers, in their
original order, and audit the facts in the shared record it no longer covers.

Each release is claimed (idempotency key `hub|release|<withheld event id>`, held by the
release's own id) before it is appended, so two processes reconsidering one child at once
release a fact once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import orjson

from hub.consent.audit_trail import AuditEntry, AuditTrail
from hub.consent.decision import Fact, decide_sharing
from hub.consent.policy import SharingPolicy
from hub.consent.state import ConsentState
from hub.events.envelope import DEFAULT_PURPOSES, new_event_id, upcast_envelope_data
from hub.ingest.claims import Claim, IngestClaims, ours
from hub.log import EventLog, LogName, NewRecord
from hub.projections.gate_views import (
    RELEASED_HEADER,
    WithheldRow,
    shared_rows,
    withheld_rows,
)
from hub.service_layer.views import GateViews
from hub.store import ReadStore


def sharing_context(
    purposes: bytes | str | None, basis: bytes | str | None
) -> tuple[tuple[str, ...], str | None]:
    """The purposes and claimed basis of a stored fact as a view's columns hold them
    (comma-separated purposes, absent: the defaults)."""
    if isinstance(purposes, bytes):
        purposes = purposes.decode()
    if isinstance(basis, bytes):
        basis = basis.decode()
    return tuple((purposes or ",".join(DEFAULT_PURPOSES)).split(",")), basis or None


def stored_fact(data: dict[str, object], purposes: Sequence[str], basis: str | None) -> Fact:
    """The fact of a view's row: its stored record's JSON, and the row's sharing columns
    (used when the record is of envelope version 1, which carries no sharing context)."""
    return Fact.from_stored(data, purposes=purposes, basis_claimed=basis)


class ReconsiderWithheld:
    def __init__(
        self,
        *,
        log: EventLog,
        store: ReadStore,
        trail: AuditTrail,
        policy: SharingPolicy,
        views: GateViews,
        claims: IngestClaims,
    ) -> None:
        self.log = log
        self.store = store
        self.trail = trail
        self.policy = policy
        self.views = views
        self.claims = claims

    async def __call__(self, child_id: str, actor: str, now: datetime | None = None) -> None:
        await self.views.catch_up(["consent_state", "withheld_index", "shared_record"], [child_id])
        state = await self.views.consent_state(child_id, fresh=False)
        now = now or datetime.now(UTC)
        released: list[tuple[Claim, NewRecord, AuditEntry]] = []
        for row in await withheld_rows(self.store, child_id, unreleased=True):
            release = self._release(row, state, actor, now)
            if release is not None:
                released.append(release)
        wanted = [c for c, _, _ in released]
        won = ours(wanted, await self.claims.claim(wanted))
        released = [r for r in released if r[0].dedupe_key in won]
        audit = [a for _, _, a in released]
        hidden = await self._now_hidden(child_id, state, now)
        if hidden:
            audit.append(
                AuditEntry(
                    kind="redaction",
                    actor=actor,
                    child_id=child_id,
                    at=now,
                    details={
                        "event_ids": hidden,
                        "outcome": "hidden",
                        "reason": "no consent or statutory basis covers these facts any more",
                    },
                )
            )
        if audit:
            await self.trail.append(audit)
        if released:
            claims = [c for c, _, _ in released]
            keys, ids = [c.dedupe_key for c in claims], [c.event_id for c in claims]
            try:
                await self.log.append(LogName.EVENTS, [r for _, r, _ in released])  # in order
            except BaseException:
                await self.claims.release(keys, ids)
                raise
            await self.claims.mark_appended(keys, ids)

    def _release(
        self, row: WithheldRow, state: ConsentState, actor: str, now: datetime
    ) -> tuple[Claim, NewRecord, AuditEntry] | None:
        data = upcast_envelope_data(orjson.loads(row.body), row.headers)
        decision = decide_sharing(Fact.from_stored(data), state, self.policy, at=now)
        if not decision.permitted:
            return None
        data["consent"] = {
            "decision_id": str(decision.decision_id),
            "lawful_basis": decision.lawful_basis,
        }
        where = f"{row.part}:{row.offset}"
        record = NewRecord(
            key=state.child_id,
            value=orjson.dumps(data),
            headers=(*row.headers, (RELEASED_HEADER, where.encode())),
        )
        entry = AuditEntry(
            kind="release",
            actor=actor,
            child_id=state.child_id,
            at=now,
            details={
                "decision_id": str(decision.decision_id),
                "event_id": row.event_id,
                "outcome": "permit",
                "relied_on": decision.lawful_basis,
                "reason": decision.reason,
                "withheld_at": where,
            },
        )
        # the released record keeps the fact's event id; the claim holds this release's own
        # id, so that of several takers releasing the same fact exactly one wins
        release_id = f"release:{new_event_id()}"
        claim = Claim(f"hub|release|{row.event_id}", release_id, state.child_id, now)
        return claim, record, entry

    async def _now_hidden(self, child_id: str, state: ConsentState, now: datetime) -> list[str]:
        """Facts in the shared record no coordinator may see any more."""
        out = []
        for body, purposes_text, basis in await shared_rows(self.store, child_id):
            data = orjson.loads(body)
            purposes, basis = sharing_context(purposes_text, basis)
            fact = stored_fact(data, purposes, basis)
            if not decide_sharing(fact, state, self.policy, at=now).allows("coordinator"):
                out.append(str(data["event_id"]))
        return out
