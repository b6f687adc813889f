"""What every HTTP request leaves behind: a request id, one access log line and Prometheus
metrics, for the requests `RequestGuard` refuses (401, 413, 408) as for the rest.

`install_observability(app, metrics)` adds, outermost first:
- `CorrelationIdMiddleware` (asgi-correlation-id): the request id is the caller's
  `X-Request-ID` when it is a plausible id (`valid_request_id`), else a new one; it is
  returned in the response's `X-Request-ID` and, through `hub.observability`'s structlog
  processor, on every log line written while the request runs;
- `AccessLog`: one `http.request` line per request with the method, the route template
  (never the raw path, which may hold a child's id, nor the query string), the status
  and the duration, and the same into the hub's registry as `hub_http_requests_total`
  and `hub_http_request_duration_seconds` per method, route template and status (a raised
  exception counted as the 500 it becomes).

The route template is read once the request is answered, from the route the router chose
(`scope["route"]`); only a request the router never saw (refused by `RequestGuard`) or
one it answered without a FastAPI route (a mount, no match) is matched against the routes
here (`route_template`), so a routed request is not matched three times over.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import structlog
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from fastapi import FastAPI

    from hub.observability import Metrics

log = structlog.get_logger("hub.access")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,63}")
UNMATCHED = "none"
"""The route label of a request no route matches."""


def valid_request_id(value: str) -> bool:
    """A caller's request id is kept if it is 8-64 characters of letters, digits and
    `._:-` (a UUID, a trace id, nginx's `$request_id`, ...) and not all digits: a number
    alone may be an NHS number or another identifier, which is never logged."""
    return bool(_REQUEST_ID.fullmatch(value)) and not value.isdigit()


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
    """One log line and one count and timing per HTTP request: method, route template,
    status, duration."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        before = dict(scope)  # the scope as it came, for matching a route the router did not
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
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = route.path if isinstance(route, APIRoute) else route_template(before)
            log.info(
                "http.request",
                method=scope["method"],
                route=template,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            if self.metrics is not None:
                labels = (scope["method"], template, str(status))
                self.metrics.http_requests.labels(*labels).inc()
                self.metrics.http_latency.labels(*labels).observe(elapsed)
            structlog.contextvars.unbind_contextvars(*REQUEST_BOUND)


def install_observability(app: FastAPI, metrics: Metrics) -> None:
    """Add the request id and the access log (with its metrics) middlewares (call after
    RequestGuard, so that they run outside it)."""
    from asgi_correlation_id import CorrelationIdMiddleware

    app.add_middleware(AccessLog, metrics=metrics)
    app.add_middleware(
        CorrelationIdMiddleware,
        header_name=REQUEST_ID_HEADER,
        validator=valid_request_id,
    )
