"""People by name in the joined view: the team view names each member and their
organisation from their joining facts (a school also from the child's placements, as a
CTF carries them), the key worker and each action's owner by name; the plan timeline's
advice steps read "Advice from Dr Priya Shah, educational psychologist" where the caller
may see who the adviser is, and keep the id wording where not. Sample content is read
from the sample file, never copied here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from defusedxml import ElementTree as ET

from hub.adapters.ctf import parse_ctf
from hub.events.envelope import Envelope, EventPayload, Source
from hub.events.plan import AdviceRequested, AdviceSubmitted, AssessmentRequested, DocumentRef
from hub.events.team import KeyWorkerAssigned, MeetingAction, MeetingHeld, PractitionerJoined
from hub.projections.plan_timeline import build_timeline
from hub.projections.team_around_child import (
    PractitionerNaming,
    SealedFact,
    WhoDecidesOut,
    fold_team,
    practitioner_names,
    role_words,
)

CHILD = "hc-1"
PLAN = "plan-1"
ROLES = {
    "educational_psychologist": ("Educational psychologist", "education"),
    "la_sen_officer": ("LA SEN casework officer", "local_authority"),
    "key_worker": ("Key worker (single point of contact)", "local_authority"),
    "senco": ("School SEN coordinator", "education"),
}
WHO = WhoDecidesOut(decides="parent_with_pr", summary="a parent decides")


def facts(*payloads: EventPayload, plan_id: str | None = None) -> list[tuple[SealedFact, Envelope]]:
    out = []
    for i, payload in enumerate(payloads):
        env = Envelope.wrap(
            payload,
            child_id=CHILD,
            source=Source(agency="la"),
            occurred_at=datetime(2024, 1, 1, tzinfo=UTC),
            plan_id=plan_id if payload.event_type.startswith("plan.") else None,
        )
        row = SealedFact(
            event_id=f"e{i}",
            child_id=CHILD,
            event_type=env.event_type,
            category=env.category,
            agency="la",
            organisation=None,
            occurred_at=env.occurred_at.isoformat(),
            purposes=(),
            basis_claimed=None,
            body=b"",
            plan_id=env.plan_id,
        )
        out.append((row, env))
    return out


def joined(pid: str, role: str = "educational_psychologist", **fields: Any) -> PractitionerJoined:
    return PractitionerJoined(
        practitioner_id=pid, role=role, agency="education", since=date(2024, 1, 2), **fields
    )


def team(pairs: Iterable[tuple[SealedFact, Envelope]], hidden: frozenset[str] = frozenset()) -> Any:
    return fold_team(
        CHILD,
        pairs,
        today=date(2024, 3, 1),
        hidden=hidden,
        roles=ROLES,
        who_decides=WHO,
        consent=[],
    )


def members(view: Any) -> dict[str, Any]:
    return {m.practitioner_id: m for g in view.agencies for m in g.members}


# --------------------------------------------------------------------------- team view


def test_members_the_key_worker_and_action_owners_are_shown_by_name() -> None:
    view = team(
        facts(
            joined(
                "ep-1",
                name="Dr Priya Shah",
                organisation_name="Exampleshire Educational Psychology Service",
            ),
            joined("kw-1", role="key_worker", name="Jo Bloggs", organisation_code="801"),
            KeyWorkerAssigned(
                practitioner_id="kw-1", model="single_person", assigned_on=date(2024, 1, 3)
            ),
            MeetingHeld(
                meeting_id="m-1",
                held_on=date(2024, 1, 4),
                kind="tac",
                actions=(
                    MeetingAction(
                        action_id="a-1",
                        text="Observe in class",
                        owner_id="ep-1",
                        due_on=date(2024, 2, 1),
                    ),
                ),
            ),
        )
    )
    ep = members(view)["ep-1"]
    assert (ep.name, ep.organisation_name) == (
        "Dr Priya Shah",
        "Exampleshire Educational Psychology Service",
    )
    assert view.key_worker is not None and view.key_worker.name == "Jo Bloggs"
    assert view.key_worker.organisation_name is None  # nothing names LA 801
    (action,) = view.open_actions
    assert (action.owner_id, action.owner_name) == ("ep-1", "Dr Priya Shah")


def test_a_later_joining_fact_without_a_name_keeps_the_name_and_one_with_a_name_replaces_it() -> (
    None
):
    view = team(facts(joined("ep-1", name="Dr Priya Shah"), joined("ep-1", role="senco")))
    assert members(view)["ep-1"].name == "Dr Priya Shah"
    assert members(view)["ep-1"].role == "senco"
    view = team(
        facts(joined("ep-1", name="Dr Priya Shah"), joined("ep-1", name="Dr Priya Shah-Patel"))
    )
    assert members(view)["ep-1"].name == "Dr Priya Shah-Patel"


def test_a_member_without_a_name_is_shown_by_id_alone() -> None:
    view = team(facts(joined("gmc:C9900010", organisation_code="RZ9")))
    member = members(view)["gmc:C9900010"]
    assert (member.name, member.organisation_name) == (None, None)


@pytest.mark.samples
def test_a_school_is_named_by_the_childs_placements_from_a_ctf(samples_dir: Path) -> None:
    """The CTF carries no staff, but its school history names the schools: a member who
    joins for a school by its URN, or by its DfE number (LA + establishment), is shown
    with the name the CTF gives that school."""
    path = samples_dir / "ctf" / "gryphon-y12.xml"
    result = parse_ctf(path.read_bytes(), agency="school", now=datetime(2025, 1, 1, tzinfo=UTC))
    placements = [
        f.payload for f in result.facts if f.payload.event_type == "education.placement_recorded"
    ]
    schools = list(ET.fromstring(path.read_bytes()).iter("School"))
    by_urn = {s.findtext("URN"): s.findtext("SchoolName") for s in schools if s.findtext("URN")}
    urn = next(iter(by_urn))
    unnumbered = next(s for s in schools if not s.findtext("URN"))
    dfe = f"{unnumbered.findtext('LEA')}{unnumbered.findtext('Estab')}"
    view = team(
        [
            *facts(*placements),
            *facts(joined("senco-1", role="senco", organisation_code=urn)),
            *facts(joined("t-1", role="senco", organisation_code=dfe)),
            *facts(joined("t-2", role="senco", organisation_code=urn, organisation_name="Its own")),
        ]
    )
    named = members(view)
    assert named["senco-1"].organisation_name == by_urn[urn]
    assert named["t-1"].organisation_name == unnumbered.findtext("SchoolName")
    assert named["t-2"].organisation_name == "Its own"  # the joining fact's name wins


def test_a_hidden_practitioner_is_never_named() -> None:
    pairs = facts(joined("camhs-7", name="Dr Hidden"))
    view = team(pairs, hidden=frozenset({"camhs-7"}))
    assert "Dr Hidden" not in view.model_dump_json()
    assert (
        practitioner_names(((r.event_id, e.payload) for r, e in pairs), frozenset({"camhs-7"}))
        == {}
    )


# --------------------------------------------------------------------------- naming helpers


def test_practitioner_names_keep_the_latest_name_role_and_organisation_with_their_facts() -> None:
    named = practitioner_names(
        [
            ("e1", {"practitioner_id": "ep-1", "role": "senco", "name": "Priya Shah"}),
            ("e2", {"practitioner_id": "ep-1", "role": "educational_psychologist"}),
            ("e3", {"practitioner_id": "nobody", "role": "senco"}),
            ("e4", joined("ep-1", organisation_name="EPS")),
        ]
    )
    assert named == {
        "ep-1": PractitionerNaming(
            practitioner_id="ep-1",
            name="Priya Shah",
            role="educational_psychologist",
            organisation_name="EPS",
            event_ids=("e1", "e2", "e4"),
        )
    }
    assert named["ep-1"].words(ROLES) == "Priya Shah, educational psychologist"


@pytest.mark.parametrize(
    ("role", "words"),
    [
        ("educational_psychologist", "educational psychologist"),
        ("la_sen_officer", "LA SEN casework officer"),  # an initialism keeps its capitals
        ("health_practitioner", "health practitioner"),  # not in the vocabulary: its code
    ],
)
def test_role_words_read_in_a_sentence(role: str, words: str) -> None:
    assert role_words(role, ROLES) == words


# --------------------------------------------------------------------------- timeline


def _plan_facts() -> list[tuple[SealedFact, Envelope]]:
    return facts(
        AssessmentRequested(
            requested_on=date(2024, 1, 15), received_on=date(2024, 1, 18), requested_by="parent"
        ),
        AdviceRequested(
            advice_request_id="adv-ep",
            reg6_category="educational_psychologist",
            practitioner_id="ep-1",
            requested_on=date(2024, 2, 1),
        ),
        AdviceSubmitted(
            advice_request_id="adv-ep",
            practitioner_id="ep-1",
            submitted_on=date(2024, 3, 1),
            document=DocumentRef(document_id="doc-1"),
            advice_category="education",
        ),
        plan_id=PLAN,
    )


def test_timeline_titles_name_the_adviser_when_the_caller_may_see_who_they_are() -> None:
    people = practitioner_names([("j1", joined("ep-1", name="Dr Priya Shah"))])
    view = build_timeline(
        PLAN, CHILD, _plan_facts(), today=date(2024, 3, 2), people=people, roles=ROLES
    )
    texts = {s.event_type: s.text for s in view.steps}
    assert texts["plan.advice_submitted"] == "Advice from Dr Priya Shah, educational psychologist"
    assert texts["plan.advice_requested"] == (
        "Advice requested from Dr Priya Shah, educational psychologist (educational psychologist)"
    )
    (advice,) = [c for c in view.contributions if c.kind == "advice"]
    assert advice.practitioner_name == "Dr Priya Shah"
    assert "j1" in view.facts_shown  # the naming fact is part of what the view rests on


def test_timeline_titles_keep_todays_wording_without_a_name_or_for_a_hidden_adviser() -> None:
    people = practitioner_names([("j1", joined("ep-1", name="Dr Priya Shah"))])
    for kwargs in ({}, {"people": people, "hidden": frozenset({"ep-1"})}):
        view = build_timeline(
            PLAN, CHILD, _plan_facts(), today=date(2024, 3, 2), roles=ROLES, **kwargs
        )
        texts = {s.event_type: s.text for s in view.steps}
        assert texts["plan.advice_submitted"] == "Advice submitted by ep-1"
        assert texts["plan.advice_requested"] == "Advice requested (educational psychologist)"
        assert "Priya" not in view.model_dump_json() and "j1" not in view.facts_shown
