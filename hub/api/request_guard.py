"""What every HTTP request passes before the app reads a byte of its body.

`RequestGuard` is a pure ASGI middleware. On any route but the public ones (those with no
auth dependency, `route_roles() is None`) it authenticates the `Authorization` header
first and answers 401 (or 503) itself, with the same problem details and challenge as
`current_principal`, without reading the body; the principal it found is kept in the
request's scope state so that `current_principal` does not authenticate again. Then, on
every route, the body is bounded: a Content-Length over `max_body_bytes` is answered 413
before anything is read, and a body without one (chunked) is counted as it arrives and
refused 413 the moment it passes the limit; a body that has not all arrived within
`body_timeout` seconds of the app starting to read it is answered 408. A response sent
before its request's body was all read says `Connection: close`, so the server drops the
rest instead of waiting for it. A refused request whose declared body is small
(`DRAIN_BYTES`) has it read and dropped first, within `DRAIN_SECONDS`, as servers' lingering
close does: a client that writes its body after its headers would otherwise meet a reset
connection (its body arriving at a closed socket) instead of the 401, and the connection
stays open for its next request. (Slow headers are the server's job: `hub.api.server`.)
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import structlog
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.problems import problem
from hub.auth import Authenticator, AuthError

log = structlog.get_logger(__name__)

DRAIN_BYTES = 64 * 1024
"""A refused request's declared body up to this size is read and dropped before the answer."""
DRAIN_SECONDS = 2.0

PRINCIPAL_KEY = "hub.principal"
"""Where in `scope["state"]` the guard keeps the authenticated principal."""


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is larger than the limit of {limit} bytes")


class BodyTimedOut(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the body did not arrive within {seconds:g} seconds")


def auth_refusal_headers(exc: AuthError, authorization: str | None) -> dict[str, str] | None:
    """RFC 6750 §3: the challenge on a 401; no error code when no credentials came."""
    if exc.status != 401:
        return None
    challenge = 'Bearer realm="tac-hub"'
    if authorization:
        challenge += ', error="invalid_token"'
    return {"WWW-Authenticate": challenge}


def _public_paths(app: Any) -> list[re.Pattern[str]]:
    """The path patterns of the routes that take no credentials."""
    import fastapi.routing
    from starlette.routing import Mount

    from hub.api.auth import route_roles

    contexts = getattr(fastapi.routing, "iter_route_contexts", iter)(app.routes)
    patterns = []
    for route in contexts:
        path = getattr(route, "path", None)
        if isinstance(getattr(route, "original_route", route), Mount) and isinstance(path, str):
            # a mounted app (the packaged static assets) answers everything under its path
            patterns.append(re.compile(re.escape(path.rstrip("/")) + "(/.*)?"))
        elif isinstance(path, str) and route_roles(route) is None:
            patterns.append(compile_path(path)[0])
    return patterns


class _Body:
    """The request's `receive`, counting body bytes against the limit and the clock."""

    def __init__(self, receive: Receive, limit: int, timeout: float) -> None:
        self._receive = receive
        self._limit = limit
        self._timeout = timeout
        self._deadline: float | None = None
        self.received = 0
        self.complete = False

    async def __call__(self) -> Message:
        if self.complete:  # after the body: disconnect notices, never timed
            return await self._receive()
        if self.received > self._limit:
            raise BodyTooLarge(self._limit)
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self._timeout
        try:
            message = await asyncio.wait_for(self._receive(), max(0.0, self._deadline - now))
        except TimeoutError:
            log.info("http.body_timed_out", received=self.received, timeout=self._timeout)
            raise BodyTimedOut(self._timeout) from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self._limit:
                log.info("http.body_too_large", received=self.received, limit=self._limit)
                raise BodyTooLarge(self._limit)
            self.complete = not message.get("more_body", False)
        else:
            self.complete = True
        return message

    async def drain(self, declared: str | None) -> None:
        """Read and drop the rest of a small declared body, if it comes in time."""
        if declared is None or not declared.isdigit() or int(declared) > DRAIN_BYTES:
            return
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                while not self.complete:
                    await self()
        except (TimeoutError, BodyTooLarge, BodyTimedOut):
            return


async def _drained(receive: Receive, declared: str | None) -> bool:
    """Read and drop a small declared body (True once it is all read)."""
    if declared is None or not declared.isdigit() or int(declared) > DRAIN_BYTES:
        return False
    received = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return False
                received += len(message.get("body", b""))
                if received > DRAIN_BYTES:
                    return False
                if not message.get("more_body", False):
                    return True
    except TimeoutError:
        return False


class RequestGuard:
    """Authenticate first, then read at most `max_body_bytes`, within `body_timeout`."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, body_timeout: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self._public: list[re.Pattern[str]] | None = None

    def _is_public(self, scope: Scope) -> bool:
        if self._public is None:
            self._public = _public_paths(scope["app"])
        path = scope["path"]
        return any(p.fullmatch(path) for p in self._public)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        has_body = bool(declared and declared != "0") or "transfer-encoding" in headers
        close = {"Connection": "close"} if has_body else {}
        if not self._is_public(scope):
            authorization = headers.get("authorization")
            auth = getattr(scope["app"].state, "auth", None)
            if not isinstance(auth, Authenticator):
                # fail closed: an app started without its lifespan can check no one
                refusal = problem(503, "Service Unavailable", "authentication is not "
                                  "initialised", headers=close)  # fmt: skip
                await refusal(scope, receive, send)
                return
            try:
                principal = await auth.authenticate(authorization)
            except AuthError as exc:
                title = "Unauthorized" if exc.status == 401 else "Service Unavailable"
                extra = auth_refusal_headers(exc, authorization) or {}
                if has_body and "transfer-encoding" not in headers:
                    close = {} if await _drained(receive, declared) else close
                await problem(exc.status, title, exc.reason, headers={**extra, **close})(
                    scope, receive, send
                )
                return
            scope.setdefault("state", {})[PRINCIPAL_KEY] = principal
        limit = self.max_body_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await problem(413, "Content Too Large", str(BodyTooLarge(limit).detail),
                          headers=close)(scope, receive, send)  # fmt: skip
            return
        body = _Body(receive, limit, self.body_timeout)
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if has_body and not body.complete and "transfer-encoding" not in headers:
                    await body.drain(declared)  # a small body: read, so no reset
                if has_body and not body.complete:  # the rest of the body is not wanted
                    message = {**message, "headers": [
                        *(h for h in message.get("headers", ()) if h[0].lower() != b"connection"),
                        (b"connection", b"close"),
                    ]}  # fmt: skip
            await send(message)

        try:
            await self.app(scope, body, guarded_send)
        except (BodyTooLarge, BodyTimedOut) as exc:  # raised where no handler answered it
            if started:
                raise
            title = "Content Too Large" if exc.status_code == 413 else "Request Timeout"
            await problem(exc.status_code, title, str(exc.detail), headers={"Connection": "close"})(
                scope, receive, guarded_send
            )
