"""Projections: read models built from the logs, and the runner that keeps them current."""

from hub.projections.base import Applied, Projection
from hub.projections.event_counts import EventCountsProjection
from hub.projections.runner import ProjectionRunner

__all__ = ["Applied", "EventCountsProjection", "Projection", "ProjectionRunner", "all_projections"]


def all_projections() -> list[Projection]:
    """Every projection the hub runs, by name."""
    from hub.projections.caseload_view import CaseloadViewProjection
    from hub.projections.gate_views import (
        AuditIndexProjection,
        CaseloadProjection,
        ConsentStateProjection,
        DedupeProjection,
        SharedRecordProjection,
        WithheldIndexProjection,
    )
    from hub.projections.notify_outbox import NotifyOutboxProjection
    from hub.projections.plan_timeline import PlanTimelineProjection
    from hub.projections.team_around_child import TeamAroundChildProjection

    return [
        EventCountsProjection(),
        ConsentStateProjection(),
        CaseloadProjection(),
        WithheldIndexProjection(),
        DedupeProjection(),
        SharedRecordProjection(),
        AuditIndexProjection(),
        TeamAroundChildProjection(),
        PlanTimelineProjection(),
        CaseloadViewProjection(),
        NotifyOutboxProjection(),
    ]
