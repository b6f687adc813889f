"""The audit trail as information governance reads it: one child's consent trail and
access log (a page at a time), and the trail for a period (for export). Each read is
itself audited. Also what IG checks the trail with (verification, the signed heads) and
before an erasure (whether the hub holds the child)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from hub.auth.principal import Principal
from hub.consent.audit_chain import VerifyResult
from hub.consent.audit_heads import HeadsExport
from hub.consent.audit_trail import AuditEntry
from hub.queries.context import Reads
from hub.queries.paging import decode_cursor, encode_cursor


@dataclass(frozen=True)
class TrailPage:
    """One page of a child's trail records, and the cursor of the next (none at the end)."""

    records: list[dict[str, Any]]
    next_cursor: str | None


TRAIL_LIMIT = 500
"""Records on one page of a child's trail unless the caller asks for another number."""
TRAIL_MAX_LIMIT = 5000
TRAIL_CURSOR = "child_trail"


async def child_trail_view(
    reads: Reads,
    caller: Principal,
    child_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    agency: str | None = None,
    outcome: str | None = None,
    kind: str | None = None,
    limit: int = TRAIL_LIMIT,
    cursor: str | None = None,
) -> TrailPage:
    """One child's trail records in order (filtered by time, agency and outcome), `limit`
    of them after `cursor` (a page's `next_cursor`): the trail's own order, its position
    on the audit log, which later records never change. `kind="read"` is the child's
    access log: every look at their record."""
    where, params = _where(child_id, since, until, agency, outcome)
    if kind is not None:
        where += " AND kind = ?"
        params.append(kind)
    if cursor is not None:
        part, offset = decode_cursor(TRAIL_CURSOR, cursor, (int, int))
        where += " AND (part > ? OR (part = ? AND log_offset > ?))"
        params += [part, part, offset]
    await reads.views.catch_up_partitions(["audit_index"])
    rows = await reads.store.fetchall(
        f"SELECT line, part, log_offset FROM audit_entry{where}"  # noqa: S608 - fixed clauses
        " ORDER BY part, log_offset LIMIT ?",
        [*params, limit + 1],
    )
    page = rows[:limit]
    records = [orjson.loads(bytes(r[0])) for r in page]
    next_cursor = None
    if len(rows) > limit:
        next_cursor = encode_cursor(TRAIL_CURSOR, [int(page[-1][1]), int(page[-1][2])])
    await reads.trail.append(
        [
            AuditEntry(
                kind="read",
                actor=caller.actor,
                child_id=child_id,
                details={
                    "route": "GET /audit/children/{id}",
                    "outcome": "shown",
                    "records": len(records),
                    **({"kind": kind} if kind else {}),
                },
            )
        ]
    )
    return TrailPage(records, next_cursor)


async def trail_lines(
    reads: Reads,
    caller: Principal,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[bytes]:
    """The stored trail records (canonical JSON lines) between two times, by time."""
    await reads.views.catch_up_partitions(["audit_index"])
    where, params = _where(None, since, until, None, None)
    rows = await reads.store.fetchall(
        f"SELECT line FROM audit_entry{where} ORDER BY at, part, log_offset",  # noqa: S608
        params,
    )
    await reads.trail.append(
        [
            AuditEntry(
                kind="read",
                actor=caller.actor,
                details={"route": "GET /audit/export", "outcome": "shown", "records": len(rows)},
            )
        ]
    )
    return [bytes(r[0]) for r in rows]


async def operator_child_trail(reads: Reads, child_id: str) -> list[dict[str, Any]]:
    """Every trail record about one child in the trail's order, for the operator's
    command line (`hub audit trail`), which reads the store itself and is not audited."""
    await reads.views.catch_up_partitions(["audit_index"])
    rows = await reads.store.fetchall(
        "SELECT line FROM audit_entry WHERE child_id = ? ORDER BY part, log_offset",
        (child_id,),
    )
    return [orjson.loads(bytes(r[0])) for r in rows]


def _where(
    child_id: str | None,
    since: datetime | None,
    until: datetime | None,
    agency: str | None,
    outcome: str | None,
) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if child_id is not None:
        clauses.append("child_id = ?")
        params.append(child_id)
    if since is not None:
        clauses.append("at >= ?")
        params.append(since.astimezone(UTC).isoformat().replace("+00:00", "Z"))
    if until is not None:
        clauses.append("at <= ?")
        params.append(until.astimezone(UTC).isoformat().replace("+00:00", "Z"))
    if agency is not None:
        clauses.append("agency = ?")
        params.append(agency)
    if outcome is not None:
        clauses.append("outcome = ?")
        params.append(outcome)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


async def holds_child(reads: Reads, child_id: str) -> bool:
    """Whether the hub holds a child by this id (known, and not erased already): what IG
    checks before confirming an erasure."""
    return await reads.persons.exists(child_id)


async def verify_trail(reads: Reads, exported: HeadsExport | None = None) -> VerifyResult:
    """The whole hash-chained trail verified (against heads exported earlier, if given):
    the first broken record and every chain that does not match."""
    return await reads.trail.verify(exported)


async def signed_heads(reads: Reads, *, shown_to: Principal | None = None) -> HeadsExport:
    """Every chain's signed head with the public key that checks them; shown to a person
    (`shown_to`), the read is audited."""
    heads = await reads.trail.signed_heads()
    if shown_to is not None:
        await reads.trail.append(
            [
                AuditEntry(
                    kind="read",
                    actor=shown_to.actor,
                    details={"route": "GET /audit/heads", "outcome": "shown"},
                )
            ]
        )
    return heads
