"""Who reaches a child and what each of them sees: the caller's own children, the list of
everyone who can see a child and why, and the child's access log in plain words.

`my_children` answers each role's "my children": a coordinator's caseload, the teams a
practitioner is on now, a family member's own child. `who_can_see` lists every
coordinator whose caseload holds the child, every practitioner on the child's team now
and every family member holding a key for the child, each with why they reach the child
and, per data category, how many of the facts the hub holds they see now and on what
ground — the same view-time decision their own reads get. `access_log` tells the family
who looked at their child's record, when and at what, in plain words. Each is audited.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
from pydantic import BaseModel, ConfigDict, Field

from hub.auth.principal import FAMILY_VIEWER_ROLES, Principal, Role
from hub.consent.decision import Fact, decide_sharing
from hub.consent.viewer import Viewer
from hub.errors import NotFound
from hub.projections.team_around_child import SealedFact, hidden_practitioners, load_team_facts
from hub.queries.context import (
    MEMBERSHIP_EVENTS,
    Reads,
    audit_reads,
    open_facts,
    require_in_reach,
    teams_of,
    viewer_for,
)
from hub.queries.joined import child_names
from hub.queries.record import sharing_key
from hub.service_layer.reconsider import sharing_context, stored_fact


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class MyChild(_Out):
    child_id: str
    name: str | None = Field(default=None, description="As the caller may see it")


class MyChildren(_Out):
    role: str
    children: list[MyChild]


class CategoryAccess(_Out):
    category: str
    facts_seen: int = Field(description="How many of the facts the hub holds they see now")
    facts_held: int
    grounds: list[str] = Field(
        description="What lets them see them: consent ids, statutory bases, or the "
        "family's own right of access"
    )


class Reacher(_Out):
    kind: str = Field(description="coordinator, practitioner or family")
    who: str = Field(description="Principal name, practitioner id, or family reference")
    role: str = Field(description="The role the policy judges them as")
    role_description: str | None = None
    agency: str | None = None
    organisation: str | None = None
    why: str = Field(description="Why they reach the child, in plain words")
    sees: list[CategoryAccess]


class WhoCanSee(_Out):
    child_id: str
    as_of: datetime
    people: list[Reacher]


class AccessLogLine(_Out):
    at: datetime
    who: str
    what: str
    text: str = Field(description="The line in plain words")


class AccessLog(_Out):
    child_id: str
    lines: list[AccessLogLine]


# --------------------------------------------------------------------------- my children


async def my_children(reads: Reads, caller: Principal) -> MyChildren:
    """The children the caller reaches now, with names as they may see them (audited)."""
    if caller.role is Role.PRACTITIONER and caller.practitioner_id:
        children = await teams_of(reads, caller.practitioner_id)
    elif caller.role is Role.FAMILY:
        known = await reads.persons.existing(sorted(caller.children))
        children = sorted(known)
    elif caller.role is Role.COORDINATOR:
        await reads.views.catch_up_partitions(["caseload"])
        rows = await reads.store.fetchall(
            "SELECT child_id FROM caseload WHERE coordinator = ? ORDER BY child_id",
            (caller.name,),
        )
        children = [str(r[0]) for r in rows]
    else:
        children = []
    now = datetime.now(UTC)
    viewer = await viewer_for(reads, caller, now, children, fresh=True)
    names = await child_names(reads, viewer, children)
    await audit_reads(
        reads, caller, "GET /me/children", now, [(c, names[c][1], {}) for c in children]
    )
    return MyChildren(
        role=caller.viewer_role,
        children=[MyChild(child_id=c, name=names[c][0]) for c in children],
    )


# --------------------------------------------------------------------------- who can see


async def _held_facts(reads: Reads, child_id: str) -> list[tuple[str, Fact]]:
    """(category, stored fact) of every fact the hub holds (shares) about the child."""
    rows = await reads.store.fetchall(
        "SELECT body, purposes, basis_claimed FROM shared_fact WHERE child_id = ?"
        " ORDER BY part, log_offset",
        (child_id,),
    )
    out = []
    for body, purposes, basis in rows:
        fact = stored_fact(orjson.loads(bytes(body)), *sharing_context(purposes, basis))
        out.append((fact.category, fact))
    return out


def _sees(
    viewer: Viewer, reads: Reads, child_id: str, held: Sequence[tuple[str, Fact]], now: datetime
) -> list[CategoryAccess]:
    state = viewer.states[child_id]
    held_by = Counter(category for category, _ in held)
    seen: Counter[str] = Counter()
    grounds: dict[str, list[str]] = {}
    for category, fact in held:
        if not viewer.sees_key(child_id, sharing_key(fact)):
            continue
        seen[category] += 1
        if viewer.family_categories is not None:
            why = "their own right of access (family)"
        else:
            ground = decide_sharing(fact, state, reads.policy, at=now).ground_for(
                viewer.role, viewer.agency
            )
            why = "unknown" if ground is None else f"{ground.kind.replace('_', ' ')} {ground.name}"
        names = grounds.setdefault(category, [])
        if why not in names:
            names.append(why)
    return [
        CategoryAccess(
            category=c, facts_seen=seen[c], facts_held=held_by[c], grounds=grounds.get(c, [])
        )
        for c in sorted(held_by)
    ]


async def _team_now(
    reads: Reads, caller_viewer: Viewer | None, child_id: str
) -> list[tuple[str, str, str, str | None, str]]:
    """(practitioner id, role, agency, organisation, since) of the team now; the members
    whose joining the caller may not see are left out (none for admin and IG)."""
    facts = [
        f for f in await load_team_facts(reads.store, child_id) if f.event_type in MEMBERSHIP_EVENTS
    ]
    visible: list[SealedFact] = facts
    if caller_viewer is not None:
        hidden = hidden_practitioners(facts, caller_viewer.sees)
        visible = [f for f in facts if f.subject_ref not in hidden]
    members: dict[str, tuple[str, str, str, str | None, str]] = {}
    for fact, env in await open_facts(reads, visible):
        p = env.payload
        if fact.event_type == MEMBERSHIP_EVENTS[0]:
            members[p.practitioner_id] = (  # type: ignore[attr-defined]
                p.practitioner_id,  # type: ignore[attr-defined]
                p.role,  # type: ignore[attr-defined]
                p.agency,  # type: ignore[attr-defined]
                p.organisation_code,  # type: ignore[attr-defined]
                p.since.isoformat(),  # type: ignore[attr-defined]
            )
        else:
            members.pop(p.practitioner_id, None)  # type: ignore[attr-defined]
    return list(members.values())


async def who_can_see(reads: Reads, caller: Principal, child_id: str) -> WhoCanSee:
    """Everyone who can see the child now, why, and what of the record each sees."""
    if caller.role in (Role.ADMIN, Role.IG_AUDITOR):
        await reads.views.catch_up(["caseload", "team_around_child", "shared_record"], [child_id])
        if not await reads.persons.exists(child_id):
            raise NotFound("no such child")
    else:
        await require_in_reach(
            reads, caller, child_id, also=("caseload", "team_around_child", "shared_record")
        )
    now = datetime.now(UTC)
    own = await viewer_for(reads, caller, now, [child_id], fresh=True)
    state = {child_id: own.states[child_id]}
    held = await _held_facts(reads, child_id)
    roles = reads.policy.roles

    def viewer(role: str, agency: str | None, family_role: str | None = None) -> Viewer:
        v = Viewer(
            reads.policy, reads.decisions, role=role, agency=agency, now=now,
            family_role=family_role,
        )  # fmt: skip
        v.add(state)
        return v

    people: list[Reacher] = []
    rows = await reads.store.fetchall(
        "SELECT coordinator, since FROM caseload WHERE child_id = ? ORDER BY coordinator",
        (child_id,),
    )
    coordinator_words = roles["coordinator"].description if "coordinator" in roles else None
    for name, since in rows:
        people.append(
            Reacher(
                kind="coordinator",
                who=str(name),
                role="coordinator",
                role_description=coordinator_words,
                why=f"the child is on their caseload (since {str(since)[:10]})",
                sees=_sees(viewer("coordinator", None), reads, child_id, held, now),
            )
        )
    scoped = None if caller.role in (Role.ADMIN, Role.IG_AUDITOR) else own
    for pid, role, agency, organisation, since in await _team_now(reads, scoped, child_id):
        spec = roles.get(role)
        people.append(
            Reacher(
                kind="practitioner",
                who=pid,
                role=role,
                role_description=spec.description if spec else None,
                agency=agency,
                organisation=organisation,
                why=f"on the team around the child (since {since})",
                sees=_sees(viewer(role, agency), reads, child_id, held, now),
            )
        )
    family = await reads.store.fetchall(
        "SELECT name, capacity, created_at FROM api_key WHERE child_id = ? AND role = ?"
        " AND revoked_at IS NULL ORDER BY created_at, key_id",
        (child_id, Role.FAMILY.value),
    )
    for name, capacity, created in family:
        family_role = FAMILY_VIEWER_ROLES.get(str(capacity), "parent")
        people.append(
            Reacher(
                kind="family",
                who=str(name),
                role=family_role,
                role_description="parent with parental responsibility"
                if capacity == "parent_with_pr"
                else "the young person",
                why=f"family member with an invitation redeemed on {str(created)[:10]}",
                sees=_sees(viewer(family_role, None, family_role), reads, child_id, held, now),
            )
        )
    await audit_reads(
        reads,
        caller,
        "GET /children/{id}/access",
        now,
        [(child_id, [], {"people": len(people)})],
    )
    return WhoCanSee(child_id=child_id, as_of=now, people=people)


# --------------------------------------------------------------------------- access log

ROUTE_WORDS = {
    "GET /children/{id}/team": "the team around the child",
    "GET /children/{id}/plans": "the EHC plans",
    "GET /plans/{id}/timeline": "a plan's timeline",
    "GET /children/{id}/record": "the shared record",
    "GET /children/{id}/consents": "the consent record",
    "GET /children/{id}/access": "who can see the record",
    "GET /children/{id}/access-log": "this access log",
    "GET /caseload": "their caseload list",
    "GET /me/children": "their list of children",
    "GET /me/work": "their list of actions and advice due",
    "GET /audit/children/{id}": "the audit trail (information governance)",
    "POST /children/search": "a search that found the child",
}


def _who_words(actor: str, details: dict[str, object], caller: Principal) -> str:
    role, _, name = actor.partition(":")
    if actor == caller.actor:
        return "You"
    if role == Role.FAMILY.value:
        return "A family member"
    acting_as = details.get("as")
    if role == Role.PRACTITIONER.value and isinstance(acting_as, str):
        return f"{name} ({acting_as.replace('_', ' ')})"
    words = {"coordinator": "coordinator", "ig_auditor": "information governance"}
    return f"{name} ({words.get(role, role)})"


async def access_log(
    reads: Reads, caller: Principal, child_id: str, *, limit: int = 200
) -> AccessLog:
    """Who looked at the child's record, newest first, in plain words (audited)."""
    await require_in_reach(reads, caller, child_id, also=("audit_index",))
    rows = await reads.store.fetchall(
        "SELECT line FROM audit_entry WHERE child_id = ? AND kind = 'read'"
        " ORDER BY at DESC, part DESC, log_offset DESC LIMIT ?",
        (child_id, limit),
    )
    lines: list[AccessLogLine] = []
    for (line,) in rows:
        record = orjson.loads(bytes(line))
        details = record.get("details") or {}
        route = str(details.get("route", ""))
        what = ROUTE_WORDS.get(route, "the record")
        who = _who_words(str(record.get("actor", "")), details, caller)
        at = datetime.fromisoformat(str(record["at"]).replace("Z", "+00:00"))
        lines.append(
            AccessLogLine(
                at=at,
                who=who,
                what=what,
                text=f"{who} looked at {what} on {at:%-d %B %Y at %H:%M}",
            )
        )
    now = datetime.now(UTC)
    await audit_reads(
        reads, caller, "GET /children/{id}/access-log", now, [(child_id, [], {"lines": len(lines)})]
    )
    return AccessLog(child_id=child_id, lines=lines)
