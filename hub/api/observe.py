"""What every HTTP request leaves behind: a request id, one access log line and Prometheus
metrics, for the requests `RequestGuard` refuses (401, 413, 408) as for the rest.

`install_observability(app, metrics)` adds, outermost first:
- `CorrelationIdMiddleware` (asgi-correlation-id): the request id is the caller's
  `X-Request-ID` when it is a plausible id (`valid_request_id`), else a new one; it is
  returned in the response's `X-Request-ID` and, through `hub.observability`'s structlog
  processor, on every log line written while the request runs;
- `AccessLog`: one `http.request` line per request with the method, the route template
  (never the raw path, which may hold a child's id, nor the query string), the status
  and the duration;
- prometheus-fastapi-instrumentator's middleware (timing, and a raised exception counted as
  the 500 it becomes), recording into the hub's registry `hub_http_requests_total` and
  `hub_http_request_duration_seconds` per method, route template and status.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

import structlog
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from fastapi import FastAPI

    from hub.observability import Metrics

log = structlog.get_logger("hub.access")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,63}")
UNMATCHED = "none"
"""The route label of a request no route matches (as the instrumentator names it)."""


def valid_request_id(value: str) -> bool:
    """A caller's request id is kept if it is 8-64 characters of letters, digits and
    `._:-` (a UUID, a trace id, nginx's `$request_id`, ...) and not all digits: a number
    alone may be an NHS number or another identifier, which is never logged."""
    return bool(_REQUEST_ID.fullmatch(value)) and not value.isdigit()


ROUTE_KEY = "hub.route"
"""Where in the scope `AccessLog` keeps the route template, for the metrics to reuse."""


def route_template(scope: Scope) -> str:
    """The template of the route `scope` goes to (`/children/{child_id}`), the mount path
    of a mounted app, else `UNMATCHED`. A route whose path matches but not its method
    counts (its 405 is that route's). Matched as the router will, before it runs: so a
    request refused before the router (401, 413) has its route too."""
    import fastapi.routing

    routes = getattr(scope.get("app"), "routes", ())
    contexts = getattr(fastapi.routing, "iter_route_contexts", iter)(routes)
    partial = None
    for route in contexts:
        match, _child = route.matches(scope)
        if match is Match.NONE:
            continue
        name = getattr(route, "path", None)
        if match is Match.FULL and name is not None:
            return str(name)
        partial = partial or name
    return str(partial) if partial else UNMATCHED


REQUEST_BOUND = ("auth_role", "auth_key_id")
"""What a request binds to its log lines once its caller is known (hub.api.auth): kept
to that request's lines, never carried into what runs after it in the same context."""


class AccessLog:
    """One log line per HTTP request: method, route template, status, duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route = scope[ROUTE_KEY] = route_template(scope)
        status = 500  # what the server answers when the app raises before responding

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        structlog.contextvars.unbind_contextvars(*REQUEST_BOUND)  # none from a request before
        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            log.info(
                "http.request",
                method=scope["method"],
                route=route,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.unbind_contextvars(*REQUEST_BOUND)


def install_observability(app: FastAPI, metrics: Metrics) -> None:
    """Add the request id, access log and metrics middlewares (call after RequestGuard,
    so that they run outside it)."""
    from asgi_correlation_id import CorrelationIdMiddleware
    from prometheus_fastapi_instrumentator import Instrumentator

    def record(info: Any) -> None:
        scope = info.request.scope
        route = scope.get(ROUTE_KEY) or route_template(scope)
        labels = (info.method, route, info.modified_status)
        metrics.http_requests.labels(*labels).inc()
        metrics.http_latency.labels(*labels).observe(info.modified_duration)

    Instrumentator(
        should_group_status_codes=False,
        should_group_untemplated=True,
        registry=metrics.registry,
    ).add(record).instrument(app)
    app.add_middleware(AccessLog)
    app.add_middleware(
        CorrelationIdMiddleware,
        header_name=REQUEST_ID_HEADER,
        validator=valid_request_id,
    )
