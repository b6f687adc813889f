"""The hub's web pages: sign-in and sign-out, a coordinator's caseload and child pages, a
practitioner's children, the family's page (their child's team, plan progress, who
looked, their consents), a plan's timeline, and IG's trail and verify pages.

Pages map a browser's request to the query layer exactly as the API routes do (so every
page view of a child is the same audited read), and to the family's own handler for a
withdrawal. Every page names the roles it admits: nobody signed in gets the sign-in page,
a wrong role a 403 page, a child or plan out of the caller's reach a 404 page, as one
that does not exist. Every form carries the session's CSRF token and every POST is
refused without it. Addresses carry ids only; nothing personal goes in a URL or a log.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args
from urllib.parse import parse_qs, urlencode

import jinja2
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hub.auth.invitations import InvitationError, normalise
from hub.auth.principal import AuthError, Principal, Role
from hub.bootstrap import Hub
from hub.errors import InvalidQuery, NotFound
from hub.plans.clock import Se7Stage
from hub.queries.audit import child_trail_view, verify_trail
from hub.queries.joined import caseload_view, child_plans_view, team_view, timeline_view
from hub.queries.record import consents_view, require_consent_in_reach
from hub.queries.team_access import access_log, my_children
from hub.service_layer.family_consent import FamilyRefused
from hub.web.sessions import COOKIE, SessionCodec, WebSession
from hub.web.throttle import Refusal, SignInGuard
from hub.web.words import FILTERS

log = structlog.get_logger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
FORM_LIMIT = 16 * 1024
"""The largest form any page posts (a credential and a CSRF token, or a button)."""

STAGES: tuple[str, ...] = get_args(Se7Stage)
FAMILY_DONE = ("withdrawn", "given", "refused", "views", "views_withheld", "comments")
"""What the family page thanks the family for, after one of their forms."""

router = APIRouter(include_in_schema=False)


def create_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    env.globals["field_error"] = field_error
    return env


def field_error(errors: Sequence[Mapping[str, str]], name: str) -> str | None:
    """The error message for the form field `name`, if the form has one."""
    return next((e["text"] for e in errors if e["field"] == name), None)


# --------------------------------------------------------------------------- visits


@dataclass
class Visit:
    """One request from a browser: its session (new when it came without a valid one),
    who it is signed in as, and whether the response must set the cookie."""

    request: Request
    session: WebSession
    principal: Principal | None = None
    set_cookie: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hub(self) -> Hub:
        the_hub: Hub = self.request.app.state.hub
        return the_hub


class PageRefused(Exception):
    """Answer with an error page instead: 401 (the sign-in page), 403, 404 or 400."""

    def __init__(self, visit: Visit, status: int, message: str | None = None) -> None:
        super().__init__(message or str(status))
        self.visit = visit
        self.status = status
        self.message = message


def _codec(request: Request) -> SessionCodec:
    codec: SessionCodec = request.app.state.web_sessions
    return codec


async def visit_of(request: Request) -> Visit:
    """The request's session and principal (re-authenticated on every request)."""
    session = _codec(request).open(request.cookies.get(COOKIE))
    if session is None:
        return Visit(request, WebSession.new(), set_cookie=True)
    if session.token is None and session.oidc is None:
        return Visit(request, session)
    try:
        if session.oidc is not None:
            principal = await request.app.state.auth.principal_of_claims(session.oidc)
        else:
            principal = await request.app.state.auth.authenticate(f"Bearer {session.token}")
    except AuthError:
        if session.oidc is not None and _family_claims(request, session.oidc):
            # A family sign-in not linked to a child yet: it links with an invitation code.
            return Visit(request, session, extra={"unlinked": True})
        # Revoked, expired or erased: the browser is signed out, and told so on sign-in.
        return Visit(request, WebSession.new(), set_cookie=True, extra={"ended": True})
    structlog.contextvars.bind_contextvars(
        auth_role=principal.role.value, auth_key_id=principal.key_id
    )
    return Visit(request, session, principal)


def _family_claims(request: Request, claims: Mapping[str, Any]) -> bool:
    try:
        return bool(request.app.state.auth.oidc.role_of(claims) is Role.FAMILY)
    except (AuthError, AttributeError):
        return False


async def signed_in(request: Request, *roles: Role) -> Visit:
    """The visit of a principal in one of `roles`; else the sign-in page or a 403."""
    visit = await visit_of(request)
    if visit.principal is None:
        raise PageRefused(visit, 401)
    if visit.principal.role not in roles:
        raise PageRefused(visit, 403)
    return visit


@contextmanager
def in_reach(visit: Visit) -> Iterator[None]:
    """A child or plan the query layer says is out of reach is the 404 page."""
    try:
        yield
    except NotFound:
        raise PageRefused(visit, 404) from None


async def posted(visit: Visit) -> dict[str, str]:
    """The form's fields (first value of each), once its CSRF token matches the session's;
    a 403 page otherwise, and a 400 page for a form too large to be ours."""
    return {k: v[0] for k, v in (await posted_lists(visit)).items() if v}


async def posted_lists(visit: Visit, *, max_fields: int = 64) -> dict[str, list[str]]:
    """As `posted`, with every value of each field (checkboxes), up to `max_fields`
    (also kept as `visit.extra["form_lists"]`)."""
    request = visit.request
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind not in ("application/x-www-form-urlencoded", ""):
        raise PageRefused(visit, 400, "This form could not be read.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            raise PageRefused(visit, 400, "This form is too large.")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        raise PageRefused(visit, 400, "This form could not be read.") from None
    visit.extra["form_lists"] = fields  # every value of a repeated field (checkboxes)
    if not visit.session.csrf_matches((fields.get("csrf_token") or [""])[0] or None):
        log.info("web.csrf_refused", path=request.url.path)
        raise PageRefused(
            visit,
            403,
            "This form could not be sent, because it did not come from this page as you "
            "last opened it. Go back, reload the page and try again.",
        )
    return fields


def render(visit: Visit, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    env: jinja2.Environment = visit.request.app.state.web_templates
    principal = visit.principal
    html = env.get_template(template).render(
        csrf_token=visit.session.csrf,
        principal=principal,
        role=principal.role.value if principal else None,
        path=visit.request.url.path,
        **context,
    )
    response = HTMLResponse(html, status_code=status)
    if visit.set_cookie:
        set_session(visit.request, response, visit.session)
    return response


def set_session(request: Request, response: Response, session: WebSession) -> None:
    codec = _codec(request)
    response.set_cookie(
        COOKIE,
        codec.seal(session),
        max_age=codec.max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def throttled(
    visit: Visit, refusal: Refusal, template: str, field_name: str, context: Mapping[str, Any]
) -> HTMLResponse:
    """The form again, refused 429 with `Retry-After`: too many failed sign-ins."""
    errors = [{"field": field_name, "text": refusal.message}]
    response = render(visit, template, status=429, errors=errors, **context)
    response.headers["Retry-After"] = str(refusal.retry_after)
    return response


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site only (never another host)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def refused_page(exc: PageRefused) -> Response:
    visit = exc.visit
    if exc.status == 401 and visit.extra.get("unlinked"):
        return RedirectResponse("/sign-in/oidc/link", status_code=303)
    if exc.status == 401:
        request = visit.request
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return render(
            visit,
            "sign_in.html",
            status=401,
            next=safe_next(target if request.method == "GET" else "/"),
            errors=[],
            ended=bool(visit.extra.get("ended")),
            signed_out=False,
        )
    template = {403: "forbidden.html", 404: "not_found.html"}.get(exc.status, "bad_request.html")
    return render(visit, template, status=exc.status, message=exc.message)


# --------------------------------------------------------------------------- sign-in


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, next: str | None = None) -> Response:
    visit = await visit_of(request)
    if visit.principal is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(
        visit,
        "sign_in.html",
        next=safe_next(next),
        errors=[],
        ended=bool(visit.extra.get("ended")),
        signed_out=request.query_params.get("signed_out") == "1",
    )


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    visit = await visit_of(request)
    form = await posted(visit)
    credential = form.get("credential", "").strip()
    target = safe_next(form.get("next"))
    guard = SignInGuard.of(request)
    context = {"next": target, "ended": False, "signed_out": False}
    if (refusal := guard.refused()) is not None:
        return throttled(visit, refusal, "sign_in.html", "credential", context)

    async def again(message: str, reason: str | None = None) -> HTMLResponse:
        refusal = await guard.failed(visit.hub.trail, reason) if reason else None
        if refusal is not None:
            return throttled(visit, refusal, "sign_in.html", "credential", context)
        errors = [{"field": "credential", "text": message}]
        return render(visit, "sign_in.html", status=400, errors=errors, **context)

    if not credential:
        return await again("Enter your API key or your invitation code")
    redeemed_key: str | None = None
    if credential.startswith("thk_"):
        token = credential
    else:
        if not 8 <= len(normalise(credential)) <= 64:
            return await again(
                "Enter an API key (it starts thk_) or an invitation code", "malformed"
            )
        try:
            redeemed = await visit.hub.invitations.redeem(credential)
        except InvitationError:
            return await again(
                "This invitation code is not valid: it is unknown, used or expired",
                "invitation_code",
            )
        token = redeemed_key = redeemed.token
    try:
        principal = await request.app.state.auth.authenticate(f"Bearer {token}")
    except AuthError:
        return await again(
            "This API key is not valid: it is unknown, revoked or expired", "api_key"
        )
    guard.succeeded()
    log.info("web.signed_in", auth_role=principal.role.value, auth_key_id=principal.key_id)
    session = WebSession.new(token)
    if redeemed_key is not None:
        # The code is used up: the family key is how they sign in next time.
        visit = Visit(request, session, principal, set_cookie=True)
        return render(visit, "family_key.html", key=redeemed_key, next=target)
    response = RedirectResponse(target, status_code=303)
    set_session(request, response, session)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    visit = await visit_of(request)
    await posted(visit)
    response = RedirectResponse("/sign-in?signed_out=1", status_code=303)
    set_session(request, response, WebSession.new())
    return response


# --------------------------------------------------------------------------- home


@router.get("/", response_class=HTMLResponse)
async def home(
    request: Request,
    stage: str | None = None,
    overdue: str | None = None,
    cursor: str | None = None,
) -> Response:
    visit = await visit_of(request)
    principal = visit.principal
    if principal is None:
        response = RedirectResponse("/sign-in", status_code=303)
        if visit.set_cookie:
            set_session(request, response, visit.session)
        return response
    if principal.role is Role.COORDINATOR:
        return await _caseload(visit, principal, stage, overdue, cursor)
    if principal.role is Role.PRACTITIONER:
        mine = await my_children(visit.hub.reads, principal)
        return render(visit, "my_children.html", title="Your children", mine=mine)
    if principal.role is Role.FAMILY:
        mine = await my_children(visit.hub.reads, principal)
        if len(mine.children) == 1:
            return RedirectResponse(f"/our-child/{mine.children[0].child_id}", status_code=303)
        return render(visit, "my_children.html", title="Your children", mine=mine)
    if principal.role is Role.IG_AUDITOR:
        return render(visit, "audit_home.html", errors=[])
    raise PageRefused(visit, 403)


async def _caseload(
    visit: Visit,
    principal: Principal,
    stage: str | None,
    overdue: str | None,
    cursor: str | None,
) -> HTMLResponse:
    chosen_stage = stage if stage in STAGES else None
    chosen_overdue = {"yes": True, "no": False}.get(overdue or "")
    try:
        view = await caseload_view(
            visit.hub.reads,
            principal,
            stage=chosen_stage,  # type: ignore[arg-type]  # checked against STAGES above
            overdue=chosen_overdue,
            cursor=cursor or None,
        )
    except InvalidQuery as exc:
        raise PageRefused(
            visit, 400, f"This page of the caseload cannot be shown: {exc.reason}."
        ) from None
    filters = {
        k: v
        for k, v in (
            ("stage", chosen_stage),
            ("overdue", overdue if chosen_overdue is not None else None),
        )
        if v
    }
    next_page = (
        "/?" + urlencode({**filters, "cursor": view.next_cursor}) if view.next_cursor else None
    )
    return render(
        visit,
        "caseload.html",
        view=view,
        stages=STAGES,
        chosen_stage=chosen_stage,
        chosen_overdue=overdue if chosen_overdue is not None else "",
        next_page=next_page,
        first_page="/?" + urlencode(filters) if cursor else None,
    )


# --------------------------------------------------------------------------- a child


@router.get("/child/{child_id}", response_class=HTMLResponse)
async def child_page(
    request: Request, child_id: str, recorded: str | None = None, held: str | None = None
) -> Response:
    visit = await signed_in(request, Role.COORDINATOR, Role.PRACTITIONER)
    assert visit.principal is not None
    with in_reach(visit):
        team = await team_view(visit.hub.reads, visit.principal, child_id)
        plans = await child_plans_view(visit.hub.reads, visit.principal, child_id)
    return render(
        visit, "child.html", team=team, plans=plans, recorded=recorded, held=held == "yes"
    )


@router.get("/plan/{plan_id}", response_class=HTMLResponse)
async def plan_page(
    request: Request, plan_id: str, recorded: str | None = None, held: str | None = None
) -> Response:
    visit = await signed_in(request, Role.COORDINATOR, Role.PRACTITIONER, Role.FAMILY)
    assert visit.principal is not None
    with in_reach(visit):
        timeline = await timeline_view(visit.hub.reads, visit.principal, plan_id)
    back = (
        f"/our-child/{timeline.child_id}"
        if visit.principal.role is Role.FAMILY
        else f"/child/{timeline.child_id}"
    )
    return render(
        visit, "timeline.html", timeline=timeline, back=back, recorded=recorded, held=held == "yes"
    )


# --------------------------------------------------------------------------- family


async def _family_page(
    visit: Visit, child_id: str, *, status: int = 200, errors: Sequence[Mapping[str, str]] = (),
    done: str | None = None,
) -> HTMLResponse:  # fmt: skip
    assert visit.principal is not None
    reads = visit.hub.reads
    with in_reach(visit):
        team = await team_view(reads, visit.principal, child_id)
        plans = await child_plans_view(reads, visit.principal, child_id)
        consents = await consents_view(reads, visit.principal, child_id)
        looked = await access_log(reads, visit.principal, child_id, limit=50)
    return render(
        visit,
        "family.html",
        status=status,
        team=team,
        plans=plans,
        consents=consents,
        looked=looked,
        errors=list(errors),
        done=done,
    )


@router.get("/our-child/{child_id}", response_class=HTMLResponse)
async def family_page(request: Request, child_id: str, done: str | None = None) -> Response:
    visit = await signed_in(request, Role.FAMILY)
    return await _family_page(visit, child_id, done=done if done in FAMILY_DONE else None)


@router.post("/our-child/{child_id}/consents/{consent_id}/withdraw")
async def family_withdraw(request: Request, child_id: str, consent_id: str) -> Response:
    visit = await signed_in(request, Role.FAMILY)
    await posted(visit)
    assert visit.principal is not None
    the_hub = visit.hub
    with in_reach(visit):
        await require_consent_in_reach(the_hub.reads, visit.principal, child_id, consent_id)
    try:
        outcome = await the_hub.handlers.family_consent.withdraw(
            visit.principal, child_id, consent_id
        )
    except FamilyRefused as exc:
        return await _family_page(
            visit, child_id, status=422, errors=[{"field": "consents", "text": str(exc)}]
        )
    except NotFound:
        raise PageRefused(visit, 404) from None
    if outcome.status not in ("appended", "withheld", "duplicate"):
        text = outcome.reason or "The withdrawal was not recorded"
        return await _family_page(
            visit, child_id, status=422, errors=[{"field": "consents", "text": text}]
        )
    return RedirectResponse(f"/our-child/{child_id}?done=withdrawn", status_code=303)


# --------------------------------------------------------------------------- IG


@router.get("/trail", response_class=HTMLResponse)
async def trail_search(request: Request, child_id: str | None = None) -> Response:
    visit = await signed_in(request, Role.IG_AUDITOR)
    wanted = (child_id or "").strip()
    if not wanted:
        errors = [{"field": "child_id", "text": "Enter the hub child id"}]
        return render(visit, "audit_home.html", status=400, errors=errors)
    if not all(c.isalnum() or c in "-_:" for c in wanted) or len(wanted) > 64:
        errors = [
            {"field": "child_id", "text": "A hub child id has only letters, digits and - _ :"}
        ]
        return render(visit, "audit_home.html", status=400, errors=errors)
    return RedirectResponse(f"/trail/{wanted}", status_code=303)


@router.get("/trail/{child_id}", response_class=HTMLResponse)
async def trail_page(request: Request, child_id: str, cursor: str | None = None) -> Response:
    visit = await signed_in(request, Role.IG_AUDITOR)
    assert visit.principal is not None
    try:
        page = await child_trail_view(
            visit.hub.reads, visit.principal, child_id, cursor=cursor or None
        )
    except InvalidQuery as exc:
        raise PageRefused(
            visit, 400, f"This page of the trail cannot be shown: {exc.reason}."
        ) from None
    next_page = (
        f"/trail/{child_id}?{urlencode({'cursor': page.next_cursor})}" if page.next_cursor else None
    )
    return render(
        visit,
        "trail.html",
        child_id=child_id,
        records=page.records,
        next_page=next_page,
        first_page=f"/trail/{child_id}" if cursor else None,
    )


@router.get("/verify", response_class=HTMLResponse)
async def verify_page(request: Request) -> Response:
    visit = await signed_in(request, Role.IG_AUDITOR)
    result = await verify_trail(visit.hub.reads)
    return render(visit, "verify.html", result=result)
