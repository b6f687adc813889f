"""A practitioner's own pages, beside their children (`/`) and each child's page
(`/child/{id}`, in `hub.web.pages`): their open meeting actions and the advice they were
asked for that is due (`/my-work`), and a child's shared record as the policy and the
family's consent let them see it now (`/child/{id}/shared`), each fact with the basis it
is shared on.

Both rest on the query layer the API uses (`hub.queries.my_work`, `GET /me/work`;
`hub.queries.record.shared_record_view`, `GET /children/{id}/record`), so they are the
same audited reads; a child off the practitioner's team is the 404 page.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from hub.auth.principal import Role
from hub.queries.my_work import my_work
from hub.queries.record import shared_record_view
from hub.web.pages import in_reach, render, signed_in

router = APIRouter(include_in_schema=False)

HIDDEN_FIELDS = frozenset({"erased"})


@router.get("/my-work", response_class=HTMLResponse)
async def my_work_page(request: Request) -> Response:
    visit = await signed_in(request, Role.PRACTITIONER)
    assert visit.principal is not None
    work = await my_work(visit.hub.reads, visit.principal)
    return render(visit, "practitioner_work.html", work=work)


def _words(value: Any) -> str | None:
    """A payload value as a line of text (None for what a line cannot show)."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        parts = [f"{k.replace('_', ' ')}: {w}" for k, v in value.items() if (w := _words(v))]
        return "; ".join(parts) or None
    return None


def _fact_rows(payload: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, value in payload.items():
        if key in HIDDEN_FIELDS or value in (None, "", [], {}):
            continue
        words = _words(value)
        if words is not None:
            rows.append((key.replace("_", " ").capitalize(), words))
    return rows


@router.get("/child/{child_id}/shared", response_class=HTMLResponse)
async def shared_record_page(request: Request, child_id: str) -> Response:
    visit = await signed_in(request, Role.PRACTITIONER, Role.COORDINATOR)
    assert visit.principal is not None
    with in_reach(visit):
        record = await shared_record_view(visit.hub.reads, visit.principal, child_id)
    agencies = [
        {
            "agency": agency,
            "facts": [
                {
                    "what": fact["event_type"].partition(".")[2].replace("_", " ").capitalize(),
                    "category": fact["category"].replace("_", " "),
                    "on": date.fromisoformat(fact["occurred_at"][:10]),
                    "source": fact["source"].get("system") or agency,
                    "basis": fact["basis"],
                    "erased": bool(fact["payload"].get("erased")),
                    "rows": _fact_rows(fact["payload"]),
                }
                for fact in facts
            ],
        }
        for agency, facts in sorted(record["agencies"].items())
    ]
    return render(
        visit,
        "shared_record.html",
        child_id=child_id,
        agencies=agencies,
        shown=record["facts_shown"],
    )
