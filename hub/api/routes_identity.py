"""Identity routes: `GET /whoami`, for integrators checking which credentials they hold.

Any authenticated caller may ask; the answer is the name, role and agency the hub sees
for the presented token and whether an API key or OIDC vouched for it — never the token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, JsonValue

from hub.api.auth import AUTH_RESPONSES, current_principal
from hub.auth import Principal, Role, Via

router = APIRouter(tags=["identity"])

_EXAMPLE: dict[str, JsonValue] = {
    "name": "Riverside Primary MIS feed",
    "role": "agency",
    "agency": "school:100001",
    "via": "api_key",
}


class WhoAmI(BaseModel):
    """The caller as the hub sees them."""

    model_config = ConfigDict(frozen=True, json_schema_extra={"examples": [_EXAMPLE]})

    name: str
    role: Role
    agency: str | None
    via: Via


@router.get(
    "/whoami",
    summary="Who am I? The name, role and agency of the presented credentials",
    description="Answers for any role. Use it to check a new API key or OIDC client "
    "before calling the routes that need a particular role.",
    response_model=WhoAmI,
    responses={
        200: {"content": {"application/json": {"example": _EXAMPLE}}},
        401: AUTH_RESPONSES[401],
    },
)
async def whoami(principal: Annotated[Principal, Depends(current_principal)]) -> WhoAmI:
    return WhoAmI(
        name=principal.name, role=principal.role, agency=principal.agency, via=principal.via
    )
