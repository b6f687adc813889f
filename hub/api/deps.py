"""What a route needs from the running process: the hub it serves (`hub_of`) and its
readiness. Routes import this, never the app factory, so the app and its routers do not
import each other."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from hub.bootstrap import Hub
from hub.queries.context import Reads


def hub_of(request: Request) -> Hub:
    the_hub: Hub = request.app.state.hub
    return the_hub


def reads_of(request: Request) -> Reads:
    """The query layer's ports."""
    return hub_of(request).reads


async def readiness(the_hub: Hub) -> tuple[bool, dict[str, Any]]:
    checks: dict[str, Any] = {}
    ok = True
    for name, target in (("log", the_hub.log), ("store", the_hub.store)):
        try:
            await target.ping()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unreachable ({type(exc).__name__})"
            ok = False
    lag: dict[str, int] = {}
    if ok:
        for runner in the_hub.runners:
            lag[runner.name] = await runner.lag()
    checks["projection_lag"] = lag
    return ok, checks
