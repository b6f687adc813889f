"""A child's open meeting actions, for the write routes that complete them."""

from __future__ import annotations

from hub.projections.team_around_child import load_team_facts
from hub.queries.context import Reads, open_facts

_ACTION_TYPES = ("team.meeting_held", "team.meeting_action_completed")


async def open_action_ids(reads: Reads, child_id: str) -> set[str]:
    """The ids of the actions agreed at the child's team meetings and not yet completed
    (the team view's open actions, before any consent decision: a write check, not a
    disclosure)."""
    await reads.views.catch_up(["team_around_child"], [child_id])
    facts = [
        f for f in await load_team_facts(reads.store, child_id) if f.event_type in _ACTION_TYPES
    ]
    agreed: set[str] = set()
    done: set[str] = set()
    for _, env in await open_facts(reads, facts):
        p = env.payload
        if env.event_type == "team.meeting_held":
            agreed.update(a.action_id for a in p.actions)
        else:
            done.add(p.action_id)
    return agreed - done
