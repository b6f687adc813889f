"""The coordinator's pages beyond the caseload: the forms for the local authority's steps
(`hub.web.step_forms`), finding a child, and a plan's contributions and meetings.

A form posts to the same handler as its API route, with the same request model and step
builder, so a step the API refuses the form refuses alike, the error on the field it
names. A recorded step answers with a redirect (POST, redirect, GET) to the plan's
timeline or the child's page, whose banner says what was recorded. Every form carries
the session's CSRF token and a one-time idempotency key, so a form sent twice records
once. A form shows the team around the child (whose ids it asks for), so opening one is
the team view's audited read. The search takes its key in a POST body, as `POST
/children/search` does: nothing personal goes in an address. Every page view of a child
is an audited read.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from hub.api.routes_plan_content import CompletionIn, completion_steps
from hub.api.routes_record import ConsentIn, ConsentNotRecorded, record_consent_of
from hub.auth.principal import Role
from hub.errors import InvalidQuery
from hub.projections.team_around_child import TeamView
from hub.queries.actions import open_action_ids
from hub.queries.context import plan_in_reach, require_in_reach
from hub.queries.joined import team_view, timeline_view
from hub.queries.search import ChildSearch, find_children
from hub.service_layer.plan_steps import StepRefused
from hub.web.forms import Field, FormError, refusal_error, to_body, validation_errors
from hub.web.pages import PageRefused, Visit, in_reach, posted_lists, render, signed_in
from hub.web.step_forms import STEP_FORMS, Section, StepForm, consent_sections

router = APIRouter(include_in_schema=False)

FORM_FIELDS = 80
"""The most fields a step form posts (the meeting's three actions, the date boxes)."""


def _form(visit: Visit, slug: str, on: str) -> StepForm:
    form = STEP_FORMS.get(slug)
    if form is None or form.on != on:
        raise PageRefused(visit, 404)
    return form


def _sections(visit: Visit, form: StepForm) -> tuple[Section, ...]:
    if form.slug == "consent":
        return consent_sections(tuple(visit.hub.reads.policy.categories))
    return form.sections


def _fields(sections: tuple[Section, ...]) -> list[Field]:
    return [f for _, fields in sections for f in fields]


def _show(
    visit: Visit,
    form: StepForm,
    team: TeamView,
    *,
    action: str,
    back: str,
    caption: str,
    values: dict[str, Any] | None = None,
    errors: list[FormError] | None = None,
) -> HTMLResponse:
    return render(
        visit,
        "step_form.html",
        status=422 if errors else 200,
        form=form,
        team=team,
        sections=_sections(visit, form),
        action=action,
        back=back,
        caption=caption,
        values=values or {},
        errors=[e.as_dict() for e in errors or []],
        idempotency_key=uuid.uuid4().hex,
    )


async def _team(visit: Visit, child_id: str) -> TeamView:
    """The team around the child, whose ids the form asks for (the team view's audited
    read: opening a form is a page view of the child)."""
    assert visit.principal is not None
    with in_reach(visit):
        return await team_view(visit.hub.reads, visit.principal, child_id)


# --------------------------------------------------------------------------- step forms


@router.get("/plan/{plan_id}/record/{step}", response_class=HTMLResponse)
async def plan_form(request: Request, plan_id: str, step: str) -> Response:
    visit = await signed_in(request, Role.COORDINATOR)
    assert visit.principal is not None
    form = _form(visit, step, "plan")
    with in_reach(visit):
        child_id = await plan_in_reach(visit.hub.reads, visit.principal, plan_id)
    team = await _team(visit, child_id)
    return _show(
        visit, form, team, action=request.url.path, back=f"/plan/{plan_id}",
        caption=f"Plan {plan_id}",
    )  # fmt: skip


@router.post("/plan/{plan_id}/record/{step}", response_class=HTMLResponse)
async def plan_form_post(request: Request, plan_id: str, step: str) -> Response:
    visit = await signed_in(request, Role.COORDINATOR)
    assert visit.principal is not None
    form = _form(visit, step, "plan")
    posted = await posted_lists(visit, max_fields=FORM_FIELDS)
    with in_reach(visit):
        child_id = await plan_in_reach(visit.hub.reads, visit.principal, plan_id)
    extra = {"plan_id": plan_id} if form.slug == "meeting" else {}
    status = await _record(visit, form, posted, child_id, plan_id, extra)
    if isinstance(status, list):
        read_values = to_body(_fields(_sections(visit, form)), posted).values
        return _show(
            visit, form, await _team(visit, child_id), action=request.url.path,
            back=f"/plan/{plan_id}", caption=f"Plan {plan_id}", values=read_values, errors=status,
        )  # fmt: skip
    return RedirectResponse(f"/plan/{plan_id}?{_done(form, status)}", status_code=303)


@router.get("/child/{child_id}/record/{step}", response_class=HTMLResponse)
async def child_form(request: Request, child_id: str, step: str) -> Response:
    visit = await signed_in(request, Role.COORDINATOR)
    assert visit.principal is not None
    form = _form(visit, step, "child")
    with in_reach(visit):
        await require_in_reach(visit.hub.reads, visit.principal, child_id)
    team = await _team(visit, child_id)
    return _show(
        visit, form, team, action=request.url.path, back=f"/child/{child_id}",
        caption=f"Child {child_id}",
    )  # fmt: skip


@router.post("/child/{child_id}/record/{step}", response_class=HTMLResponse)
async def child_form_post(request: Request, child_id: str, step: str) -> Response:
    visit = await signed_in(request, Role.COORDINATOR)
    assert visit.principal is not None
    form = _form(visit, step, "child")
    posted = await posted_lists(visit, max_fields=FORM_FIELDS)
    with in_reach(visit):
        await require_in_reach(visit.hub.reads, visit.principal, child_id)
    status = await _record(visit, form, posted, child_id, None, {})
    if isinstance(status, list):
        read_values = to_body(_fields(_sections(visit, form)), posted).values
        return _show(
            visit, form, await _team(visit, child_id), action=request.url.path,
            back=f"/child/{child_id}", caption=f"Child {child_id}", values=read_values,
            errors=status,
        )  # fmt: skip
    return RedirectResponse(f"/child/{child_id}?{_done(form, status)}", status_code=303)


def _done(form: StepForm, status: str) -> str:
    return f"recorded={form.slug}" + ("&held=yes" if status == "withheld" else "")


async def _record(
    visit: Visit,
    form: StepForm,
    posted: dict[str, list[str]],
    child_id: str,
    plan_id: str | None,
    extra: dict[str, Any],
) -> str | list[FormError]:
    """Record what the form says through the API route's handler: its status
    (`recorded`, `withheld`, `duplicate`), or the errors, each on its field."""
    assert visit.principal is not None
    fields = _fields(_sections(visit, form))
    read = to_body(fields, posted)
    if read.errors:
        return read.errors
    try:
        body = form.model.model_validate({**read.body, **extra})
    except ValidationError as exc:
        return validation_errors(fields, exc)
    if isinstance(body, ConsentIn):
        try:
            await record_consent_of(visit.hub, visit.principal, child_id, body)
        except ConsentNotRecorded as exc:
            return [refusal_error(fields, f"consent_{exc.status}", exc.field, exc.reason)]
        return "recorded"
    assert form.steps is not None
    key = (posted.get("idempotency_key") or [""])[0][:64] or None
    try:
        steps = form.steps(body)
        done = await visit.hub.handlers.record_plan_steps(
            steps.payloads,
            actor=visit.principal.actor,
            caller=visit.principal.name,
            child_id=child_id,
            plan_id=plan_id,
            route=steps.route,
            idempotency_key=key,
            check=steps.check,
        )
    except StepRefused as refused:
        return [refusal_error(fields, refused.rule, refused.field, refused.message)]
    return done.status


# --------------------------------------------------------------------------- search


SEARCH_FIELDS = ("nhs_number", "upn", "la_code", "la_child_id", "given_name", "family_name")


@router.get("/search", response_class=HTMLResponse)
async def search_page(request: Request) -> Response:
    visit = await signed_in(request, Role.COORDINATOR)
    return render(visit, "search.html", errors=[], values={}, found=None)


@router.post("/search", response_class=HTMLResponse)
async def search(request: Request) -> Response:
    visit = await signed_in(request, Role.COORDINATOR)
    assert visit.principal is not None
    posted = await posted_lists(visit)
    dob = Field("date_of_birth", "Date of birth", "date")
    read = to_body([*(Field(f, f) for f in SEARCH_FIELDS), dob], posted)
    values: dict[str, Any] = {k: (posted.get(k) or [""])[0] for k in SEARCH_FIELDS}
    values["date_of_birth"] = read.values.get("date_of_birth") or {}

    def again(errors: list[dict[str, str]]) -> HTMLResponse:
        return render(visit, "search.html", status=422, errors=errors, values=values, found=None)

    if read.errors:
        return again([e.as_dict() for e in read.errors])
    try:
        key = ChildSearch.model_validate(read.body)
        found = await find_children(visit.hub.reads, visit.principal, key)
    except ValidationError as exc:
        errors = validation_errors(
            [*(Field(f, _SEARCH_LABELS[f]) for f in SEARCH_FIELDS), dob], exc
        )
        return again([e.as_dict() for e in errors])
    except InvalidQuery as exc:
        target = exc.field if exc.field in (*SEARCH_FIELDS, "date_of_birth") else "nhs_number"
        target = "date_of_birth-day" if target == "date_of_birth" else target
        return again(
            [{"field": target, "text": _search_words(exc), "rule": exc.rule, "path": exc.field}]
        )
    return render(visit, "search.html", errors=[], values={}, found=found)


_SEARCH_LABELS = {
    "nhs_number": "NHS number",
    "upn": "Unique pupil number",
    "la_code": "LA code",
    "la_child_id": "LA child id",
    "given_name": "Given name",
    "family_name": "Family name",
}


def _search_words(exc: InvalidQuery) -> str:
    if exc.rule == "search.one_key":
        return (
            "Enter one of: an NHS number, a UPN, an LA code with the LA's child id, or a "
            "name with a date of birth"
        )
    label = _SEARCH_LABELS.get(
        exc.field or "", "Date of birth" if exc.field == "date_of_birth" else ""
    )
    return f"{label}: {exc.reason}" if label else exc.reason


# --------------------------------------------------------------------------- a plan's record


@router.get("/plan/{plan_id}/contributions", response_class=HTMLResponse)
async def contributions_page(request: Request, plan_id: str) -> Response:
    visit = await signed_in(request, Role.COORDINATOR)
    assert visit.principal is not None
    with in_reach(visit):
        timeline = await timeline_view(visit.hub.reads, visit.principal, plan_id)
    return render(visit, "contributions.html", timeline=timeline)


@router.get("/plan/{plan_id}/meetings", response_class=HTMLResponse)
async def meetings_page(request: Request, plan_id: str, done: str | None = None) -> Response:
    visit = await signed_in(request, Role.COORDINATOR)
    assert visit.principal is not None
    with in_reach(visit):
        timeline = await timeline_view(visit.hub.reads, visit.principal, plan_id)
    meetings = [c for c in timeline.contributions if c.kind == "meeting"]
    return render(
        visit,
        "meetings.html",
        timeline=timeline,
        meetings=meetings,
        done=done == "action",
        idempotency_key=uuid.uuid4().hex,
    )


@router.post("/plan/{plan_id}/actions/{action_id}/done", response_class=HTMLResponse)
async def action_done(request: Request, plan_id: str, action_id: str) -> Response:
    """An open action from a meeting, done today (`POST
    /children/{id}/actions/{action_id}/completion`'s builder and handler)."""
    visit = await signed_in(request, Role.COORDINATOR)
    assert visit.principal is not None
    posted = await posted_lists(visit)
    reads = visit.hub.reads
    with in_reach(visit):
        child_id = await plan_in_reach(reads, visit.principal, plan_id)
    if action_id not in await open_action_ids(reads, child_id):
        raise PageRefused(visit, 404)
    key = (posted.get("idempotency_key") or [""])[0][:64] or None
    steps = completion_steps(action_id, CompletionIn(completed_on=datetime.now(UTC).date()))
    try:
        await visit.hub.handlers.record_plan_steps(
            steps.payloads,
            actor=visit.principal.actor,
            caller=visit.principal.name,
            child_id=child_id,
            plan_id=None,
            route=steps.route,
            idempotency_key=key,
            check=steps.check,
        )
    except StepRefused as refused:
        raise PageRefused(
            visit, 400, f"The action was not marked done: {refused.message}."
        ) from None
    return RedirectResponse(f"/plan/{plan_id}/meetings?done=action", status_code=303)
