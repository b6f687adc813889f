"""The FastAPI application factory: health, readiness and metrics, the ingest,
coordinator, team and IG routers, and the web pages with their static files
(`hub.web`). Built by `create_app(settings)`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from hub import __version__
from hub.api.openapi import install_openapi, operation_id
from hub.bootstrap import Hub, open_hub, startup_frozen
from hub.observability import create_metrics
from hub.settings import Settings


def create_app(
    settings: Settings, *, run_projector: bool = True, hub: Hub | None = None
) -> FastAPI:
    """Build the API. With `run_projector` the projections run in this process too (the
    embedded default); `hub` lets a test hand in an already-open hub."""
    metrics = hub.metrics if hub is not None else create_metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = hub is None
        the_hub = hub or await open_hub(settings, metrics)
        app.state.hub = the_hub
        from hub.api.auth import create_authenticator

        app.state.auth = await create_authenticator(settings, the_hub.api_keys, the_hub.invitations)
        if run_projector:
            await the_hub.start_projector()
        notifier_stop, notifier_task = asyncio.Event(), None
        if settings.notify_enabled:
            from hub.bootstrap import build_notifier, run_notifier

            notifier_task = asyncio.create_task(
                run_notifier(build_notifier(the_hub), notifier_stop)
            )
        # what start-up built stays out of the collector's full passes, whose pauses
        # otherwise land in requests' tail latency
        try:
            with startup_frozen():
                yield
        finally:
            notifier_stop.set()
            if notifier_task is not None:
                await asyncio.gather(notifier_task, return_exceptions=True)
            if run_projector:
                await the_hub.stop_projector()
            if owned:
                await the_hub.close()

    app = FastAPI(
        title="TAC Hub",
        version=__version__,
        description=(
            "Joins what schools, health services and children's social care know about a "
            "child with SEND into one consent-checked picture for the team around the child."
        ),
        lifespan=lifespan,
        # Served by hub.web from the copies shipped in the package, not from a CDN.
        docs_url=None,
        redoc_url=None,
        # operationIds are the endpoint functions' names, not FastAPI's path-derived ones.
        generate_unique_id_function=operation_id,
    )
    from hub.api.problems import install_problem_handlers

    install_problem_handlers(app)
    from hub.api.request_guard import RequestGuard

    app.add_middleware(
        RequestGuard,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_read_timeout_seconds,
    )
    from hub.api.observe import install_observability

    # Added after RequestGuard, so outside it: its refusals get a request id, a log line
    # and their count too.
    install_observability(app, metrics)
    from hub.api import (
        routes_audit,
        routes_fhir,
        routes_identity,
        routes_joined,
        routes_notify,
        routes_ops,
        routes_plan_content,
        routes_plans,
        routes_record,
        routes_team,
    )

    app.include_router(routes_ops.router)
    app.include_router(routes_identity.router)
    app.include_router(routes_record.router)
    app.include_router(routes_audit.router)
    app.include_router(routes_joined.router)
    app.include_router(routes_plans.router)
    app.include_router(routes_plan_content.router)
    app.include_router(routes_team.router)
    app.include_router(routes_fhir.router)
    app.include_router(routes_notify.router)
    from hub.api import routes_ingest

    app.include_router(routes_ingest.router)
    from hub.web import install_web

    install_web(app, settings)
    install_openapi(app)
    return app
