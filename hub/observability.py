"""Logging and metrics set-up for hub processes.

structlog renders JSON off a terminal and a console view on one, with context variables
merged first and, while an HTTP request runs, its `request_id` (asgi-correlation-id's
context variable, set by `hub.api.observe`). Log lines carry ids only: never names, dates of
birth, identifiers or payloads. Metrics live in a per-process Prometheus registry built
by `create_metrics()` (nothing global at import). A value a sender chose (a message id)
is logged as `log_ref()`, a short hash, never as sent.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import structlog


class _CurrentStderr:
    """Writes to whatever `sys.stderr` is at the time of writing (not at configure time),
    so a replaced and closed stream (a test runner's capture) never breaks logging."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def log_ref(value: str | None) -> str | None:
    """A sender-chosen value as it may be logged: the first 12 hex digits of its SHA-256.
    The same value always gives the same ref (so log lines about one message can be
    found together, and `log_ref(id)` finds them from the id), but the log never holds
    what the sender wrote, which may be an identifier, a name or a control sequence."""
    if value is None:
        return None
    return "h:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def add_request_id(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the id of the HTTP request being answered, if any."""
    from asgi_correlation_id import correlation_id

    request_id = correlation_id.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_request_id,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),  # type: ignore[arg-type]
        # not cached: a module's logger follows a later configure() (the level, or a
        # test's capture_logs) instead of keeping the chain it first met; the cost is a
        # few microseconds per log call, a line or two per request
        cache_logger_on_first_use=False,
    )
    # Third-party libraries log through stdlib logging: keep them quiet and on stderr.
    logging.basicConfig(
        level=logging.WARNING, stream=_CurrentStderr(), format="%(levelname)s %(name)s %(message)s"
    )
    for noisy in ("aiokafka", "kafka", "uvicorn.access", "asgi_correlation_id"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@dataclass
class Metrics:
    registry: Any
    events_appended: Any
    dead_letters: Any
    projection_lag: Any
    http_requests: Any
    http_latency: Any


HTTP_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
"""Seconds; the API's targets are in tens of milliseconds, big ingest files in seconds."""


def create_metrics() -> Metrics:
    """The process's registry: the hub's own metrics, the HTTP ones (recorded by
    `hub.api.observe`) and the process, platform and GC collectors."""
    from prometheus_client import (
        GC_COLLECTOR,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        PlatformCollector,
        ProcessCollector,
    )

    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    registry.register(GC_COLLECTOR)
    http_labels = ["method", "route", "status"]
    return Metrics(
        registry=registry,
        events_appended=Counter(
            "hub_events_appended", "Records appended by this process", ["log"], registry=registry
        ),
        dead_letters=Gauge(
            "hub_deadletter_records", "Records in hub.deadletter", registry=registry
        ),
        projection_lag=Gauge(
            "hub_projection_lag",
            "Records not yet applied by a projection",
            ["projection"],
            registry=registry,
        ),
        http_requests=Counter(
            "hub_http_requests",
            "HTTP requests answered, per method, route template and status",
            http_labels,
            registry=registry,
        ),
        http_latency=Histogram(
            "hub_http_request_duration_seconds",
            "Time from a request's arrival to its response's end, per route template",
            http_labels,
            buckets=HTTP_LATENCY_BUCKETS,
            registry=registry,
        ),
    )
