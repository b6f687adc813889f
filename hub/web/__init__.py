"""The hub's web pages (server-rendered, GOV.UK Frontend) and the API documentation pages,
served by the API's own process: `install_web(app, settings)` adds the security headers,
the session codec, the templates, the static files under `/static` (GOV.UK Frontend,
Swagger UI and ReDoc shipped inside the package) and the page routes: `pages` (sign-in,
caseload, child, timeline, family, trail, verify), `pages_coordinator` (the forms for the
LA's steps, search, contributions, meetings), `pages_ig` (access log, downloads,
erasure)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from hub.settings import Settings

STATIC = Path(__file__).parent / "static"


SESSION_KEY_PURPOSE = b"web-session-cookies"


def session_secret(settings: Settings) -> bytes:
    """What seals the session cookies: the configured secret, else one derived from the
    master key (HKDF), so sessions outlive a restart and every process that shares the
    master key reads the others' cookies."""
    from hub.bootstrap import load_master_key

    if settings.web_session_secret is not None:
        return settings.web_session_secret.get_secret_value().encode()
    return load_master_key(settings).derive(SESSION_KEY_PURPOSE)


def install_web(app: FastAPI, settings: Settings) -> None:
    from hub.web import docs, oidc, pages, step_forms
    from hub.web.forms import TEMPLATE_GLOBALS
    from hub.web.security import SecurityHeaders
    from hub.web.sessions import SessionCodec
    from hub.web.throttle import SignInThrottle

    app.state.web_sessions = SessionCodec(lambda: session_secret(settings))
    app.state.web_templates = pages.create_templates()
    app.state.web_templates.globals.update(TEMPLATE_GLOBALS, **step_forms.TEMPLATE_GLOBALS)
    app.state.web_throttle = SignInThrottle()
    if settings.oidc_issuer and settings.oidc_client_id:
        app.state.web_oidc = oidc.OidcSignIn(settings)
        app.state.web_templates.globals["oidc_sign_in"] = settings.oidc_display_name
    else:
        app.state.web_templates.globals["oidc_sign_in"] = None
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(pages.PageRefused, _refused)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in page_routers():
        app.include_router(router)
    app.include_router(docs.router)


def page_routers() -> list[APIRouter]:
    """Every router of web pages (authenticated by the session cookie, not a bearer
    token: tests/e2e/test_auth_routes.py leaves them to the web page tests)."""
    from hub.web import oidc, pages, pages_coordinator, pages_family, pages_ig, pages_practitioner

    return [
        pages.router,
        oidc.router,
        pages_family.router,
        pages_practitioner.router,
        pages_coordinator.router,
        pages_ig.router,
    ]


async def _refused(request: Request, exc: Exception) -> Response:
    from hub.web.pages import PageRefused, refused_page

    assert isinstance(exc, PageRefused)
    return refused_page(exc)


__all__ = ["STATIC", "install_web", "page_routers"]
