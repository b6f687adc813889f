"""Serving the app over HTTP with uvicorn, with the limits a client cannot stretch.

`serve(app, settings, on_ready)` runs uvicorn on h11 with: request headers capped at
`H11_MAX_HEADER_BYTES` (uvicorn's `h11_max_incomplete_event_size`; more is refused 400),
idle keep-alive connections closed after `keep_alive_timeout_seconds` (uvicorn's
`timeout_keep_alive`), and — which uvicorn has no setting for — a connection whose
request headers are not all in within `header_timeout_seconds` of its opening, or of its
previous response, closed (`HeaderTimeoutH11Protocol`), so that a client sending its
headers a byte at a time holds nothing for long. Body size and body read time are
`hub.api.request_guard`'s. `serve()` runs the app's start-up itself first, so that a hub
that cannot start says why in one line (`StartupFailed`) and exits non-zero.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import h11
import structlog
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from hub.settings import Settings

log = structlog.get_logger(__name__)

H11_MAX_HEADER_BYTES = 64 * 1024


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers are late."""

    header_timeout: float = 10.0

    _header_timer: asyncio.TimerHandle | None = None

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.info("http.headers_timed_out", timeout=self.header_timeout)
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # a request's headers are all in
            self._disarm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_timer()  # the next request's headers are timed afresh

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)


def protocol_for(settings: Settings) -> type[H11Protocol]:
    """The h11 protocol class with this hub's header timeout."""
    return type(
        "HubH11Protocol",
        (HeaderTimeoutH11Protocol,),
        {"header_timeout": settings.header_timeout_seconds},
    )


class StartupFailed(Exception):
    """The hub could not start: its reason, in one line, for the person starting it."""


def one_line(exc: BaseException) -> str:
    """An exception as one line: its message's first line, else its class's name."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else starts, so that a port in use is
    one clear line and not a hub opened for nothing."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, so that asyncio sets TCP_NODELAY on every accepted connection (it
    # checks the protocol): without it a response written in two parts waits for the
    # client's delayed ACK, ~40 ms a request
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupFailed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)  # uvicorn's backlog: connections queue until the server accepts
    sock.set_inheritable(True)
    return sock


async def serve(app: Any, settings: Settings, on_ready: Callable[[int], None]) -> None:
    """Serve `app` on `settings.host:port` until stopped (SIGINT/SIGTERM).

    The app's start-up (its lifespan up to `yield`: opening the log and the store, loading
    the policy, starting the projector) runs here first, so that a failure is raised as
    `StartupFailed` with one line, not logged by uvicorn as a traceback; its shutdown is
    handed to uvicorn's lifespan, which runs it on SIGTERM/SIGINT before the server exits.
    `on_ready(port)` is called once the hub has started and the socket is bound."""
    sock = listen(settings.host, settings.port)
    stack = AsyncExitStack()
    try:
        await stack.enter_async_context(app.router.lifespan_context(app))
    except Exception as exc:
        sock.close()
        await stack.aclose()
        raise StartupFailed(f"{type(exc).__name__}: {one_line(exc)}") from None

    @asynccontextmanager
    async def shutdown_only(_app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await stack.aclose()

    app.router.lifespan_context = shutdown_only
    config = uvicorn.Config(
        app,
        http=protocol_for(settings),
        h11_max_incomplete_event_size=H11_MAX_HEADER_BYTES,
        timeout_keep_alive=settings.keep_alive_timeout_seconds,
        log_level="warning",
        access_log=False,  # hub.api.access_log writes one line per request instead
        server_header=False,
        lifespan="on",
    )
    on_ready(sock.getsockname()[1])
    await uvicorn.Server(config).serve(sockets=[sock])
