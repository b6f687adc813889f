"""Every HTTP request, those RequestGuard refuses included, has a request id (the caller's
`X-Request-ID` when it is a plausible id, else a new one) that is returned and on every
log line written while it runs, one access log line (route template, status, duration;
never the raw path's ids or the query string), and its count and latency in /metrics per
route template, beside the process collectors."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import LogCapture

from hub.api.observe import valid_request_id
from hub.observability import add_request_id
from tests.support.api import embedded, running_api

GENERATED = re.compile(r"[0-9a-f]{32}")


@contextmanager
def logged() -> Iterator[list[dict[str, Any]]]:
    """The hub's own processors up to rendering (context variables, the request id)."""
    capture = LogCapture()
    old = structlog.get_config()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, add_request_id, capture],
        cache_logger_on_first_use=False,
    )
    try:
        yield capture.entries
    finally:
        structlog.configure(**old)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("3f1c2a9e-5b7d-4c1e-9a2b-6d8e0f1a2b3c", True),
        ("nginx-req.0001:abc", True),
        ("9434765919", False),  # digits alone: perhaps an NHS number
        ("short", False),
        ("x" * 65, False),
        ("has space-in-it", False),
        ("new\nline-in-it", False),
        ("../../etc/passwd", False),
        ("Sam Example", False),
    ],
)
def test_which_request_ids_are_kept(sent: str, kept: bool) -> None:
    assert valid_request_id(sent) is kept


async def test_request_ids_are_kept_or_made_and_on_every_line(tmp_path: Path) -> None:
    async with running_api(embedded(tmp_path)) as api:
        await api.key("ops", "admin")
        with logged() as lines:
            mine = await api.client.get("/healthz", headers={"X-Request-ID": "caller-id-0001"})
            refused = await api.client.get("/caseload", headers={"X-Request-ID": "9434765919"})
            made = await api.client.get("/whoami", headers=api.auth("ops"))
            too_large = await api.client.post(
                "/ingest/events",
                content=b"{}",
                headers={**api.auth("ops"), "content-length": str(10**9)},
            )
    assert mine.headers["x-request-id"] == "caller-id-0001"
    assert refused.status_code == 401
    assert GENERATED.fullmatch(refused.headers["x-request-id"])  # the number was not kept
    assert GENERATED.fullmatch(made.headers["x-request-id"])
    assert too_large.status_code == 413 and GENERATED.fullmatch(too_large.headers["x-request-id"])
    ids = {r.headers["x-request-id"] for r in (mine, refused, made, too_large)}
    assert len(ids) == 4
    assert lines and all(line.get("request_id") in ids for line in lines), lines
    assert "9434765919" not in repr(lines)
    refusal = [line for line in lines if line["event"] == "auth.refused"]
    assert [line["request_id"] for line in refusal] == [refused.headers["x-request-id"]]


async def test_one_access_line_per_request_without_ids_or_query(tmp_path: Path) -> None:
    child = str(uuid.uuid4())
    async with running_api(embedded(tmp_path)) as api:
        await api.key("coord", "coordinator")
        with logged() as lines:
            found = await api.client.get(
                f"/children/{child}/record?name=Sam+Example", headers=api.auth("coord")
            )
            unknown = await api.client.get(f"/no-such-page/{child}")
            anonymous = await api.client.get(f"/children/{child}/team")
    access = [line for line in lines if line["event"] == "http.request"]
    assert [(a["method"], a["route"], a["status"]) for a in access] == [
        ("GET", "/children/{child_id}/record", found.status_code),
        ("GET", "none", unknown.status_code),
        ("GET", "/children/{child_id}/team", 401),
    ]
    assert all(isinstance(a["duration_ms"], float) and a["duration_ms"] >= 0 for a in access)
    assert [a["request_id"] for a in access] == [
        r.headers["x-request-id"] for r in (found, unknown, anonymous)
    ]
    text = repr(lines)
    assert child not in text and "Sam" not in text and "name=" not in text
    # who acted is on their own request's lines only, never on a later request's
    assert access[0]["auth_role"] == "coordinator" and access[0]["auth_key_id"]
    assert "auth_key_id" not in access[1] and "auth_key_id" not in access[2], access
    assert "auth_key_id" not in structlog.contextvars.get_contextvars()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_and_time_every_request_per_route_template(tmp_path: Path) -> None:
    child = str(uuid.uuid4())
    async with running_api(embedded(tmp_path)) as api:
        await api.key("ops", "admin")
        await api.key("coord", "coordinator")
        for _ in range(3):
            assert (await api.client.get("/healthz")).status_code == 200
        await api.client.get(f"/children/{child}/record", headers=api.auth("coord"))
        assert (await api.client.get(f"/children/{child}/team")).status_code == 401
        big = {**api.auth("ops"), "content-length": str(10**9)}
        assert (await api.client.post("/ingest/events", headers=big)).status_code == 413
        scraped = await api.client.get("/metrics", headers=api.auth("ops"))
    assert scraped.status_code == 200
    got = samples(scraped.text)

    def requests(route: str, status: int, method: str = "GET") -> float:
        key = (("method", method), ("route", route), ("status", str(status)))
        return got.get(("hub_http_requests_total", key), 0.0)

    assert requests("/healthz", 200) == 3
    assert requests("/children/{child_id}/team", 401) == 1
    assert requests("/ingest/events", 413, "POST") == 1
    assert not any(child in name + repr(labels) for name, labels in got)
    count = (("method", "GET"), ("route", "/healthz"), ("status", "200"))
    assert got[("hub_http_request_duration_seconds_count", count)] == 3
    inf = tuple(sorted((*count, ("le", "+Inf"))))
    assert got[("hub_http_request_duration_seconds_bucket", inf)] == 3
    names = {name for name, _ in got}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= names
    assert "python_info" in names and "python_gc_collections_total" in names


async def test_a_raised_exception_is_logged_and_counted_as_the_500_it_becomes() -> None:
    from fastapi import FastAPI

    from hub.api.observe import AccessLog
    from hub.observability import create_metrics

    app = FastAPI()

    @app.get("/boom/{item}")
    async def boom(item: str) -> None:
        raise RuntimeError("boom")

    metrics = create_metrics()
    logged_app = AccessLog(app, metrics)
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    def scope(method: str, path: str) -> dict[str, Any]:
        return {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
                "query_string": b"", "headers": [], "root_path": "", "app": app}  # fmt: skip

    with logged() as lines:
        with pytest.raises(RuntimeError):
            await logged_app(scope("GET", "/boom/9434765919"), receive, send)
        await logged_app(scope("POST", "/boom/9434765919"), receive, send)  # 405: its route's
    access = [(a["method"], a["route"], a["status"]) for a in lines if a["event"] == "http.request"]
    assert access == [("GET", "/boom/{item}", 500), ("POST", "/boom/{item}", 405)]
    got = samples(generate_latest(metrics.registry).decode())
    labels = (("method", "GET"), ("route", "/boom/{item}"), ("status", "500"))
    assert got[("hub_http_requests_total", labels)] == 1
    assert got[("hub_http_request_duration_seconds_count", labels)] == 1
    assert "9434765919" not in repr(lines) + repr(got)
