"""Education events: SEN status and needs as a school or the LA records them."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hub.events.envelope import EventPayload
from hub.events.registry import registry

SenProvision = Literal["E", "K", "N"]
"""E = EHC plan, K = SEN support, N = no special educational need (DfE codes since 2014)."""

SenNeedType = Literal[
    "SPLD", "MLD", "SLD", "PMLD", "SEMH", "SLCN", "HI", "VI", "MSI", "PD", "ASD", "OTH", "NSA"
]
"""DfE primary/secondary SEN need type codes."""


class SenNeedRanked(BaseModel):
    """One SEN need with its rank (1 = primary)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: SenNeedType
    rank: int = Field(ge=1, le=9)


@registry.register
class SenStatusRecorded(EventPayload):
    """A school or the LA recorded the child's SEN provision status and needs."""

    event_type = "education.sen_status_recorded"
    schema_version = 2
    category = "education"

    sen_provision: SenProvision
    start_date: date
    end_date: date | None = None
    needs: tuple[SenNeedRanked, ...] = ()

    @model_validator(mode="after")
    def _end_after_start(self) -> SenStatusRecorded:
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


_V1_PROVISION = {"S": "E", "P": "K", "A": "K", "N": "N"}
_V1_NEED = {"BESD": "SEMH"}


@registry.upcaster(SenStatusRecorded.event_type, from_version=1)
def upcast_sen_status_v1_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 used the pre-2014 codes (S statement, P School Action Plus, A School Action) and a
    single `need_type` (with BESD, renamed SEMH in the 2014 Code of Practice); v2 uses the
    E/K/N codes and a ranked list of needs."""
    out = {k: v for k, v in payload.items() if k not in ("sen_provision", "need_type")}
    out["sen_provision"] = _V1_PROVISION.get(payload.get("sen_provision", ""), payload.get("sen_provision"))
    need = payload.get("need_type")
    out["needs"] = [] if not need else [{"type": _V1_NEED.get(need, need), "rank": 1}]
    return out
