"""Information-governance routes and erasure.

`GET /audit/children/{id}` shows one child's consent trail and access log (filter by
date, agency, outcome; a page at a time, by cursor); `GET /audit/export` streams the
trail as JSON lines or CSV; `GET /audit/verify` re-derives every hash of the stored trail,
names the first record that does not fit and every chain that does not match its signed
head (truncated, deleted, head edited); `GET /audit/heads` exports the signed heads with
the public key, for IG to keep and check offline. `POST /children/{id}/erase` (IG auditor or admin)
crypto-shreds the child's data. Audit records hold ids and decisions only; IG reads of a
child's trail are audited too.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from hub.api.auth import AUTH_RESPONSES, Principal, require_roles
from hub.api.deps import hub_of, reads_of
from hub.consent.audit_heads import HeadsExport
from hub.queries.audit import (
    TRAIL_LIMIT,
    TRAIL_MAX_LIMIT,
    child_trail_view,
    signed_heads,
    trail_lines,
    verify_trail,
)

router = APIRouter(tags=["audit"])
Auditor = Annotated[Principal, Depends(require_roles("ig_auditor"))]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
Eraser = Annotated[Principal, Depends(require_roles("admin", "ig_auditor"))]
"""Erasure requests are information governance's to carry out (the web's erasure page is
the IG auditor's); an admin may too."""


class ChildTrail(BaseModel):
    """One page of a child's trail: the records as stored (canonical, hash-chained)."""

    child_id: str
    records: list[dict[str, Any]] = Field(description="Trail records, in the trail's order")
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters) for the next page; none on the last"
    )


BAD_CURSOR: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "A query parameter is not valid, or the cursor is not one this "
        "listing issued (problem details naming it: `query.cursor`)",
    }
}


@router.get(
    "/audit/children/{child_id}",
    summary="One child's consent trail and access log, in order, a page at a time (IG auditor)",
    description=f"`limit` records a page (default {TRAIL_LIMIT}, at most {TRAIL_MAX_LIMIT}); "
    "pass the answer's `next_cursor` as `cursor` for the next page. The order is the "
    "trail's own (its position on the audit log), so pages never overlap or skip.",
    response_model=ChildTrail,
    responses={**AUTH_RESPONSES, **BAD_CURSOR},
)
async def child_trail(
    request: Request,
    child_id: str,
    principal: Auditor,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
    agency: str | None = None,
    outcome: str | None = None,
    limit: Annotated[int, Query(ge=1, le=TRAIL_MAX_LIMIT)] = TRAIL_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=512, description="The previous page's `next_cursor`")
    ] = None,
) -> ChildTrail:
    page = await child_trail_view(
        reads_of(request), principal, child_id,
        since=since, until=until, agency=agency, outcome=outcome, limit=limit, cursor=cursor,
    )  # fmt: skip
    return ChildTrail(child_id=child_id, records=page.records, next_cursor=page.next_cursor)


CSV_COLUMNS = (
    "record_id", "chain", "seq", "kind", "at", "actor", "child_id", "details", "prev_hash", "hash",
)  # fmt: skip


def export_chunks(rows: Iterable[bytes], format: Literal["jsonl", "csv"]) -> Iterator[bytes]:
    """Stored trail records (canonical JSON lines) as JSON lines, or as CSV with a header
    row and the details as JSON: the export's bytes (`GET /audit/export` and the IG page)."""
    if format == "jsonl":
        for line in rows:
            yield line + b"\n"
        return
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for line in rows:
        rec = orjson.loads(line)
        writer.writerow(
            [
                rec["record_id"],
                rec["chain"],
                rec["seq"],
                rec["kind"],
                rec["at"],
                rec["actor"],
                rec.get("child_id") or "",
                orjson.dumps(rec["details"]).decode(),
                rec["prev_hash"],
                rec["hash"],
            ]
        )
        yield buf.getvalue().encode()
        buf.seek(0)
        buf.truncate()


@router.get(
    "/audit/export",
    summary="The audit trail between two times, as JSON lines or CSV (IG auditor)",
    responses=AUTH_RESPONSES,
)
async def export(
    request: Request,
    principal: Auditor,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
    format: Literal["jsonl", "csv"] = "jsonl",
) -> StreamingResponse:
    rows = await trail_lines(reads_of(request), principal, since=since, until=until)

    async def lines() -> AsyncIterator[bytes]:
        for chunk in export_chunks(rows, format):
            yield chunk

    media = "application/x-ndjson" if format == "jsonl" else "text/csv"
    return StreamingResponse(lines(), media_type=media)


@router.get(
    "/audit/verify",
    summary="Verify the whole hash-chained trail; names the first broken record (IG auditor)",
    responses=AUTH_RESPONSES,
)
async def verify(request: Request, principal: Auditor) -> dict[str, Any]:
    result = await verify_trail(reads_of(request))
    return result.model_dump(mode="json")


@router.get(
    "/audit/heads",
    summary="Every audit chain's signed head and the Ed25519 public key (IG auditor)",
    responses=AUTH_RESPONSES,
)
async def heads(request: Request, principal: Auditor) -> HeadsExport:
    return await signed_heads(reads_of(request))


class EraseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=1, max_length=200, description="Why (e.g. an erasure request reference)"
    )


@router.post(
    "/children/{child_id}/erase",
    tags=["erasure"],
    summary="Erase a child's personal data by deleting their data keys (IG auditor, admin)",
    responses={**AUTH_RESPONSES, 404: {"description": "No such child"}},
)
async def erase(
    request: Request, child_id: str, body: EraseIn, principal: Eraser
) -> dict[str, Any]:
    the_hub = hub_of(request)
    deleted = await the_hub.handlers.erase_child(
        child_id, actor=principal.actor, reason=body.reason
    )
    return {"status": "erased", "child_id": child_id, "keys_deleted": deleted}
