"""The family's own pages, beside their child's page (`/our-child/{id}`, in
`hub.web.pages`): what is shared with whom and on what basis, giving (or refusing)
consent, their views for section A of the plan, and their comments on a draft plan.

Every page admits the family role only, and only for their own child (any other child is
the 404 page, as one that does not exist); every read is the query layer's audited read;
every form carries the session's CSRF token and goes to the family's own handlers, which
record the family member as the grantor or contributor and check who may decide on the
day. A form that is not right comes back with a GOV.UK error summary naming the field
and the rule, and nothing recorded.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hub.auth.principal import Principal, Role
from hub.errors import NotFound
from hub.queries.context import plan_in_reach
from hub.queries.joined import child_plans_view, team_view
from hub.queries.team_access import who_can_see
from hub.service_layer.family_consent import FamilyRefused, comment_on_draft
from hub.service_layer.plan_steps import StepRefused
from hub.web.pages import PageRefused, Visit, in_reach, posted, render, signed_in

router = APIRouter(include_in_schema=False)

Errors = list[dict[str, str]]
AGENCY_WORDS = {
    "local_authority": "The council",
    "education": "Schools and colleges",
    "health": "Health services",
    "social_care": "Social care",
}
COMMENT_STATUSES = ("drafting", "amending")
MAX_LIST_ITEMS = 50


async def _family(request: Request) -> tuple[Visit, Principal]:
    visit = await signed_in(request, Role.FAMILY)
    assert visit.principal is not None
    return visit, visit.principal


def _lists(visit: Visit, name: str) -> list[str]:
    values: Mapping[str, list[str]] = visit.extra.get("form_lists", {})
    return [v for v in values.get(name, []) if v]


def _field_of(exc: FamilyRefused, known: Sequence[str], default: str) -> str:
    """The form field a handler's refusal names (`consent.scope.categories.0` ->
    `categories`), else `default`."""
    for part in reversed((exc.field or "").split(".")):
        if part in known:
            return part
    return default


def _done(child_id: str, what: str) -> RedirectResponse:
    return RedirectResponse(f"/our-child/{child_id}?done={what}", status_code=303)


# --------------------------------------------------------------------------- sharing


def _ground_words(ground: str, bases: Mapping[str, Any]) -> str:
    if ground.startswith("consent "):
        return "consent given for the child (record " + ground.removeprefix("consent ") + ")"
    if ground.startswith("statutory basis "):
        name = ground.removeprefix("statutory basis ")
        basis = bases.get(name)
        return f"the law: {basis.title} ({basis.legislation})" if basis else f"the law ({name})"
    return ground


@router.get("/our-child/{child_id}/sharing", response_class=HTMLResponse)
async def sharing_page(request: Request, child_id: str) -> Response:
    visit, principal = await _family(request)
    reads = visit.hub.reads
    with in_reach(visit):
        team = await team_view(reads, principal, child_id)
        who = await who_can_see(reads, principal, child_id)
    names = {
        m.practitioner_id: (m.name, m.organisation_name)
        for group in team.agencies
        for m in group.members
    }
    bases = reads.policy.statutory_bases
    categories = reads.policy.categories
    people = []
    for person in who.people:
        name, organisation = names.get(person.who, (None, None))
        people.append(
            {
                "kind": person.kind,
                "who": "You" if person.kind == "family" and person.who == principal.name
                else "A family member" if person.kind == "family"
                else name or person.who,
                "role": person.role_description or person.role.replace("_", " "),
                "organisation": organisation or person.organisation,
                "why": person.why,
                "sees": [
                    {
                        "category": categories[s.category].description
                        if s.category in categories
                        else s.category,
                        "seen": s.facts_seen,
                        "held": s.facts_held,
                        "grounds": [_ground_words(g, bases) for g in s.grounds],
                    }
                    for s in person.sees
                ],
            }
        )  # fmt: skip
    return render(visit, "family_sharing.html", child_id=child_id, people=people, team=team)


# --------------------------------------------------------------------------- consent


def _consent_choices(visit: Visit) -> dict[str, Any]:
    policy = visit.hub.reads.policy
    return {
        "categories": [(c, spec.description) for c, spec in policy.categories.items()
                       if c != "identity"],
        "agencies": list(AGENCY_WORDS.items()),
        "purposes": list(policy.purposes.items()),
    }  # fmt: skip


def _consent_form(
    visit: Visit,
    child_id: str,
    *,
    status: int = 200,
    errors: Errors | None = None,
    chosen: Mapping[str, Any] | None = None,
) -> HTMLResponse:
    return render(
        visit,
        "family_consent.html",
        status=status,
        child_id=child_id,
        choices=_consent_choices(visit),
        errors=errors or [],
        chosen=chosen or {"decision": "", "categories": [], "agencies": [], "purposes": []},
    )


def _date_of(form: Mapping[str, str], name: str) -> tuple[date | None, str | None]:
    """A GOV.UK date input's value (`name-day`, `-month`, `-year`), or the error."""
    parts = [form.get(f"{name}-{p}", "").strip() for p in ("day", "month", "year")]
    if not any(parts):
        return None, None
    if not all(parts):
        return None, "The end date must include a day, month and year"
    try:
        day, month, year = (int(p) for p in parts)
        return date(year, month, day), None
    except ValueError:
        return None, "The end date must be a real date, like 27 3 2027"


@router.get("/our-child/{child_id}/consents/new", response_class=HTMLResponse)
async def consent_form(request: Request, child_id: str) -> Response:
    visit, principal = await _family(request)
    if not principal.acts_for(child_id):
        raise PageRefused(visit, 404)
    return _consent_form(visit, child_id)


@router.post("/our-child/{child_id}/consents", response_class=HTMLResponse)
async def consent_give(request: Request, child_id: str) -> Response:
    visit, principal = await _family(request)
    form = await posted(visit)
    if not principal.acts_for(child_id):
        raise PageRefused(visit, 404)
    choices = _consent_choices(visit)
    chosen = {
        "decision": form.get("decision", ""),
        "categories": _lists(visit, "categories"),
        "agencies": _lists(visit, "agencies"),
        "purposes": _lists(visit, "purposes"),
        **{f"until-{p}": form.get(f"until-{p}", "") for p in ("day", "month", "year")},
    }
    errors: Errors = []
    if chosen["decision"] not in ("permit", "deny"):
        errors.append({"field": "decision", "text": "Select whether you agree to share"})
    known = {c for c, _ in choices["categories"]}
    if not chosen["categories"] or not set(chosen["categories"]) <= known:
        errors.append({"field": "categories", "text": "Select at least one kind of information"})
    if not set(chosen["agencies"]) <= set(AGENCY_WORDS):
        errors.append({"field": "agencies", "text": "Select only the services listed"})
    if not chosen["purposes"] or not set(chosen["purposes"]) <= {p for p, _ in choices["purposes"]}:
        errors.append({"field": "purposes", "text": "Select at least one reason for sharing"})
    today = datetime.now(UTC).date()
    until, wrong = _date_of(form, "until")
    if wrong is None and until is not None and until < today:
        wrong = "The end date must be today or in the future"
    if wrong:
        errors.append({"field": "until-day", "text": wrong})
    if errors:
        return _consent_form(visit, child_id, status=400, errors=errors, chosen=chosen)
    consent = {
        "consent_id": f"family-{uuid.uuid4().hex[:12]}",
        "decision": chosen["decision"],
        "given_on": today.isoformat(),
        "scope": {
            "categories": chosen["categories"],
            "agencies": chosen["agencies"],
            "purposes": chosen["purposes"],
        },
        "period": {"start": today.isoformat(), "end": until.isoformat() if until else None},
    }
    try:
        outcome = await visit.hub.handlers.family_consent.record(principal, child_id, consent)
    except FamilyRefused as exc:
        field = _field_of(exc, ("categories", "agencies", "purposes"), "decision")
        return _consent_form(
            visit, child_id, status=422, errors=[{"field": field, "text": exc.reason}],
            chosen=chosen,
        )  # fmt: skip
    except NotFound:
        raise PageRefused(visit, 404) from None
    if outcome.status not in ("appended", "withheld"):
        text = outcome.reason or "The consent was not recorded"
        return _consent_form(
            visit, child_id, status=422, errors=[{"field": "decision", "text": text}],
            chosen=chosen,
        )  # fmt: skip
    return _done(child_id, "given" if chosen["decision"] == "permit" else "refused")


# --------------------------------------------------------------------------- views


def _views_form(
    visit: Visit,
    child_id: str,
    *,
    status: int = 200,
    errors: Errors | None = None,
    values: Mapping[str, str] | None = None,
) -> HTMLResponse:
    return render(
        visit,
        "family_views.html",
        status=status,
        child_id=child_id,
        errors=errors or [],
        values=values or {"views": "", "interests": "", "aspirations": ""},
    )


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


@router.get("/our-child/{child_id}/views", response_class=HTMLResponse)
async def views_form(request: Request, child_id: str) -> Response:
    visit, principal = await _family(request)
    if not principal.acts_for(child_id):
        raise PageRefused(visit, 404)
    return _views_form(visit, child_id)


@router.post("/our-child/{child_id}/views", response_class=HTMLResponse)
async def views_add(request: Request, child_id: str) -> Response:
    visit, principal = await _family(request)
    form = await posted(visit)
    if not principal.acts_for(child_id):
        raise PageRefused(visit, 404)
    values = {k: form.get(k, "") for k in ("views", "interests", "aspirations")}
    errors: Errors = []
    if not values["views"].strip():
        errors.append({"field": "views", "text": "Enter your views, in your own words"})
    elif len(values["views"]) > 20000:
        errors.append({"field": "views", "text": "Your views must be 20,000 characters or fewer"})
    for name, words in (("interests", "interests"), ("aspirations", "hopes")):
        items = _lines(values[name])
        if len(items) > MAX_LIST_ITEMS:
            errors.append(
                {"field": name, "text": f"List at most {MAX_LIST_ITEMS} {words}, one a line"}
            )
        elif any(len(i) > 500 for i in items):
            text = f"Each of your {words} must be 500 characters or fewer"
            errors.append({"field": name, "text": text})
    if errors:
        return _views_form(visit, child_id, status=400, errors=errors, values=values)
    try:
        outcome = await visit.hub.handlers.family_consent.add_views(
            principal,
            child_id,
            {
                "views": values["views"],
                "interests": _lines(values["interests"]),
                "aspirations": _lines(values["aspirations"]),
            },
        )
    except FamilyRefused as exc:
        field = _field_of(exc, ("views", "interests", "aspirations"), "views")
        return _views_form(
            visit, child_id, status=422, errors=[{"field": field, "text": exc.reason}],
            values=values,
        )  # fmt: skip
    except NotFound:
        raise PageRefused(visit, 404) from None
    if outcome.status == "withheld":
        return _done(child_id, "views_withheld")
    if outcome.status != "appended":
        text = outcome.reason or "Your views were not recorded"
        return _views_form(
            visit, child_id, status=422, errors=[{"field": "views", "text": text}], values=values
        )
    return _done(child_id, "views")


# --------------------------------------------------------------------------- comments


async def _plan_of(visit: Visit, principal: Principal, child_id: str, plan_id: str) -> None:
    with in_reach(visit):
        owner = await plan_in_reach(visit.hub.reads, principal, plan_id)
    if owner != child_id:
        raise PageRefused(visit, 404)


async def _comments_form(
    visit: Visit,
    child_id: str,
    plan_id: str,
    *,
    status: int = 200,
    errors: Errors | None = None,
    values: Mapping[str, str] | None = None,
) -> HTMLResponse:
    assert visit.principal is not None
    with in_reach(visit):
        plans = await child_plans_view(visit.hub.reads, visit.principal, child_id)
    plan = next((p for p in plans.plans if p.plan_id == plan_id), None)
    if plan is None:
        raise PageRefused(visit, 404)
    return render(
        visit,
        "family_comments.html",
        status=status,
        child_id=child_id,
        plan=plan,
        open_for_comments=plan.status in COMMENT_STATUSES,
        errors=errors or [],
        values=values or {"summary": "", "requested_placement": ""},
    )


@router.get("/our-child/{child_id}/plans/{plan_id}/comments", response_class=HTMLResponse)
async def comments_form(request: Request, child_id: str, plan_id: str) -> Response:
    visit, principal = await _family(request)
    await _plan_of(visit, principal, child_id, plan_id)
    return await _comments_form(visit, child_id, plan_id)


@router.post("/our-child/{child_id}/plans/{plan_id}/comments", response_class=HTMLResponse)
async def comments_add(request: Request, child_id: str, plan_id: str) -> Response:
    visit, principal = await _family(request)
    form = await posted(visit)
    await _plan_of(visit, principal, child_id, plan_id)
    values = {k: form.get(k, "").strip() for k in ("summary", "requested_placement")}
    errors: Errors = []
    if not values["summary"]:
        errors.append({"field": "summary", "text": "Enter your comments on the draft plan"})
    elif len(values["summary"]) > 20000:
        errors.append(
            {"field": "summary", "text": "Your comments must be 20,000 characters or fewer"}
        )
    placement = values["requested_placement"]
    if placement and not (placement.isdigit() and len(placement) in (6, 8)):
        errors.append(
            {
                "field": "requested_placement",
                "text": "A school's URN has 6 digits and a college's UKPRN 8 digits",
            }
        )
    if errors:
        return await _comments_form(
            visit, child_id, plan_id, status=400, errors=errors, values=values
        )
    comments = {"summary": values["summary"], "requested_placement": placement or None}
    try:
        await comment_on_draft(
            visit.hub.handlers.record_plan_steps,
            principal,
            child_id,
            plan_id,
            comments,
            route="POST /our-child/{id}/plans/{id}/comments",
        )
    except FamilyRefused as exc:
        field = _field_of(exc, ("summary", "requested_placement"), "summary")
        errors = [{"field": field, "text": exc.reason}]
    except StepRefused as exc:
        field = exc.field if exc.field in ("summary", "requested_placement") else "summary"
        errors = [{"field": field, "text": exc.message}]
    except NotFound:
        raise PageRefused(visit, 404) from None
    if errors:
        return await _comments_form(
            visit, child_id, plan_id, status=422, errors=errors, values=values
        )
    return _done(child_id, "comments")
