"""Ingest of agency files as they are sent, and the match queue where people confirm who a
record is about.

`POST /ingest/school-mis` (CTF XML or the school MIS JSON form), `/ingest/fhir` (FHIR R4
JSON, XML or ndjson), `/ingest/social-care` (CIN census or SSDA903 XML, an SSDA903 Episodes
or Header table CSV with `la_code`, or the social care JSON form) and `/ingest/family` (the
family JSON form) take one message each, from the `agency` role as its own agency. The
content type picks the adapter (`hub.adapters.registry`); the body is bounded by
`RequestGuard` (413 past `max_body_bytes`, 408 when slower than the timeout); a media
type the route does not take is 415 naming those it does; a body in a media
type the route takes that is another route's format (a CTF file on the social care route) is
422 naming what it is and the formats the route takes (`accepted_formats`), never read as
one of the route's own; a body the adapter cannot read is 400 (not well-formed, wrong
encoding, refused XML) or 422 (well-formed but not a valid message), with the adapter's
reason. Otherwise the answer lists, per fact, the event id appended or withheld, or why not
(queued for the match queue, duplicate, rejected), plus what the adapter did not take and a
summary. `GET /match-queue` and `POST /match-queue/{id}/resolve` (admin or coordinator) show
the queue — the record's demographics beside what the hub records of each candidate, an
audited read — and carry out a person's decision: link to a child, or keep separate as a new
one. A coordinator sees only the items whose candidates include a child on their caseload
(and items about no known child); an item, or a child to link to, outside their caseload
answers 404 exactly as one that does not exist. The admin lists items without their
demographics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
import structlog
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.api.auth import AUTH_RESPONSES, Principal, require_roles, sender_of
from hub.api.deps import hub_of, reads_of
from hub.api.fhir_out import FHIR_JSON, ingest_outcome, problem_outcome
from hub.api.problems import PROBLEM_JSON, problem
from hub.errors import PermanentError
from hub.ingest.model import AdapterResult, FactOutcome
from hub.observability import log_ref

if TYPE_CHECKING:
    from hub.queries.match_queue import QueueScope

log = structlog.get_logger(__name__)
router = APIRouter()
Agency = Annotated[Principal, Depends(require_roles("agency"))]
Decider = Annotated[Principal, Depends(require_roles("admin", "coordinator"))]

_SYNTAX_FIELDS = ("xml", "json", "body", "csv", "content", "ndjson", "encoding", "charset")


class FactOut(BaseModel):
    """What became of one fact the adapter read."""

    ref: str = Field(description="Where in the message the fact came from")
    status: Literal["appended", "withheld", "queued", "rejected", "duplicate"]
    event_type: str | None = None
    event_id: str | None = Field(
        default=None, description="The event appended, withheld or held (or taken before)"
    )
    child_id: str | None = None
    reason: str | None = None
    field: str | None = None
    rule: str | None = None


class NotTakenOut(BaseModel):
    """A part of the message the adapter did not take, and why."""

    ref: str
    kind: Literal["unsupported", "invalid", "duplicate"]
    reason: str
    field: str | None = None
    rule: str | None = None


class IngestAnswer(BaseModel):
    format: str = Field(description="The adapter that read the message")
    message_id: str | None = Field(
        default=None, description="The message's idempotency key (sender's id or content hash)"
    )
    results: list[FactOut]
    not_taken: list[NotTakenOut]
    warnings: list[str] = Field(default_factory=list)
    summary: dict[str, int] = Field(
        description="Facts per status, plus `facts` (all read) and `not_taken`"
    )


def fact_out(o: FactOutcome) -> FactOut:
    return FactOut(
        ref=o.ref, status=o.status, event_type=o.event_type, event_id=o.event_id,
        child_id=o.child_id, reason=o.reason, field=o.field, rule=o.rule,
    )  # fmt: skip


def summarise(outcomes: list[FactOutcome], result: AdapterResult) -> dict[str, int]:
    summary = dict.fromkeys(("appended", "withheld", "queued", "rejected", "duplicate"), 0)
    for o in outcomes:
        summary[o.status] += 1
    summary["facts"] = len(outcomes)
    summary["not_taken"] = len(result.not_taken)
    return summary


def answer(fmt: str, result: AdapterResult, outcomes: list[FactOutcome]) -> IngestAnswer:
    return IngestAnswer(
        format=fmt,
        message_id=result.message_id,
        results=[fact_out(o) for o in outcomes],
        not_taken=[
            NotTakenOut(ref=n.ref, kind=n.kind, reason=n.reason, field=n.field, rule=n.rule)
            for n in result.not_taken
        ],
        warnings=list(result.warnings),
        summary=summarise(outcomes, result),
    )


def refusal(exc: PermanentError, fmt: str) -> JSONResponse:
    """Problem details for a body the adapter could not read: 400 when it is not
    well-formed (syntax, encoding, refused XML features), 422 when it is well-formed but not
    a valid message; `field` and `reason` as the adapter gave them (never a value)."""
    from hub.adapters.registry import WrongFormat

    field = exc.field or ""
    syntax = field.split(".", 1)[0].split("/", 1)[0].lower() in _SYNTAX_FIELDS
    status = 400 if syntax else 422
    extra: dict[str, Any] = {}
    if isinstance(exc, WrongFormat):  # a message of another route's format
        extra = {"rule": exc.rule, "detected_format": exc.detected,
                 "accepted_formats": list(exc.accepted)}  # fmt: skip
    return problem(
        status, "Bad Request" if syntax else "Unprocessable Content", str(exc),
        format=fmt, field=exc.field, reason=exc.reason, **extra,
    )  # fmt: skip


PARSE_OFF_LOOP_BYTES = 64 * 1024
"""Messages this large are parsed on a worker thread, so that the parse (tens of ms for a
big CTF or FHIR bundle) does not hold up every other request's turn on the event loop."""


async def ingest_message(
    request: Request,
    principal: Principal,
    channel: str,
    *,
    la_code: str | None = None,
    agency: str | None = None,
) -> IngestAnswer | JSONResponse:
    """Read, parse and submit one message arriving on `channel` (one HTTP route)."""
    from hub.adapters.registry import UnsupportedMediaType, format_for, parse
    from hub.api.deps import hub_of

    if principal.agency is None:  # the role check guarantees one; fail closed regardless
        raise HTTPException(403, "an agency credential names its agency")
    if agency is not None and agency != principal.agency:
        raise HTTPException(403, "an agency may publish only as itself")
    the_hub = hub_of(request)
    sender = await sender_of(request, principal)  # a token that may not publish: 403 first
    content_type = request.headers.get("content-type")
    try:
        format_for(channel, content_type)  # 415 before a byte of the body is read
    except UnsupportedMediaType as exc:
        raise HTTPException(415, exc.reason) from None
    except PermanentError:
        pass  # needs the body to decide (JSON or XML of several kinds)
    data = await request.body()  # bounded by RequestGuard: 413 past HUB_MAX_BODY_BYTES
    fmt = channel
    policy = hub_of(request).policy
    try:
        fmt = format_for(channel, content_type, data)
        if len(data) >= PARSE_OFF_LOOP_BYTES:  # a large file: parsed beside the event loop
            result = await asyncio.to_thread(
                parse, fmt, data, content_type, principal.agency, la_code=la_code, policy=policy
            )
        else:
            result = parse(
                fmt, data, content_type, principal.agency, la_code=la_code, policy=policy
            )
    except UnsupportedMediaType as exc:
        raise HTTPException(415, exc.reason) from None
    except PermanentError as exc:
        log.info("ingest.refused", route=channel, format=fmt, agency=principal.agency,
                 field=exc.field, bytes=len(data))  # fmt: skip
        return refusal(exc, fmt)
    except (ValueError, TypeError, LookupError, ArithmeticError, RecursionError) as exc:
        # an adapter fault on odd input: refused like bad input, never a 500; the type is
        # logged for the operators (never the message, which may quote a value)
        log.error("ingest.adapter_failed", route=channel, format=fmt, agency=principal.agency,
                  error=type(exc).__name__, bytes=len(data))  # fmt: skip
        return problem(
            422, "Unprocessable Content",
            f"the {fmt} adapter could not read this message ({type(exc).__name__}); "
            "the hub's operators can see it in the log",
            format=fmt, field=None, reason="adapter failure",
        )  # fmt: skip
    outcomes = await the_hub.handlers.submit_as_sender(
        result.facts, sender=sender, actor=principal.actor
    )
    out = answer(fmt, result, outcomes)
    log.info("ingest.message", route=channel, format=fmt, agency=principal.agency,
             message_ref=log_ref(result.message_id), bytes=len(data), **out.summary)  # fmt: skip
    return out


_INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    **AUTH_RESPONSES,
    400: {"description": "The body cannot be read (not well-formed, wrong encoding, refused "
          "XML features); problem details name the field, position and rule",
          "content": {PROBLEM_JSON: {}}},
    413: {"description": "The body is larger than the configured limit",
          "content": {PROBLEM_JSON: {}}},
    415: {"description": "The route does not take this media type; the detail lists those it does",
          "content": {PROBLEM_JSON: {}}},
    422: {"description": "Well-formed, but not a valid message of its format (the reason "
          "names the field and rule), or a message of another route's format (`field: "
          "format`, `rule: hub.route_format`, `detected_format`, `accepted_formats`)",
          "content": {PROBLEM_JSON: {}}},
}  # fmt: skip


def _body_doc(*types: str) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in types},
        }
    }


@router.post(
    "/ingest/school-mis",
    tags=["ingest"],
    summary="A school MIS message: DfE CTF XML, or the school MIS JSON form (agency, as itself)",
    response_model=IngestAnswer,
    responses=_INGEST_RESPONSES,
    openapi_extra=_body_doc("application/xml", "application/json"),
)
async def ingest_school_mis(
    request: Request,
    principal: Agency,
    agency: Annotated[
        str | None, Query(max_length=64, description="Must be the caller's own")
    ] = None,
) -> IngestAnswer | JSONResponse:
    return await ingest_message(request, principal, "school-mis", agency=agency)


@router.post(
    "/ingest/fhir",
    tags=["ingest"],
    summary="A FHIR R4 Bundle or resource (JSON, XML) or bulk ndjson (agency, as itself)",
    description="With `Accept: application/fhir+json` the answer (and a refusal of a "
    "message that was read) is a FHIR OperationOutcome: an issue per fact and per part not "
    "taken, each naming its element in FHIRPath.",
    response_model=IngestAnswer,
    responses={
        **_INGEST_RESPONSES,
        200: {"content": {FHIR_JSON: {"schema": {"type": "object"}}}},
    },
    openapi_extra=_body_doc(
        "application/fhir+json", "application/fhir+xml", "application/fhir+ndjson"
    ),
)
async def ingest_fhir(
    request: Request,
    principal: Agency,
    agency: Annotated[
        str | None, Query(max_length=64, description="Must be the caller's own")
    ] = None,
) -> IngestAnswer | JSONResponse | Response:
    answer = await ingest_message(request, principal, "fhir", agency=agency)
    if FHIR_JSON in request.headers.get("accept", ""):
        return as_operation_outcome(answer)
    return answer


def as_operation_outcome(answer: IngestAnswer | JSONResponse) -> Response:
    """The answer as a FHIR OperationOutcome (asked for with `Accept: application/fhir+json`):
    an issue per fact and per part not taken, each naming its element in FHIRPath."""
    if isinstance(answer, JSONResponse):
        body = orjson.loads(bytes(answer.body))
        resource = problem_outcome(body)
        status = answer.status_code
    else:
        resource = ingest_outcome(answer.model_dump(mode="json"))
        status = 200
    return Response(
        resource.model_dump_json(by_alias=True, exclude_none=True),
        status_code=status,
        media_type=FHIR_JSON,
    )


@router.post(
    "/ingest/social-care",
    tags=["ingest"],
    summary="A CIN census or SSDA903 return (XML; the SSDA903 Episodes or Header table as CSV "
    "with la_code), or the social care JSON form (agency, as itself)",
    response_model=IngestAnswer,
    responses=_INGEST_RESPONSES,
    openapi_extra=_body_doc("application/xml", "text/csv", "application/json"),
)
async def ingest_social_care(
    request: Request,
    principal: Agency,
    la_code: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{3}$", description="The LA's 3-digit code (required for SSDA903)"),
    ] = None,
    agency: Annotated[
        str | None, Query(max_length=64, description="Must be the caller's own")
    ] = None,
) -> IngestAnswer | JSONResponse:
    return await ingest_message(request, principal, "social-care", la_code=la_code, agency=agency)


@router.post(
    "/ingest/family",
    tags=["ingest"],
    summary="The family's views (plan section A) and contact details: the family JSON form "
    "(contracts/inbound/family.schema.json; agency, as itself)",
    response_model=IngestAnswer,
    responses=_INGEST_RESPONSES,
    openapi_extra=_body_doc("application/json"),
)
async def ingest_family(
    request: Request,
    principal: Agency,
    agency: Annotated[
        str | None, Query(max_length=64, description="Must be the caller's own")
    ] = None,
) -> IngestAnswer | JSONResponse:
    return await ingest_message(request, principal, "family", agency=agency)


# -- the match queue --------------------------------------------------------------------------


class ResolveIn(BaseModel):
    """A person's decision on a queued record."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"decision": "link", "child_id": "hc-0192..."},
                         {"decision": "keep_separate"}],
            # what `_child_for_link` checks, said in the schema: link names a child,
            # keep_separate names none
            "oneOf": [
                {"properties": {"decision": {"const": "link"}, "child_id": {"type": "string"}},
                 "required": ["decision", "child_id"]},
                {"properties": {"decision": {"const": "keep_separate"},
                                "child_id": {"type": "null"}}},
            ],
        },
    )  # fmt: skip

    decision: Literal["link", "keep_separate"]
    child_id: str | None = Field(
        default=None, min_length=1, max_length=64, description="The child to link to (link only)"
    )

    @model_validator(mode="after")
    def _child_for_link(self) -> ResolveIn:
        if self.decision == "link" and not self.child_id:
            raise ValueError("a link decision names the child (child_id)")
        if self.decision == "keep_separate" and self.child_id:
            raise ValueError("keep_separate makes a new child: send no child_id")
        return self


class ResolveOut(BaseModel):
    item_id: str
    decision: Literal["link", "keep_separate"]
    child_id: str
    event_id: str | None = Field(description="The identity.match_resolved event")
    identifiers_linked: list[str] = Field(description="Systems of the identifiers linked")
    released: list[FactOut] = Field(description="The held facts, as the gate took them now")
    summary: dict[str, int]


@router.get(
    "/match-queue",
    tags=["identity"],
    summary="Records waiting for a person to confirm who they are about, in the order they "
    "were queued, a page at a time (admin, coordinator; audited)",
    description="`limit` items a page (default 100, at most 500); pass the answer's "
    "`next_cursor` as `cursor` (with the same `status`) for the next page; it is null on "
    "the last page.",
    responses={
        **AUTH_RESPONSES,
        422: {
            "description": "A query parameter is not valid, or the cursor is not one this "
            "listing issued (problem details naming it: `query.cursor`)"
        },
    },
)
async def match_queue(
    request: Request,
    principal: Decider,
    status: Annotated[Literal["pending", "resolved", "all"], Query()] = "pending",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=512, description="The previous page's `next_cursor`")
    ] = None,
) -> dict[str, Any]:
    from hub.queries.match_queue import review_queue_page

    page = await review_queue_page(
        reads_of(request),
        actor=principal.actor, route="GET /match-queue",
        status=None if status == "all" else status, limit=limit, cursor=cursor,
        scope=queue_scope(request, principal),
    )  # fmt: skip
    return {
        "as_of": datetime.now(UTC).isoformat(),
        "items": page.items,
        "next_cursor": page.next_cursor,
    }


def queue_scope(request: Request, principal: Principal) -> QueueScope:
    """A coordinator sees the items about children on their caseload (and those about no
    known child); the admin lists every item without its demographics."""
    from hub.auth import Role
    from hub.queries.context import children_in_reach
    from hub.queries.match_queue import QueueScope

    if principal.role is Role.COORDINATOR:
        reads = reads_of(request)

        async def reach(children: Sequence[str]) -> list[str]:
            return await children_in_reach(reads, principal, children)

        return QueueScope(reach=reach)
    return QueueScope(demographics=False)


async def _check_decider(
    request: Request, principal: Principal, item_id: str, body: ResolveIn
) -> None:
    """404 for an item, or a child to link to, outside a coordinator's reach: answered
    exactly as for one that does not exist."""
    from hub.auth import Role
    from hub.errors import NotFound
    from hub.queries.context import require_in_reach
    from hub.queries.match_queue import item_in_scope

    if principal.role is not Role.COORDINATOR:
        return
    if not await item_in_scope(reads_of(request), queue_scope(request, principal), item_id):
        raise HTTPException(404, f"no match queue item {item_id}")
    if body.decision == "link" and body.child_id is not None:
        try:
            await require_in_reach(reads_of(request), principal, body.child_id)
        except NotFound:
            raise HTTPException(404, f"no child {body.child_id} to link to") from None


_MATCH_STATUS = {"no_such_item": 404, "no_such_child": 404, "decided_already": 409, "invalid": 422}


@router.post(
    "/match-queue/{item_id}/resolve",
    tags=["identity"],
    summary="Link a queued record to a child, or keep it separate as a new child; releases "
    "its held facts through the consent gate (admin, coordinator; audited)",
    response_model=ResolveOut,
    responses={**AUTH_RESPONSES, 404: {"description": "No such item, or no such child"},
               409: {"description": "The item was decided already"}},
)  # fmt: skip
async def resolve(
    request: Request, item_id: str, body: ResolveIn, principal: Decider
) -> ResolveOut:
    from hub.identity.match_queue import MatchError

    the_hub = hub_of(request)
    await _check_decider(request, principal, item_id, body)
    try:
        outcome = await the_hub.handlers.resolve_match(
            item_id, decision=body.decision, child_id=body.child_id,
            actor=principal.actor,
        )  # fmt: skip
    except MatchError as exc:
        raise HTTPException(_MATCH_STATUS[exc.problem], exc.reason) from None
    summary: dict[str, int] = {}
    for o in outcome.released:
        summary[o.status] = summary.get(o.status, 0) + 1
    return ResolveOut(
        item_id=outcome.item_id,
        decision=outcome.decision,
        child_id=outcome.child_id,
        event_id=outcome.event_id,
        identifiers_linked=list(outcome.identifiers_linked),
        released=[fact_out(o) for o in outcome.released],
        summary=summary,
    )
