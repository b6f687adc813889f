"""Operational routes: liveness, readiness (log and store reachable, projection lag) and
Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from hub.api.auth import Principal, require_roles
from hub.api.deps import hub_of, readiness
from hub.log import LogName

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: log and store reachable, with projection lag",
    responses={
        200: {"description": "Ready: the log and the store answer"},
        503: {
            "description": "A backend is unreachable (the same body, status `not ready`)",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
    },
)
async def readyz(request: Request) -> JSONResponse:
    ok, checks = await readiness(hub_of(request))
    body: dict[str, Any] = {"status": "ready" if ok else "not ready", **checks}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (admin)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(
    request: Request, _principal: Annotated[Principal, Depends(require_roles("admin"))]
) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    the_hub = hub_of(request)
    ok, checks = await readiness(the_hub)
    if ok:
        for name, lag in checks["projection_lag"].items():
            the_hub.metrics.projection_lag.labels(projection=name).set(lag)
        ends = await the_hub.log.end_offsets(LogName.DEADLETTER)
        the_hub.metrics.dead_letters.set(sum(ends.values()))
    return Response(generate_latest(the_hub.metrics.registry), media_type=CONTENT_TYPE_LATEST)
