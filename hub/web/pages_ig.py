"""Information governance's pages beyond the trail and verify: a child's access log (the
reads in their trail), downloads of a child's trail, of the whole trail and of the
signed audit heads (as `GET /audit/children/{id}`, `GET /audit/export` and `GET
/audit/heads` give them, and audited alike), and erasure requests: an IG officer names
the child and the request's reference, reads what erasure will do, confirms, and the
existing `EraseChild` handler crypto-shreds the child's data.

Only the `ig_auditor` role opens these pages. Addresses carry hub child ids only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from hub.api.routes_audit import EraseIn, export_chunks
from hub.auth.principal import Role
from hub.errors import InvalidQuery, NotFound
from hub.queries.audit import (
    TRAIL_MAX_LIMIT,
    child_trail_view,
    holds_child,
    signed_heads,
    trail_lines,
)
from hub.web.pages import PageRefused, Visit, posted, render, signed_in

router = APIRouter(include_in_schema=False)

CHILD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_:-]{0,63}$")
Format = Literal["csv", "jsonl"]
MEDIA: dict[str, str] = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


def _format(visit: Visit, value: str | None) -> Format:
    if value in (None, "", "csv"):
        return "csv"
    if value == "jsonl":
        return "jsonl"
    raise PageRefused(visit, 400, "Choose CSV or JSON lines.")


def _download(chunks: Iterator[bytes], name: str, fmt: str) -> Response:
    return Response(
        b"".join(chunks),
        media_type=MEDIA.get(fmt, "application/json"),
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _child_id(visit: Visit, child_id: str) -> str:
    if not CHILD_ID.match(child_id):
        raise PageRefused(visit, 404)
    return child_id


# --------------------------------------------------------------------------- access log


@router.get("/trail/{child_id}/access-log", response_class=HTMLResponse)
async def access_log_page(request: Request, child_id: str, cursor: str | None = None) -> Response:
    visit = await signed_in(request, Role.IG_AUDITOR)
    assert visit.principal is not None
    child_id = _child_id(visit, child_id)
    try:
        page = await child_trail_view(
            visit.hub.reads, visit.principal, child_id, kind="read", cursor=cursor or None
        )
    except InvalidQuery as exc:
        raise PageRefused(
            visit, 400, f"This page of the access log cannot be shown: {exc.reason}."
        ) from None
    base = f"/trail/{child_id}/access-log"
    return render(
        visit,
        "access_log.html",
        child_id=child_id,
        records=page.records,
        next_page=f"{base}?{urlencode({'cursor': page.next_cursor})}" if page.next_cursor else None,
        first_page=base if cursor else None,
    )


# --------------------------------------------------------------------------- downloads


@router.get("/trail/{child_id}/export")
async def child_trail_export(
    request: Request, child_id: str, format: str | None = None
) -> Response:
    """Every record of the child's trail, in the trail's order (each page read audited)."""
    visit = await signed_in(request, Role.IG_AUDITOR)
    assert visit.principal is not None
    child_id = _child_id(visit, child_id)
    fmt = _format(visit, format)
    lines: list[bytes] = []
    cursor: str | None = None
    while True:
        page = await child_trail_view(
            visit.hub.reads, visit.principal, child_id, limit=TRAIL_MAX_LIMIT, cursor=cursor
        )
        lines.extend(orjson.dumps(r) for r in page.records)
        cursor = page.next_cursor
        if cursor is None:
            break
    return _download(export_chunks(lines, fmt), f"trail-{child_id}.{fmt}", fmt)


@router.get("/trail-export")
async def whole_trail_export(request: Request, format: str | None = None) -> Response:
    """The whole trail by time, as `GET /audit/export` gives it (audited)."""
    visit = await signed_in(request, Role.IG_AUDITOR)
    assert visit.principal is not None
    fmt = _format(visit, format)
    rows = await trail_lines(visit.hub.reads, visit.principal)
    return _download(export_chunks(rows, fmt), f"audit-trail.{fmt}", fmt)


@router.get("/trail-heads")
async def heads_download(request: Request) -> Response:
    """Every chain's signed head with the public key, to keep and check offline."""
    visit = await signed_in(request, Role.IG_AUDITOR)
    assert visit.principal is not None
    heads = await signed_heads(visit.hub.reads, shown_to=visit.principal)
    body = orjson.dumps(heads.model_dump(mode="json"), option=orjson.OPT_INDENT_2)
    return _download(iter([body]), "audit-heads.json", "json")


# --------------------------------------------------------------------------- erasure


def _erasure_form(
    visit: Visit, *, status: int = 200, errors: list[dict[str, str]] | None = None,
    values: dict[str, str] | None = None, done: dict[str, str] | None = None,
) -> HTMLResponse:  # fmt: skip
    return render(
        visit, "erasure.html", status=status, errors=errors or [], values=values or {}, done=done
    )


@router.get("/erasure", response_class=HTMLResponse)
async def erasure_page(
    request: Request, erased: str | None = None, keys: str | None = None
) -> Response:
    visit = await signed_in(request, Role.IG_AUDITOR)
    done = None
    if erased and CHILD_ID.match(erased) and (keys or "0").isdigit():
        done = {"child_id": erased, "keys": keys or "0"}
    return _erasure_form(visit, done=done)


def _erasure_request(visit: Visit, form: dict[str, str]) -> tuple[str, str] | list[dict[str, str]]:
    """The child id and the reason, or the errors naming the field."""
    child_id = form.get("child_id", "").strip()
    errors = []
    if not child_id:
        errors.append({"field": "child_id", "text": "Enter the hub child id"})
    elif not CHILD_ID.match(child_id):
        errors.append(
            {"field": "child_id", "text": "A hub child id has only letters, digits and - _ :"}
        )
    try:
        reason = EraseIn.model_validate({"reason": form.get("reason", "").strip()}).reason
    except ValidationError as exc:
        kind = exc.errors()[0]["type"]
        text = (
            "Enter the erasure request's reference or reason"
            if kind == "string_too_short"
            else "The reference or reason must be 200 characters or fewer"
        )
        errors.append({"field": "reason", "text": text})
        reason = ""
    return errors or (child_id, reason)


@router.post("/erasure", response_class=HTMLResponse)
async def erasure_check(request: Request) -> Response:
    """Step 1: the request, checked; the answer is the confirmation page."""
    visit = await signed_in(request, Role.IG_AUDITOR)
    form = await posted(visit)
    got = _erasure_request(visit, form)
    if isinstance(got, list):
        return _erasure_form(visit, status=422, errors=got, values=form)
    child_id, reason = got
    if not await holds_child(visit.hub.reads, child_id):
        errors = [
            {
                "field": "child_id",
                "text": "The hub holds no child with this id: it is unknown, or erased already",
            }
        ]
        return _erasure_form(visit, status=422, errors=errors, values=form)
    return render(visit, "erasure_confirm.html", child_id=child_id, reason=reason, errors=[])


@router.post("/erasure/confirm", response_class=HTMLResponse)
async def erasure_confirm(request: Request) -> Response:
    """Step 2: confirmed, the child is erased (`EraseChild`), and the page says so."""
    visit = await signed_in(request, Role.IG_AUDITOR)
    assert visit.principal is not None
    form = await posted(visit)
    got = _erasure_request(visit, form)
    if isinstance(got, list):
        return _erasure_form(visit, status=422, errors=got, values=form)
    child_id, reason = got
    if form.get("confirm") != "yes":
        errors = [{"field": "confirm", "text": "Confirm that the child's data is to be erased"}]
        return render(
            visit,
            "erasure_confirm.html",
            status=422,
            child_id=child_id,
            reason=reason,
            errors=errors,
        )
    try:
        deleted = await visit.hub.handlers.erase_child(
            child_id, actor=visit.principal.actor, reason=reason
        )
    except NotFound:
        errors = [
            {
                "field": "child_id",
                "text": "The hub holds no child with this id: it is unknown, or erased already",
            }
        ]
        return _erasure_form(visit, status=422, errors=errors, values=form)
    return RedirectResponse(
        f"/erasure?{urlencode({'erased': child_id, 'keys': deleted})}", status_code=303
    )
